//! The Mandelbrot kernel shared by the `mandelbrot` example and the parallel bench: the
//! dissertation's black-box `mandelbrot-point`, and the image computed on nodes.

use places::prelude::*;

/// Escape-time iterations (at most 255) of the point of pixel `(x, y)` in an `n` x `n` image of
/// the square [-2, 1] x [-1.5, 1.5].
pub fn mandelbrot_point(x: usize, y: usize, n: usize) -> u8 {
    let scale = 3.0 / n as f64;
    let (cr, ci) = (x as f64 * scale - 2.0, y as f64 * scale - 1.5);
    let (mut zr, mut zi) = (0.0f64, 0.0f64);
    let mut i = 0u8;
    while i < 255 && zr * zr + zi * zi <= 4.0 {
        let t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
        i += 1;
    }
    i
}

/// Row `y` of the image into `row`.
pub fn mandelbrot_row(y: usize, n: usize, row: &mut [u8]) {
    for (x, px) in row.iter_mut().enumerate() {
        *px = mandelbrot_point(x, y, n);
    }
}

/// The image computed by one place on each of `nodes`: each member computes its block of rows
/// (`cg.partition`, as `cg_for!` cuts them) and returns it; the blocks come back in order.
pub fn render_on_nodes(nodes: &[places::RemoteNode], n: usize) -> Result<Vec<u8>, ForkJoinError> {
    let blocks = fork_join!(nodes = nodes, nodes.len(), cg, [n: usize] -> Vec<u8>, {
        let rows = cg.partition(0..n);
        let mut block = vec![0u8; rows.len() * n];
        for (row, y) in block.chunks_mut(n).zip(rows) {
            mandelbrot_row(y, n, row);
        }
        block
    })?;
    Ok(blocks.concat())
}
