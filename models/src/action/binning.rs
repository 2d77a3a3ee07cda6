//! OpenVLA's action tokenizer: each normalised action value in [-1, 1] falls into one of
//! `bins` uniform bins (`np.linspace(-1, 1, bins)` edges, `np.digitize`), and bin `b`
//! (1-based) becomes token `vocab_size - b`, the least used ids at the end of the language
//! model's vocabulary. Decoding maps a token back to the centre of its bin. Chunks are
//! step-major: all dimensions of step 0, then step 1, ...

use super::ActionError;

/// OpenVLA's default bin count.
pub const OPENVLA_BINS: usize = 256;

#[derive(Debug, Clone)]
pub struct BinTokenizer {
    vocab_size: u32,
    /// The `bins` edges of `np.linspace(-1, 1, bins)`.
    edges: Vec<f64>,
    /// The `bins - 1` midpoints between consecutive edges.
    centers: Vec<f64>,
}

impl BinTokenizer {
    /// A tokenizer over the last `bins` ids of a vocabulary of `vocab_size` tokens.
    pub fn new(vocab_size: u32, bins: usize) -> Result<Self, ActionError> {
        if bins < 2 || bins as u64 >= vocab_size as u64 {
            return Err(ActionError::Config(format!(
                "binning needs 2 <= bins < vocab_size, found {bins} bins and a vocabulary of {vocab_size}"
            )));
        }
        let step = 2.0 / (bins - 1) as f64;
        let mut edges: Vec<f64> = (0..bins).map(|i| -1.0 + step * i as f64).collect();
        edges[bins - 1] = 1.0;
        let centers = edges.windows(2).map(|pair| (pair[0] + pair[1]) / 2.0).collect();
        Ok(Self {
            vocab_size,
            edges,
            centers,
        })
    }

    pub fn bins(&self) -> usize {
        self.edges.len()
    }

    /// The lowest and highest token ids this tokenizer emits.
    pub fn token_range(&self) -> (u32, u32) {
        (self.vocab_size - self.bins() as u32, self.vocab_size - 1)
    }

    /// The token of one normalised value (clipped to [-1, 1] first, as OpenVLA does).
    pub fn encode_value(&self, value: f64) -> Result<u32, ActionError> {
        if value.is_nan() {
            return Err(ActionError::NotFinite {
                index: 0,
                value: value as f32,
            });
        }
        let clipped = value.clamp(-1.0, 1.0);
        // np.digitize with increasing edges: the number of edges <= value.
        let bin = self.edges.partition_point(|&edge| edge <= clipped);
        Ok(self.vocab_size - bin as u32)
    }

    /// Tokens of a step-major chunk of normalised values.
    pub fn encode(&self, values: &[f64]) -> Result<Vec<u32>, ActionError> {
        values
            .iter()
            .enumerate()
            .map(|(index, &value)| {
                self.encode_value(value).map_err(|_| ActionError::NotFinite {
                    index,
                    value: value as f32,
                })
            })
            .collect()
    }

    /// The normalised value of one token: the centre of its bin. Tokens outside the action
    /// range are an error here; OpenVLA clips them silently, which hides a model emitting
    /// text where it should emit actions.
    pub fn decode_token(&self, token: u32) -> Result<f64, ActionError> {
        let (first, last) = self.token_range();
        if !(first..=last).contains(&token) {
            return Err(ActionError::TokenOutOfRange { token, first, last });
        }
        let bin = (self.vocab_size - token) as usize;
        Ok(self.centers[(bin - 1).min(self.centers.len() - 1)])
    }

    pub fn decode(&self, tokens: &[u32]) -> Result<Vec<f64>, ActionError> {
        tokens.iter().map(|&token| self.decode_token(token)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_map_to_the_ends_of_the_vocabulary() {
        let tokenizer = BinTokenizer::new(32_000, OPENVLA_BINS).unwrap();
        assert_eq!(tokenizer.encode_value(-1.0).unwrap(), 31_999);
        assert_eq!(tokenizer.encode_value(1.0).unwrap(), 31_744);
        assert_eq!(tokenizer.encode_value(7.0).unwrap(), 31_744);
        assert_eq!(tokenizer.token_range(), (31_744, 31_999));
    }

    #[test]
    fn decoding_lands_within_half_a_bin() {
        let tokenizer = BinTokenizer::new(1000, 256).unwrap();
        let half_bin = 1.0 / 255.0;
        for i in 0..=400 {
            let value = -0.999 + 1.998 * i as f64 / 400.0;
            let back = tokenizer.decode_token(tokenizer.encode_value(value).unwrap()).unwrap();
            assert!((back - value).abs() <= half_bin + 1e-12, "{value} -> {back}");
        }
    }

    #[test]
    fn tokens_outside_the_action_range_are_refused() {
        let tokenizer = BinTokenizer::new(1000, 256).unwrap();
        assert!(matches!(
            tokenizer.decode_token(12),
            Err(ActionError::TokenOutOfRange { token: 12, .. })
        ));
        assert!(tokenizer.decode_token(1000).is_err());
        assert!(tokenizer.encode_value(f64::NAN).is_err());
    }
}
