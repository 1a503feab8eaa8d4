//! The five stages of a request and the clock that times them.
//!
//! A request's time from the first byte of its head until its response head is
//! built (its *total*) is cut into stages that never overlap:
//! - `parse`: matching the route, reading and parsing the body, extracting
//!   parameters as text;
//! - `validate`: coercing parameters and checking JSON Schemas;
//! - `ffi`: handing the request to the binding, waiting for the interpreter,
//!   building the handler's arguments;
//! - `handler`: the handler's call and every await until its result (or
//!   exception) is in hand;
//! - `response`: turning the result into a response.
//!
//! What is in none of them (building a problem response the core answers
//! itself, the hand-offs between stages) is *other*: total minus the stages.
//! Writing the body to the socket is in neither: the response head must carry
//! the figures, so the clock stops before it.
//!
//! The clock is a few laps at stage boundaries; the binding laps `ffi` and
//! `handler` ([`HandlerLaps`]) and hands the instants back with its answer.

use std::fmt::Write;
use std::time::{Duration, Instant};

/// One stage of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Parse,
    Validate,
    Ffi,
    Handler,
    Response,
}

impl Stage {
    /// Every stage, in the order a request passes through them.
    pub const ALL: [Stage; 5] = [
        Stage::Parse,
        Stage::Validate,
        Stage::Ffi,
        Stage::Handler,
        Stage::Response,
    ];

    /// The stage's public name, as `Server-Timing`, statistics and metrics show it.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Validate => "validate",
            Stage::Ffi => "ffi",
            Stage::Handler => "handler",
            Stage::Response => "response",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// How long one request spent in each stage it reached, and in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimes {
    nanos: [u64; 5],
    /// Bit `i` set: stage `i` was reached.
    reached: u8,
    total: u64,
}

impl StageTimes {
    pub fn get(&self, stage: Stage) -> Option<Duration> {
        (self.reached & (1 << stage.index()) != 0)
            .then(|| Duration::from_nanos(self.nanos[stage.index()]))
    }

    /// The stages reached, in order, with their durations in nanoseconds.
    pub fn reached(&self) -> impl Iterator<Item = (Stage, u64)> + '_ {
        Stage::ALL
            .into_iter()
            .filter(|stage| self.reached & (1 << stage.index()) != 0)
            .map(|stage| (stage, self.nanos[stage.index()]))
    }

    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.total)
    }

    pub fn total_nanos(&self) -> u64 {
        self.total
    }

    fn set(&mut self, stage: Stage, took: Duration) {
        self.nanos[stage.index()] = saturating_nanos(took);
        self.reached |= 1 << stage.index();
    }

    /// The `Server-Timing` value: each stage reached, then the total, in
    /// milliseconds with microsecond digits (W3C Server Timing syntax).
    pub fn server_timing(&self) -> String {
        let mut out = String::with_capacity(120);
        for (stage, nanos) in self.reached() {
            push_metric(&mut out, stage.name(), nanos);
            out.push_str(", ");
        }
        push_metric(&mut out, "total", self.total);
        out
    }

    /// ` parse=0.004 validate=0.011 … total=0.180` (milliseconds), for an
    /// access line.
    pub fn write_fields(&self, out: &mut String) {
        for (stage, nanos) in self.reached() {
            out.push(' ');
            out.push_str(stage.name());
            out.push('=');
            push_millis(out, nanos);
        }
    }
}

fn push_metric(out: &mut String, name: &str, nanos: u64) {
    out.push_str(name);
    out.push_str(";dur=");
    push_millis(out, nanos);
}

/// Milliseconds with three decimals (whole microseconds, rounded).
fn push_millis(out: &mut String, nanos: u64) {
    let micros = (nanos + 500) / 1000;
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(micros / 1000));
    let _ = write!(out, ".{:03}", micros % 1000);
}

fn saturating_nanos(took: Duration) -> u64 {
    u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)
}

