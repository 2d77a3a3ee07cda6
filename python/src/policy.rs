//! `brainstem.Policy`: a lerobot SmolVLA, pi0, pi0.5 or pi0-FAST checkpoint folder, loaded as
//! `policy.save_pretrained` wrote it, asked for chunks as lerobot's `predict_action_chunk` and
//! `select_action` are: the observation dict in, the unnormalized chunk out (what lerobot's
//! postprocessor returns), and `select_action` popping from a queue of `n_action_steps`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use brainstem_runtime::kernels::{ActivationPrecision, DType, Device, DeviceBackend};
use brainstem_runtime::models::flow::{policy_type, FlowVla, PolicySpec};
use brainstem_runtime::models::pi0fast::{Pi0Fast, SampleOptions, TokenizerFolders, PI0_FAST_TYPE};
use brainstem_runtime::models::smolvla::{ActionChunk, HubCache, Noise, Observation};
use brainstem_runtime::models::{LoadOptions, ModelError};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::to_py;
use crate::observation::{f32_values, parse, Batch};

/// A loaded model of either kind. One per policy object: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Model {
    Flow(FlowVla<DeviceBackend>),
    Fast(Pi0Fast<DeviceBackend>),
}

/// Actions `select_action` has yet to hand out: rows of `batch * action_dim` values.
struct ActionQueue {
    rows: VecDeque<Vec<f32>>,
    batch: usize,
}

/// A lerobot policy on brainstem's kernels.
#[pyclass(module = "brainstem", frozen)]
pub struct Policy {
    model: Model,
    spec: PolicySpec,
    /// The policy folder it was loaded from.
    #[pyo3(get)]
    path: PathBuf,
    /// Where it runs: `cpu`, `wgpu` or `wgpu:ADAPTER`.
    #[pyo3(get)]
    device: String,
    /// The block format its float weights were quantized to, if any.
    #[pyo3(get)]
    quantize: Option<String>,
    /// The seed of the next chunk drawn without given noise.
    next_seed: AtomicU64,
    /// Nanoseconds the last call spent in the model, GIL released, for measuring what the
    /// Python side adds.
    last_inference_ns: AtomicU64,
    queue: Mutex<ActionQueue>,
}

/// A block format by its name (`q8_0`, `Q4_K`, ...).
fn block_format(name: &str) -> PyResult<DType> {
    DType::ALL
        .into_iter()
        .find(|d| d.is_quantized() && d.to_string().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "quantize={name:?}: expected None or one of q4_0, q4_1, q8_0, q4_k, q6_k"
            ))
        })
}

