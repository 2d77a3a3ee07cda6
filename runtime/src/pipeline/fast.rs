//! lerobot's pi0-FAST as the cerebellum's policy: each chunk is sampled from the newest frame's
//! views (the policy's own vision tower, on the VLA's partition), the driven joints' state and
//! the subtask, and each FAST token goes into the action stream the moment it is sampled; the
//! motion decoder rebuilds the chunk from the tokens so far (its streaming FAST decoder) and
//! unnormalizes it with the policy's action statistics. The chunk's first step belongs to the
//! time its frame was captured. The robot's cameras map in order onto the policy's image
//! features; joints map one to one onto its state and action dimensions.

use std::path::Path;
use std::sync::Arc;

use brainstem_models::action::{FastTokenizer, Normalization};
use brainstem_models::pi0fast::{Pi0Fast, SampleOptions, TokenizerFolders};
use brainstem_models::smolvla::HubCache;
use brainstem_models::LoadOptions;

use crate::config::RuntimeConfig;
use crate::error::Result;
use crate::kernels::DeviceBackend;
use crate::pipeline::flow::{camera_names, check_fit, observation};
use crate::pipeline::stages::{ActRequest, ActionOutput, ActionPolicy};

/// pi0-FAST as the cerebellum's policy.
pub struct FastPolicy {
    policy: Pi0Fast<DeviceBackend>,
    /// The policy's camera names, in the order the robot's cameras map onto them.
    cameras: Vec<String>,
    seed: u64,
}

impl FastPolicy {
    /// Loads the policy in `dir` on `backend` and checks it against the configuration: the
    /// driven joints are its state and action dimensions, the chunk is the steps it decodes,
    /// and the robot has no more cameras than it takes.
    pub fn load(config: &RuntimeConfig, dir: &Path, backend: Arc<DeviceBackend>, options: LoadOptions) -> Result<Self> {
        let folders = TokenizerFolders {
            text: config.models.vla_backbone.as_deref(),
            actions: config.models.vla_action_tokenizer.as_deref(),
        };
        let policy = Pi0Fast::load(backend, dir, folders, &HubCache::from_env(), options)?;
        let cfg = policy.config();
        let dims = (cfg.state_dim, cfg.action_dim);
        check_fit(
            config,
            dir,
            dims,
            cfg.n_action_steps,
            "decodes chunks (n_action_steps) of",
        )?;
        let cameras = camera_names(config, &cfg.camera_names(), dir)?;
        Ok(Self {
            cameras,
            seed: config.policy.seed,
            policy,
        })
    }

    /// The FAST tokenizer the motion decoder decodes this policy's tokens with, shaped to its
    /// chunks.
    pub fn tokenizer(&self) -> Arc<FastTokenizer> {
        self.policy.action_tokenizer().clone()
    }

    /// How each action dimension goes back to the robot's units.
    pub fn unnormalization(&self) -> Vec<Normalization> {
        let dims = self.policy.config().action_dim;
        self.policy.processors().action.unnormalization(dims)
    }
}

impl ActionPolicy for FastPolicy {
    fn act(&mut self, request: &ActRequest<'_>, emit: &mut dyn FnMut(ActionOutput)) -> Result<()> {
        let observation = observation(&self.cameras, request);
        let options = SampleOptions {
            seed: self.seed.wrapping_add(request.chunk_id),
            keep_logits: 0,
        };
        self.policy
            .sample(&observation, options, |token| emit(ActionOutput::Token(token)))?;
        Ok(())
    }

    fn starts_at_observation(&self) -> bool {
        true
    }
}
