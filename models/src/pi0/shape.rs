//! The shapes of pi0 and pi0-FAST (PaliGemma, and pi0's action expert), read from the
//! checkpoint's tensors rather than from the variant names its config gives (lerobot's config accepts only `gemma_2b` and `gemma_300m`, whatever the
//! weights are): each Gemma's width from its final norm, its depth from its layers, its MLP
//! from `gate_proj`; both Gemmas are multi-query, as every pi0 variant is, so a head is as wide
//! as the single key head; and the SigLIP tower's heads are 72 wide, as in PaliGemma's
//! so400m tower (1152 = 16 x 72).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainstem_kernels::RopeStyle;

use crate::error::{ModelError, Result};
use crate::idefics3::VisionConfig;
use crate::llama::{Flavor, LlamaConfig};
use crate::weights::WeightFile;

/// Where pi0's tensors sit in a lerobot checkpoint.
pub(super) const PALIGEMMA: &str = "model.paligemma_with_expert.paligemma.model.";
pub(super) const BACKBONE: &str = "model.paligemma_with_expert.paligemma.model.language_model.";
pub(super) const EXPERT: &str = "model.paligemma_with_expert.gemma_expert.model.";
pub(super) const VISION: &str = "model.paligemma_with_expert.paligemma.model.vision_tower.";
/// PaliGemma's head: a copy of the backbone's embedding in pi0, trained in pi0-FAST.
pub(super) const PALIGEMMA_HEAD: &str = "model.paligemma_with_expert.paligemma.lm_head.weight";

/// The width of a SigLIP head in PaliGemma's tower.
const SIGLIP_HEAD_DIM: usize = 72;
/// Gemma's RMSNorm epsilon and rotary base.
const GEMMA_EPS: f32 = 1e-6;
const GEMMA_ROPE_THETA: f32 = 10_000.0;
/// SigLIP's LayerNorm epsilon.
const SIGLIP_EPS: f32 = 1e-6;

/// The shapes of a PaliGemma in a lerobot checkpoint: its SigLIP tower, projector and Gemma.
#[derive(Clone, Debug, PartialEq)]
pub struct PaliGemmaShape {
    pub backbone: LlamaConfig,
    /// The tensor the backbone's token embedding is read from.
    pub embedding: String,
    /// The tensor the head is read from: PaliGemma's `lm_head`, else the embedding.
    pub head: String,
    pub vision: VisionConfig,
}

/// The shapes of a pi0 checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Pi0Shape {
    pub paligemma: PaliGemmaShape,
    pub expert: LlamaConfig,
    /// Whether the expert's norms are adaptive (pi0.5's adaRMS: a `dense` layer each).
    pub expert_adaptive: bool,
}

/// The checkpoint's tensor shapes by name.
struct Shapes {
    by_name: HashMap<String, Vec<usize>>,
    path: PathBuf,
}

impl Shapes {
    /// The shapes of `file` (a policy's `model.safetensors` at `path`).
    fn of(file: &WeightFile, path: &Path) -> Shapes {
        Shapes {
            by_name: file.listing().into_iter().map(|t| (t.name, t.shape)).collect(),
            path: path.to_path_buf(),
        }
    }

    fn get(&self, name: &str) -> Result<&[usize]> {
        self.by_name
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    fn dim(&self, name: &str, axis: usize) -> Result<usize> {
        let shape = self.get(name)?;
        shape
            .get(axis)
            .copied()
            .ok_or_else(|| self.err(format!("{name} has shape {shape:?}")))
    }

    /// How many of `{prefix}{i}{suffix}` exist for i = 0, 1, ...
    fn count(&self, prefix: &str, suffix: &str) -> usize {
        (0..)
            .take_while(|i| self.by_name.contains_key(&format!("{prefix}{i}{suffix}")))
            .count()
    }

    fn err(&self, message: String) -> ModelError {
        ModelError::Config {
            path: self.path.clone(),
            message,
        }
    }
}

impl PaliGemmaShape {
    /// Reads the shapes of `file` (the policy's `model.safetensors` at `path`).
    pub fn of(file: &WeightFile, path: &Path) -> Result<Self> {
        Self::read(&Shapes::of(file, path))
    }

