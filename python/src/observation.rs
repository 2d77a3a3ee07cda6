//! lerobot observations from Python into brainstem's [`Observation`]: a dict keyed by lerobot's
//! feature names (`observation.state`, `observation.images.<camera>`, `task`), with numpy
//! arrays or torch tensors, batched or not. Images are `[3, H, W]` floats in [0, 1] as lerobot
//! passes them, or `[H, W, 3]` uint8 as cameras give them. Every shape, type and value is
//! checked here or by the model, and a wrong one is a `ValueError` or `TypeError` that names
//! the key.

use std::collections::BTreeMap;

use brainstem_runtime::models::image::planar::PlanarImage;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::models::smolvla::Observation;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::error::to_py;

/// The key of the joint state.
pub const STATE_KEY: &str = "observation.state";
/// The prefix of every camera's key.
pub const IMAGE_PREFIX: &str = "observation.images.";
/// The key lerobot's processors put the task under.
pub const TASK_KEY: &str = "task";

/// One or more observations, and whether they came with a leading batch dimension.
pub struct Batch {
    pub items: Vec<Observation>,
    pub batched: bool,
}

/// An array's values as f32 with its shape, from a numpy array, a torch tensor (moved to the
/// CPU and detached first) or anything `numpy.asarray` takes.
pub struct Values {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// `value` as a numpy array, a torch tensor taken off its device and graph first.
fn as_numpy<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    let mut value = value.clone();
    if value.hasattr("detach")? && value.hasattr("cpu")? {
        value = value.call_method0("detach")?.call_method0("cpu")?;
    }
    py.import("numpy")?.getattr("asarray")?.call1((value,))
}

/// The dtype name of a numpy array (`"uint8"`, `"float32"`, ...).
fn dtype_name(array: &Bound<'_, PyAny>) -> PyResult<String> {
    array.getattr("dtype")?.getattr("name")?.extract()
}

/// Hands `value`'s shape and values to `read`, as a C-ordered array of `dtype` (`"float32"`
/// or `"uint8"`): read in place where the array already is one, converted by numpy where its
/// dtype or layout is not. Anything but numbers is a `TypeError`.
fn with_array<T: Element, R>(
    value: &Bound<'_, PyAny>,
    what: &str,
    dtype: &str,
    read: impl FnOnce(&[usize], &[T]) -> PyResult<R>,
) -> PyResult<R> {
    let py = value.py();
    let array = as_numpy(value).map_err(|e| PyTypeError::new_err(format!("{what}: not an array: {e}")))?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "f" | "i" | "u") {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected numbers, found an array of dtype {}",
            dtype_name(&array)?
        )));
    }
    let contiguous = py
        .import("numpy")?
        .getattr("ascontiguousarray")?
        .call1((array, dtype))?;
    let array = contiguous.cast_into::<PyArrayDyn<T>>()?;
    let readonly = array.readonly();
    read(readonly.shape(), readonly.as_slice()?)
}

