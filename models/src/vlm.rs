//! The vision-language roles on an Idefics3/SmolVLM checkpoint: the model, its image
//! processor and its tokenizer, checked against each other at load, and the two things the
//! brain asks of them: answer about a frame (VLM), and turn a frame and an instruction into a
//! task plan that always parses (VLT, with [`PlanConstraint`]).

use std::path::Path;
use std::sync::Arc;

use brainstem_kernels::Backend;

use crate::error::{ModelError, Result};
use crate::generate::{generate_after, GenerateOptions, GenerationStats, TokenConstraint};
use crate::host_work;
use crate::idefics3::{Idefics3, ImageEmbedding};
use crate::image::idefics3::Idefics3Processor;
use crate::image::RgbImage;
use crate::kernels::OpKind;
use crate::llama::{LoadOptions, Logits};
use crate::plan::{Plan, PlanConstraint, PlanSchema};
use crate::tokenizer::Tokenizer;

/// A frame encoded once, for every prompt (and every model) that needs it: one view per
/// camera, each as the processor tiled it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFrame {
    /// Tile rows and columns of each camera's view, in camera order (0 x 0: the global
    /// view alone).
    pub views: Vec<(usize, usize)>,
    /// Every view's features, in the order the prompt's `<image>` tokens take them.
    pub embedding: Arc<ImageEmbedding>,
}

impl EncodedFrame {
    /// Tiles over every view, global views included.
    pub fn tiles(&self) -> usize {
        self.views.iter().map(|(rows, cols)| rows * cols + 1).sum()
    }
}

pub struct Vlm<B: Backend> {
    model: Idefics3<B>,
    processor: Idefics3Processor,
    tokenizer: Tokenizer,
}

