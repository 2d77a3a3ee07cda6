//! FAST action tokenization (Pertsch et al. 2025), as openpi and lerobot implement it: an
//! orthonormal DCT-II over time per action dimension; coefficients scaled and rounded to
//! integers; flattened with every dimension's frequency 0 first, then frequency 1, ...;
//! shifted by the tokenizer's minimum so each is a non-negative Unicode code point; the
//! resulting string compressed by a byte-level BPE (`tokenizer.json`, run with the
//! `tokenizers` crate). Decoding reverses it; `decode_relaxed` pads or truncates to the chunk
//! shape as lerobot's pi0-FAST does, and [`FastStreamDecoder`] rebuilds the best estimate of
//! the whole chunk from any prefix of tokens.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::dct::DctBasis;
use super::fast_stream::FastStreamDecoder;
use super::ActionError;

/// The parameters a FAST tokenizer was fitted with, and the chunk shape it decodes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastParams {
    /// Multiplier applied to DCT coefficients before rounding.
    pub scale: f64,
    /// The smallest rounded coefficient seen when fitting; subtracted before encoding.
    pub min_token: i64,
    /// Steps in a chunk.
    pub time_horizon: usize,
    /// Action dimensions per step.
    pub action_dim: usize,
}

/// `processor_config.json` as `UniversalActionProcessor.save_pretrained` writes it; keys we
/// do not use (the processor class, `auto_map`) are ignored since the file is not ours.
#[derive(Debug, Deserialize)]
struct ProcessorConfigFile {
    scale: f64,
    min_token: i64,
    time_horizon: Option<usize>,
    action_dim: Option<usize>,
}

/// The byte string of every BPE token id, flattened: what streaming decode reads.
#[derive(Debug)]
pub struct FastVocab {
    offsets: Vec<u32>,
    bytes: Vec<u8>,
}

impl FastVocab {
    fn from_tokenizer(bpe: &tokenizers::Tokenizer) -> Self {
        let vocab = bpe.get_vocab(true);
        let len = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut strings: Vec<Option<&str>> = vec![None; len];
        for (token, &id) in &vocab {
            strings[id as usize] = Some(token);
        }
        let char_to_byte = byte_level_decoding_table();
        let mut offsets = Vec::with_capacity(len + 1);
        let mut bytes = Vec::new();
        offsets.push(0);
        for token in strings.iter().map(|token| token.unwrap_or("")) {
            // As the `tokenizers` ByteLevel decoder does: a token made only of byte-level
            // symbols stands for those bytes; any other token (FAST's initial alphabet holds
            // raw code points) for its own UTF-8.
            let symbols: Option<Vec<u8>> = token
                .chars()
                .map(|ch| char_to_byte.get(ch as usize).copied().flatten())
                .collect();
            bytes.extend_from_slice(symbols.as_deref().unwrap_or(token.as_bytes()));
            offsets.push(bytes.len() as u32);
        }
        Self { offsets, bytes }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of token `id`, or `None` outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        if id >= self.len() {
            return None;
        }
        Some(&self.bytes[self.offsets[id] as usize..self.offsets[id + 1] as usize])
    }
}

/// GPT-2's byte-level alphabet inverted: the byte each printable symbol stands for. Bytes
/// that are printable Latin-1 stand for themselves; the others are shifted to 256 and up.
fn byte_level_decoding_table() -> Vec<Option<u8>> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut table = vec![None; 512];
    let mut shifted = 256usize;
    for byte in 0..=255u8 {
        if printable(byte) {
            table[byte as usize] = Some(byte);
        } else {
            table[shifted] = Some(byte);
            shifted += 1;
        }
    }
    table
}

/// A fitted FAST tokenizer.
pub struct FastTokenizer {
    bpe: tokenizers::Tokenizer,
    vocab: Arc<FastVocab>,
    basis: Arc<DctBasis>,
    params: FastParams,
}

