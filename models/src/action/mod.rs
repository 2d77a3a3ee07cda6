//! Action tokenizers: how a vision-language-action model's discrete tokens become joint-space
//! action chunks. Two schemes, both backend-free: OpenVLA's uniform binning
//! ([`BinTokenizer`]) and FAST's DCT + byte-level BPE ([`FastTokenizer`], with progressive
//! decoding in [`FastStreamDecoder`]); and the dataset normalisation both sit behind
//! ([`Normalization`]).

mod binning;
mod dct;
mod error;
mod fast;
mod fast_stream;
mod normalize;

pub use binning::{BinTokenizer, OPENVLA_BINS};
pub use dct::DctBasis;
pub use error::ActionError;
pub use fast::{FastParams, FastTokenizer, FastVocab};
pub use fast_stream::FastStreamDecoder;
pub use normalize::Normalization;