    fn read(shapes: &Shapes) -> Result<Self> {
        let backbone = gemma(shapes, BACKBONE)?;
        let embedding = embedding_name(shapes, BACKBONE).ok_or_else(|| ModelError::MissingTensor {
            path: shapes.path.clone(),
            name: format!("{BACKBONE}embed_tokens.weight (or {PALIGEMMA_HEAD})"),
        })?;
        let head = match shapes.by_name.get(PALIGEMMA_HEAD) {
            Some(shape) if *shape != [backbone.vocab_size, backbone.hidden_size] => {
                return Err(shapes.err(format!(
                    "{PALIGEMMA_HEAD} is {shape:?}, expected [{}, {}] (the embedding's)",
                    backbone.vocab_size, backbone.hidden_size
                )))
            }
            Some(_) => PALIGEMMA_HEAD.to_string(),
            None => embedding.clone(),
        };
        let vision = vision(shapes)?;
        let projector = shapes.get(&format!("{PALIGEMMA}multi_modal_projector.linear.weight"))?;
        if projector != [backbone.hidden_size, vision.hidden_size] {
            return Err(shapes.err(format!(
                "the projector is {projector:?}, expected [{}, {}] (the backbone's width, the tower's)",
                backbone.hidden_size, vision.hidden_size
            )));
        }
        Ok(Self {
            backbone,
            embedding,
            head,
            vision,
        })
    }
}

impl Pi0Shape {
    /// Reads the shapes of `file` (the policy's `model.safetensors` at `path`).
    pub fn of(file: &WeightFile, path: &Path) -> Result<Self> {
        let shapes = Shapes::of(file, path);
        let paligemma = PaliGemmaShape::read(&shapes)?;
        let backbone = &paligemma.backbone;
        let expert = gemma(&shapes, EXPERT)?;
        if expert.num_layers != backbone.num_layers {
            return Err(shapes.err(format!(
                "the expert has {} layers and the backbone {}: pi0 runs them side by side",
                expert.num_layers, backbone.num_layers
            )));
        }
        if (expert.head_dim, expert.num_kv_heads) != (backbone.head_dim, backbone.num_kv_heads) {
            return Err(shapes.err(format!(
                "the expert's key heads ({} of {}) differ from the backbone's ({} of {}): their keys meet in one attention",
                expert.num_kv_heads, expert.head_dim, backbone.num_kv_heads, backbone.head_dim
            )));
        }
        let expert_adaptive = shapes.by_name.contains_key(&format!("{EXPERT}norm.dense.weight"));
        Ok(Self {
            paligemma,
            expert,
            expert_adaptive,
        })
    }
}

/// Where the token embedding of the Gemma under `prefix` is: its `embed_tokens`, else (for the
/// backbone) PaliGemma's tied head, which lerobot copies into the embedding when a checkpoint
/// keeps only that; `None` for the expert, which has no embedding.
fn embedding_name(shapes: &Shapes, prefix: &str) -> Option<String> {
    let own = format!("{prefix}embed_tokens.weight");
    match (shapes.by_name.contains_key(&own), prefix == BACKBONE) {
        (true, _) => Some(own),
        (false, true) if shapes.by_name.contains_key(PALIGEMMA_HEAD) => Some(PALIGEMMA_HEAD.to_string()),
        _ => None,
    }
}

/// A multi-query Gemma whose tensors start with `prefix`, its norms plain (a `weight`) or
/// adaptive (a `dense` layer giving scale, shift and gate from a condition as wide as the model).
fn gemma(shapes: &Shapes, prefix: &str) -> Result<LlamaConfig> {
    let layer = |role: &str| format!("{prefix}layers.0.{role}.weight");
    let adaptive = shapes.by_name.contains_key(&format!("{prefix}norm.dense.weight"));
    let (hidden, num_layers) = match adaptive {
        false => (
            shapes.dim(&format!("{prefix}norm.weight"), 0)?,
            shapes.count(&format!("{prefix}layers."), ".input_layernorm.weight"),
        ),
        true => (
            shapes.dim(&format!("{prefix}norm.dense.weight"), 1)?,
            shapes.count(&format!("{prefix}layers."), ".input_layernorm.dense.weight"),
        ),
    };
    let q_rows = shapes.dim(&layer("self_attn.q_proj"), 0)?;
    let head_dim = shapes.dim(&layer("self_attn.k_proj"), 0)?;
    if num_layers == 0 || head_dim == 0 || !q_rows.is_multiple_of(head_dim) {
        return Err(shapes.err(format!(
            "{prefix}: {num_layers} layers with q_proj {q_rows} and k_proj {head_dim} rows is not a multi-query Gemma"
        )));
    }
    let vocab_size = match embedding_name(shapes, prefix) {
        Some(name) => shapes.dim(&name, 0)?,
        None => 0,
    };
    Ok(LlamaConfig {
        vocab_size,
        hidden_size: hidden,
        intermediate_size: shapes.dim(&layer("mlp.gate_proj"), 0)?,
        num_layers,
        num_heads: q_rows / head_dim,
        num_kv_heads: 1,
        head_dim,
        rms_norm_eps: GEMMA_EPS,
        rope_theta: GEMMA_ROPE_THETA,
        rope_style: RopeStyle::HalfSplit,
        max_positions: 8192,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: Vec::new(),
        flavor: Flavor::Gemma,
    })
}

/// PaliGemma's SigLIP tower.
fn vision(shapes: &Shapes) -> Result<VisionConfig> {
    let model = format!("{VISION}vision_model.");
    let hidden = shapes.dim(&format!("{model}embeddings.patch_embedding.weight"), 0)?;
    let patch_size = shapes.dim(&format!("{model}embeddings.patch_embedding.weight"), 2)?;
    let patches = shapes.dim(&format!("{model}embeddings.position_embedding.weight"), 0)?;
    let per_side = (patches as f64).sqrt().round() as usize;
    if per_side * per_side != patches || !hidden.is_multiple_of(SIGLIP_HEAD_DIM) {
        return Err(shapes.err(format!(
            "a SigLIP tower of {patches} positions and width {hidden}: expected a square grid and heads {SIGLIP_HEAD_DIM} wide"
        )));
    }
    Ok(VisionConfig {
        hidden_size: hidden,
        intermediate_size: shapes.dim(&format!("{model}encoder.layers.0.mlp.fc1.weight"), 0)?,
        num_layers: shapes.count(&format!("{model}encoder.layers."), ".layer_norm1.weight"),
        num_heads: hidden / SIGLIP_HEAD_DIM,
        image_size: per_side * patch_size,
        patch_size,
        layer_norm_eps: SIGLIP_EPS,
    })
}
