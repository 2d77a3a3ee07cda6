//! The plain-Rust microkernel, for CPUs without a vector family: groups of up to four rows,
//! each row against a whole panel in turn, summed in the order the vector kernels sum
//! (depth-major per output).

use super::{Microkernel, Tile, PANEL};

pub(super) const SCALAR: Microkernel = Microkernel {
    call: micro,
    max_rows: 4,
};

/// # Safety
/// As [`super::MicroFn`].
unsafe fn micro(tile: &Tile, rows: usize) {
    for r in 0..rows {
        let mut acc = [0f32; PANEL];
        for k in 0..tile.depth {
            let a = *tile.x.add(r * tile.x_stride + k);
            let weights = std::slice::from_raw_parts(tile.panel.add(k * PANEL), PANEL);
            for (sum, &w) in acc.iter_mut().zip(weights) {
                *sum = a.mul_add(w, *sum);
            }
        }
        let out = std::slice::from_raw_parts_mut(tile.out.add(r * tile.out_stride), tile.cols);
        for (o, &sum) in out.iter_mut().zip(&acc) {
            *o = if tile.accumulate { *o + sum } else { sum };
        }
    }
}
