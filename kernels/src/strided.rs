//! Dense f32 matrix products on one thread with the `gemm` crate's microkernels (which pick
//! AVX-512, AVX2 or NEON from the CPU), reading both operands in place through their strides:
//! attention's two products per head. Also the transposing scatter the int8 tiles' many-row
//! path ends with.

/// A row-major view into a slice: element (r, c) at `offset + r * row_stride + c * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View<'_> {
    /// True when every element of the view lies inside the slice.
    fn in_bounds(&self) -> bool {
        let last = self.offset + (self.rows.max(1) - 1) * self.row_stride + (self.cols.max(1) - 1) * self.col_stride;
        self.rows == 0 || self.cols == 0 || last < self.data.len()
    }
}

/// `dst[m x n] = scale * lhs[m x k] . rhs[k x n]` on one thread with the `gemm` crate's
/// microkernels, reading both operands in place through their strides.
pub(crate) fn gemm_into(dst: &mut [f32], lhs: View, rhs: View, scale: f32) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(rhs.rows == k && dst.len() == m * n && lhs.in_bounds() && rhs.in_bounds());
    // SAFETY: both views were checked to lie inside their slices, `dst` holds exactly
    // m x n elements written row-major, and nothing else aliases `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Writes `transposed[rows, n]` (one weight row's outputs for every activation row, as the
/// strip-wise products produce them) into `out[n, rows]`.
pub(crate) fn scatter_transposed(transposed: &[f32], rows: usize, n: usize, out: &mut [f32]) {
    assert!(transposed.len() == rows * n && out.len() == n * rows);
    for (row, values) in transposed.chunks_exact(n).enumerate() {
        for (t, &v) in values.iter().enumerate() {
            out[t * rows + row] = v;
        }
    }
}
