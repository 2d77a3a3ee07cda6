//! The PaliGemma that pi0, pi0.5 and pi0-FAST share: the SigLIP tower and linear projector
//! that turn each camera into rows, the Gemma backbone's scaled token embeddings, and the
//! prefix (images, then tokens) run bidirectionally through every backbone layer, its keys and
//! values left in a cache for what follows (pi0's action expert, pi0-FAST's action tokens).

use std::sync::Arc;

use brainstem_kernels::Backend;

use super::expert::{full_attention, rope};
use super::shape::{PaliGemmaShape, BACKBONE, PALIGEMMA, VISION};
use crate::error::Result;
use crate::flow::head::linear;
use crate::flow::{present_frames, Observation};
use crate::host_work;
use crate::idefics3::{load_vision_tower, Linear, VisionTower};
use crate::image::planar::{resize_with_pad, PadPlacement};
use crate::kernels::OpKind;
use crate::llama::{Llama, LlamaCache, LoadOptions, Loader, Naming};
use crate::weights::WeightFile;

/// Which of PaliGemma's heads to load: pi0 never reads its logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    Skip,
    Load,
}

/// A prefix run through the backbone: each layer's keys and values, the rows' count, and the
/// last layer's output for them.
pub(crate) struct Prefix<B: Backend> {
    pub cache: LlamaCache<B>,
    pub len: usize,
    pub hidden: B::Tensor,
}

pub(crate) struct PaliGemma<B: Backend> {
    vision: VisionTower<B>,
    projector: Linear<B>,
    backbone: Llama<B>,
}

impl<B: Backend> PaliGemma<B> {
    pub fn load(
        backend: &Arc<B>,
        file: &WeightFile,
        shape: &PaliGemmaShape,
        options: LoadOptions,
        head: Head,
    ) -> Result<Self> {
        let b = backend.as_ref();
        let width = shape.backbone.hidden_size;
        let loader = Loader {
            backend: b,
            file,
            naming: Naming::HuggingFace { prefix: PALIGEMMA },
            options,
        };
        let mut backbone_shape = shape.backbone.clone();
        backbone_shape.tie_word_embeddings = head == Head::Skip;
        let head_tensor = (head == Head::Load).then_some(shape.head.as_str());
        Ok(Self {
            vision: load_vision_tower(b, file, &shape.vision, VISION, options)?,
            projector: linear(
                &loader,
                &format!("{PALIGEMMA}multi_modal_projector.linear"),
                [width, shape.vision.hidden_size],
                [width, shape.vision.hidden_size],
            )?,
            backbone: Llama::build_with_embedding(
                backend.clone(),
                file,
                backbone_shape,
                Naming::HuggingFace { prefix: BACKBONE },
                options,
                &shape.embedding,
                head_tensor,
            )?,
        })
    }

    pub fn backbone(&self) -> &Llama<B> {
        &self.backbone
    }

    /// Each present camera's rows `[patches, width]` on the host, in the order of `cameras`
    /// (the policy's): resized with centred padding to `side`, scaled to [-1, 1], through the
    /// tower and projector.
    pub fn images(&self, b: &B, obs: &Observation, cameras: &[&str], side: usize) -> Result<Vec<f32>> {
        let mut rows = Vec::new();
        for frame in present_frames(obs, cameras)? {
            let pixels = resize_with_pad(frame, side, side, PadPlacement::Centered, 0.0);
            let pixels: Vec<f32> = pixels.data.iter().map(|v| v * 2.0 - 1.0).collect();
            host_work::record(
                b,
                OpKind::ImagePrep,
                host_work::resized(4 * frame.data.len(), pixels.len()),
            );
            let features = self.vision.forward(b, &pixels)?;
            rows.extend(b.read(&self.projector.forward(b, &features)?)?);
        }
        Ok(rows)
    }

    /// The token embeddings of `ids` on the host, scaled by the square root of the width as
    /// Gemma's embedding does (image rows are not).
    pub fn token_rows(&self, b: &B, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let scale = (self.backbone.config().hidden_size as f64).sqrt() as f32;
        Ok(b.read(&self.backbone.embed(ids)?)?
            .into_iter()
            .map(|v| v * scale)
            .collect())
    }

    /// The prefix `rows` (`[len, width]`) through every backbone layer, each row attending to
    /// every other, into a cache with room for `room` more positions after them.
    pub fn prefix(&self, b: &B, rows: &[f32], room: usize) -> Result<Prefix<B>> {
        let cfg = self.backbone.config();
        let len = rows.len() / cfg.hidden_size;
        let mut cache = self.backbone.new_cache(len + room)?;
        let mut xs = b.upload(rows, len, cfg.hidden_size)?;
        for (block, layer) in self.backbone.blocks().iter().zip(cache.layers_mut()) {
            let [q, k, v] = block.project_qkv(b, &xs, cfg.rms_norm_eps)?;
            let q = b.rope(&q, rope(cfg, cfg.num_heads, 0))?;
            let k = b.rope(&k, rope(cfg, cfg.num_kv_heads, 0))?;
            let attn = b.attention(&q, &k, &v, layer, full_attention(cfg))?;
            xs = block.tail().forward(b, &xs, &attn, cfg.rms_norm_eps)?;
        }
        Ok(Prefix { cache, len, hidden: xs })
    }
}
