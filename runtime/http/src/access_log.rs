//! The access log's records: one per request, written when its response has
//! been (or was cut, or its client left before the answer), gathered here so that
//! whoever writes them (the Python binding, through `logging`) can take them in
//! batches rather than once per request.

use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use http::{Method, Version};
use tokio::sync::Notify;

use crate::remote::ClientAddr;
use crate::stages::StageTimes;

/// One request and how it ended.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    pub client: Option<ClientAddr>,
    pub method: Method,
    /// Path and query as the client sent them.
    pub target: String,
    pub version: Version,
    pub status: u16,
    /// The response was cut before all of it was written (a client that
    /// stopped reading, or left).
    pub cut: bool,
    /// From the request head having been read to the response having been
    /// written (or cut).
    pub duration: Duration,
    /// Its stage times, when the log shows them (boxed: records are moved
    /// and batched, most without them).
    pub stages: Option<Box<StageTimes>>,
}

impl AccessRecord {
    /// Appends the line `client - "METHOD target HTTP/1.1" status 0.12ms\n`
    /// (`-` for a client without an address), with `status cut` for a cut
    /// response, and the stages (` parse=0.004 … response=0.007`, in
    /// milliseconds) when it has them.
    pub fn write_line(&self, out: &mut String) {
        match &self.client {
            Some(client) => {
                let _ = write!(out, "{client}");
            }
            None => out.push('-'),
        }
        // Hundredths of a millisecond, rounded, in integers: cheaper than a float.
        let hundredths = (self.duration.as_micros() + 5) / 10;
        let _ = write!(out, " - \"{} ", self.method);
        push_escaped(out, &self.target);
        let _ = write!(
            out,
            " {}\" {}{} {}.{:02}ms",
            self.version_str(),
            self.status,
            if self.cut { " cut" } else { "" },
            hundredths / 100,
            hundredths % 100
        );
        if let Some(stages) = &self.stages {
            stages.write_fields(out);
        }
        out.push('\n');
    }

    /// `HTTP/1.1`, `HTTP/2`.
    pub fn version_str(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
    }
}

/// Appends `text` as a log field can hold it whatever a client sent: `"` and
/// `\` behind a backslash, and control bytes, DEL and bytes past ASCII as
/// `\xHH` (as nginx writes them), so that a target cannot end its field, forge
/// a line, or send escape sequences to a terminal.
pub fn push_escaped(out: &mut String, text: &str) {
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    if text.bytes().all(plain) {
        out.push_str(text);
        return;
    }
    for b in text.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b if plain(b) => out.push(b as char),
            b => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
}

/// Records waiting to be written.
pub struct AccessLog {
    pending: Mutex<Vec<AccessRecord>>,
    /// Rung when a batch is full, so a busy server writes before its next tick.
    full: Notify,
    batch: usize,
}

impl AccessLog {
    /// A log whose writer is woken every `batch` records.
    pub fn new(batch: usize) -> Self {
        AccessLog {
            pending: Mutex::new(Vec::with_capacity(batch)),
            full: Notify::new(),
            batch: batch.max(1),
        }
    }

    pub fn record(&self, record: AccessRecord) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.push(record);
        if pending.len() == self.batch {
            self.full.notify_one();
        }
    }

    /// Every record so far, oldest first.
    pub fn take(&self) -> Vec<AccessRecord> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *pending, Vec::with_capacity(self.batch))
    }

    /// Resolves when a batch is full (or a full batch was left untaken).
    pub async fn batch_full(&self) {
        self.full.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u16) -> AccessRecord {
        AccessRecord {
            client: None,
            method: Method::GET,
            target: "/".into(),
            version: Version::HTTP_11,
            status,
            cut: false,
            duration: Duration::from_micros(10),
            stages: None,
        }
    }

    #[tokio::test]
    async fn batches_wake_the_writer_and_keep_order() {
        let log = AccessLog::new(2);
        log.record(record(200));
        log.record(record(404));
        // The notification is stored until someone waits.
        tokio::time::timeout(Duration::from_secs(1), log.batch_full())
            .await
            .unwrap();
        let taken: Vec<u16> = log.take().iter().map(|r| r.status).collect();
        assert_eq!(taken, [200, 404]);
        assert!(log.take().is_empty());
    }

    #[test]
    fn lines_read_like_common_access_logs() {
        let mut out = String::new();
        record(200).write_line(&mut out);
        let mut forwarded = record(404);
        forwarded.client = Some(ClientAddr::Named("203.0.113.7".into()));
        forwarded.target = "/items?q=1".into();
        forwarded.duration = Duration::from_micros(1234);
        forwarded.write_line(&mut out);
        let mut direct = record(200);
        direct.client = Some(ClientAddr::Socket("[::1]:5000".parse().unwrap()));
        direct.write_line(&mut out);
        let mut cut = record(200);
        cut.cut = true;
        cut.target = "/big".into();
        cut.duration = Duration::from_secs(2);
        cut.write_line(&mut out);
        assert_eq!(
            out,
            "- - \"GET / HTTP/1.1\" 200 0.01ms\n\
             203.0.113.7 - \"GET /items?q=1 HTTP/1.1\" 404 1.23ms\n\
             [::1]:5000 - \"GET / HTTP/1.1\" 200 0.01ms\n\
             - - \"GET /big HTTP/1.1\" 200 cut 2000.00ms\n"
        );
    }

    #[test]
    fn fields_cannot_end_their_quotes_or_forge_lines() {
        let mut out = String::new();
        let mut forged = record(200);
        forged.target = "/a\" 200 1ms\n1.2.3.4 - \"GET /\\x\u{1b}[31m\u{e9}".into();
        forged.write_line(&mut out);
        assert_eq!(
            out,
            "- - \"GET /a\\\" 200 1ms\\x0A1.2.3.4 - \\\"GET /\\\\x\\x1B[31m\\xC3\\xA9 HTTP/1.1\" 200 0.01ms\n"
        );
    }
}
