//! `brainstem.evaluate` and `brainstem.merge_reports`: the `brainstem eval` command's
//! evaluation of recorded LeRobotDataset episodes, and `eval merge`'s joining of shards'
//! reports, as functions returning the report as a dict (the same JSON `report.json` holds).

use std::path::PathBuf;

use brainstem_runtime::kernels::Device;
use brainstem_runtime::offline::dataset::Dataset;
use brainstem_runtime::offline::eval::report::{EvalReport, Shard};
use brainstem_runtime::offline::eval::setup::{select_episodes, EvalSetup};
use brainstem_runtime::offline::eval::Evaluator;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::error::to_py;

fn report_dict<'py>(py: Python<'py>, report: &EvalReport) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.getattr("loads")?.call1((report.to_json(),))
}

/// Evaluates the dataset's episodes (all, or `episodes`, then the shard `"i/n"`) with the
/// configuration file `config` or the built-in setup (with `vlm` and `vla` checkpoints, and
/// `vla_backbone` for a VLA whose backbone is not in the Hugging Face cache),
/// quantized, placed and on the device asked for; returns the report.
#[pyfunction]
#[pyo3(signature = (dataset, *, config=None, vlm=None, vla=None, vla_backbone=None, quantize=None, placement=None, device=None, episodes=None, shard=None, cache=PathBuf::from("weights")))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    config: Option<PathBuf>,
    vlm: Option<PathBuf>,
    vla: Option<PathBuf>,
    vla_backbone: Option<PathBuf>,
    quantize: Option<String>,
    placement: Option<String>,
    device: Option<&str>,
    episodes: Option<Vec<u64>>,
    shard: Option<&str>,
    cache: PathBuf,
) -> PyResult<Bound<'py, PyAny>> {
    let device = device
        .map(|d| d.parse::<Device>().map_err(PyValueError::new_err))
        .transpose()?;
    let shard = shard.map(Shard::parse).transpose().map_err(to_py)?;
    let setup = EvalSetup {
        config,
        vlm,
        vla,
        vla_backbone,
        quantize,
        placement,
        device,
        cache,
    };
    let report = py.detach(|| {
        let dataset = Dataset::open(&dataset).map_err(to_py)?;
        let positions = select_episodes(&dataset, &episodes.unwrap_or_default(), shard).map_err(to_py)?;
        let (name, config) = setup.configuration(&dataset).map_err(to_py)?;
        let mut evaluator = Evaluator::new(&name, &config, &dataset).map_err(to_py)?;
        Ok::<_, PyErr>(evaluator.evaluate(&dataset, &positions, shard, |_| ()))
    })?;
    report_dict(py, &report)
}

/// One report from the reports of an evaluation's shards (dicts as `evaluate` returns, or
/// their JSON text), as `brainstem eval merge` joins them.
#[pyfunction]
pub fn merge_reports<'py>(py: Python<'py>, reports: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let dumps = py.import("json")?.getattr("dumps")?;
    let parts = reports
        .iter()
        .enumerate()
        .map(|(i, report)| {
            let text: String = if report.cast::<PyString>().is_ok() {
                report.extract()?
            } else if report.cast::<PyDict>().is_ok() {
                dumps.call1((report,))?.extract()?
            } else {
                return Err(PyTypeError::new_err(
                    "a report is a dict from evaluate() or its JSON text",
                ));
            };
            EvalReport::from_json(&text, &format!("report {i}")).map_err(to_py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let merged = EvalReport::merge(parts).map_err(to_py)?;
    report_dict(py, &merged)
}
