//! The op-level backend interface that model code is written against, once.
//!
//! Tensors and weights are opaque handles that may live on a device; ops return new handles
//! and may only be recorded (a GPU backend submits them together), and [`Backend::read`] is
//! the one point where data comes back to the host. Activations are f32 matrices
//! `[rows, cols]` (tokens by features); weights keep the format they were loaded in. Every op
//! reports its cost to the backend's [`Ledger`].

use crate::error::Result;
use crate::ledger::Ledger;
use crate::quant::HostWeight;

/// How rotary embedding pairs the features of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Features `2i` and `2i + 1` rotate together (GGUF `llama` checkpoints, whose Q and K
    /// rows llama.cpp's converter permuted).
    Interleaved,
    /// Features `i` and `i + head_dim / 2` rotate together (Hugging Face `rotate_half`).
    HalfSplit,
}

/// Rotary position embedding of `rows` consecutive positions starting at `start_pos`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub heads: usize,
    pub head_dim: usize,
    pub theta: f32,
    pub style: RopeStyle,
    pub start_pos: usize,
}

/// Which cached positions each query row of an attention call sees. With [`Causal`] and
/// [`PrefixLm`], a call appends as many key rows as it has query rows, and query row `r` is
/// position `start + r` of the cache; with [`Full`] the two counts may differ (queries that
/// attend to another sequence's keys).
///
/// [`Causal`]: AttentionMask::Causal
/// [`PrefixLm`]: AttentionMask::PrefixLm
/// [`Full`]: AttentionMask::Full
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every cached position (a vision tile; an action chunk attending to its prefix).
    Full,
    /// Positions up to the query's own (autoregressive decoding).
    Causal,
    /// Positions up to the query's own, and the first `bidirectional` positions of the cache
    /// whatever the query's position: a prefix-LM, whose image and language tokens see each
    /// other and whose later tokens see everything before them (PaliGemma, SmolVLA's state).
    PrefixLm { bidirectional: usize },
}

/// Grouped-query attention: `heads` query heads share `kv_heads` key/value heads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies the scores, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
    pub mask: AttentionMask,
}

impl AttentionParams {
    /// Cached positions visible to query row `row` of a call that appended after `start`
    /// positions, `total` positions in all: always a prefix of the cache.
    pub fn visible(&self, start: usize, row: usize, total: usize) -> usize {
        match self.mask {
            AttentionMask::Full => total,
            AttentionMask::Causal => (start + row + 1).min(total),
            AttentionMask::PrefixLm { bidirectional } => (start + row + 1).max(bidirectional).min(total),
        }
    }

    /// Whether the mask ties query rows to the key rows a call appends.
    pub fn positional(&self) -> bool {
        self.mask != AttentionMask::Full
    }
}

/// Capacity of a key/value cache for one attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCacheSpec {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub max_positions: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Mul,
}

/// One implementation of every op the models use.
pub trait Backend: Send + Sync {
    /// An f32 activation matrix `[rows, cols]`, possibly resident on a device.
    type Tensor: Clone + Send + Sync;
    /// A weight matrix `[rows, cols]` (outputs by inputs) in its stored format.
    type Weight: Send + Sync;
    /// The keys and values one attention layer has seen so far.
    type KvCache: Send;

    /// A name for messages and reports, such as "cpu (2 threads)".
    fn name(&self) -> String;
    /// Runs `f` where this backend's ops run cheapest: the CPU backend runs it on its own
    /// threads, so that the ops `f` issues skip a hand-off to them each, and keeps its other
    /// workers awake until `f` returns (`cpu::WarmPool`); a device backend records from the
    /// calling thread.
    fn scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
    fn ledger(&self) -> &Ledger;

    /// Copies host data to the backend as a `[rows, cols]` tensor.
    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// Copies a weight to the backend once, keeping a block format quantized.
    fn upload_weight(&self, weight: &HostWeight) -> Result<Self::Weight>;
    /// Waits for recorded work and copies the tensor back to the host.
    fn read(&self, x: &Self::Tensor) -> Result<Vec<f32>>;
    /// `(rows, cols)` of a tensor, known without reading it back.
    fn dims(&self, x: &Self::Tensor) -> (usize, usize);
    /// `(rows, cols)` of a weight.
    fn weight_dims(&self, w: &Self::Weight) -> (usize, usize);

    /// An empty cache.
    fn kv_cache(&self, spec: KvCacheSpec) -> Result<Self::KvCache>;
    /// Positions held by a cache.
    fn kv_len(&self, cache: &Self::KvCache) -> usize;
    /// Forgets every position, keeping the memory.
    fn kv_clear(&self, cache: &mut Self::KvCache);
    /// Forgets the positions past the first `len` (none when it holds no more), keeping the
    /// memory: a prefix's cache after a step appended keys it must not keep.
    fn kv_truncate(&self, cache: &mut Self::KvCache, len: usize);

    /// `x [n, k] * w^T` for `w [m, k]`: `[n, m]`.
    fn matmul(&self, x: &Self::Tensor, w: &Self::Weight) -> Result<Self::Tensor>;
    /// Rows `ids` of an embedding table: `[ids.len(), cols]`.
    fn embedding(&self, table: &Self::Weight, ids: &[u32]) -> Result<Self::Tensor>;
    /// `x / rms(x) * gamma` over each row; `gamma` is `[1, cols]`.
    fn rms_norm(&self, x: &Self::Tensor, gamma: &Self::Tensor, eps: f32) -> Result<Self::Tensor>;
    /// `(x - mean) / std * gamma + beta` over each row.
    fn layer_norm(&self, x: &Self::Tensor, gamma: &Self::Tensor, beta: &Self::Tensor, eps: f32)
        -> Result<Self::Tensor>;
    /// Rotates each head of each row by its position; `x` is `[rows, heads * head_dim]`.
    fn rope(&self, x: &Self::Tensor, params: RopeParams) -> Result<Self::Tensor>;
    /// Appends `k` and `v` (`[appended, kv_heads * head_dim]`) to the cache, then attends from
    /// `q` (`[rows, heads * head_dim]`) over the cached positions its mask shows it (for a
    /// positional mask `appended == rows` and the queries are the last `rows` positions);
    /// returns `[rows, heads * head_dim]`.
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        cache: &mut Self::KvCache,
        params: AttentionParams,
    ) -> Result<Self::Tensor>;
    fn activation(&self, x: &Self::Tensor, act: Activation) -> Result<Self::Tensor>;
    /// `act(gate) * up`, the gated MLP's middle.
    fn gated(&self, gate: &Self::Tensor, up: &Self::Tensor, act: Activation) -> Result<Self::Tensor>;
    /// Elementwise `a op b`; `b` may also be a single row broadcast over `a`'s rows.
    fn binary(&self, a: &Self::Tensor, b: &Self::Tensor, op: BinaryOp) -> Result<Self::Tensor>;
    /// Rows `start..start + len` of `x`.
    fn rows(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor>;
    /// Columns `start..start + len` of every row of `x` (splits a fused projection).
    fn columns(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor>;
}
