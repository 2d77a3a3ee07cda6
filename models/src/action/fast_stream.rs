//! Progressive FAST decoding: tokens arrive one at a time and, after each, the decoder holds
//! the best estimate of the whole chunk, the coefficients not yet received taken as zero.
//! Since FAST sends every dimension's low frequencies first, the estimate sharpens from a
//! smooth outline as tokens arrive, and the motion decoder can start moving on it.
//!
//! Timing contract: after construction nothing allocates. One token costs its bytes' UTF-8
//! decoding plus one `time_horizon`-long multiply-add per completed coefficient.

use std::sync::Arc;

use super::dct::DctBasis;
use super::fast::{FastParams, FastVocab};
use super::ActionError;

pub struct FastStreamDecoder {
    vocab: Arc<FastVocab>,
    basis: Arc<DctBasis>,
    params: FastParams,
    /// The step-major `[time_horizon, action_dim]` estimate.
    estimate: Vec<f64>,
    /// Bytes of a code point whose UTF-8 sequence is not complete yet.
    pending: [u8; 4],
    pending_len: usize,
    pending_need: usize,
    bytes_seen: usize,
    coefficients: usize,
    surplus: usize,
}

impl FastStreamDecoder {
    pub(crate) fn new(vocab: Arc<FastVocab>, basis: Arc<DctBasis>, params: FastParams) -> Self {
        Self {
            vocab,
            basis,
            estimate: vec![0.0; params.time_horizon * params.action_dim],
            params,
            pending: [0; 4],
            pending_len: 0,
            pending_need: 0,
            bytes_seen: 0,
            coefficients: 0,
            surplus: 0,
        }
    }

    pub fn params(&self) -> FastParams {
        self.params
    }

    /// Forgets the chunk so far, ready for the next one.
    pub fn reset(&mut self) {
        self.estimate.fill(0.0);
        self.pending_len = 0;
        self.pending_need = 0;
        self.bytes_seen = 0;
        self.coefficients = 0;
        self.surplus = 0;
    }

    /// The step-major estimate of the whole chunk, in the tokenizer's (normalised) units.
    pub fn estimate(&self) -> &[f64] {
        &self.estimate
    }

    /// Coefficients placed in the chunk so far.
    pub fn coefficients_received(&self) -> usize {
        self.coefficients
    }

    /// Coefficients received past the end of the chunk and dropped.
    pub fn surplus_coefficients(&self) -> usize {
        self.surplus
    }

    /// True once every coefficient of the chunk has arrived.
    pub fn is_complete(&self) -> bool {
        self.coefficients == self.estimate.len()
    }

    pub fn push_tokens(&mut self, tokens: &[u32]) -> Result<(), ActionError> {
        tokens.iter().try_for_each(|&token| self.push_token(token))
    }

    /// Adds one token. An id outside the vocabulary or bytes that are not UTF-8 are errors,
    /// and the chunk is left as it was before the offending byte.
    pub fn push_token(&mut self, token: u32) -> Result<(), ActionError> {
        let vocab = self.vocab.clone();
        let bytes = vocab.token_bytes(token).ok_or(ActionError::TokenOutOfRange {
            token,
            first: 0,
            last: vocab.len().saturating_sub(1) as u32,
        })?;
        for &byte in bytes {
            self.push_byte(byte)?;
        }
        Ok(())
    }

    /// Reports an error if the stream ended in the middle of a UTF-8 sequence.
    pub fn finish(&self) -> Result<(), ActionError> {
        if self.pending_len > 0 {
            return Err(ActionError::InvalidUtf8 {
                offset: self.bytes_seen - self.pending_len,
            });
        }
        Ok(())
    }

    fn push_byte(&mut self, byte: u8) -> Result<(), ActionError> {
        let offset = self.bytes_seen;
        if self.pending_len == 0 {
            self.pending_need = match byte {
                0x00..=0x7F => 1,
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return Err(ActionError::InvalidUtf8 { offset }),
            };
        } else if !(0x80..=0xBF).contains(&byte) {
            return Err(ActionError::InvalidUtf8 { offset });
        }
        self.pending[self.pending_len] = byte;
        self.pending_len += 1;
        self.bytes_seen += 1;
        if self.pending_len < self.pending_need {
            return Ok(());
        }
        let sequence = &self.pending[..self.pending_len];
        let symbol = std::str::from_utf8(sequence)
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or(ActionError::InvalidUtf8 {
                offset: offset + 1 - self.pending_len,
            })?;
        self.pending_len = 0;
        self.add_coefficient(symbol as i64 + self.params.min_token);
        Ok(())
    }

    fn add_coefficient(&mut self, coefficient: i64) {
        let dims = self.params.action_dim;
        if self.coefficients == self.estimate.len() {
            self.surplus += 1;
            return;
        }
        let (frequency, dim) = (self.coefficients / dims, self.coefficients % dims);
        let value = coefficient as f64 / self.params.scale;
        self.basis
            .add_coefficient(frequency, dim, dims, value, &mut self.estimate);
        self.coefficients += 1;
    }
}
