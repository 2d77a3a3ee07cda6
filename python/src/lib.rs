//! The `brainstem._brainstem` extension module: Python's way into brainstem. It owns nothing of
//! the runtime's logic; each part wraps what a robot stack would use (`policy` a lerobot
//! checkpoint, `runtime` the whole brain-cerebellum stack, `eval` the offline evaluation)
//! and converts at the boundary: numpy arrays or torch tensors in, numpy arrays and dicts out,
//! Rust errors as Python exceptions. Long calls release the GIL.

mod error;
mod eval;
mod observation;
mod policy;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _brainstem(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BrainstemError", m.py().get_type::<error::BrainstemError>())?;
    m.add_class::<policy::Policy>()?;
    m.add_class::<runtime::Runtime>()?;
    m.add_function(wrap_pyfunction!(eval::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(eval::merge_reports, m)?)?;
    Ok(())
}