/// When a binding's handler finished its `ffi` and `handler` stages. A stage
/// left `None` was not reached (arguments the binding refused never reach the
/// handler); with neither (a handler without a binding in between, such as a
/// native Rust one) the whole call counts as `handler`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandlerLaps {
    pub ffi: Option<Instant>,
    pub handler: Option<Instant>,
}

/// One request's stopwatch: started at the first byte of its head, lapped at
/// each stage boundary.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    started: Instant,
    last: Instant,
    times: StageTimes,
}

impl Clock {
    pub fn start(at: Instant) -> Self {
        Clock {
            started: at,
            last: at,
            times: StageTimes::default(),
        }
    }

    /// Ends `stage` now.
    pub fn lap(&mut self, stage: Stage) {
        self.lap_at(stage, Instant::now());
    }

    fn lap_at(&mut self, stage: Stage, at: Instant) {
        self.times
            .set(stage, at.saturating_duration_since(self.last));
        self.last = self.last.max(at);
    }

    /// Takes the laps a handler reported, `at` the end of its answer: what
    /// follows its last lap is `response`. Without laps (a handler with no
    /// binding in between) its whole call is `handler`.
    pub fn handled(&mut self, laps: HandlerLaps, at: Instant) {
        if laps.ffi.is_none() && laps.handler.is_none() {
            return self.lap_at(Stage::Handler, at);
        }
        if let Some(ffi) = laps.ffi {
            self.lap_at(Stage::Ffi, ffi);
        }
        if let Some(handler) = laps.handler {
            self.lap_at(Stage::Handler, handler);
        }
        self.lap_at(Stage::Response, at);
    }

    /// The times so far, with the total up to `at`.
    pub fn finish(&self, at: Instant) -> StageTimes {
        StageTimes {
            total: saturating_nanos(at.saturating_duration_since(self.started)),
            ..self.times
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_cut_the_total_into_stages_that_add_up() {
        let start = Instant::now();
        let at = |micros| start + Duration::from_micros(micros);
        let mut clock = Clock::start(start);
        clock.lap_at(Stage::Parse, at(4));
        clock.lap_at(Stage::Validate, at(15));
        let laps = HandlerLaps {
            ffi: Some(at(18)),
            handler: Some(at(170)),
        };
        clock.handled(laps, at(177));
        let times = clock.finish(at(180));
        assert_eq!(
            times.server_timing(),
            "parse;dur=0.004, validate;dur=0.011, ffi;dur=0.003, handler;dur=0.152, \
             response;dur=0.007, total;dur=0.180"
        );
        let staged: u64 = times.reached().map(|(_, nanos)| nanos).sum();
        assert_eq!(times.total_nanos() - staged, 3_000);
    }

    #[test]
    fn a_request_refused_in_the_core_has_only_the_stages_it_reached() {
        let start = Instant::now();
        let mut clock = Clock::start(start);
        clock.lap_at(Stage::Parse, start + Duration::from_micros(2));
        clock.lap_at(Stage::Validate, start + Duration::from_micros(5));
        let times = clock.finish(start + Duration::from_millis(1234));
        assert_eq!(times.get(Stage::Ffi), None);
        assert_eq!(
            times.server_timing(),
            "parse;dur=0.002, validate;dur=0.003, total;dur=1234.000"
        );
        let mut line = String::new();
        times.write_fields(&mut line);
        assert_eq!(line, " parse=0.002 validate=0.003");
    }

    #[test]
    fn a_native_handler_without_laps_is_all_handler() {
        let start = Instant::now();
        let mut clock = Clock::start(start);
        clock.lap_at(Stage::Parse, start + Duration::from_micros(1));
        clock.lap_at(Stage::Validate, start + Duration::from_micros(2));
        clock.handled(HandlerLaps::default(), start + Duration::from_micros(9));
        let times = clock.finish(start + Duration::from_micros(9));
        assert_eq!(times.get(Stage::Handler), Some(Duration::from_micros(7)));
        assert_eq!(times.get(Stage::Response), None);
    }
}
