//! The three-phase skeleton of dissertation section 3.4.2.1 (the FT benchmark's shape) with a real
//! kernel: a 3-D complex FFT of an N x N x N grid held in a `SharedF64s`. Phase 1 transforms
//! every line along x, phase 2 along y, phase 3 along z; each phase is a `cg_for!` over the N*N
//! lines, and a barrier keeps a phase from reading lines the previous one has not finished.
//!
//! ```text
//! cargo run --release --example fft_phases [N]
//! ```
//!
//! N must be a power of two (default 32). It prints the energy check (Parseval: the transform's
//! energy is N^3 times the input's) and the comparison with a sequential run of the same kernel:
//!
//! ```text
//! 3-D FFT of 32^3 points on 2 places: 3 phases, 2 barriers
//! energy in 10918.37, energy out / N^3 10918.37 (Parseval holds)
//! identical to the sequential transform
//! ```

use places::prelude::*;

/// In-place radix-2 FFT of the `n` complex values at `start`, `start + stride`, ... of `g`
/// (interleaved re, im).
fn fft_line(g: &SharedF64s, start: usize, stride: usize, n: usize) {
    let at = |k: usize| 2 * (start + k * stride);
    let mut re: Vec<f64> = (0..n).map(|k| g.get(at(k))).collect();
    let mut im: Vec<f64> = (0..n).map(|k| g.get(at(k) + 1)).collect();
    // Bit-reversal permutation.
    let bits = n.trailing_zeros();
    for k in 0..n {
        let r = k.reverse_bits() >> (usize::BITS - bits);
        if r > k {
            re.swap(k, r);
            im.swap(k, r);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for s in (0..n).step_by(len) {
            for j in 0..len / 2 {
                let (wr, wi) = ((ang * j as f64).cos(), (ang * j as f64).sin());
                let (a, b) = (s + j, s + j + len / 2);
                let (tr, ti) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len *= 2;
    }
    for k in 0..n {
        g.set(at(k), re[k]);
        g.set(at(k) + 1, im[k]);
    }
}

/// Line `l` (0..n*n) of phase `axis`: its first element and stride in the grid (x fastest).
fn line(axis: usize, l: usize, n: usize) -> (usize, usize) {
    let (a, b) = (l % n, l / n);
    match axis {
        0 => (a * n + b * n * n, 1), // along x: fixed y = a, z = b
        1 => (a + b * n * n, n),     // along y: fixed x = a, z = b
        _ => (a + b * n, n * n),     // along z: fixed x = a, y = b
    }
}

fn input(n: usize) -> SharedF64s {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<f64> = (0..2 * n * n * n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    SharedF64s::from_slice(&values)
}

fn energy(g: &[f64]) -> f64 {
    g.iter().map(|x| x * x).sum()
}

fn transform(np: usize, n: usize, g: &SharedF64s) -> Result<(), ForkJoinError> {
    fork_join!(np, cg, [n: usize, g: SharedF64s = g.clone()], {
        cg_for!(cg, l in 0..n * n, {
            let (start, stride) = line(0, l, n);
            fft_line(&g, start, stride, n);
        });
        cg.barrier();
        cg_for!(cg, l in 0..n * n, {
            let (start, stride) = line(1, l, n);
            fft_line(&g, start, stride, n);
        });
        cg.barrier();
        cg_for!(cg, l in 0..n * n, {
            let (start, stride) = line(2, l, n);
            fft_line(&g, start, stride, n);
        });
    })?;
    Ok(())
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|e| format!("N must be a number: {e}"))?,
        None => 32,
    };
    if !n.is_power_of_two() || n < 2 {
        return Err(format!("N must be a power of two of at least 2, not {n}").into());
    }
    let np = processor_count();
    let data = input(n);
    let e_in = energy(&data.to_vec());

    let parallel = SharedF64s::from_slice(&data.to_vec());
    transform(np, n, &parallel)?;
    let sequential = SharedF64s::from_slice(&data.to_vec());
    transform(1, n, &sequential)?;

    let out = parallel.to_vec();
    let e_out = energy(&out) / (n * n * n) as f64;
    println!("3-D FFT of {n}^3 points on {np} places: 3 phases, 2 barriers");
    let parseval = (e_in - e_out).abs() <= 1e-9 * e_in;
    println!(
        "energy in {e_in:.2}, energy out / N^3 {e_out:.2} ({})",
        if parseval {
            "Parseval holds"
        } else {
            "Parseval FAILS"
        }
    );
    if !parseval {
        return Err("the transform does not preserve energy".into());
    }
    if out != sequential.to_vec() {
        return Err("the parallel transform differs from the sequential one".into());
    }
    println!("identical to the sequential transform");
    Ok(())
}
