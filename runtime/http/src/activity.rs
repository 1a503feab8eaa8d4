//! What one connection is doing, kept current by the stream wrapper
//! ([`Watched`]) and the guard each request holds ([`Serving`]), and read by
//! its watchdog ([`crate::watchdog`]).
//!
//! A connection is in one of four [phases](Phase):
//! - *idle*, between a response and the first byte of the next request;
//! - *reading a head*, from accept or from that first byte until the request
//!   head is complete;
//! - *busy*, while a handler works on a request;
//! - *writing*, while a response is being written: from the handler's answer
//!   until its body has been handed over whole and the connection has flushed
//!   what it buffered. Writing outranks the other three: a connection with a
//!   response on its way is never idle.
//!
//! Progress in writing is counted, not timed, so the hot path reads no clock
//! for it: a few relaxed atomic operations per request.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::stages;

/// What an HTTP/2 connection begins with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    ReadingHead,
    Busy,
    Writing,
}

const IDLE: u8 = 0;
const READING_HEAD: u8 = 1;
const BUSY: u8 = 2;

/// One request being served in [`Activity::requests`]…
const SERVED: u64 = 1;
/// …and one whose response is being written.
const WRITTEN: u64 = 1 << 32;
const SERVED_MASK: u64 = WRITTEN - 1;

/// Called with whether the connection flushed it (`false`: it was closed first).
type Unflushed = Box<dyn FnOnce(bool) + Send>;

/// What one connection is doing, shared by its reader, its service, its
/// response bodies and its watchdog.
pub struct Activity {
    opened: Instant,
    /// `opened` on the stage clock ([`stages::now`]).
    opened_nanos: u64,
    phase: AtomicU8,
    /// When the current phase began, in nanoseconds since `opened`.
    since: AtomicU64,
    /// When the first byte of the latest request head arrived (HTTP/1), in
    /// nanoseconds since `opened`; and whether any byte has arrived yet.
    head_began: AtomicU64,
    heard: AtomicBool,
    /// Requests being served (low half: [`SERVED`]) and, of those, the ones
    /// whose response is being written (high half: [`WRITTEN`]); one word, so
    /// that a request ends with one atomic operation.
    requests: AtomicU64,
    /// Bytes were written since the connection last flushed.
    unflushed: AtomicBool,
    /// Writes that moved bytes into the socket, and chunks of response bodies
    /// handed to the protocol. Counts that only ever change: a lost increment
    /// (two writers at once) does not matter, any change is progress.
    written: AtomicU64,
    sent: AtomicU64,
    /// Responses handed whole to HTTP/1 that wait for the connection to
    /// flush, to be logged as written, or as cut if it closes first.
    parked: Mutex<Vec<Unflushed>>,
    any_parked: AtomicBool,
    /// Requests begun.
    begun: AtomicUsize,
    /// Told when the first request begins, and, once the server is shutting
    /// down (`draining`), every one.
    request_begun: Notify,
    draining: AtomicBool,
    http2: AtomicBool,
}

/// Held by a request while it is served, and then by its response body while
/// that is written; marks the connection idle when the last one ends (or is
/// dropped because its client went away).
pub struct Serving {
    activity: Arc<Activity>,
    writing: bool,
}

impl Serving {
    /// The handler has answered: from now on the response is written, and
    /// pauses in it are timed.
    pub fn answered(&mut self) {
        if !self.writing {
            self.writing = true;
            self.activity.requests.fetch_add(WRITTEN, Ordering::Relaxed);
        }
    }

    /// A chunk of the response body was handed to the protocol.
    pub fn sent(&self) {
        bump(&self.activity.sent);
    }

    /// Whether the connection speaks HTTP/2.
    pub fn http2(&self) -> bool {
        self.activity.http2.load(Ordering::Relaxed)
    }

    /// Runs `then(true)` once the connection has flushed everything it
    /// buffered, or `then(false)` if it closes first. Called on the
    /// connection's own task (HTTP/1), which is also the one that flushes.
    pub fn when_flushed(&self, then: impl FnOnce(bool) + Send + 'static) {
        let activity = &self.activity;
        lock(&activity.parked).push(Box::new(then));
        activity.any_parked.store(true, Ordering::Relaxed);
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let activity = &self.activity;
        let one = if self.writing {
            // The body has ended: for a watchdog waiting on it, that is progress.
            bump(&activity.sent);
            SERVED + WRITTEN
        } else {
            SERVED
        };
        if activity.requests.fetch_sub(one, Ordering::Relaxed) & SERVED_MASK == 1 {
            activity.enter(IDLE);
        }
    }
}

