//! The model stages and what each does once: the vision encoder turns a camera frame into an
//! embedding every model shares; the brain plans (VLT) and answers (VLM) about the latest
//! encoded frame; the cerebellum's [`ActionPolicy`] samples one chunk of action tokens.
//! [`Pipeline::load`] loads every checkpoint on the partition its stage is placed on (a
//! checkpoint is loaded once per partition that needs it); a VLA that cannot read the VLM's
//! image embedding brings its own vision tower to the vision stage. The threaded loops
//! ([`super::loops`]) and the simulation ([`crate::simulate`]) both drive these same stages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brainstem_models::action::{FastTokenizer, Normalization};
use brainstem_models::flow::policy_type;
use brainstem_models::generate::GenerateOptions;
use brainstem_models::image::RgbImage;
use brainstem_models::pi0fast::PI0_FAST_TYPE;
use brainstem_models::plan::{Plan, PlanSchema};
use brainstem_models::sampling::SamplingParams;
use brainstem_models::vla::{bins_clear_of_added_tokens, ActionVocabulary, Vla, VlaSpec, FAST_SKIP_TOKENS};
use brainstem_models::vlm::{EncodedFrame, Vlm};
use brainstem_models::LoadOptions;

use crate::cerebellum::feedback::{Feedback, FeedbackLimits};
use crate::cerebellum::motion::{ActionDecoding, LoopOptions, MotionConfig, MotionDecoder};
use crate::cerebellum::stream::ActionReceiver;
use crate::clock::Nanos;
use crate::compute::partition::{Partitions, Stage};
use crate::config::{ActionScheme, BrainConfig, RuntimeConfig, VlaTask};
use crate::error::{Result, RuntimeError};
use crate::kernels::{DType, DeviceBackend};
use crate::pipeline::fast::FastPolicy;
use crate::pipeline::flow::{is_flow_policy, FlowPolicy};
use crate::pipeline::observe::FrameEncodings;
use crate::robot::RobotDescription;

/// What the cerebellum asks of its policy for one chunk.
pub struct ActRequest<'a> {
    /// The newest frame encoded by the vision stage.
    pub frame: &'a EncodedFrame,
    /// The newest frame's views, one per camera in camera order, for a policy that encodes
    /// them itself.
    pub views: &'a [RgbImage],
    /// When the newest frame was captured.
    pub captured: Nanos,
    pub subtask: &'a str,
    /// The driven joints' positions, in the policy's joint order.
    pub state: &'a [f64],
    /// Numbers the chunk (and seeds its sampling).
    pub chunk_id: u64,
}

/// One piece of a chunk as a policy produces it: an action token (binned or FAST), or a value
/// of a continuous chunk (step-major, in the robot's units).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActionOutput {
    Token(u32),
    Value(f32),
}

/// The cerebellum's model: one chunk per call, each token or value handed to `emit` the
/// moment it exists. The runtime's own are [`VlaPolicy`] (tokens) and
/// [`FlowPolicy`] (values); an embedder can wrap them.
pub trait ActionPolicy: Send {
    fn act(&mut self, request: &ActRequest<'_>, emit: &mut dyn FnMut(ActionOutput)) -> Result<()>;

    /// Whether a chunk's first step belongs to the time its observation was captured (a
    /// chunk of values computed from that observation, whose steps already past when it
    /// arrives are skipped) rather than to the time the chunk started.
    fn starts_at_observation(&self) -> bool {
        false
    }
}

/// The VLA as the cerebellum's policy.
pub struct VlaPolicy {
    vla: Vla<DeviceBackend>,
    temperature: f32,
    seed: u64,
}

impl ActionPolicy for VlaPolicy {
    fn act(&mut self, request: &ActRequest<'_>, emit: &mut dyn FnMut(ActionOutput)) -> Result<()> {
        let spec = self.vla.spec();
        let opts = GenerateOptions {
            max_tokens: match spec.actions {
                ActionVocabulary::Bins(_) => spec.chunk_steps * spec.action_dims,
                ActionVocabulary::Fast { .. } => 4 * spec.chunk_steps * spec.action_dims,
            },
            sampling: SamplingParams {
                temperature: self.temperature,
                top_p: 1.0,
                seed: self.seed.wrapping_add(request.chunk_id),
            },
            stop_ids: Vec::new(),
        };
        self.vla
            .act(request.frame, request.subtask, request.state, &opts, &mut |token| {
                emit(ActionOutput::Token(token))
            })?;
        Ok(())
    }
}

/// The brain's models: the VLM answers, the VLT plans.
pub struct Brain {
    vlm: Arc<Vlm<DeviceBackend>>,
    vlt: Arc<Vlm<DeviceBackend>>,
    schema: PlanSchema,
    config: BrainConfig,
}

impl Brain {
    /// A plan for `instruction` in `frame`; it always parses.
    pub fn plan(&self, instruction: &str, frame: &EncodedFrame) -> Result<Plan> {
        let opts = GenerateOptions {
            max_tokens: self.config.plan_tokens,
            sampling: SamplingParams::default(),
            stop_ids: Vec::new(),
        };
        Ok(self.vlt.plan(instruction, frame, &self.schema, &opts)?.0)
    }

