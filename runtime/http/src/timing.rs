//! One request's timing, from the first byte of its head to its answer: the
//! stage laps, and where the result goes (the statistics, `Server-Timing`,
//! the access line).
//!
//! It lives in the request's own future, not in the exchange that outlives
//! it: every request's exchange is moved several times on its way through
//! hyper, and one that is not timed must not carry a clock.

use crate::app::CLIENT_CLOSED_REQUEST;
use crate::stages::{self, Clock, HandlerLaps, Stage, StageTimes};
use crate::stats::StageStats;

pub(crate) struct Timing<'a> {
    /// `None`: the app times nothing, or the request has been answered.
    watch: Option<Stopwatch<'a>>,
}

/// Borrows the app's statistics: the request's future owns the app.
struct Stopwatch<'a> {
    clock: Clock,
    stats: Option<&'a StageStats>,
    /// The route it matched (the statistics' unrouted entry until it does).
    route: usize,
    /// What its handler reported, once it answered.
    laps: Option<HandlerLaps>,
}

impl<'a> Timing<'a> {
    /// A request that `began` ([`stages::now`]); `None`: not timed.
    pub fn new(began: Option<u64>, stats: Option<&'a StageStats>) -> Self {
        Timing {
            watch: began.map(|began| Stopwatch {
                clock: Clock::start(began),
                route: stats.map_or(0, |stats| stats.unrouted()),
                stats,
                laps: None,
            }),
        }
    }

    pub fn timed(&self) -> bool {
        self.watch.is_some()
    }

    /// Ends `stage` now.
    pub fn lap(&mut self, stage: Stage) {
        if let Some(watch) = &mut self.watch {
            watch.clock.lap(stage);
        }
    }

    /// `stage` had nothing to do: it took no time, and reads no clock.
    pub fn skip(&mut self, stage: Stage) {
        if let Some(watch) = &mut self.watch {
            watch.clock.skip(stage);
        }
    }

    /// The request matched route number `route`.
    pub fn matched(&mut self, route: usize) {
        if let Some(watch) = &mut self.watch {
            watch.route = route;
        }
    }

    /// Its handler answered, with these laps.
    pub fn handled(&mut self, laps: HandlerLaps) {
        if let Some(watch) = &mut self.watch {
            watch.laps = Some(laps);
        }
    }

    /// The request is answered with `status`: the clock stops, the
    /// statistics count it, and its times are given back.
    pub fn answered(&mut self, status: u16) -> Option<StageTimes> {
        let mut watch = self.watch.take()?;
        let now = stages::now();
        if let Some(laps) = watch.laps {
            watch.clock.handled(laps, now);
        }
        let times = watch.clock.finish(now);
        if let Some(stats) = watch.stats {
            stats.record(watch.route, status, &times);
        }
        Some(times)
    }
}

impl Drop for Timing<'_> {
    /// A request dropped before its answer (its client left): the stages it
    /// finished count, under 499 as in the access log.
    fn drop(&mut self) {
        if self.watch.is_some() {
            self.answered(CLIENT_CLOSED_REQUEST);
        }
    }
}
