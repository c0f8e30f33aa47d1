//! Shared-memory Mandelbrot, dissertation Figure 3.4: `fork_join!` starts one place per core,
//! hands each the image size and a `SharedBytes` image, and each place writes its block of rows
//! (`cg_for!`) straight into the shared vector. No pixel is sent as a message.
//!
//! ```text
//! cargo run --release --example mandelbrot [-- SIZE [OUTPUT.pgm]]
//! cargo run --release --example mandelbrot -- --nodes 2 [--tls] [SIZE [OUTPUT.pgm]]
//! ```
//!
//! It computes the image with 1 place and with `processor_count()` places, checks that the two
//! are identical, writes the image as a PGM file (which image viewers open), and prints:
//!
//! ```text
//! mandelbrot 600x600: 1 place 39.6 ms, 2 places 20.7 ms, identical images
//! wrote /tmp/places-mandelbrot.pgm
//! ```
//!
//! With `--nodes N` the many places are N places on N local nodes (processes of their own,
//! linked directly), started by the same `fork_join!` with `nodes = &nodes`. Memory is not
//! shared across processes, so each member returns its block of rows as bytes instead:
//!
//! ```text
//! mandelbrot 600x600: 1 place 39.6 ms, 2 places on 2 nodes 21.5 ms, identical images
//! ```
//!
//! `--tls` encrypts every link of those nodes (`NodeOptions::tls` with a cluster authority made
//! for the run, `places::Tls::generate()`): the same image, and the line says
//! `2 places on 2 nodes (TLS)`.

use std::io::Write;
use std::time::Instant;

use places::prelude::*;

#[path = "common/mandelbrot.rs"]
mod kernel;

/// The image computed by `np` places into a shared byte vector.
fn render(np: usize, n: usize) -> Result<SharedBytes, ForkJoinError> {
    let b = SharedBytes::zeroed(n * n);
    fork_join!(np, cg, [n: usize, b: SharedBytes = b.clone()], {
        // Each row is computed into a local buffer and stored into the shared image at once.
        let mut row = vec![0u8; n];
        cg_for!(cg, y in 0..n, {
            kernel::mandelbrot_row(y, n, &mut row);
            b.write_slice(y * n, &row);
        });
    })?;
    Ok(b)
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: mandelbrot [--nodes N [--tls]] [SIZE [OUTPUT.pgm]]";
    let (mut nodes, mut tls, mut positional) = (None::<usize>, false, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--nodes" => {
                let v = args.next().ok_or("--nodes needs a number of nodes")?;
                nodes = Some(
                    v.parse()
                        .ok()
                        .filter(|&k: &usize| k > 0)
                        .ok_or(format!("--nodes takes a positive number, not {v:?}"))?,
                );
            }
            "--tls" => tls = true,
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?}; {usage}").into())
            }
            _ => positional.push(a),
        }
    }
    if tls && nodes.is_none() {
        return Err(format!("--tls is for the links of nodes: add --nodes N; {usage}").into());
    }
    if positional.len() > 2 {
        return Err(format!("too many arguments; {usage}").into());
    }
    let mut positional = positional.into_iter();
    let n: usize = match positional.next() {
        Some(s) => s
            .parse()
            .map_err(|e| format!("SIZE must be a number: {e}"))?,
        None => 600,
    };
    let path = positional
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("places-mandelbrot.pgm"));

    let t = Instant::now();
    let one = render(1, n)?.to_vec();
    let t_one = t.elapsed();
    let (many, t_many, how) = match nodes {
        None => {
            let np = processor_count();
            let t = Instant::now();
            let many = render(np, n)?.to_vec();
            (many, t.elapsed(), format!("{np} places"))
        }
        Some(k) => {
            let mut opts = places::NodeOptions::new();
            if tls {
                opts = opts.tls(places::Tls::generate()?);
            }
            let ns = (0..k)
                .map(|_| places::create_place_node("localhost", opts.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            let t = Instant::now();
            let many = kernel::render_on_nodes(&ns, n)?;
            let with = if tls { " (TLS)" } else { "" };
            (many, t.elapsed(), format!("{k} places on {k} nodes{with}"))
        }
    };
    if one != many {
        return Err("the images from 1 place and from several places differ".into());
    }
    println!(
        "mandelbrot {n}x{n}: 1 place {:.1} ms, {how} {:.1} ms, identical images",
        t_one.as_secs_f64() * 1e3,
        t_many.as_secs_f64() * 1e3
    );

    // PGM: a text header, then one byte per pixel: black where points stay bounded, shades of
    // grey by how fast the others escape.
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    write!(file, "P5\n{n} {n}\n255\n")?;
    let pixels: Vec<u8> = many
        .iter()
        .map(|&i| {
            if i == 255 {
                0
            } else {
                255 - i.saturating_mul(12)
            }
        })
        .collect();
    file.write_all(&pixels)?;
    file.flush()?;
    println!("wrote {}", path.display());
    Ok(())
}