    /// The VLM's answer to `question` about `frame`.
    pub fn answer(&self, question: &str, frame: &EncodedFrame) -> Result<String> {
        let opts = GenerateOptions {
            max_tokens: self.config.answer_tokens,
            sampling: SamplingParams::default(),
            stop_ids: self.vlm.stop_ids(),
        };
        let stops = opts.stop_ids.clone();
        let (ids, _) = self.vlm.generate(question, frame, &opts, None, |_| {})?;
        let ids: Vec<u32> = ids.into_iter().filter(|id| !stops.contains(id)).collect();
        Ok(self.vlm.tokenizer().decode(&ids)?)
    }

    pub fn rate_hz(&self) -> f64 {
        self.config.rate_hz
    }
}

/// Everything a run needs, loaded and checked: the partitions, the model stages on them and
/// what the motion decoder needs.
pub struct Pipeline {
    pub partitions: Arc<Partitions>,
    pub models: ModelStages,
    pub motion: MotionSetup,
}

/// The vision stage: the VLM checkpoint's vision tower and connector encode every frame
/// once; a VLA whose checkpoint takes another image embedding gets its own encoding from its
/// own tower, on the same partition.
pub struct VisionStage {
    brain: Arc<Vlm<DeviceBackend>>,
    vla: Option<Arc<Vlm<DeviceBackend>>>,
}

impl VisionStage {
    /// Encodes a frame: one view per camera.
    pub fn encode(&self, views: &[RgbImage]) -> Result<FrameEncodings> {
        let brain = Arc::new(self.brain.encode_views(views)?);
        let vla = match &self.vla {
            Some(vla) => Arc::new(vla.encode_views(views)?),
            None => brain.clone(),
        };
        Ok(FrameEncodings { brain, vla })
    }

    /// Whether the VLA has a tower of its own (the frame is encoded twice).
    pub fn is_shared(&self) -> bool {
        self.vla.is_none()
    }
}

/// The model side.
pub struct ModelStages {
    pub vision: VisionStage,
    pub brain: Brain,
    pub policy: Box<dyn ActionPolicy>,
    /// Cameras on the robot: every frame has a view from each, and every prompt shows them all.
    pub cameras: usize,
    /// The robot joints the policy drives and reads the state of.
    pub action_joints: Vec<usize>,
    /// Whether a chunk is conditioned on the subtask or the instruction.
    pub vla_task: VlaTask,
    /// How often the cerebellum starts a chunk.
    pub chunk_period_ns: Nanos,
    /// How old a chunk's frame and joint state may be, when the robot reports its state.
    pub input_ages: Option<FeedbackLimits>,
}

/// The motion decoder's side.
#[derive(Clone)]
pub struct MotionSetup {
    pub robot: RobotDescription,
    pub config: MotionConfig,
    pub decoding: ActionDecoding,
    /// The limits the decoder keeps to when it follows the measured robot; `None` when the
    /// commands are taken as the state.
    pub feedback: Option<FeedbackLimits>,
    /// The motion loop's core, priority and memory locking, from the configuration.
    pub loop_options: LoopOptions,
}

impl MotionSetup {
    /// The decoder, taking the commands as the robot's state.
    pub fn decoder(&self, receiver: ActionReceiver) -> Result<MotionDecoder> {
        MotionDecoder::new(&self.robot, self.config.clone(), self.decoding.clone(), receiver)
    }