fn precision(name: &str) -> PyResult<ActivationPrecision> {
    match name {
        "f32" => Ok(ActivationPrecision::F32),
        "int8" => Ok(ActivationPrecision::Int8),
        other => Err(PyValueError::new_err(format!(
            "activations={other:?}: expected \"f32\" or \"int8\""
        ))),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[pymethods]
impl Policy {
    /// Loads the policy folder at `path`.
    #[staticmethod]
    #[pyo3(signature = (path, quantize=None, device="cpu", *, activations="f32", threads=None, vlm=None, action_tokenizer=None, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        quantize: Option<&str>,
        device: &str,
        activations: &str,
        threads: Option<usize>,
        vlm: Option<PathBuf>,
        action_tokenizer: Option<PathBuf>,
        seed: u64,
    ) -> PyResult<Self> {
        let options = LoadOptions {
            quantize: quantize.map(block_format).transpose()?,
            ..LoadOptions::default()
        };
        let device_name: Device = device.parse().map_err(PyValueError::new_err)?;
        let precision = precision(activations)?;
        let threads = threads.unwrap_or_else(default_threads);
        py.detach(|| {
            let backend = Arc::new(device_name.open(threads, precision).map_err(to_py)?);
            let spec = PolicySpec::load(&path).map_err(to_py)?;
            let cache = HubCache::from_env();
            let model = if policy_type(&path).as_deref() == Some(PI0_FAST_TYPE) {
                let folders = TokenizerFolders {
                    text: vlm.as_deref(),
                    actions: action_tokenizer.as_deref(),
                };
                Model::Fast(Pi0Fast::load(backend, &path, folders, &cache, options).map_err(to_py)?)
            } else {
                Model::Flow(FlowVla::load(backend, &path, vlm.as_deref(), &cache, options).map_err(to_py)?)
            };
            Ok(Self {
                model,
                spec,
                path,
                device: device.to_string(),
                quantize: quantize.map(str::to_lowercase),
                next_seed: AtomicU64::new(seed),
                last_inference_ns: AtomicU64::new(0),
                queue: Mutex::new(ActionQueue {
                    rows: VecDeque::new(),
                    batch: 0,
                }),
            })
        })
    }

    /// The chunk for `observation`: `[chunk_steps, action_dim]`, or `[batch, chunk_steps,
    /// action_dim]` when the observation is batched. `noise` is `[chunk_size, max_action_dim]`
    /// (batched like the observation); without it each chunk draws its own.
    #[pyo3(signature = (observation, task=None, noise=None))]
    fn predict_action_chunk<'py>(
        &self,
        py: Python<'py>,
        observation: &Bound<'py, PyDict>,
        task: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch = parse(observation, task)?;
        let noises = self.noises(noise, &batch)?;
        let chunks = py.detach(|| self.timed_chunks(&batch.items, &noises))?;
        let steps = self.spec.chunk_steps;
        let mut shape = vec![steps, self.spec.action_dim];
        if batch.batched {
            shape.insert(0, chunks.len());
        }
        let values: Vec<f32> = chunks.into_iter().flat_map(|c| c.values).collect();
        PyArray1::from_vec(py, values).reshape(shape).map(Bound::into_any)
    }

    /// The next action, as lerobot's `select_action`: the first `n_action_steps` of a chunk
    /// are queued and handed out one per call, and a new chunk is made when the queue is
    /// empty. `[action_dim]`, or `[batch, action_dim]` when the observation is batched.
    #[pyo3(signature = (observation, task=None, noise=None))]
    fn select_action<'py>(
        &self,
        py: Python<'py>,
        observation: &Bound<'py, PyDict>,
        task: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch = parse(observation, task)?;
        // The queue's lock is never held while the GIL is released or taken again: a thread
        // holding it never waits, so threads that block on it while holding the GIL cannot
        // deadlock with one that is predicting.
        let queued = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if !queue.rows.is_empty() && queue.batch != batch.items.len() {
                return Err(PyValueError::new_err(format!(
                    "the queued actions are for a batch of {}, this observation has {}; call reset() between episodes",
                    queue.batch,
                    batch.items.len()
                )));
            }
            queue.rows.pop_front()
        };
        let row = match queued {
            Some(row) => row,
            None => {
                let noises = self.noises(noise, &batch)?;
                let chunks = py.detach(|| self.timed_chunks(&batch.items, &noises))?;
                let mut rows: VecDeque<Vec<f32>> = self.queued_rows(&chunks).into();
                let first = rows.pop_front().unwrap_or_default();
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                queue.batch = chunks.len();
                queue.rows = rows;
                first
            }
        };
        let array = PyArray1::from_vec(py, row);
        if batch.batched {
            array
                .reshape([batch.items.len(), self.spec.action_dim])
                .map(Bound::into_any)
        } else {
            Ok(array.into_any())
        }
    }

    /// Milliseconds the last call that made chunks spent in the model (its wall time less
    /// this is what the Python side added: converting the observation and the result).
    #[getter]
    fn last_inference_ms(&self) -> f64 {
        self.last_inference_ns.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Empties the action queue, as lerobot's `reset` does at an episode's start.
    fn reset(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).rows.clear();
    }

    /// The policy's lerobot type: `smolvla`, `pi0`, `pi05` or `pi0_fast`.
    #[getter(r#type)]
    fn kind(&self) -> &str {
        &self.spec.kind
    }

    /// Camera names: the image features without `observation.images.`.
    #[getter]
    fn cameras(&self) -> Vec<String> {
        self.spec.cameras.clone()
    }

    #[getter]
    fn state_dim(&self) -> usize {
        self.spec.state_dim
    }

    #[getter]
    fn action_dim(&self) -> usize {
        self.spec.action_dim
    }

    #[getter]
    fn chunk_size(&self) -> usize {
        self.spec.chunk_size
    }

    /// Steps of each chunk `predict_action_chunk` returns.
    #[getter]
    fn chunk_steps(&self) -> usize {
        self.spec.chunk_steps
    }

    #[getter]
    fn n_action_steps(&self) -> usize {
        self.spec.n_action_steps
    }

    #[getter]
    fn max_action_dim(&self) -> usize {
        self.spec.max_action_dim
    }

    fn __repr__(&self) -> String {
        format!(
            "brainstem.Policy(type={:?}, path={:?}, device={:?}, quantize={:?}, cameras={:?}, state_dim={}, action_dim={}, chunk_steps={})",
            self.spec.kind,
            self.path.display().to_string(),
            self.device,
            self.quantize,
            self.spec.cameras,
            self.spec.state_dim,
            self.spec.action_dim,
            self.spec.chunk_steps
        )
    }
}

