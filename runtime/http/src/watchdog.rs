//! A connection's watchdog: when the phase it is in (see [`crate::activity`])
//! has lasted too long.
//!
//! An idle connection is closed gracefully after the keep-alive timeout; one
//! whose request head is slow, or whose response makes no progress for the
//! write timeout, is dropped. A handler at work has no limit here. The write
//! limit is not on the whole response but on a pause in it, as nginx's
//! `send_timeout`: it runs from the last progress, which the watchdog notices
//! as a changed count when it looks.

use std::time::Duration;

use tokio::time::Instant;

use crate::activity::{Activity, Phase};

/// How often a connection's watchdog looks again, at most.
const MAX_RECHECK: Duration = Duration::from_secs(1);

/// How often a connection whose handler works is looked at for a client that
/// reset it.
const GONE_LOOK: Duration = Duration::from_millis(250);

/// The watchdog looks this many times per write timeout, so a stalled write
/// is cut at most a quarter of it (or a second) late.
const WRITE_LOOKS: u32 = 4;

/// How long each phase may last; `None`: for ever.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timeouts {
    pub keep_alive: Option<Duration>,
    pub header_read: Option<Duration>,
    /// How long a response being written may make no progress.
    pub write: Option<Duration>,
}

/// Why a watchdog ends a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// Idle for the keep-alive timeout: closed gracefully.
    Idle,
    /// A request head took too long: dropped.
    Head,
    /// A response made no progress for the write timeout: dropped.
    Write,
    /// The client reset the connection while a handler worked: dropped (its
    /// request is logged 499).
    Gone,
}

/// What a connection's watchdog remembers between looks.
pub struct Watch {
    timeouts: Timeouts,
    recheck: Duration,
    /// While a response is being written: the progress count last seen, and
    /// the first look that saw it.
    progress: Option<(u64, Instant)>,
    /// The first look that saw the writing over.
    written_by: Option<Instant>,
}

