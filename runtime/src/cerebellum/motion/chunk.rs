//! The chunk being received: turns stream events into an estimate of the chunk, in the
//! policy's normalised action space, as early as the action scheme allows. Binned tokens and
//! raw values fill the chunk step by step; FAST tokens refine the whole chunk at once, and
//! its estimate is used once every dimension's lowest frequency has arrived.
//!
//! Timing contract: no allocation after construction; O(chunk steps) per event at most.

use std::sync::Arc;

use brainstem_models::action::{ActionError, BinTokenizer, FastStreamDecoder, FastTokenizer};

/// How the policy's output becomes actions.
#[derive(Clone)]
pub enum ActionDecoding {
    /// OpenVLA-style binning: one token per action value, step-major.
    Bins(BinTokenizer),
    /// FAST DCT + BPE tokens.
    Fast(Arc<FastTokenizer>),
    /// Raw values, step-major, for policies with continuous outputs.
    Values,
}

/// Why a chunk was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFault {
    /// A NaN or an infinity.
    NonFinite,
    /// A token outside the action vocabulary, or FAST bytes that are not UTF-8.
    BadToken,
    /// The wrong kind of event for this decoder, or data outside a chunk.
    Malformed,
}

enum Source {
    Bins(BinTokenizer),
    Fast(FastStreamDecoder),
    Values,
}

pub struct InFlight {
    source: Source,
    steps: usize,
    dims: usize,
    /// Step-major values for binning and raw values.
    values: Vec<f64>,
    received: usize,
    surplus: usize,
}

impl InFlight {
    pub fn new(decoding: ActionDecoding, steps: usize, dims: usize) -> Result<Self, ActionError> {
        let source = match decoding {
            ActionDecoding::Bins(tokenizer) => Source::Bins(tokenizer),
            ActionDecoding::Values => Source::Values,
            ActionDecoding::Fast(tokenizer) => {
                let params = tokenizer.params();
                if (params.time_horizon, params.action_dim) != (steps, dims) {
                    return Err(ActionError::Config(format!(
                        "the FAST tokenizer decodes {} steps x {} dimensions, the motion decoder expects {steps} x {dims}",
                        params.time_horizon, params.action_dim
                    )));
                }
                Source::Fast(tokenizer.stream_decoder())
            }
        };
        Ok(Self {
            source,
            steps,
            dims,
            values: vec![0.0; steps * dims],
            received: 0,
            surplus: 0,
        })
    }

    pub fn reset(&mut self) {
        self.values.fill(0.0);
        self.received = 0;
        self.surplus = 0;
        if let Source::Fast(stream) = &mut self.source {
            stream.reset();
        }
    }

    pub fn push_token(&mut self, token: u32) -> Result<(), ChunkFault> {
        match &mut self.source {
            Source::Bins(tokenizer) => {
                let value = tokenizer.decode_token(token).map_err(|_| ChunkFault::BadToken)?;
                self.place(value);
                Ok(())
            }
            Source::Fast(stream) => stream.push_token(token).map_err(|_| ChunkFault::BadToken),
            Source::Values => Err(ChunkFault::Malformed),
        }
    }

    pub fn push_value(&mut self, value: f32) -> Result<(), ChunkFault> {
        if !matches!(self.source, Source::Values) {
            return Err(ChunkFault::Malformed);
        }
        if !value.is_finite() {
            return Err(ChunkFault::NonFinite);
        }
        self.place(value as f64);
        Ok(())
    }

    fn place(&mut self, value: f64) {
        match self.values.get_mut(self.received) {
            Some(slot) => {
                *slot = value;
                self.received += 1;
            }
            None => self.surplus += 1,
        }
    }

    /// Leading steps whose estimate can be executed.
    pub fn known_steps(&self) -> usize {
        match &self.source {
            Source::Fast(stream) if stream.coefficients_received() >= self.dims => self.steps,
            Source::Fast(_) => 0,
            _ => self.received / self.dims,
        }
    }

    /// The step-major estimate of the chunk in normalised units.
    pub fn estimate(&self) -> &[f64] {
        match &self.source {
            Source::Fast(stream) => stream.estimate(),
            _ => &self.values,
        }
    }

    /// Closes the chunk. `Ok(true)` when it had to be padded or truncated to its shape.
    pub fn finish(&mut self) -> Result<bool, ChunkFault> {
        let expected = self.steps * self.dims;
        match &self.source {
            Source::Fast(stream) => {
                stream.finish().map_err(|_| ChunkFault::BadToken)?;
                Ok(stream.coefficients_received() != expected || stream.surplus_coefficients() > 0)
            }
            _ => Ok(self.received != expected || self.surplus > 0),
        }
    }
}
