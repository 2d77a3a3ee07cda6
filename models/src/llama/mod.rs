//! A Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama): grouped-query attention, rotary
//! position embedding with a configurable theta, RMSNorm, SiLU-gated MLP, tied or untied
//! embeddings and a key/value cache; written once against [`Backend`].
//!
//! Paper: "LLaMA: Open and Efficient Foundation Language Models" (arXiv:2302.13971).
//! Reference: `transformers/models/llama/modeling_llama.py`, whose tensor names a
//! safetensors checkpoint uses; GGUF files use llama.cpp's names and a Q/K row order for
//! interleaved rotary pairs, which the loader records as the rope style.

mod config;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use brainstem_kernels::quant::quantize::quantize;
use brainstem_kernels::{
    Activation, AttentionMask, AttentionParams, Backend, BinaryOp, DType, HostWeight, KvCacheSpec, RopeParams,
};

pub use config::{Flavor, LlamaConfig};

use crate::error::{ModelError, Result};
use crate::weights::{read_text, Container, WeightFile};

/// Tensor naming of the checkpoint a model is loaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Naming {
    /// Hugging Face names with `model.` replaced by `prefix` (a multimodal checkpoint keeps
    /// its text tower under `model.text_model.`).
    HuggingFace {
        prefix: &'static str,
    },
    Gguf,
}

/// Tensors outside the layers: the Hugging Face name and llama.cpp's.
const GLOBAL_TENSORS: [(&str, &str); 3] = [
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Tensors of each layer: the Hugging Face role and llama.cpp's name for it.
const LAYER_TENSORS: [(&str, &str); 9] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
];

/// The llama.cpp (GGUF) name of a Hugging Face Llama tensor name; `None` for a name a
/// Llama does not use.
pub fn gguf_tensor_name(hf: &str) -> Option<String> {
    if let Some((_, gguf)) = GLOBAL_TENSORS.iter().find(|(h, _)| *h == hf) {
        return Some(gguf.to_string());
    }
    let (layer, role) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let role = role.strip_suffix(".weight")?;
    let layer: usize = layer.parse().ok()?;
    let (_, gguf) = LAYER_TENSORS.iter().find(|(h, _)| *h == role)?;
    Some(format!("blk.{layer}.{gguf}.weight"))
}

impl Naming {
    pub(crate) const HF: Naming = Naming::HuggingFace { prefix: "model." };

    pub fn global(self, hf: &'static str) -> String {
        match self {
            Naming::HuggingFace { prefix } => match hf.strip_prefix("model.") {
                Some(rest) => format!("{prefix}{rest}"),
                None => hf.to_string(),
            },
            Naming::Gguf => GLOBAL_TENSORS
                .iter()
                .find(|(h, _)| *h == hf)
                .map_or(hf, |(_, g)| g)
                .to_string(),
        }
    }

    fn layer(self, layer: usize, hf: &str) -> String {
        match self {
            Naming::HuggingFace { prefix } => format!("{prefix}layers.{layer}.{hf}.weight"),
            Naming::Gguf => {
                let gguf = LAYER_TENSORS.iter().find(|(h, _)| *h == hf).map_or(hf, |(_, g)| g);
                format!("blk.{layer}.{gguf}.weight")
            }
        }
    }
}

/// How weights are placed on the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Widen block-quantized weights to f32 instead of keeping them quantized: the path that
    /// matches a reference which dequantizes on load (as transformers does with GGUF).
    pub dequantize: bool,
    /// Quantize float matrices to this block format while loading (ours is the quantizer
    /// `brainstem quantize` uses); a matrix whose rows the block does not divide stays float.
    pub quantize: Option<DType>,
}

impl LoadOptions {
    /// A matrix as these options place it: widened, quantized, or as the file holds it.
    pub fn prepare<'a>(&self, host: HostWeight<'a>) -> Result<HostWeight<'a>> {
        let cols = host.shape.last().copied().unwrap_or(0);
        let reformat = |dtype: DType, host: &HostWeight| -> Result<HostWeight<'a>> {
            let bytes = quantize(dtype, &host.to_f32()?)?;
            Ok(HostWeight {
                dtype,
                shape: host.shape.clone(),
                bytes: Cow::Owned(bytes),
            })
        };
        if self.dequantize && host.dtype.is_quantized() {
            return reformat(DType::F32, &host);
        }
        match self.quantize {
            Some(dtype) if !host.dtype.is_quantized() && cols.is_multiple_of(dtype.block_elems()) => {
                reformat(dtype, &host)
            }
            _ => Ok(host),
        }
    }
}

