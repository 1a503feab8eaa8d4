//! Stage statistics for `spikard.stats`: the figures of the app this process
//! serves (the latest one started), read without touching the request path.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use spikard_http::stats::{RouteFigures, Series};
use spikard_http::{Stage, StageStats};

/// The statistics the latest serve in this process records into.
static CURRENT: Mutex<Option<Arc<StageStats>>> = Mutex::new(None);

/// Makes `stats` the ones `snapshot` and `reset` read.
pub fn publish(stats: Arc<StageStats>) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
}

fn current() -> Option<Arc<StageStats>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `(count, mean, p50, p90, p99, max)`, in nanoseconds.
type SummaryRow = (u64, f64, u64, u64, u64, u64);
/// `(route, per-stage summaries, total summary, responses per status class)`.
type RouteRow = (String, Vec<SummaryRow>, SummaryRow, [u64; 5]);

fn summary_row(series: &Series) -> SummaryRow {
    let s = series.summary();
    (s.count, s.mean, s.p50, s.p90, s.p99, s.max)
}

fn route_row(figures: &RouteFigures) -> RouteRow {
    (
        figures.route.clone(),
        figures.stages.iter().map(summary_row).collect(),
        summary_row(&figures.total),
        figures.statuses,
    )
}

/// The stages' names, in the order a request passes through them.
pub fn stage_names() -> Vec<&'static str> {
    Stage::ALL.iter().map(|stage| stage.name()).collect()
}

/// Every route's figures now, or `None` when nothing in this process has
/// served with statistics on.
#[pyfunction]
pub fn stats_snapshot(py: Python<'_>) -> Option<Vec<RouteRow>> {
    let stats = current()?;
    // Copying every histogram takes a while for a big app: let handlers run.
    Some(py.detach(|| stats.snapshot().iter().map(route_row).collect()))
}

/// Forgets everything counted so far.
#[pyfunction]
pub fn stats_reset() {
    if let Some(stats) = current() {
        stats.reset();
    }
}
