//! `spikard._spikard`: the Python binding of spikard's HTTP core.
//!
//! Thin glue: route plans from the Python package become core routes whose
//! handler is a Python endpoint ([`handler`]); [`bridge`] runs coroutines and the
//! asyncio loop on the serving thread; [`convert`] is the one place values cross
//! the boundary; [`server`] serves on a socket handed in by Python.

mod access;
mod alloc;
mod bridge;
mod building;
mod convert;
mod failures;
mod handler;
mod plan;
mod server;
mod stats;
mod values;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

// Every request allocates (parsed bodies, headers, futures): see alloc.rs.
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

/// Splits a route path into its parameters: `[(name, converter or None), ...]`.
#[pyfunction]
fn parse_path(path: &str) -> PyResult<Vec<(String, Option<&'static str>)>> {
    let pattern = spikard_http::path::parse(path).map_err(PyValueError::new_err)?;
    Ok(pattern
        .params
        .into_iter()
        .map(|p| (p.name, p.converter.map(|c| c.as_str())))
        .collect())
}

/// Checks a `--forwarded-allow-ips` list the way the server will read it.
#[pyfunction]
fn check_forwarded_allow_ips(list: &str) -> PyResult<()> {
    spikard_http::ProxyTrust::parse(list)
        .map(drop)
        .map_err(PyValueError::new_err)
}

#[pymodule]
fn _spikard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<server::Server>()?;
    m.add_class::<bridge::Completion>()?;
    m.add_class::<stats::StatsSources>()?;
    m.add_function(wrap_pyfunction!(parse_path, m)?)?;
    m.add_function(wrap_pyfunction!(check_forwarded_allow_ips, m)?)?;
    m.add_function(wrap_pyfunction!(stats::stats_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(stats::stats_reset, m)?)?;
    let py = m.py();
    m.add("STAGES", PyTuple::new(py, stats::stage_names())?)?;
    m.add("STATUS_CLASSES", PyTuple::new(py, stats::STATUS_CLASSES)?)?;
    m.add("UNROUTED", stats::UNROUTED)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
