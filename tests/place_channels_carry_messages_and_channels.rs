//! Place channels deliver in order, fail instead of hanging when the peer is gone, travel inside
//! messages, and serve async code.

use std::time::Duration;

use places::prelude::*;

const LIMIT: Duration = Duration::from_secs(30);

/// Receives a direct channel to a partner, sums what the partner sends on it, reports the sum.
#[place]
fn summer(ch: PlaceChannel<u64, PlaceChannel<(), u64>>) {
    let Ok(direct) = ch.get() else { return };
    let mut sum = 0;
    while let Ok(n) = direct.get() {
        sum += n;
    }
    let _ = ch.put(sum);
}

/// Receives a direct channel to a partner and sends 1..=100 on it, then drops it.
#[place]
fn counter(ch: PlaceChannel<(), PlaceChannel<u64, ()>>) {
    let Ok(direct) = ch.get() else { return };
    for n in 1..=100 {
        if direct.put(n).is_err() {
            return;
        }
    }
}

#[place]
fn echo_forever(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

#[place]
fn ends_at_once(_ch: PlaceChannel<u64>) {}

/// Starts a child place and relays one message through it.
#[place]
fn parent_of_echo(ch: PlaceChannel<u64>) {
    let child: Place<u64> = Place::spawn(echo_forever).unwrap();
    let n = ch.get().unwrap();
    ch.put(child.put_get(n + 1).unwrap()).unwrap();
}

#[test]
fn a_channel_sent_in_a_message_links_two_places_directly() {
    let s: Place<PlaceChannel<(), u64>, u64> = Place::spawn(summer).unwrap();
    let c: Place<PlaceChannel<u64, ()>, ()> = Place::spawn(counter).unwrap();
    let (to_summer, to_counter) = place_channel::<u64, ()>();
    s.put(to_counter).unwrap();
    c.put(to_summer).unwrap();
    assert_eq!(s.get_timeout(LIMIT).unwrap(), 5050);
    assert_eq!(c.wait(), 0);
    assert_eq!(s.wait(), 0);
}

#[test]
fn messages_arrive_in_the_order_sent() {
    let p: Place<u64> = Place::spawn(echo_forever).unwrap();
    for i in 0..10_000 {
        p.put(i).unwrap();
    }
    for i in 0..10_000 {
        assert_eq!(p.get_timeout(LIMIT).unwrap(), i);
    }
}

#[test]
fn get_on_an_ended_place_fails_instead_of_hanging() {
    let p: Place<u64> = Place::spawn(ends_at_once).unwrap();
    assert_eq!(p.wait(), 0);
    assert_eq!(p.get(), Err(ChannelError::Closed));
    assert_eq!(p.put(1), Err(ChannelError::Closed));
}

#[test]
fn a_place_sees_its_creator_leave() {
    let p: Place<u64> = Place::spawn(echo_forever).unwrap();
    let dead = p.dead_evt();
    drop(p);
    // The place's `get` fails, its loop ends, and it completes.
    for _ in 0..3000 {
        if dead.is_ready() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(dead.completion(), Some(0));
}

#[test]
fn try_get_and_get_timeout() {
    let p: Place<u64> = Place::spawn(echo_forever).unwrap();
    assert_eq!(p.try_get(), Err(ChannelError::Empty));
    let short = Duration::from_millis(10);
    assert_eq!(p.get_timeout(short), Err(ChannelError::Timeout(short)));
    p.put(4).unwrap();
    assert_eq!(p.get_timeout(LIMIT), Ok(4));
}

#[test]
fn places_can_start_places() {
    let p: Place<u64> = Place::spawn(parent_of_echo).unwrap();
    assert_eq!(p.put_get(41).unwrap(), 42);
    assert_eq!(p.wait(), 0);
}

#[test]
fn async_code_awaits_replies_from_a_place() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let p: Place<u64> = Place::spawn(echo_forever).unwrap();
    rt.block_on(async {
        for i in 0..200 {
            p.put(i).unwrap();
            let back = tokio::time::timeout(LIMIT, p.recv())
                .await
                .expect("reply in time")
                .unwrap();
            assert_eq!(back, i);
        }
    });
    drop(rt);
    let q: Place<u64> = Place::spawn(ends_at_once).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let end = rt.block_on(async { tokio::time::timeout(LIMIT, q.recv()).await });
    assert_eq!(
        end.expect("closure seen in time"),
        Err(ChannelError::Closed)
    );
}

/// Puts numbers on the bounded channel it gets until that fails, then reports how many it put.
#[place]
fn floods(ch: PlaceChannel<u64, PlaceChannel<u64, ()>>) {
    let Ok(out) = ch.get() else { return };
    let mut n = 0;
    while out.put(n).is_ok() {
        n += 1;
        if n == 1_000_000 {
            break;
        }
    }
    let _ = ch.put(n);
}

#[test]
fn a_bounded_channel_holds_a_fast_producer_back() {
    let p: Place<PlaceChannel<u64, ()>, u64> = Place::spawn(floods).unwrap();
    let (to_me, mine) = places::bounded_place_channel::<u64, ()>(4);
    p.put(to_me).unwrap();
    // The producer fills the channel, then waits with four queued instead of racing ahead.
    let end = std::time::Instant::now() + LIMIT;
    while mine.len() < 4 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(mine.len(), 4);
    for i in 0..100 {
        assert_eq!(mine.get_timeout(LIMIT).unwrap(), i);
    }
    assert!(mine.len() <= 4);
    // A place waiting in a full `put` is still ended at once by a kill.
    p.kill();
    assert_eq!(p.wait(), 1);
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}