/// Uploads a checkpoint's tensors by name, checking each shape, placed as the options say.
pub(crate) struct Loader<'a, B: Backend> {
    pub backend: &'a B,
    pub file: &'a WeightFile,
    pub naming: Naming,
    pub options: LoadOptions,
}

impl<'a, B: Backend> Loader<'a, B> {
    /// A matrix as the file holds it, or widened to f32 when the options ask for it.
    fn host_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<HostWeight<'a>> {
        self.host_matrix_to(name, [rows, cols], [rows, cols])
    }

    /// A `[rows, cols]` matrix zero-padded to `to` (for a width the block format does not
    /// divide), then placed as the options say.
    fn host_matrix_to(&self, name: &str, [rows, cols]: [usize; 2], to: [usize; 2]) -> Result<HostWeight<'a>> {
        let host = self.file.tensor_with_shape(name, &[rows, cols])?;
        if to == [rows, cols] {
            return self.options.prepare(host);
        }
        let values = host.to_f32()?;
        let mut padded = vec![0f32; to[0] * to[1]];
        for (row, out) in values.chunks_exact(cols).zip(padded.chunks_exact_mut(to[1])) {
            out[..cols].copy_from_slice(row);
        }
        self.options.prepare(HostWeight::from_f32(&padded, to.to_vec()))
    }

    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<B::Weight> {
        Ok(self.backend.upload_weight(&self.host_matrix(name, rows, cols)?)?)
    }

    /// A matrix zero-padded from `shape` to `to`.
    pub fn matrix_to(&self, name: &str, shape: [usize; 2], to: [usize; 2]) -> Result<B::Weight> {
        Ok(self.backend.upload_weight(&self.host_matrix_to(name, shape, to)?)?)
    }

    /// Projections of one input (`(name, rows)` each, `cols` inputs), stacked into one matrix
    /// when they share a format so that one matmul computes them all.
    pub fn stacked(&self, parts: &[(String, usize)], cols: usize) -> Result<Stacked<B>> {
        self.stacked_to(parts, cols, cols)
    }

    /// As [`Loader::stacked`], each part's inputs zero-padded from `cols` to `cols_to`.
    pub fn stacked_to(&self, parts: &[(String, usize)], cols: usize, cols_to: usize) -> Result<Stacked<B>> {
        let hosts = parts
            .iter()
            .map(|(name, rows)| self.host_matrix_to(name, [*rows, cols], [*rows, cols_to]))
            .collect::<Result<Vec<_>>>()?;
        let cols = cols_to;
        let widths = parts.iter().map(|(_, rows)| *rows).collect();
        if hosts.iter().all(|h| h.dtype == hosts[0].dtype) {
            let bytes: Vec<u8> = hosts.iter().flat_map(|h| h.bytes.iter().copied()).collect();
            let rows = parts.iter().map(|(_, rows)| rows).sum();
            let fused = HostWeight {
                dtype: hosts[0].dtype,
                shape: vec![rows, cols],
                bytes: Cow::Owned(bytes),
            };
            return Ok(Stacked {
                widths,
                weights: StackedWeights::Fused(self.backend.upload_weight(&fused)?),
            });
        }
        let weights = hosts
            .iter()
            .map(|h| self.backend.upload_weight(h))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Stacked {
            widths,
            weights: StackedWeights::Separate(weights),
        })
    }

    /// A vector scaled by `scale` and zero-padded from `len` to `len_to`.
    pub fn vector_to(&self, name: &str, len: usize, len_to: usize, scale: f32) -> Result<B::Tensor> {
        self.shifted_vector_to(name, [len, len_to], 0.0, scale)
    }

    /// An RMSNorm's scale as `flavor` computes it from the stored weight `name`.
    pub fn norm(&self, name: &str, len: usize, flavor: Flavor) -> Result<B::Tensor> {
        self.shifted_vector_to(name, [len, len], flavor.norm_offset(), 1.0)
    }

    /// The vector `(stored + offset) * scale`, zero-padded from `len` to `len_to`.
    pub fn shifted_vector_to(
        &self,
        name: &str,
        [len, len_to]: [usize; 2],
        offset: f32,
        scale: f32,
    ) -> Result<B::Tensor> {
        let mut values = self.file.tensor_with_shape(name, &[len])?.to_f32()?;
        values.iter_mut().for_each(|v| *v = (*v + offset) * scale);
        values.resize(len_to, 0.0);
        Ok(self.backend.upload(&values, 1, len_to)?)
    }
}

