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
//! Instants are nanoseconds of the monotonic clock ([`now`]), so a lap is a
//! subtraction.

use std::time::Duration;

use bytes::Bytes;

/// Nanoseconds on the monotonic clock (`CLOCK_MONOTONIC`, as `Instant`):
/// only differences mean anything.
pub fn now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

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
            .zip(self.nanos)
            .filter(|(stage, _)| self.reached & (1 << stage.index()) != 0)
    }

    pub fn total_nanos(&self) -> u64 {
        self.total
    }

    /// Bit `i` set: stage `i` (in [`Stage::ALL`] order) was reached.
    pub(crate) fn reached_mask(&self) -> u8 {
        self.reached
    }

    /// Nanoseconds in stage `index` (0 when not reached); `index` < 5.
    pub(crate) fn nanos_of(&self, index: usize) -> u64 {
        self.nanos[index]
    }

    fn set(&mut self, stage: Stage, nanos: u64) {
        self.nanos[stage.index()] = nanos;
        self.reached |= 1 << stage.index();
    }

    /// The `Server-Timing` value: each stage reached, then the total, in
    /// milliseconds with microsecond digits (W3C Server Timing syntax).
    pub fn server_timing(&self) -> Bytes {
        let mut line = Line::new();
        for (stage, nanos) in self.reached() {
            line.push(&TIMING_KEYS[stage.index()]);
            line.push_millis(nanos);
            line.push(&SEPARATOR);
        }
        line.push(&TOTAL);
        line.push_millis(self.total);
        Bytes::copy_from_slice(line.as_bytes())
    }

    /// ` parse=0.004 validate=0.011 …` (milliseconds), for an access line.
    pub fn write_fields(&self, out: &mut String) {
        let mut line = Line::new();
        for (stage, nanos) in self.reached() {
            line.push(&FIELD_KEYS[stage.index()]);
            line.push_millis(nanos);
        }
        // Only ASCII was written.
        out.push_str(std::str::from_utf8(line.as_bytes()).unwrap_or_default());
    }
}

/// Up to 16 bytes of text, padded to 16 so that it is copied whole: a
/// fixed-size copy is two instructions, a sized one a call to `memcpy`.
struct Piece {
    bytes: [u8; 16],
    len: usize,
}

impl Piece {
    /// `parts` one after the other (16 bytes at most, or the build fails).
    const fn join(parts: [&str; 3]) -> Self {
        let mut bytes = [0u8; 16];
        let mut len = 0;
        let mut part = 0;
        while part < parts.len() {
            let text = parts[part].as_bytes();
            let mut i = 0;
            while i < text.len() {
                bytes[len] = text[i];
                len += 1;
                i += 1;
            }
            part += 1;
        }
        Piece { bytes, len }
    }
}

/// `HEAD` + the stage's name + `TAIL`, for each stage in order.
const fn stage_pieces(head: &str, tail: &str) -> [Piece; 5] {
    const BLANK: Piece = Piece::join(["", "", ""]);
    let mut pieces = [BLANK; 5];
    let mut i = 0;
    while i < Stage::ALL.len() {
        pieces[i] = Piece::join([head, Stage::ALL[i].name(), tail]);
        i += 1;
    }
    pieces
}

const SEPARATOR: Piece = Piece::join(["", ", ", ""]);
const TOTAL: Piece = Piece::join(["", "total", ";dur="]);
/// `parse;dur=`, … by stage.
const TIMING_KEYS: [Piece; 5] = stage_pieces("", ";dur=");
/// ` parse=`, … by stage.
const FIELD_KEYS: [Piece; 5] = stage_pieces(" ", "=");

/// `.000` to `.999`: a fraction's digits are one lookup, not three divisions.
const FRACTIONS: [[u8; 4]; 1000] = {
    let mut table = [[0u8; 4]; 1000];
    let mut i = 0;
    while i < 1000 {
        table[i] = [
            b'.',
            b'0' + (i / 100) as u8,
            b'0' + (i / 10 % 10) as u8,
            b'0' + (i % 10) as u8,
        ];
        i += 1;
    }
    table
};

/// Text built on the stack, by hand: `core::fmt` and a growing `Vec` cost
/// more than the rest of the `Server-Timing` header. Room for six metrics
/// with the longest names (13 bytes) and numbers (14 digits of whole
/// milliseconds in a u64 of nanoseconds, 4 of fraction), their separators,
/// and a piece's padding: 6 × 33 + 16 = 214.
const LINE_ROOM: usize = 224;

