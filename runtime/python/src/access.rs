//! Writes the access log through Python `logging`: the core gathers one record
//! per request without the GIL, and this task hands them over in batches, so
//! the GIL is taken once per batch rather than once per request. While the
//! records would reach only spikard's own console handler, the lines are
//! formatted here and handed over whole; otherwise each becomes a `LogRecord`.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyList;
use spikard_http::{AccessLog, AccessRecord};

/// Records are written at least this often…
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// …and sooner once this many are waiting.
pub const BATCH: usize = 256;

/// A pipe takes writes up to this size whole, so workers sharing stdout never
/// interleave inside a line.
const ATOMIC_WRITE: usize = 4096;

/// Where records go: `spikard._logging.access_sink`.
pub struct AccessSink {
    /// `() -> (chunks: list[str]) -> None`, or `None` when records must go
    /// through logging one by one.
    pub console: Py<PyAny>,
    /// `(records) -> None` with `(client, method, target, http_version, status,
    /// seconds, cut, stages)` tuples (`stages`: `[(name, milliseconds)]` or `None`).
    pub records: Py<PyAny>,
}

impl AccessSink {
    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        AccessSink {
            console: self.console.clone_ref(py),
            records: self.records.clone_ref(py),
        }
    }
}

/// Whole lines, in chunks of at most [`ATOMIC_WRITE`] bytes (a longer line alone).
fn chunks(records: &[AccessRecord]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut chunk = String::with_capacity(ATOMIC_WRITE);
    let mut line = String::with_capacity(128);
    for record in records {
        line.clear();
        record.write_line(&mut line);
        if !chunk.is_empty() && chunk.len() + line.len() > ATOMIC_WRITE {
            chunks.push(std::mem::replace(
                &mut chunk,
                String::with_capacity(ATOMIC_WRITE),
            ));
        }
        chunk.push_str(&line);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

fn write(py: Python<'_>, sink: &AccessSink, records: &[AccessRecord]) -> PyResult<()> {
    let console = sink.console.bind(py).call0()?;
    if !console.is_none() {
        console.call1((chunks(records),))?;
        return Ok(());
    }
    let written = PyList::empty(py);
    for r in records {
        written.append((
            r.client.as_ref().map(ToString::to_string),
            r.method.as_str(),
            r.target.as_str(),
            r.version_str(),
            r.status,
            r.duration.as_secs_f64(),
            r.cut,
            r.stages.as_ref().map(|times| {
                times
                    .reached()
                    .map(|(stage, nanos)| (stage.name(), nanos as f64 / 1e6))
                    .collect::<Vec<_>>()
            }),
        ))?;
    }
    sink.records.call1(py, (written,))?;
    Ok(())
}

/// Hands every waiting record to the sink.
pub fn flush(log: &AccessLog, sink: &AccessSink) {
    let records = log.take();
    if records.is_empty() {
        return;
    }
    Python::attach(|py| {
        if let Err(error) = write(py, sink, &records) {
            // A broken log handler must not stop the server.
            error.print(py);
        }
    });
}

/// Writes records as they come, until the serve ends (the caller flushes the rest).
pub async fn keep_writing(log: Arc<AccessLog>, sink: AccessSink) {
    loop {
        tokio::select! {
            () = log.batch_full() => {}
            () = tokio::time::sleep(FLUSH_INTERVAL) => {}
        }
        flush(&log, &sink);
    }
}
