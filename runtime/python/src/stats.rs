//! Stage statistics for `spikard.stats`: the figures of the app this process
//! serves (the latest one started), read without touching the request path;
//! and [`StatsSources`], which reads them for `--stats-file` and the metrics
//! exposition, here or merged from a supervisor's workers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use spikard_http::stats::{self as core_stats, RouteFigures, Series};
use spikard_http::stats_file::{is_stats_file, worker_file};
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

pub use spikard_http::stats::{STATUS_CLASSES, UNROUTED};

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

/// Where this process keeps its statistics for its supervisor.
pub fn own_file(directory: &Path) -> PathBuf {
    worker_file(directory, std::process::id())
}

/// The statistics `--stats-file` and the metrics exposition show: this
/// process's, or, given a directory, those of every worker of a supervisor
/// that keeps its statistics there, plus those of the workers that have
/// exited (`retire`), merged by route.
#[pyclass(module = "spikard._spikard", frozen)]
pub struct StatsSources {
    directory: Option<PathBuf>,
    /// Exited workers' figures; held while reading, so that a worker being
    /// retired is counted exactly once.
    retired: Mutex<Vec<RouteFigures>>,
}

impl StatsSources {
    fn figures(&self) -> Vec<RouteFigures> {
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let Some(directory) = &self.directory else {
            return current().map(|stats| stats.snapshot()).unwrap_or_default();
        };
        let mut merged = retired.clone();
        let Ok(entries) = std::fs::read_dir(directory) else {
            return merged;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| is_stats_file(path))
            .collect();
        paths.sort();
        for path in paths {
            // A worker still creating its file is read next time.
            if let Ok(stats) = StageStats::open(&path) {
                core_stats::merge(&mut merged, stats.snapshot());
            }
        }
        merged
    }
}

#[pymethods]
impl StatsSources {
    #[new]
    #[pyo3(signature = (directory=None))]
    fn new(directory: Option<PathBuf>) -> Self {
        StatsSources {
            directory,
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The worker `pid` has exited: its figures are kept, its file removed.
    fn worker_exited(&self, py: Python<'_>, pid: u32) -> PyResult<()> {
        let Some(directory) = &self.directory else {
            return Ok(());
        };
        let path = worker_file(directory, pid);
        let mut kept = path.clone();
        kept.set_extension("exited");
        py.detach(|| {
            let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
            // Out of the readers' sight first: if this fails, the file is still
            // read where it is, and nothing is counted twice.
            match std::fs::rename(&path, &kept) {
                Ok(()) => {}
                // It exited before it served: nothing to keep.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(error),
            }
            let stats = StageStats::open(&kept);
            let _ = std::fs::remove_file(&kept);
            core_stats::merge(&mut retired, stats?.snapshot());
            Ok(())
        })
        .map_err(|e| PyOSError::new_err(format!("statistics of worker {pid}: {e}")))
    }

    /// Every route's figures, merged, as `stats_snapshot` gives them.
    fn rows(&self, py: Python<'_>) -> Vec<RouteRow> {
        py.detach(|| self.figures().iter().map(route_row).collect())
    }

    /// The figures in the Prometheus text exposition format.
    fn prometheus(&self, py: Python<'_>) -> String {
        py.detach(|| spikard_http::metrics::prometheus_text(&self.figures()))
    }
}