/// `value` as owned f32 values in C order, with its shape.
pub fn f32_values(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Values> {
    with_array(value, what, "float32", |shape, data: &[f32]| {
        Ok(Values {
            shape: shape.to_vec(),
            data: data.to_vec(),
        })
    })
}

/// The observations in `observation`, their task from `task` or else the dict's `task`.
pub fn parse(observation: &Bound<'_, PyDict>, task: Option<&Bound<'_, PyAny>>) -> PyResult<Batch> {
    let state_value = observation
        .get_item(STATE_KEY)?
        .ok_or_else(|| PyValueError::new_err(format!("the observation has no {STATE_KEY:?}")))?;
    let state = f32_values(&state_value, STATE_KEY)?;
    let (batch, batched) = match state.shape.as_slice() {
        [_] => (1, false),
        [batch, _] if *batch > 0 => (*batch, true),
        shape => {
            return Err(PyValueError::new_err(format!(
                "{STATE_KEY}: expected [state_dim] or [batch, state_dim], found shape {shape:?}"
            )))
        }
    };
    let state_dim = *state.shape.last().unwrap_or(&0);
    let tasks = tasks(observation, task, batch)?;
    let mut cameras = Vec::new();
    for (key, value) in observation.iter() {
        let Ok(key) = key.extract::<String>() else { continue };
        if let Some(camera) = key.strip_prefix(IMAGE_PREFIX) {
            cameras.push((camera.to_string(), images(&value, &key, batch, batched)?.into_iter()));
        }
    }
    // Each camera's frames were checked to number `batch`: item b takes each camera's next.
    let items = tasks
        .into_iter()
        .enumerate()
        .map(|(b, task)| Observation {
            images: cameras
                .iter_mut()
                .filter_map(|(camera, frames)| Some((camera.clone(), frames.next()?)))
                .collect::<BTreeMap<_, _>>(),
            state: state.data[b * state_dim..(b + 1) * state_dim].to_vec(),
            task,
        })
        .collect();
    Ok(Batch { items, batched })
}

/// One task per item: the argument, else the dict's `task`; a string serves every item.
fn tasks(observation: &Bound<'_, PyDict>, task: Option<&Bound<'_, PyAny>>, batch: usize) -> PyResult<Vec<String>> {
    let given = match task {
        Some(task) if !task.is_none() => task.clone(),
        _ => observation.get_item(TASK_KEY)?.ok_or_else(|| {
            PyValueError::new_err("no task: pass task=\"...\" or put it in the observation under \"task\"")
        })?,
    };
    if let Ok(text) = given.cast::<PyString>() {
        return Ok(vec![text.to_str()?.to_string(); batch]);
    }
    let list: Vec<String> = if let Ok(list) = given.cast::<PyList>() {
        list.extract()?
    } else if let Ok(tuple) = given.cast::<PyTuple>() {
        tuple.extract()?
    } else {
        return Err(PyTypeError::new_err(
            "the task is a string, or a list of one string per batch item",
        ));
    };
    if list.len() != batch {
        return Err(PyValueError::new_err(format!(
            "{} tasks for a batch of {batch} observations",
            list.len()
        )));
    }
    Ok(list)
}

/// A camera's frames, one per batch item: `[3, H, W]` floats copied once into the model's
/// planar frames, or `[H, W, 3]` bytes turned into them as a camera's frames are.
fn images(value: &Bound<'_, PyAny>, key: &str, batch: usize, batched: bool) -> PyResult<Vec<PlanarImage>> {
    let array = as_numpy(value).map_err(|e| PyTypeError::new_err(format!("{key}: not an array: {e}")))?;
    let dtype = dtype_name(&array)?;
    let layout = FrameLayout {
        key,
        dtype: &dtype,
        batch,
        batched,
    };
    if dtype == "uint8" {
        return with_array(&array, key, "uint8", |shape, data: &[u8]| {
            let (height, width) = layout.dims(shape, true)?;
            let side =
                |n: usize| u32::try_from(n).map_err(|_| PyValueError::new_err(format!("{key}: a side of {n} pixels")));
            let (w, h) = (side(width)?, side(height)?);
            data.chunks_exact(3 * height * width)
                .map(|frame| {
                    let rgb = RgbImage::new(w, h, frame.to_vec()).map_err(to_py)?;
                    Ok(PlanarImage::from_rgb(&rgb))
                })
                .collect()
        });
    }
    with_array(&array, key, "float32", |shape, data: &[f32]| {
        let (height, width) = layout.dims(shape, false)?;
        if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(format!("{key}: the image holds {bad}")));
        }
        Ok(data
            .chunks_exact(3 * height * width)
            .map(|frame| PlanarImage {
                width,
                height,
                data: frame.to_vec(),
            })
            .collect())
    })
}

/// What a camera's array must look like, for checking its shape.
struct FrameLayout<'a> {
    key: &'a str,
    dtype: &'a str,
    batch: usize,
    batched: bool,
}

impl FrameLayout<'_> {
    /// The frames' height and width from the array's shape: `[H, W, 3]` for bytes, `[3, H,
    /// W]` for floats, with a leading batch when the observation is batched.
    fn dims(&self, shape: &[usize], bytes: bool) -> PyResult<(usize, usize)> {
        let frame = match (shape, self.batched) {
            ([a, b, c], false) => Some([*a, *b, *c]),
            ([n, a, b, c], true) if *n == self.batch => Some([*a, *b, *c]),
            _ => None,
        };
        let dims = match (frame, bytes) {
            (Some([h, w, 3]), true) | (Some([3, h, w]), false) if h > 0 && w > 0 => Some((h, w)),
            _ => None,
        };
        dims.ok_or_else(|| {
            let expected = if bytes {
                "[H, W, 3] uint8"
            } else {
                "[3, H, W] float in [0, 1]"
            };
            let batch_note = if self.batched {
                format!(" with a leading batch of {}", self.batch)
            } else {
                String::new()
            };
            PyValueError::new_err(format!(
                "{}: expected {expected}{batch_note}, found shape {shape:?} ({})",
                self.key, self.dtype
            ))
        })
    }
}