impl FastTokenizer {
    /// Loads `tokenizer.json` and `processor_config.json` from a directory saved by lerobot's
    /// or openpi's processor. The chunk shape comes from the file when it records one, or
    /// from `shape` (`(time_horizon, action_dim)`), which wins when both are given.
    pub fn from_dir(dir: &Path, shape: Option<(usize, usize)>) -> Result<Self, ActionError> {
        let config_path = dir.join("processor_config.json");
        let file_error = |path: &Path, message: String| ActionError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e.to_string()))?;
        let config: ProcessorConfigFile =
            serde_json::from_str(&text).map_err(|e| file_error(&config_path, e.to_string()))?;
        let (time_horizon, action_dim) = match (shape, config.time_horizon, config.action_dim) {
            (Some(shape), _, _) => shape,
            (None, Some(steps), Some(dims)) => (steps, dims),
            _ => {
                return Err(file_error(
                    &config_path,
                    "records no time_horizon and action_dim, and no chunk shape was given".into(),
                ))
            }
        };
        let tokenizer_path = dir.join("tokenizer.json");
        let bpe = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| file_error(&tokenizer_path, e.to_string()))?;
        let params = FastParams {
            scale: config.scale,
            min_token: config.min_token,
            time_horizon,
            action_dim,
        };
        Self::new(bpe, params)
    }

    pub fn new(bpe: tokenizers::Tokenizer, params: FastParams) -> Result<Self, ActionError> {
        if !(params.scale.is_finite() && params.scale > 0.0) {
            return Err(ActionError::Config(format!(
                "FAST scale must be positive, found {}",
                params.scale
            )));
        }
        if params.time_horizon == 0 || params.action_dim == 0 {
            return Err(ActionError::Config(format!(
                "FAST chunk shape must be non-empty, found {} steps x {} dimensions",
                params.time_horizon, params.action_dim
            )));
        }
        let vocab = Arc::new(FastVocab::from_tokenizer(&bpe));
        let basis = Arc::new(DctBasis::new(params.time_horizon));
        Ok(Self {
            bpe,
            vocab,
            basis,
            params,
        })
    }

    pub fn params(&self) -> FastParams {
        self.params
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    fn chunk_len(&self) -> usize {
        self.params.time_horizon * self.params.action_dim
    }

    /// The rounded, shifted DCT symbols of a step-major `[time_horizon, action_dim]` chunk.
    pub fn symbols(&self, chunk: &[f64]) -> Result<Vec<i64>, ActionError> {
        let FastParams {
            time_horizon: steps,
            action_dim: dims,
            ..
        } = self.params;
        if chunk.len() != self.chunk_len() {
            return Err(ActionError::ChunkShape {
                expected: self.chunk_len(),
                found: chunk.len(),
                steps,
                dims,
            });
        }
        if let Some(index) = chunk.iter().position(|v| !v.is_finite()) {
            return Err(ActionError::NotFinite {
                index,
                value: chunk[index] as f32,
            });
        }
        let mut coefficients = vec![0.0; chunk.len()];
        self.basis.forward(chunk, dims, &mut coefficients);
        Ok(coefficients
            .iter()
            .map(|c| ((c * self.params.scale).round_ties_even() as i64 - self.params.min_token).max(0))
            .collect())
    }

    /// FAST tokens of a step-major `[time_horizon, action_dim]` chunk.
    pub fn encode(&self, chunk: &[f64]) -> Result<Vec<u32>, ActionError> {
        let text = self
            .symbols(chunk)?
            .iter()
            .enumerate()
            .map(|(index, &symbol)| {
                u32::try_from(symbol)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or(ActionError::UnencodableCoefficient {
                        index,
                        coefficient: symbol + self.params.min_token,
                        symbol,
                    })
            })
            .collect::<Result<String, _>>()?;
        let encoding = self
            .bpe
            .encode(text, false)
            .map_err(|e| ActionError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Decodes a complete token sequence; a coefficient count other than the chunk's is an
    /// error.
    pub fn decode(&self, tokens: &[u32]) -> Result<Vec<f64>, ActionError> {
        let mut stream = self.stream_decoder();
        stream.push_tokens(tokens)?;
        stream.finish()?;
        if stream.coefficients_received() != self.chunk_len() {
            return Err(ActionError::CoefficientCount {
                expected: self.chunk_len(),
                found: stream.coefficients_received(),
            });
        }
        Ok(stream.estimate().to_vec())
    }

    /// Decodes as lerobot's pi0-FAST does with relaxed decoding: missing coefficients are
    /// zero, surplus ones are dropped.
    pub fn decode_relaxed(&self, tokens: &[u32]) -> Result<Vec<f64>, ActionError> {
        let mut stream = self.stream_decoder();
        stream.push_tokens(tokens)?;
        stream.finish()?;
        Ok(stream.estimate().to_vec())
    }

    /// A decoder that rebuilds the chunk token by token without allocating.
    pub fn stream_decoder(&self) -> FastStreamDecoder {
        FastStreamDecoder::new(self.vocab.clone(), self.basis.clone(), self.params)
    }
}
