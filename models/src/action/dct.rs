//! The orthonormal DCT-II over time and its inverse (DCT-III), as `scipy.fft.dct(...,
//! norm="ortho")` and `idct` compute them. The basis is tabulated once per chunk length, so
//! a single coefficient's contribution to a chunk costs one multiply-add per time step:
//! that is what lets FAST chunks be reconstructed progressively, token by token.

/// `table[k * len + t] = c_k * cos(pi * (2t + 1) * k / (2 * len))`, with `c_0 = sqrt(1/len)`
/// and `c_k = sqrt(2/len)`: row `k` is the `k`-th orthonormal basis vector over time.
#[derive(Debug, Clone)]
pub struct DctBasis {
    len: usize,
    table: Vec<f64>,
}

impl DctBasis {
    pub fn new(len: usize) -> Self {
        let n = len as f64;
        let mut table = Vec::with_capacity(len * len);
        for k in 0..len {
            let scale = if k == 0 { (1.0 / n).sqrt() } else { (2.0 / n).sqrt() };
            for t in 0..len {
                let angle = std::f64::consts::PI * (2 * t + 1) as f64 * k as f64 / (2.0 * n);
                table.push(scale * angle.cos());
            }
        }
        Self { len, table }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `k`-th basis vector over time.
    pub fn row(&self, k: usize) -> &[f64] {
        &self.table[k * self.len..(k + 1) * self.len]
    }

    /// Forward transform over time of a `[len, dims]` row-major chunk, into `[len, dims]`
    /// coefficients (frequency-major, like the input).
    pub fn forward(&self, chunk: &[f64], dims: usize, coefficients: &mut [f64]) {
        coefficients.fill(0.0);
        for k in 0..self.len {
            let basis = self.row(k);
            let out = &mut coefficients[k * dims..(k + 1) * dims];
            for (t, &weight) in basis.iter().enumerate() {
                for (o, &x) in out.iter_mut().zip(&chunk[t * dims..(t + 1) * dims]) {
                    *o += weight * x;
                }
            }
        }
    }

    /// Adds coefficient `value` at frequency `k` of dimension `dim` into a `[len, dims]`
    /// chunk: one step of the inverse transform.
    pub fn add_coefficient(&self, k: usize, dim: usize, dims: usize, value: f64, chunk: &mut [f64]) {
        for (t, &weight) in self.row(k).iter().enumerate() {
            chunk[t * dims + dim] += weight * value;
        }
    }

    /// Inverse transform of `[len, dims]` coefficients into a `[len, dims]` chunk.
    pub fn inverse(&self, coefficients: &[f64], dims: usize, chunk: &mut [f64]) {
        chunk.fill(0.0);
        for k in 0..self.len {
            for dim in 0..dims {
                self.add_coefficient(k, dim, dims, coefficients[k * dims + dim], chunk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_then_inverse_is_identity_and_preserves_energy() {
        let basis = DctBasis::new(7);
        let chunk: Vec<f64> = (0..21).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let mut coefficients = vec![0.0; 21];
        basis.forward(&chunk, 3, &mut coefficients);
        let energy = |xs: &[f64]| xs.iter().map(|x| x * x).sum::<f64>();
        assert!((energy(&chunk) - energy(&coefficients)).abs() < 1e-9);
        let mut back = vec![0.0; 21];
        basis.inverse(&coefficients, 3, &mut back);
        for (a, b) in chunk.iter().zip(&back) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn a_constant_signal_has_only_the_zero_frequency() {
        let basis = DctBasis::new(4);
        let mut coefficients = vec![0.0; 4];
        basis.forward(&[2.0; 4], 1, &mut coefficients);
        assert!((coefficients[0] - 4.0).abs() < 1e-12);
        assert!(coefficients[1..].iter().all(|c| c.abs() < 1e-12));
    }
}