impl<B: Backend> Vlm<B> {
    /// Loads model, processor and tokenizer from a checkpoint directory.
    pub fn load(backend: Arc<B>, dir: &Path, options: LoadOptions) -> Result<Self> {
        let model = Idefics3::load(backend, dir, options)?;
        let processor = Idefics3Processor::from_dir(dir).map_err(|e| ModelError::Config {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let tokenizer = Tokenizer::from_json_file(&dir.join("tokenizer.json"))?;
        let vlm = Self {
            model,
            processor,
            tokenizer,
        };
        vlm.check_agreement(dir)?;
        Ok(vlm)
    }

    fn check_agreement(&self, dir: &Path) -> Result<()> {
        let cfg = self.model.config();
        let disagree = |message: String| {
            Err(ModelError::Config {
                path: dir.join("config.json"),
                message,
            })
        };
        match self.tokenizer.token_id("<image>") {
            Some(id) if id == cfg.image_token_id => {}
            found => {
                return disagree(format!(
                    "image_token_id is {}, the tokenizer's <image> is {found:?}",
                    cfg.image_token_id
                ))
            }
        }
        if self.processor.tile_size() as usize != cfg.vision.image_size {
            return disagree(format!(
                "the vision tower takes {} pixel tiles, the processor makes {}",
                cfg.vision.image_size,
                self.processor.tile_size()
            ));
        }
        if self.processor.image_seq_len != cfg.image_seq_len() {
            return disagree(format!(
                "a tile gives {} image features, the processor expects {}",
                cfg.image_seq_len(),
                self.processor.image_seq_len
            ));
        }
        Ok(())
    }

    pub fn model(&self) -> &Idefics3<B> {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn encode_frame(&self, frame: &RgbImage) -> Result<EncodedFrame> {
        self.encode_views(std::slice::from_ref(frame))
    }

    /// Encodes one frame from each camera, in camera order, as one multi-image frame.
    pub fn encode_views(&self, views: &[RgbImage]) -> Result<EncodedFrame> {
        if views.is_empty() {
            return Err(ModelError::Generation("a frame needs at least one camera view".into()));
        }
        let (mut shapes, mut values, mut rows) = (Vec::new(), Vec::new(), 0);
        for view in views {
            let tiles = self.processor.preprocess(view);
            let prep = host_work::resized(view.pixels().len(), tiles.pixels.len());
            host_work::record(self.model.text().backend().as_ref(), OpKind::ImagePrep, prep);
            let embedding = self.model.encode_image(&tiles)?;
            shapes.push((tiles.rows, tiles.cols));
            rows += embedding.rows;
            values.extend_from_slice(&embedding.values);
        }
        let hidden = self.model.config().text.hidden_size;
        Ok(EncodedFrame {
            views: shapes,
            embedding: Arc::new(ImageEmbedding { rows, hidden, values }),
        })
    }

    /// The Idefics3 chat prompt for one user turn about `frame`, as token ids.
    pub fn prompt_ids(&self, user: &str, frame: &EncodedFrame) -> Result<Vec<u32>> {
        self.prompt_ids_with_answer(user, "", frame)
    }

    /// The prompt with the start of the assistant's answer already written (`answer`).
    pub fn prompt_ids_with_answer(&self, user: &str, answer: &str, frame: &EncodedFrame) -> Result<Vec<u32>> {
        let image: String = frame
            .views
            .iter()
            .map(|&(rows, cols)| self.processor.image_prompt(rows, cols))
            .collect();
        let text = format!("<|im_start|>User:{image}{user}<end_of_utterance>\nAssistant:{answer}");
        let ids = self.tokenizer.encode(&text)?;
        host_work::tokenized(self.model.text().backend().ledger(), &text, ids.len());
        Ok(ids)
    }

    /// Ids that end the assistant's turn.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.tokenizer.stop_ids();
        ids.extend(self.tokenizer.token_id("<end_of_utterance>"));
        ids.extend(&self.model.text().config().eos_token_ids);
        ids
    }

    /// Generates the assistant's turn for `user` about `frame`.
    pub fn generate(
        &self,
        user: &str,
        frame: &EncodedFrame,
        opts: &GenerateOptions,
        constraint: Option<&mut dyn TokenConstraint>,
        on_token: impl FnMut(u32),
    ) -> Result<(Vec<u32>, GenerationStats)> {
        self.generate_after_answer(user, "", frame, opts, constraint, on_token)
    }

    /// Generates the rest of an assistant turn that starts with `answer`.
    pub fn generate_after_answer(
        &self,
        user: &str,
        answer: &str,
        frame: &EncodedFrame,
        opts: &GenerateOptions,
        constraint: Option<&mut dyn TokenConstraint>,
        on_token: impl FnMut(u32),
    ) -> Result<(Vec<u32>, GenerationStats)> {
        let ids = self.prompt_ids_with_answer(user, answer, frame)?;
        let prefill = |cache: &mut _| self.model.prefill(&ids, Some(&frame.embedding), cache, Logits::Last);
        generate_after(self.model.text(), ids.len(), prefill, opts, constraint, on_token)
    }

    /// A plan for `instruction` in `frame`, using only `schema`'s skills; it always parses.
    pub fn plan(
        &self,
        instruction: &str,
        frame: &EncodedFrame,
        schema: &PlanSchema,
        opts: &GenerateOptions,
    ) -> Result<(Plan, GenerationStats)> {
        let needed = PlanConstraint::min_tokens(schema);
        if opts.max_tokens < needed {
            return Err(ModelError::Generation(format!(
                "a plan takes at least {needed} tokens, the budget is {}",
                opts.max_tokens
            )));
        }
        let mut constraint = PlanConstraint::new(schema.clone(), &self.tokenizer)?;
        let user = format!(
            "Plan this task as JSON subtasks using only the skills {}. Task: {instruction}",
            schema.skills.join(", ")
        );
        let opts = GenerateOptions {
            stop_ids: Vec::new(),
            ..opts.clone()
        };
        let (_, stats) = self.generate(&user, frame, &opts, Some(&mut constraint), |_| {})?;
        Ok((Plan::parse(constraint.text(), schema)?, stats))
    }
}