struct Line {
    buf: [u8; LINE_ROOM],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; LINE_ROOM],
            len: 0,
        }
    }

    fn push(&mut self, piece: &Piece) {
        self.buf[self.len..self.len + 16].copy_from_slice(&piece.bytes);
        self.len += piece.len;
    }

    /// Milliseconds with three decimals (whole microseconds, rounded).
    fn push_millis(&mut self, nanos: u64) {
        let micros = nanos.saturating_add(500) / 1000;
        let (whole, fraction) = (micros / 1000, (micros % 1000) as u32);
        if whole < 10 {
            self.buf[self.len] = b'0' + whole as u8;
            self.len += 1;
        } else {
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(whole).as_bytes();
            self.buf[self.len..self.len + digits.len()].copy_from_slice(digits);
            self.len += digits.len();
        }
        let end = self.len + 4;
        self.buf[self.len..end].copy_from_slice(&FRACTIONS[fraction as usize]);
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// When ([`now`]) a binding's handler finished its `ffi` and `handler`
/// stages; 0 for a stage not reached (arguments the binding refused never
/// reach the handler). With neither (a handler without a binding in between,
/// such as a native Rust one) the whole call counts as `handler`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandlerLaps {
    pub ffi: u64,
    pub handler: u64,
}

/// One request's stopwatch: started at the first byte of its head, lapped at
/// each stage boundary.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    started: u64,
    last: u64,
    times: StageTimes,
}

impl Clock {
    /// A clock started `at` ([`now`]).
    pub fn start(at: u64) -> Self {
        Clock {
            started: at,
            last: at,
            times: StageTimes::default(),
        }
    }

    /// Ends `stage` now.
    pub fn lap(&mut self, stage: Stage) {
        self.lap_at(stage, now());
    }

    /// Ends `stage`, which had nothing to do, where the last one ended.
    pub fn skip(&mut self, stage: Stage) {
        self.times.set(stage, 0);
    }

    fn lap_at(&mut self, stage: Stage, at: u64) {
        self.times.set(stage, at.saturating_sub(self.last));
        self.last = self.last.max(at);
    }

    /// Takes the laps a handler reported, `at` the end of its answer: what
    /// follows its last lap is `response`. Without laps (a handler with no
    /// binding in between) its whole call is `handler`.
    pub fn handled(&mut self, laps: HandlerLaps, at: u64) {
        if laps.ffi == 0 && laps.handler == 0 {
            return self.lap_at(Stage::Handler, at);
        }
        if laps.ffi != 0 {
            self.lap_at(Stage::Ffi, laps.ffi);
        }
        if laps.handler != 0 {
            self.lap_at(Stage::Handler, laps.handler);
        }
        self.lap_at(Stage::Response, at);
    }

    /// The times so far, with the total up to `at`.
    pub fn finish(&self, at: u64) -> StageTimes {
        StageTimes {
            total: at.saturating_sub(self.started),
            ..self.times
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 1_000_000_000;

    fn at(micros: u64) -> u64 {
        START + micros * 1000
    }

    #[test]
    fn laps_cut_the_total_into_stages_that_add_up() {
        let start = START;
        let mut clock = Clock::start(start);
        clock.lap_at(Stage::Parse, at(4));
        clock.lap_at(Stage::Validate, at(15));
        let laps = HandlerLaps {
            ffi: at(18),
            handler: at(170),
        };
        clock.handled(laps, at(177));
        let times = clock.finish(at(180));
        assert_eq!(
            &times.server_timing()[..],
            b"parse;dur=0.004, validate;dur=0.011, ffi;dur=0.003, handler;dur=0.152, \
             response;dur=0.007, total;dur=0.180"
        );
        let staged: u64 = times.reached().map(|(_, nanos)| nanos).sum();
        assert_eq!(times.total_nanos() - staged, 3_000);
    }

    #[test]
    fn a_request_refused_in_the_core_has_only_the_stages_it_reached() {
        let mut clock = Clock::start(START);
        clock.lap_at(Stage::Parse, at(2));
        clock.lap_at(Stage::Validate, at(5));
        let times = clock.finish(at(1_234_000));
        assert_eq!(times.get(Stage::Ffi), None);
        assert_eq!(
            &times.server_timing()[..],
            b"parse;dur=0.002, validate;dur=0.003, total;dur=1234.000"
        );
        let mut line = String::new();
        times.write_fields(&mut line);
        assert_eq!(line, " parse=0.002 validate=0.003");
    }

    #[test]
    fn long_and_extreme_durations_are_written_whole() {
        let mut clock = Clock::start(0);
        for stage in Stage::ALL {
            clock.lap_at(stage, u64::MAX);
        }
        let header = clock.finish(u64::MAX).server_timing();
        assert!(
            header.ends_with(b"total;dur=18446744073709.551"),
            "{header:?}"
        );
        let mut clock = Clock::start(START);
        clock.lap_at(Stage::Handler, at(12_345_678));
        let mut line = String::new();
        clock.finish(at(12_345_678)).write_fields(&mut line);
        assert_eq!(line, " handler=12345.678");
    }

    #[test]
    fn a_native_handler_without_laps_is_all_handler() {
        let mut clock = Clock::start(START);
        clock.lap_at(Stage::Parse, at(1));
        clock.lap_at(Stage::Validate, at(2));
        clock.handled(HandlerLaps::default(), at(9));
        let times = clock.finish(at(9));
        assert_eq!(times.get(Stage::Handler), Some(Duration::from_micros(7)));
        assert_eq!(times.get(Stage::Response), None);
    }
}
