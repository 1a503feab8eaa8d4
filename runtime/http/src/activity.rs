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
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::refusal::{self, Refused, LINE_KEPT, LINGER};
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
    /// The watchdog found the request head late: answer 408 and close.
    head_late: AtomicBool,
    /// A response said `Connection: close`: no request head follows (what
    /// arrives is the rest of a refused body, read and dropped).
    closing: AtomicBool,
    /// The connection's socket (-1: none), for the watchdog to see a client
    /// that reset the connection while a handler works: hyper reads nothing
    /// from an HTTP/1 connection then.
    socket: AtomicI32,
    /// A request refused before any route saw it, and how long its head had
    /// been arriving, for the access log.
    refused: Mutex<Option<(Refused, Duration)>>,
}

/// Held by a request while it is served, and then by its response body while
/// that is written; marks the connection idle when the last one ends (or is
/// dropped because its client went away).
pub struct Serving {
    activity: Arc<Activity>,
    writing: bool,
}

impl Serving {
    /// The response closes the connection: what arrives after it is no head.
    pub fn closing(&self) {
        self.activity.closing.store(true, Ordering::Relaxed);
    }

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
            head_late: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            socket: AtomicI32::new(-1),
            refused: Mutex::new(None),
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
            IDLE if !self.http2.load(Ordering::Relaxed)
                && !self.closing.load(Ordering::Relaxed) =>
            {
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

    /// The socket whose client [`Activity::client_reset`] looks for.
    pub fn watch_socket(&self, fd: RawFd) {
        self.socket.store(fd, Ordering::Relaxed);
    }

    /// Whether the client reset the connection (gone for good, not just done
    /// sending): a non-blocking peek that fails with `ECONNRESET`. A client
    /// that only ended its side is still answered.
    pub fn client_reset(&self) -> bool {
        let fd = self.socket.load(Ordering::Relaxed);
        if fd < 0 {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: `fd` is the socket of this connection, open while its
        // watchdog runs; one byte is peeked into `byte`, without blocking.
        let peeked = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        peeked < 0
            && matches!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT)
            )
    }

    /// The request head took too long: the connection answers 408 (when any
    /// of the head arrived) and closes, the next time it is polled.
    pub fn expire_head(&self) {
        self.head_late.store(true, Ordering::Relaxed);
    }

