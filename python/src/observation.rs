//! lerobot observations from Python into brainstem's [`Observation`]: a dict keyed by lerobot's
//! feature names (`observation.state`, `observation.images.<camera>`, `task`), with numpy
//! arrays or torch tensors, batched or not. Images are `[3, H, W]` floats in [0, 1] as lerobot
//! passes them, or `[H, W, 3]` uint8 as cameras give them. Every shape, type and value is
//! checked here or by the model, and a wrong one is a `ValueError` or `TypeError` that names
//! the key.

use std::collections::BTreeMap;

use brainstem_runtime::models::image::planar::PlanarImage;
use brainstem_runtime::models::smolvla::Observation;
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

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

/// `value` as f32 values in C order; a copy only where the dtype or layout needs one.
pub fn f32_values(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Values> {
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
        .call1((array, "float32"))?;
    let array = contiguous.cast_into::<PyArrayDyn<f32>>()?;
    let readonly = array.readonly();
    Ok(Values {
        shape: readonly.shape().to_vec(),
        data: readonly.as_slice()?.to_vec(),
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
    let mut cameras: Vec<(String, Vec<PlanarImage>)> = Vec::new();
    for (key, value) in observation.iter() {
        let Ok(key) = key.extract::<String>() else { continue };
        if let Some(camera) = key.strip_prefix(IMAGE_PREFIX) {
            cameras.push((camera.to_string(), images(&value, &key, batch, batched)?));
        }
    }
    let items = (0..batch)
        .map(|b| Observation {
            images: cameras
                .iter()
                .map(|(camera, frames)| (camera.clone(), frames[b].clone()))
                .collect::<BTreeMap<_, _>>(),
            state: state.data[b * state_dim..(b + 1) * state_dim].to_vec(),
            task: tasks[b].clone(),
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

/// A camera's frames, one per batch item.
fn images(value: &Bound<'_, PyAny>, key: &str, batch: usize, batched: bool) -> PyResult<Vec<PlanarImage>> {
    let array = as_numpy(value).map_err(|e| PyTypeError::new_err(format!("{key}: not an array: {e}")))?;
    let dtype = dtype_name(&array)?;
    let bytes = dtype == "uint8";
    let values = f32_values(&array, key)?;
    let expected = if bytes {
        "[H, W, 3] uint8"
    } else {
        "[3, H, W] float in [0, 1]"
    };
    let frame_shape = match (values.shape.as_slice(), batched) {
        ([a, b, c], false) => [*a, *b, *c],
        ([n, a, b, c], true) if *n == batch => [*a, *b, *c],
        (shape, _) => {
            let batch_note = if batched {
                format!(" with a leading batch of {batch}")
            } else {
                String::new()
            };
            return Err(PyValueError::new_err(format!(
                "{key}: expected {expected}{batch_note}, found shape {shape:?} ({dtype})"
            )));
        }
    };
    let (height, width) = if bytes {
        (frame_shape[0], frame_shape[1])
    } else {
        (frame_shape[1], frame_shape[2])
    };
    let channels = if bytes { frame_shape[2] } else { frame_shape[0] };
    if channels != 3 || height == 0 || width == 0 {
        return Err(PyValueError::new_err(format!(
            "{key}: expected {expected}, found shape {:?} ({dtype})",
            values.shape
        )));
    }
    if let Some(bad) = values.data.iter().find(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!("{key}: the image holds {bad}")));
    }
    let plane = height * width;
    Ok(values
        .data
        .chunks_exact(3 * plane)
        .map(|frame| PlanarImage {
            width,
            height,
            data: if bytes {
                planar_from_bytes(frame, plane)
            } else {
                frame.to_vec()
            },
        })
        .collect())
}

/// `[H, W, 3]` values of 0 to 255 as `[3, H, W]` values in [0, 1], as lerobot's camera
/// pipeline makes them.
fn planar_from_bytes(frame: &[f32], plane: usize) -> Vec<f32> {
    let mut data = vec![0f32; 3 * plane];
    for (i, pixel) in frame.chunks_exact(3).enumerate() {
        for (c, &value) in pixel.iter().enumerate() {
            data[c * plane + i] = value / 255.0;
        }
    }
    data
}