impl Watch {
    pub fn new(timeouts: Timeouts) -> Self {
        // Looking again at least this often catches every phase change before
        // the new phase's deadline, which is never nearer than this, and
        // notices the last progress of a write soon enough.
        let write = timeouts.write.map(|t| t / WRITE_LOOKS);
        let recheck = [timeouts.keep_alive, timeouts.header_read, write]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_zero())
            .fold(MAX_RECHECK, Duration::min);
        Watch {
            timeouts,
            recheck,
            progress: None,
            written_by: None,
        }
    }

    /// Looks at the connection at `now`: when to look next, or why it ends.
    pub fn look(&mut self, activity: &Activity, now: Instant) -> Result<Instant, Expired> {
        let phase = activity.phase();
        let since = if phase == Phase::Writing {
            let progress = activity.progress();
            match self.progress {
                Some((seen, since)) if seen == progress => since,
                _ => {
                    self.progress = Some((progress, now));
                    now
                }
            }
        } else {
            if self.progress.take().is_some() {
                self.written_by = Some(now);
            }
            // A phase entered while a response was still being written
            // begins when the writing is over.
            let since = activity.since();
            self.written_by.map_or(since, |t| t.max(since))
        };
        let (limit, expired) = match phase {
            Phase::Idle => (self.timeouts.keep_alive, Expired::Idle),
            Phase::ReadingHead => (self.timeouts.header_read, Expired::Head),
            Phase::Writing => (self.timeouts.write, Expired::Write),
            Phase::Busy => (None, Expired::Gone),
        };
        match limit.map(|limit| since + limit) {
            Some(deadline) if deadline <= now => Err(expired),
            Some(deadline) => Ok(deadline.min(now + self.recheck)),
            // A handler at work has no limit; the connection is looked at
            // for a client that reset it.
            None => Ok(now + self.recheck.min(GONE_LOOK)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::Watched;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const SECOND: Duration = Duration::from_secs(1);

    fn timeouts() -> Timeouts {
        Timeouts {
            keep_alive: Some(5 * SECOND),
            header_read: Some(10 * SECOND),
            write: Some(4 * SECOND),
        }
    }

    /// A connection's activity and its stream, a pipe whose other end (also
    /// returned) reads nothing.
    fn connection() -> (Arc<Activity>, Watched<DuplexStream>, DuplexStream) {
        let activity = Activity::new();
        let (near, far) = tokio::io::duplex(1 << 20);
        (activity.clone(), Watched::new(near, activity), far)
    }

    /// Looks at `activity` `at` seconds after `start`.
    fn look(
        watch: &mut Watch,
        activity: &Activity,
        start: Instant,
        at: f64,
    ) -> Result<Instant, Expired> {
        watch.look(activity, start + Duration::from_secs_f64(at))
    }

    #[test]
    fn a_response_being_written_is_not_idle_and_is_timed_from_its_last_progress() {
        let activity = Activity::new();
        let start = Instant::now();
        let mut watch = Watch::new(timeouts());
        assert_eq!(watch.recheck, SECOND);
        let mut serving = activity.begin();
        serving.answered();
        // Progress every 3 s keeps it going far past keep-alive and the write timeout.
        for at in [0.0, 3.0, 6.0, 9.0, 12.0] {
            serving.sent();
            assert!(look(&mut watch, &activity, start, at).is_ok());
        }
        // Then none: cut at the write timeout after the first look that saw
        // the last progress.
        assert!(look(&mut watch, &activity, start, 15.9).is_ok());
        assert_eq!(
            look(&mut watch, &activity, start, 16.0),
            Err(Expired::Write)
        );
    }

    #[tokio::test]
    async fn unflushed_output_outlasts_the_body_and_idleness_begins_when_it_is_written() {
        let (activity, mut stream, _far) = connection();
        let start = Instant::now();
        let mut watch = Watch::new(timeouts());
        let mut serving = activity.begin();
        serving.answered();
        stream.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        drop(serving); // the body is handed over, its tail not flushed yet
        assert_eq!(activity.phase(), Phase::Writing);
        assert!(look(&mut watch, &activity, start, 1.0).is_ok());
        stream.write_all(b"the tail").await.unwrap();
        assert!(look(&mut watch, &activity, start, 4.5).is_ok());
        stream.flush().await.unwrap();
        assert_eq!(activity.phase(), Phase::Idle);
        // Idle from the look that saw the writing over, not from the body's end.
        assert!(look(&mut watch, &activity, start, 8.0).is_ok());
        assert!(look(&mut watch, &activity, start, 12.9).is_ok());
        assert_eq!(look(&mut watch, &activity, start, 13.0), Err(Expired::Idle));
    }

    #[test]
    fn a_handler_at_work_has_no_limit() {
        let activity = Activity::new();
        let start = Instant::now();
        let mut watch = Watch::new(timeouts());
        let _serving = activity.begin();
        assert_eq!(activity.phase(), Phase::Busy);
        assert!(look(&mut watch, &activity, start, 3600.0).is_ok());
    }

    #[tokio::test]
    async fn http2_connection_frames_are_no_progress_for_an_open_body() {
        let (activity, mut stream, mut far) = connection();
        far.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        stream.read_exact(&mut [0; 24]).await.unwrap();
        let start = Instant::now();
        let mut watch = Watch::new(timeouts());
        let mut serving = activity.begin();
        serving.answered();
        assert!(look(&mut watch, &activity, start, 0.0).is_ok());
        // Pongs go out; the stream's window stays shut.
        for at in [1.0, 2.0, 3.0] {
            stream.write_all(b"pong").await.unwrap();
            stream.flush().await.unwrap();
            assert!(look(&mut watch, &activity, start, at).is_ok());
        }
        assert_eq!(look(&mut watch, &activity, start, 4.0), Err(Expired::Write));
    }

    #[test]
    fn no_write_timeout_means_none() {
        let activity = Activity::new();
        let start = Instant::now();
        let mut watch = Watch::new(Timeouts {
            write: None,
            ..timeouts()
        });
        let mut serving = activity.begin();
        serving.answered();
        assert!(look(&mut watch, &activity, start, 3600.0).is_ok());
    }

    #[test]
    fn a_short_write_timeout_makes_the_watchdog_look_often_enough() {
        let watch = Watch::new(Timeouts {
            write: Some(SECOND),
            ..timeouts()
        });
        assert_eq!(watch.recheck, SECOND / 4);
    }
}