enum StackedWeights<B: Backend> {
    /// One matrix whose rows are the parts' rows, in order.
    Fused(B::Weight),
    /// One matrix per part (their formats differ, as in mixed-precision GGUF files).
    Separate(Vec<B::Weight>),
}

/// Several projections of the same input.
pub(crate) struct Stacked<B: Backend> {
    widths: Vec<usize>,
    weights: StackedWeights<B>,
}

impl<B: Backend> Stacked<B> {
    /// Every part's projection of `xs`, in order.
    pub fn forward(&self, b: &B, xs: &B::Tensor) -> Result<Vec<B::Tensor>> {
        match &self.weights {
            StackedWeights::Separate(ws) => ws.iter().map(|w| Ok(b.matmul(xs, w)?)).collect(),
            StackedWeights::Fused(w) => {
                let all = b.matmul(xs, w)?;
                let mut start = 0;
                let mut parts = Vec::with_capacity(self.widths.len());
                for &width in &self.widths {
                    parts.push(b.columns(&all, start, width)?);
                    start += width;
                }
                Ok(parts)
            }
        }
    }
}

/// The half of a decoder layer after attention: the output projection and its residual, then
/// the RMS-normed gated MLP (SiLU for Llama, GELU-tanh for Gemma) and its residual.
pub(crate) struct Tail<B: Backend> {
    o: B::Weight,
    mlp_norm: B::Tensor,
    /// gate and up.
    gate_up: Stacked<B>,
    down: B::Weight,
    activation: Activation,
}

impl<B: Backend> Tail<B> {
    /// Loads the tail of a layer whose tensors `name` gives by Hugging Face role (such as
    /// `mlp.down_proj`), `hidden` wide, with `q_dim` attention outputs.
    pub fn load(
        l: &Loader<B>,
        name: &dyn Fn(&str) -> String,
        hidden: usize,
        q_dim: usize,
        intermediate: usize,
        flavor: Flavor,
    ) -> Result<Self> {
        let gate_up = [
            (name("mlp.gate_proj"), intermediate),
            (name("mlp.up_proj"), intermediate),
        ];
        Ok(Tail {
            o: l.matrix(&name("self_attn.o_proj"), hidden, q_dim)?,
            mlp_norm: l.norm(&name("post_attention_layernorm"), hidden, flavor)?,
            gate_up: l.stacked(&gate_up, hidden)?,
            down: l.matrix(&name("mlp.down_proj"), hidden, intermediate)?,
            activation: flavor.activation(),
        })
    }

    /// As [`Tail::load`] with the hidden width zero-padded from `hidden[0]` to `hidden[1]`
    /// and the norm's scale multiplied by `norm_scale` (SmolVLA's expert, whose width the
    /// block formats do not divide, runs padded: `smolvla::expert`).
    pub fn load_widened(
        l: &Loader<B>,
        name: &dyn Fn(&str) -> String,
        [hidden, to]: [usize; 2],
        q_dim: usize,
        intermediate: usize,
        norm_scale: f32,
    ) -> Result<Self> {
        let gate_up = [
            (name("mlp.gate_proj"), intermediate),
            (name("mlp.up_proj"), intermediate),
        ];
        Ok(Tail {
            o: l.matrix_to(&name("self_attn.o_proj"), [hidden, q_dim], [to, q_dim])?,
            mlp_norm: l.vector_to(&name("post_attention_layernorm"), hidden, to, norm_scale)?,
            gate_up: l.stacked_to(&gate_up, hidden, to)?,
            down: l.matrix_to(&name("mlp.down_proj"), [hidden, intermediate], [to, intermediate])?,
            activation: Activation::Silu,
        })
    }