    /// The request the runtime refused on this connection, if it did.
    pub fn take_refused(&self) -> Option<(Refused, Duration)> {
        lock(&self.refused).take()
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
    /// How much of the HTTP/2 preface the first bytes matched so far
    /// ([`PREFACE_DECIDED`] once they have shown whether it is there): a
    /// client may send it over several writes.
    preface_matched: usize,
    /// The first line of the HTTP/1 request head being read, for a refusal;
    /// `line_of` is the request count it was begun at (a head read later
    /// than that, while a request was served, is not kept).
    line: Vec<u8>,
    line_of: usize,
    line_done: bool,
    max_head_size: usize,
    /// An answer of the runtime's own being written in place of hyper's.
    refusing: Option<Refusing>,
}

/// A refusal on its way out: the answer, then the end of this side, then the
/// client's bytes read and dropped until it ends or [`LINGER`] passes.
struct Refusing {
    answer: Vec<u8>,
    written: usize,
    lingering: Option<Pin<Box<Sleep>>>,
    done: bool,
}

/// The first bytes have shown whether the connection began with the preface.
const PREFACE_DECIDED: usize = usize::MAX;

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            preface_matched: 0,
            line: Vec::new(),
            line_of: 0,
            line_done: false,
            max_head_size: crate::server::DEFAULT_MAX_HEAD_SIZE,
            refusing: None,
        }
    }

    /// The bound on a request head that a 431 names.
    pub fn with_max_head_size(mut self, max_head_size: usize) -> Self {
        self.max_head_size = max_head_size;
        self
    }

    /// Keeps the start of an HTTP/1 request head's first line.
    fn keep_line(&mut self, arrived: &[u8]) {
        let begun = self.activity.begun.load(Ordering::Relaxed);
        if begun != self.line_of {
            self.line_of = begun;
            self.line.clear();
            self.line_done = false;
        }
        if self.line_done {
            return;
        }
        // Blank lines before a request line are allowed (RFC 9112 §2.2).
        let arrived = if self.line.is_empty() {
            let start = arrived.iter().position(|&b| b != b'\r' && b != b'\n');
            &arrived[start.unwrap_or(arrived.len())..]
        } else {
            arrived
        };
        let room = LINE_KEPT - self.line.len();
        let (take, done) = match arrived.iter().position(|&b| b == b'\n') {
            Some(end) => (end.min(room), true),
            None => (arrived.len().min(room), arrived.len() >= room),
        };
        self.line.extend_from_slice(&arrived[..take]);
        self.line_done = done;
    }

    /// The first line of the head being read, if it is the current request's.
    fn current_line(&self) -> &[u8] {
        if self.line_of == self.activity.begun.load(Ordering::Relaxed) {
            &self.line
        } else {
            &[]
        }
    }

    /// Whether `written`, the start of a write, is hyper's own answer to a head
    /// it could not parse (written while no request is served, and nothing
    /// else is waiting to be flushed).
    fn hyper_refused(&self, written: &[u8]) -> Option<http::StatusCode> {
        let activity = &self.activity;
        if activity.http2.load(Ordering::Relaxed)
            || activity.requests.load(Ordering::Relaxed) != 0
            || activity.unflushed.load(Ordering::Relaxed)
            // A head is being read that no request has begun from: an app's
            // own answer is never written then.
            || activity.phase.load(Ordering::Relaxed) != READING_HEAD
            || self.current_line().is_empty()
        {
            return None;
        }
        refusal::hyper_answer(written)
    }

    fn begin_refusal(&mut self, refused: Refused) {
        let answer = refused.answer(self.max_head_size);
        let took = self.activity.since().elapsed();
        *lock(&self.activity.refused) = Some((refused, took));
        self.refusing = Some(Refusing {
            answer,
            written: 0,
            lingering: None,
            done: false,
        });
    }

    /// Matches `arrived` against what is left of the preface.
    fn look_for_preface(&mut self, arrived: &[u8]) {
        let left = &H2_PREFACE[self.preface_matched..];
        let n = left.len().min(arrived.len());
        if arrived[..n] != left[..n] {
            self.preface_matched = PREFACE_DECIDED;
        } else if n == left.len() {
            self.preface_matched = PREFACE_DECIDED;
            self.activity.http2.store(true, Ordering::Relaxed);
        } else {
            self.preface_matched += n;
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

impl<S: AsyncRead + AsyncWrite + Unpin> Watched<S> {
    /// Writes the refusal, ends this side, and lingers; ready when done (or
    /// when the client is gone).
    fn drive_refusal(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Watched {
            inner, refusing, ..
        } = self;
        let Some(refusing) = refusing.as_mut() else {
            return Poll::Ready(());
        };
        while !refusing.done && refusing.written < refusing.answer.len() {
            match Pin::new(&mut *inner).poll_write(cx, &refusing.answer[refusing.written..]) {
                Poll::Ready(Ok(n)) if n > 0 => refusing.written += n,
                Poll::Ready(_) => refusing.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        if refusing.done {
            return Poll::Ready(());
        }
        if refusing.lingering.is_none() {
            if Pin::new(&mut *inner).poll_shutdown(cx).is_pending() {
                return Poll::Pending;
            }
            refusing.lingering = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 4096];
        loop {
            let mut dropped = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *inner).poll_read(cx, &mut dropped) {
                Poll::Ready(Ok(())) if !dropped.filled().is_empty() => continue,
                Poll::Ready(_) => break,
                Poll::Pending => {
                    let lingering = refusing.lingering.as_mut().expect("set above");
                    if lingering.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        refusing.done = true;
        Poll::Ready(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.refusing.is_none() && self.activity.head_late.load(Ordering::Relaxed) {
            if self.current_line().is_empty() {
                // Not a byte of a request arrived: nothing to answer.
                return Poll::Ready(Ok(()));
            }
            let refused = Refused::late(self.current_line());
            self.begin_refusal(refused);
        }
        if self.refusing.is_some() {
            // hyper reads the end of the connection once the answer is out.
            return self.drive_refusal(cx).map(Ok);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let this = &mut *self;
            let arrived = &buf.filled()[before..];
            if this.preface_matched != PREFACE_DECIDED {
                this.look_for_preface(arrived);
            }
            this.activity.bytes_arrived();
            if this.activity.phase.load(Ordering::Relaxed) == READING_HEAD
                && !this.activity.http2.load(Ordering::Relaxed)
            {
                this.keep_line(arrived);
            }
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Watched<S> {
    /// hyper's bytes, `len` of them, when they are its own refusal or come
    /// after one: swallowed (reported written), the runtime's answer going out
    /// instead. `None` for every other write.
    fn swallowed(&mut self, cx: &mut Context<'_>, first: &[u8], len: usize) -> Option<usize> {
        if self.refusing.is_none() {
            let status = self.hyper_refused(first)?;
            let refused = Refused::by_hyper(status, self.current_line());
            self.begin_refusal(refused);
        }
        // Pending or not: hyper flushes next, which waits for it.
        let _ = self.drive_refusal(cx);
        Some(len)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(len) = self.swallowed(cx, buf, buf.len()) {
            return Poll::Ready(Ok(len));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        let len = bufs.iter().map(|b| b.len()).sum();
        if let Some(len) = self.swallowed(cx, first, len) {
            return Poll::Ready(Ok(len));
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.refusing.is_some() {
            return self.drive_refusal(cx).map(Ok);
        }
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.activity.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.refusing.is_some() {
            return self.drive_refusal(cx).map(Ok);
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_preface_split_over_several_reads_is_still_http2() {
        for (pieces, http2) in [
            (vec![&b"PRI * HTTP/2.0\r\n\r\nSM"[..]], true),
            (vec![&b"P"[..], b"RI * HT", b"TP/2.0\r\n"], true),
            (vec![&b"PRI * HTTP/1.1\r\n"[..]], false),
            (vec![&b"PR"[..], b"X"], false),
            (vec![&b"GET / HTTP/1.1\r\n"[..], b"PRI * HTTP/2.0"], false),
        ] {
            let (mut client, server) = tokio::io::duplex(64);
            let activity = Activity::new();
            let mut watched = Watched::new(server, activity.clone());
            let mut buf = [0u8; 64];
            for piece in &pieces {
                client.write_all(piece).await.unwrap();
                let n = watched.read(&mut buf).await.unwrap();
                assert_eq!(n, piece.len());
            }
            assert_eq!(activity.http2(), http2, "{pieces:?}");
        }
    }

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
