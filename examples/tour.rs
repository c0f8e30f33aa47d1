//! A tour of places on this machine: the README's demo. Each section is a seed idea in a few
//! lines; the other examples show each one whole.
//!
//! ```text
//! cargo run --release --example tour
//! ```

use std::time::Duration;

use places::prelude::*;

/// Figure 4.1's place: receive a greeting, answer it.
#[place]
pub fn hello_world(ch: PlaceChannel<String>) {
    if let Ok(msg) = ch.get() {
        println!("  hello-world received: {msg}");
        if ch.put("Hello World".to_string()).is_ok() {
            println!("  hello-world sent: Hello World");
        }
    }
}

/// Section 3.3's `start-fib`: get `n`, answer `fib(n)`.
#[place]
pub fn fib_place(ch: PlaceChannel<u64, u32>) {
    fn fib(n: u32) -> u64 {
        if n < 2 {
            u64::from(n)
        } else {
            fib(n - 1) + fib(n - 2)
        }
    }
    if let Ok(n) = ch.get() {
        let _ = ch.put(fib(n));
    }
}

/// Gets a direct channel, then doubles every number that comes on it.
#[place]
pub fn doubler(ch: PlaceChannel<(), PlaceChannel<u64>>) {
    if let Ok(direct) = ch.get() {
        while let Ok(n) = direct.get() {
            let _ = direct.put(n * 2);
        }
    }
}

/// Section 3.3's `zero!`: fills a shared vector with zeros.
#[place]
pub fn zero(ch: PlaceChannel<(), SharedI64s>) {
    if let Ok(v) = ch.get() {
        for i in 0..v.len() {
            v.set(i, 0);
        }
    }
}

/// Sleeps for the number of milliseconds it is sent, then ends with that number as its code.
#[place]
pub fn napper(ch: PlaceChannel<(), u64>) -> i32 {
    let ms = ch.get().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(ms));
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// Fails on purpose.
#[place]
pub fn faulty(ch: PlaceChannel<u8>) {
    let _ = ch.get();
    panic!("a place that fails on purpose");
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("places tour on {} cores", processor_count());

    println!(
        "\n1. hello world (dissertation Figure 4.1): an entry started by module path and name"
    );
    let p: Place<String> = dynamic_place(module_path!(), "hello_world")?;
    p.put("Hello".to_string())?;
    println!("  main received: {}", p.get()?);
    p.wait();

    println!("\n2. two places compute in parallel (section 3.3's start-fib)");
    let p1: Place<u32, u64> = Place::spawn(fib_place)?;
    let p2: Place<u32, u64> = Place::spawn(fib_place)?;
    p1.put(30)?;
    p2.put(31)?;
    println!("  fib(30) = {}, fib(31) = {}", p1.get()?, p2.get()?);

    println!("\n3. a place channel sent in a message makes a direct line");
    let d: Place<PlaceChannel<u64>, ()> = Place::spawn(doubler)?;
    let (mine, theirs) = place_channel::<u64, u64>();
    d.put(theirs)?;
    let answers: Vec<u64> = (1..=5).map(|n| mine.put_get(n)).collect::<Result<_, _>>()?;
    println!("  doubled over the direct channel: {answers:?}");

    println!("\n4. sync: whichever place finishes first is served first");
    let nappers: Vec<Place<u64, ()>> = (0..3)
        .map(|_| Place::spawn(napper))
        .collect::<Result<_, _>>()?;
    for (p, ms) in nappers.iter().zip([60, 20, 40]) {
        p.put(ms)?;
    }
    let mut pending: Vec<usize> = (0..nappers.len()).collect();
    while !pending.is_empty() {
        let evts: Vec<DeadEvt> = pending.iter().map(|&i| nappers[i].dead_evt()).collect();
        let mut sel = Select::new();
        for e in &evts {
            sel.dead(e);
        }
        let ev = sel.select();
        let k = ev.index();
        let code = ev.dead(&evts[k]);
        println!("  place {} ended with completion value {code}", pending[k]);
        pending.remove(k);
    }

    println!("\n5. shared vectors are shared, not copied (section 3.3's zero!)");
    let v = SharedI64s::new(8, 7);
    let z: Place<SharedI64s, ()> = Place::spawn(zero)?;
    z.put(v.clone())?;
    z.wait();
    println!("  after the place ran: {:?}", v.to_vec());

    println!("\n6. failure is visible: a panicking place completes with 1 and its channel closes");
    let f: Place<u8> = Place::spawn(faulty)?;
    f.put(0)?;
    println!("  wait() = {}, get() = {:?}", f.wait(), f.get());

    println!("\n7. fork-join: a group of places splits a loop (CGfor) and meets at barriers");
    let n = 1_000_000u64;
    let np = processor_count();
    let partial = fork_join!(np, cg, [n: u64] -> (u64, u64, u64), {
        let (mut first, mut last, mut sum) = (u64::MAX, 0, 0u64);
        cg_for!(cg, i in 0..n, {
            first = first.min(i);
            last = i;
            sum += i % 3;
        });
        cg.barrier();
        (first, last, sum)
    })?;
    for (rank, (first, last, _)) in partial.iter().enumerate() {
        println!("  place {rank} of {np} took iterations {first}..={last}");
    }
    let total: u64 = partial.iter().map(|p| p.2).sum();
    println!(
        "  sum of i % 3 below {n}: {total} (sequential: {})",
        (0..n).map(|i| i % 3).sum::<u64>()
    );

    println!("\n8. a pipeline passes each value from place to place (CGpipeline)");
    let stages = fork_join!(4, cg, [] -> Vec<u32>, {
        (1..=3u32)
            .map(|row| cg_pipeline!(cg, prev, row * 100, { prev + cg.id() as u32 }))
            .collect()
    })?;
    println!(
        "  last stage saw {:?} (each row + 0 + 1 + 2 + 3)",
        stages[3]
    );

    println!("\n9. a node: this program again, as a second process; its places answer over TCP");
    let start = std::time::Instant::now();
    let node = places::create_place_node("localhost", places::NodeOptions::new())?;
    let remote: places::RemotePlace<u32, u64> = node.dynamic_place(module_path!(), "fib_place")?;
    remote.put(25)?;
    println!(
        "  fib(25) = {} from node {} (pid {}), {:.1} ms after asking for the node",
        remote.get()?,
        node.addr(),
        node.pid().unwrap_or(0),
        start.elapsed().as_secs_f64() * 1e3
    );

    println!("\n10. a misspelt entry is an error that names what is registered");
    match dynamic_place::<String, String>(module_path!(), "helo_world") {
        Ok(_) => println!("  unexpectedly started"),
        Err(e) => println!("  {e}"),
    }
    Ok(())
}