    /// `xs` after attention produced `attn`.
    pub fn forward(&self, b: &B, xs: &B::Tensor, attn: &B::Tensor, eps: f32) -> Result<B::Tensor> {
        let xs = b.binary(xs, &b.matmul(attn, &self.o)?, BinaryOp::Add)?;
        let normed = b.rms_norm(&xs, &self.mlp_norm, eps)?;
        let [gate, up]: [B::Tensor; 2] = self
            .gate_up
            .forward(b, &normed)?
            .try_into()
            .map_err(|_| stacked_err())?;
        let hidden = b.gated(&gate, &up, self.activation)?;
        Ok(b.binary(&xs, &b.matmul(&hidden, &self.down)?, BinaryOp::Add)?)
    }
}

/// One decoder layer.
pub(crate) struct Block<B: Backend> {
    attn_norm: B::Tensor,
    /// q, k and v.
    qkv: Stacked<B>,
    tail: Tail<B>,
}

impl<B: Backend> Block<B> {
    /// Layer `i` of a decoder of config `cfg`, named as `l` names it.
    pub fn load(l: &Loader<B>, i: usize, cfg: &LlamaConfig) -> Result<Self> {
        let (h, n) = (cfg.hidden_size, |hf: &str| l.naming.layer(i, hf));
        let qkv = [
            (n("self_attn.q_proj"), cfg.q_dim()),
            (n("self_attn.k_proj"), cfg.kv_dim()),
            (n("self_attn.v_proj"), cfg.kv_dim()),
        ];
        Ok(Block {
            attn_norm: l.norm(&n("input_layernorm"), h, cfg.flavor)?,
            qkv: l.stacked(&qkv, h)?,
            tail: Tail::load(l, &n, h, cfg.q_dim(), cfg.intermediate_size, cfg.flavor)?,
        })
    }

    /// The layer's q, k and v of `xs` (normed first), before rotary embedding.
    pub fn project_qkv(&self, b: &B, xs: &B::Tensor, eps: f32) -> Result<[B::Tensor; 3]> {
        let normed = b.rms_norm(xs, &self.attn_norm, eps)?;
        self.qkv.forward(b, &normed)?.try_into().map_err(|_| stacked_err())
    }

    pub fn tail(&self) -> &Tail<B> {
        &self.tail
    }

    fn forward(&self, b: &B, xs: &B::Tensor, cache: &mut B::KvCache, cfg: &LlamaConfig) -> Result<B::Tensor> {
        let _span = tracing::trace_span!("llama_block").entered();
        let start_pos = b.kv_len(cache);
        let rope = |heads| RopeParams {
            heads,
            head_dim: cfg.head_dim,
            theta: cfg.rope_theta,
            style: cfg.rope_style,
            start_pos,
        };
        let [q, k, v] = self.project_qkv(b, xs, cfg.rms_norm_eps)?;
        let q = b.rope(&q, rope(cfg.num_heads))?;
        let k = b.rope(&k, rope(cfg.num_kv_heads))?;
        let params = AttentionParams {
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            scale: 1.0 / (cfg.head_dim as f32).sqrt(),
            mask: AttentionMask::Causal,
        };
        let attn = b.attention(&q, &k, &v, cache, params)?;
        self.tail.forward(b, xs, &attn, cfg.rms_norm_eps)
    }
}

fn stacked_err() -> ModelError {
    ModelError::Generation("a stacked projection returned the wrong number of parts".into())
}

/// The key/value caches of every layer of one sequence.
pub struct LlamaCache<B: Backend> {
    layers: Vec<B::KvCache>,
}

impl<B: Backend> LlamaCache<B> {
    /// Each layer's cache, for models that fill them with their own attention pattern.
    pub(crate) fn layers_mut(&mut self) -> &mut [B::KvCache] {
        &mut self.layers
    }
}

/// Which positions' logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: what generation needs.
    Last,
    /// Every position of the input.
    All,
}