    /// The decoder, following the robot through `feedback` when the configuration says it
    /// reports its state.
    pub fn decoder_with(&self, receiver: ActionReceiver, feedback: &Arc<Feedback>) -> Result<MotionDecoder> {
        let decoder = self.decoder(receiver)?;
        Ok(match self.feedback {
            Some(limits) => decoder.follow_robot(&self.robot, feedback.clone(), limits),
            None => decoder,
        })
    }
}

impl Pipeline {
    /// Starts the partitions and loads every model on the partition its stage is placed on.
    pub fn load(config: &RuntimeConfig) -> Result<Self> {
        config.validate()?;
        let robot = config.robot()?;
        let partitions = Arc::new(Partitions::start(&config.compute())?);
        let options = LoadOptions {
            dequantize: false,
            quantize: config.models.quantize.as_deref().map(quantized_dtype).transpose()?,
        };
        let mut loader = Loader::new(&partitions, options);
        let vision = loader.get(Stage::Vision, &config.models.vlm)?;
        let vlm = loader.get(Stage::Vlm, &config.models.vlm)?;
        let vlt = loader.get(Stage::Vlt, &config.models.vlm)?;
        let vla = load_vla(config, &robot, &mut loader, &vision)?;
        let names: Vec<&str> = config.policy.joints.iter().map(String::as_str).collect();
        let motion = MotionConfig::for_joints(
            &robot,
            &names,
            vla.normalization,
            config.policy.rate_hz,
            config.policy.chunk_steps,
        )?;
        let (policy, vla_vision, decoding) = (vla.policy, vla.vision, vla.decoding);
        let brain = Brain {
            schema: PlanSchema::new(config.brain.skills.clone())?,
            vlm,
            vlt,
            config: config.brain.clone(),
        };
        Ok(Self {
            partitions,
            models: ModelStages {
                vision: VisionStage {
                    brain: vision,
                    vla: vla_vision,
                },
                brain,
                policy,
                cameras: config.cameras,
                action_joints: motion.action_joints.clone(),
                vla_task: config.policy.task,
                chunk_period_ns: config.chunk_period_ns(),
                input_ages: config.motion.feedback_limits(),
            },
            motion: MotionSetup {
                robot,
                config: motion,
                decoding,
                feedback: config.motion.feedback_limits(),
                loop_options: config.motion.loop_options(),
            },
        })
    }
}

/// The VLA side of a pipeline: the policy, the vision tower it needs besides the brain's, the
/// motion decoder's decoding of its chunks and the normalization of its actions.
struct VlaStage {
    policy: Box<dyn ActionPolicy>,
    vision: Option<Arc<Vlm<DeviceBackend>>>,
    decoding: ActionDecoding,
    normalization: Vec<Normalization>,
}

/// The configured VLA on its partition: a lerobot flow-matching checkpoint, whose chunks are
/// values in the robot's units, a lerobot pi0-FAST checkpoint, whose FAST tokens stream, or a
/// token VLA (an Idefics3 checkpoint, the VLM's by default).
fn load_vla(
    config: &RuntimeConfig,
    robot: &RobotDescription,
    loader: &mut Loader,
    vision: &Arc<Vlm<DeviceBackend>>,
) -> Result<VlaStage> {
    let dir = config.models.vla.clone().unwrap_or(config.models.vlm.clone());
    let backend = loader.partitions.for_stage(Stage::Vla).backend.clone();
    if config.policy.denoising_steps.is_some() && !is_flow_policy(&dir) {
        return Err(RuntimeError::config(
            "policy.denoising_steps",
            format!(
                "{} is not a flow-matching policy: it has no denoising steps",
                dir.display()
            ),
        ));
    }
    if policy_type(&dir).as_deref() == Some(PI0_FAST_TYPE) {
        let policy = FastPolicy::load(config, &dir, backend, loader.options)?;
        return Ok(VlaStage {
            decoding: ActionDecoding::Fast(policy.tokenizer()),
            normalization: policy.unnormalization(),
            policy: Box::new(policy),
            vision: None,
        });
    }
    if is_flow_policy(&dir) {
        return Ok(VlaStage {
            policy: Box::new(FlowPolicy::load(config, &dir, backend, loader.options)?),
            vision: None,
            decoding: ActionDecoding::Values,
            normalization: vec![Normalization::Identity; config.policy.joints.len()],
        });
    }
    let vla = loader.get(Stage::Vla, &dir)?;
    let own_vision = match takes_same_embedding(vision, &vla) {
        true => None,
        false => Some(loader.get(Stage::Vision, &dir)?),
    };
    let normalization = joint_bounds(robot, &config.policy.joints)?;
    let (actions, decoding) = action_scheme(config, &vla, normalization.len())?;
    let spec = VlaSpec {
        actions,
        chunk_steps: config.policy.chunk_steps,
        action_dims: normalization.len(),
        state_normalization: normalization.clone(),
    };
    let policy = VlaPolicy {
        vla: Vla::new(vla, spec)?,
        temperature: config.policy.temperature,
        seed: config.policy.seed,
    };
    Ok(VlaStage {
        policy: Box::new(policy),
        vision: own_vision,
        decoding,
        normalization,
    })
}

/// Loads each checkpoint once per partition.
struct Loader<'a> {
    partitions: &'a Partitions,
    options: LoadOptions,
    loaded: HashMap<(PathBuf, String), Arc<Vlm<DeviceBackend>>>,
}