impl Policy {
    /// Each item's noise: the given values (checked by shape here, by value in the model),
    /// else a fresh seed per chunk.
    fn noises(&self, noise: Option<&Bound<'_, PyAny>>, batch: &Batch) -> PyResult<Vec<Noise>> {
        let count = batch.items.len();
        let Some(noise) = noise.filter(|n| !n.is_none()) else {
            return Ok((0..count)
                .map(|_| Noise::Seed(self.next_seed.fetch_add(1, Ordering::Relaxed)))
                .collect());
        };
        if matches!(self.model, Model::Fast(_)) {
            return Err(PyValueError::new_err(
                "pi0-FAST samples tokens and starts from no noise; noise is for flow-matching policies",
            ));
        }
        let values = f32_values(noise, "noise")?;
        let (steps, dims) = (self.spec.chunk_size, self.spec.max_action_dim);
        let fits = match values.shape.as_slice() {
            [s, d] => (*s, *d) == (steps, dims) && count == 1,
            [n, s, d] => (*n, *s, *d) == (count, steps, dims),
            _ => false,
        };
        if !fits {
            return Err(PyValueError::new_err(format!(
                "noise: expected [{steps}, {dims}] or [{count}, {steps}, {dims}], found shape {:?}",
                values.shape
            )));
        }
        Ok(values
            .data
            .chunks_exact(steps * dims)
            .map(|item| Noise::Values(item.to_vec()))
            .collect())
    }

    /// [`Self::chunks`], its time kept for `last_inference_ms`.
    fn timed_chunks(&self, items: &[Observation], noises: &[Noise]) -> PyResult<Vec<ActionChunk>> {
        let started = Instant::now();
        let chunks = self.chunks(items, noises);
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_inference_ns.store(spent, Ordering::Relaxed);
        chunks
    }

    /// One chunk per observation, without the GIL.
    fn chunks(&self, items: &[Observation], noises: &[Noise]) -> PyResult<Vec<ActionChunk>> {
        items
            .iter()
            .zip(noises)
            .map(|(obs, noise)| match (&self.model, noise) {
                (Model::Flow(policy), noise) => policy.predict(obs, noise),
                (Model::Fast(policy), Noise::Seed(seed)) => policy
                    .predict(
                        obs,
                        SampleOptions {
                            seed: *seed,
                            keep_logits: 0,
                        },
                    )
                    .map(|(chunk, _)| chunk),
                (Model::Fast(_), Noise::Values(_)) => Err(ModelError::Observation(
                    "pi0-FAST samples tokens and starts from no noise".into(),
                )),
            })
            .collect::<Result<_, _>>()
            .map_err(to_py)
    }

    /// The first `n_action_steps` rows of the chunks, each row holding every batch item's action.
    fn queued_rows(&self, chunks: &[ActionChunk]) -> Vec<Vec<f32>> {
        let steps = self.spec.n_action_steps.min(self.spec.chunk_steps);
        (0..steps)
            .map(|s| chunks.iter().flat_map(|c| c.row(s).iter().copied()).collect())
            .collect()
    }
}