fn bump(count: &AtomicU64) {
    count.store(
        count.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Activity {
    /// A connection just accepted: its first request head is awaited.
    pub fn new() -> Arc<Self> {
        Self::with_timing(false)
    }

    /// Like [`Activity::new`]; when `timed`, it notes when each request head
    /// begins, for [`Activity::request_began`] (untimed, it reads no clock for it).
    pub fn with_timing(timed: bool) -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            opened_nanos: if timed { stages::now() } else { 0 },
            phase: AtomicU8::new(READING_HEAD),
            since: AtomicU64::new(0),
            head_began: AtomicU64::new(0),
            // Untimed, the first bytes need not be noted.
            heard: AtomicBool::new(!timed),
            requests: AtomicU64::new(0),
            unflushed: AtomicBool::new(false),
            written: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            parked: Mutex::new(Vec::new()),
            any_parked: AtomicBool::new(false),
            begun: AtomicUsize::new(0),
            request_begun: Notify::new(),
            draining: AtomicBool::new(false),
            http2: AtomicBool::new(false),
        })
    }

    fn enter(&self, phase: u8) -> u64 {
        let elapsed = self.opened.elapsed().as_nanos() as u64;
        self.since.store(elapsed, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
        elapsed
    }

    /// When ([`stages::now`]) the request whose service is about to be called
    /// began: the first byte of its head on HTTP/1, now on HTTP/2 (its
    /// stream's headers are in) or for a request that arrived while another
    /// was served (pipelined). Called before [`Activity::begin`].
    pub fn request_began(&self) -> u64 {
        if self.phase.load(Ordering::Relaxed) == READING_HEAD && !self.http2.load(Ordering::Relaxed)
        {
            self.opened_nanos + self.head_began.load(Ordering::Relaxed)
        } else {
            stages::now()
        }
    }

    /// A request head was read and its service called.
    pub fn begin(self: &Arc<Self>) -> Serving {
        self.requests.fetch_add(SERVED, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
        // Only a shutdown waits on requests: for the first, or while draining.
        // SeqCst with `request_after`'s store and load: one of the two sides
        // sees the other (on x86 this costs nothing more).
        if self.begun.fetch_add(1, Ordering::SeqCst) == 0 || self.draining.load(Ordering::SeqCst) {
            self.request_begun.notify_waiters();
        }
        Serving {
            activity: self.clone(),
            writing: false,
        }
    }

    fn bytes_arrived(&self) {
        match self.phase.load(Ordering::Relaxed) {
            IDLE if !self.http2.load(Ordering::Relaxed) => {
                let now = self.enter(READING_HEAD);
                self.head_began.store(now, Ordering::Relaxed);
            }
            // The connection's first bytes: its head was awaited since accept
            // (and is timed from then), but begins now.
            READING_HEAD if !self.heard.load(Ordering::Relaxed) => {
                self.heard.store(true, Ordering::Relaxed);
                let now = self.opened.elapsed().as_nanos() as u64;
                self.head_began.store(now, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn flushed(&self) {
        self.unflushed.store(false, Ordering::Relaxed);
        if self.any_parked.load(Ordering::Relaxed) {
            self.any_parked.store(false, Ordering::Relaxed);
            let parked = std::mem::take(&mut *lock(&self.parked));
            parked.into_iter().for_each(|then| then(true));
        }
    }

    /// What the connection is doing now.
    pub fn phase(&self) -> Phase {
        // A response on its way: a body not yet handed over whole, or bytes
        // not yet flushed.
        if self.requests.load(Ordering::Relaxed) >= WRITTEN
            || self.unflushed.load(Ordering::Relaxed)
        {
            return Phase::Writing;
        }
        match self.phase.load(Ordering::Relaxed) {
            IDLE => Phase::Idle,
            READING_HEAD => Phase::ReadingHead,
            _ => Phase::Busy,
        }
    }

    /// When the current phase (other than writing) began.
    pub fn since(&self) -> Instant {
        self.opened + Duration::from_nanos(self.since.load(Ordering::Relaxed))
    }

    /// A number that changes whenever a response on its way makes progress.
    pub fn progress(&self) -> u64 {
        let sent = self.sent.load(Ordering::Relaxed);
        // An HTTP/2 response waits on the client's flow-control window, which
        // frames for the connection itself (pongs, settings) do not open:
        // while a body is open there, only its chunks count.
        if self.http2.load(Ordering::Relaxed) && self.requests.load(Ordering::Relaxed) >= WRITTEN {
            sent
        } else {
            sent.wrapping_add(self.written.load(Ordering::Relaxed))
        }
    }

    /// Resolves once a request has begun after `count` had ([`Activity::begun`]).
    pub async fn request_after(&self, count: usize) {
        self.draining.store(true, Ordering::SeqCst);
        loop {
            let changed = self.request_begun.notified();
            tokio::pin!(changed);
            // Registered before the check, so a `begin` in between is not missed.
            changed.as_mut().enable();
            if self.begun.load(Ordering::SeqCst) > count {
                return;
            }
            changed.await;
        }
    }

    /// Whether the connection speaks HTTP/2.
    pub fn http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// How many requests have begun on the connection.
    pub fn begun(&self) -> usize {
        self.begun.load(Ordering::Relaxed)
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        // The connection is gone: what still waited for a flush never got one.
        let parked = std::mem::take(&mut *lock(&self.parked));
        parked.into_iter().for_each(|then| then(false));
    }
}

/// A connection's byte stream, telling its [`Activity`] when bytes arrive,
/// leave, and are flushed.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    first_read: bool,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            first_read: true,
        }
    }

    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        // Pending from any write until the next flush: hyper (HTTP/1) and h2
        // flush the stream only once their own buffers are empty.
        self.activity.unflushed.store(true, Ordering::Relaxed);
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            bump(&self.activity.written);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if self.first_read {
                self.first_read = false;
                if buf.filled()[before..].starts_with(H2_PREFACE) {
                    self.activity.http2.store(true, Ordering::Relaxed);
                }
            }
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.activity.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_responses_learn_whether_they_were_flushed() {
        let results = Arc::new(Mutex::new(Vec::new()));
        let record = |results: &Arc<Mutex<Vec<bool>>>| {
            let results = results.clone();
            move |flushed| results.lock().unwrap().push(flushed)
        };
        let activity = Activity::new();
        let serving = activity.begin();
        serving.when_flushed(record(&results));
        activity.flushed();
        serving.when_flushed(record(&results));
        drop(serving);
        drop(activity);
        assert_eq!(*results.lock().unwrap(), [true, false]);
    }
}