/// A Llama-family causal language model on backend `B`.
pub struct Llama<B: Backend> {
    backend: Arc<B>,
    cfg: LlamaConfig,
    embed: B::Weight,
    blocks: Vec<Block<B>>,
    norm: B::Tensor,
    lm_head: Option<B::Weight>,
}

impl<B: Backend> Llama<B> {
    /// Loads a GGUF file, or a Hugging Face checkpoint: a directory holding `config.json`
    /// and `model.safetensors`, or the `.safetensors` file itself with `config.json` beside it.
    pub fn load(backend: Arc<B>, path: &Path) -> Result<Self> {
        let weights_path = if path.is_dir() {
            path.join("model.safetensors")
        } else {
            path.to_path_buf()
        };
        let file = WeightFile::open(&weights_path)?;
        Self::from_file(backend, &file, LoadOptions::default())
    }

    /// Builds the model from an opened weight file.
    pub fn from_file(backend: Arc<B>, file: &WeightFile, options: LoadOptions) -> Result<Self> {
        let (cfg, naming) = match file.container() {
            Container::Gguf(_) => (gguf_config(file)?, Naming::Gguf),
            Container::SafeTensors(_) => (hf_config(file)?, Naming::HF),
        };
        Self::build(backend, file, cfg, naming, options)
    }

    /// Builds the model from `file` with a configuration read elsewhere, its tensors named
    /// by `naming` (the text tower of a multimodal checkpoint).
    pub(crate) fn build(
        backend: Arc<B>,
        file: &WeightFile,
        cfg: LlamaConfig,
        naming: Naming,
        options: LoadOptions,
    ) -> Result<Self> {
        let embedding = naming.global("model.embed_tokens.weight");
        Self::build_with_embedding(backend, file, cfg, naming, options, &embedding, None)
    }