impl<'a> Loader<'a> {
    fn new(partitions: &'a Partitions, options: LoadOptions) -> Self {
        Self {
            partitions,
            options,
            loaded: HashMap::new(),
        }
    }

    fn get(&mut self, stage: Stage, dir: &Path) -> Result<Arc<Vlm<DeviceBackend>>> {
        let partition = self.partitions.for_stage(stage);
        let key = (dir.to_path_buf(), partition.name.clone());
        if let Some(vlm) = self.loaded.get(&key) {
            return Ok(vlm.clone());
        }
        let vlm = Arc::new(Vlm::load(partition.backend.clone(), dir, self.options)?);
        self.loaded.insert(key, vlm.clone());
        Ok(vlm)
    }
}

fn quantized_dtype(name: &str) -> Result<DType> {
    DType::ALL
        .into_iter()
        .find(|d| d.is_quantized() && d.to_string().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            RuntimeError::config(
                "models.quantize",
                format!("expected one of q4_0, q4_1, q8_0, q4_k, q6_k, found {name:?}"),
            )
        })
}

/// Whether the VLA can read the embedding the VLM's vision tower makes: the same tile size,
/// features per tile and width.
fn takes_same_embedding(vision: &Vlm<DeviceBackend>, vla: &Vlm<DeviceBackend>) -> bool {
    let shape =
        |c: &brainstem_models::idefics3::Idefics3Config| (c.vision.image_size, c.image_seq_len(), c.text.hidden_size);
    shape(vision.model().config()) == shape(vla.model().config())
}

/// Each joint's position range, the normalisation of its action and state.
fn joint_bounds(robot: &RobotDescription, joints: &[String]) -> Result<Vec<Normalization>> {
    joints
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let joint = robot.joint_index(name).map(|j| &robot.joints[j]).ok_or_else(|| {
                RuntimeError::config(
                    format!("policy.joints[{i}]"),
                    format!("the robot has no joint {name:?}"),
                )
            })?;
            Ok(Normalization::Bounds {
                low: joint.min_position,
                high: joint.max_position,
            })
        })
        .collect()
}

/// The VLA's action vocabulary and the motion decoder's matching decoding.
fn action_scheme(
    config: &RuntimeConfig,
    vla: &Vlm<DeviceBackend>,
    dims: usize,
) -> Result<(ActionVocabulary, ActionDecoding)> {
    let policy = &config.policy;
    let vocab = vla.model().text().config().vocab_size as u32;
    match (policy.actions, &policy.fast_tokenizer, policy.end_token) {
        (ActionScheme::Fast, Some(dir), Some(end)) => {
            let shape = Some((policy.chunk_steps, dims));
            let tokenizer = FastTokenizer::from_dir(dir, shape)?;
            let actions = ActionVocabulary::Fast {
                tokenizer: Arc::new(FastTokenizer::from_dir(dir, shape)?),
                skip: FAST_SKIP_TOKENS,
                end,
            };
            Ok((actions, ActionDecoding::Fast(Arc::new(tokenizer))))
        }
        _ => {
            let bins = bins_clear_of_added_tokens(vocab, 256, &vla.tokenizer().added_tokens())?;
            Ok((ActionVocabulary::Bins(bins.clone()), ActionDecoding::Bins(bins)))
        }
    }
}