    /// As [`Llama::build`], the token embedding read from the tensor `embedding` (a checkpoint
    /// that keeps only the tied head's copy) and the head from the tensor `head` when given
    /// (one kept beside the embedding under another name), else as the config ties it.
    pub(crate) fn build_with_embedding(
        backend: Arc<B>,
        file: &WeightFile,
        cfg: LlamaConfig,
        naming: Naming,
        options: LoadOptions,
        embedding: &str,
        head: Option<&str>,
    ) -> Result<Self> {
        let _span = tracing::info_span!("llama_load", layers = cfg.num_layers).entered();
        let l = Loader {
            backend: backend.as_ref(),
            file,
            naming,
            options,
        };
        let h = cfg.hidden_size;
        let embed = l.matrix(embedding, cfg.vocab_size, h)?;
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::load(&l, i, &cfg))
            .collect::<Result<_>>()?;
        let norm = l.norm(&naming.global("model.norm.weight"), h, cfg.flavor)?;
        let lm_head = match (head, cfg.tie_word_embeddings) {
            (Some(head), _) if head != embedding => Some(l.matrix(head, cfg.vocab_size, h)?),
            (Some(_), _) | (None, true) => None,
            (None, false) => Some(l.matrix(&naming.global("lm_head.weight"), cfg.vocab_size, h)?),
        };
        Ok(Llama {
            backend,
            cfg,
            embed,
            blocks,
            norm,
            lm_head,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// The decoder layers, for models that run them with their own attention pattern.
    pub(crate) fn blocks(&self) -> &[Block<B>] {
        &self.blocks
    }

    /// An empty cache for sequences of up to `max_positions` tokens (capped by the config).
    pub fn new_cache(&self, max_positions: usize) -> Result<LlamaCache<B>> {
        let spec = KvCacheSpec {
            kv_heads: self.cfg.num_kv_heads,
            head_dim: self.cfg.head_dim,
            max_positions: max_positions.min(self.cfg.max_positions),
        };
        let layers = (0..self.cfg.num_layers)
            .map(|_| self.backend.kv_cache(spec))
            .collect::<std::result::Result<_, _>>()?;
        Ok(LlamaCache { layers })
    }

    /// Positions the cache holds.
    pub fn cache_len(&self, cache: &LlamaCache<B>) -> usize {
        cache.layers.first().map_or(0, |c| self.backend.kv_len(c))
    }

    /// Runs `ids` after whatever the cache holds and returns logits `[rows, vocab]`.
    pub fn forward(&self, ids: &[u32], cache: &mut LlamaCache<B>, logits: Logits) -> Result<B::Tensor> {
        let _span = tracing::debug_span!("llama_forward", tokens = ids.len()).entered();
        if ids.is_empty() {
            return Err(ModelError::Generation("forward needs at least one token".into()));
        }
        self.backend.scope(|| self.forward_layers(ids, cache, logits))
    }

    /// The token embeddings of `ids`, `[ids, hidden]`.
    pub fn embed(&self, ids: &[u32]) -> Result<B::Tensor> {
        Ok(self.backend.embedding(&self.embed, ids)?)
    }

    /// Runs input embeddings `[rows, hidden]` (token embeddings with, say, image features
    /// spliced in) after whatever the cache holds and returns logits `[rows, vocab]`.
    pub fn forward_embeddings(&self, xs: B::Tensor, cache: &mut LlamaCache<B>, logits: Logits) -> Result<B::Tensor> {
        let _span = tracing::debug_span!("llama_forward_embeddings").entered();
        self.backend.scope(|| self.run_layers(xs, cache, logits))
    }

    /// The logits `[rows, vocab]` of hidden states `[rows, hidden]` that came out of the last
    /// layer: the final norm, then the head.
    pub(crate) fn logits(&self, hidden: &B::Tensor) -> Result<B::Tensor> {
        let b = self.backend.as_ref();
        let xs = b.rms_norm(hidden, &self.norm, self.cfg.rms_norm_eps)?;
        Ok(b.matmul(&xs, self.lm_head.as_ref().unwrap_or(&self.embed))?)
    }

    fn forward_layers(&self, ids: &[u32], cache: &mut LlamaCache<B>, logits: Logits) -> Result<B::Tensor> {
        self.run_layers(self.embed(ids)?, cache, logits)
    }

    fn run_layers(&self, mut xs: B::Tensor, cache: &mut LlamaCache<B>, logits: Logits) -> Result<B::Tensor> {
        let b = self.backend.as_ref();
        let rows = b.dims(&xs).0;
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            xs = block.forward(b, &xs, layer_cache, &self.cfg)?;
        }
        if logits == Logits::Last && rows > 1 {
            xs = b.rows(&xs, rows - 1, 1)?;
        }
        self.logits(&xs)
    }
}

fn hf_config(file: &WeightFile) -> Result<LlamaConfig> {
    let config_path = file.path().with_file_name("config.json");
    LlamaConfig::from_hf_json(&read_text(&config_path)?, &config_path)
}

fn gguf_config(file: &WeightFile) -> Result<LlamaConfig> {
    let embed = file.tensor("token_embd.weight")?;
    let vocab_rows = embed.shape.first().copied().unwrap_or(0);
    let meta = file.gguf_metadata().ok_or_else(|| ModelError::Malformed {
        path: file.path().to_path_buf(),
        message: "GGUF metadata missing".into(),
    })?;
    reject_unsupported_gguf_features(file, &meta)?;
    LlamaConfig::from_gguf(&meta, vocab_rows, !file.contains("output.weight"))
}

/// Features of llama-architecture GGUF files this decoder does not implement, refused
/// rather than silently ignored: rope frequency scaling (Llama 3.1+ writes a `rope_freqs`
/// tensor or `llama.rope.scaling.type`) and projection biases.
fn reject_unsupported_gguf_features(file: &WeightFile, meta: &crate::weights::gguf::Metadata) -> Result<()> {
    let unsupported = |message: String| ModelError::Config {
        path: file.path().to_path_buf(),
        message,
    };
    if let Some(kind) = meta.str_opt("llama.rope.scaling.type")?.filter(|t| *t != "none") {
        return Err(unsupported(format!(
            "llama.rope.scaling.type {kind:?} is not supported"
        )));
    }
    if let Some(t) = file
        .listing()
        .into_iter()
        .find(|t| t.name == "rope_freqs.weight" || t.name.ends_with(".bias"))
    {
        return Err(unsupported(format!(
            "tensor {} (rope scaling or a projection bias) is not supported",
            t.name
        )));
    }
    Ok(())
}
