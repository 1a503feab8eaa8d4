//! Stage statistics: per route template and stage, a latency histogram, and
//! per route a count of responses by status class.
//!
//! Requests record with a few relaxed atomic additions and no lock: each
//! histogram is a row of atomic counters laid out exactly as an HDR histogram
//! of two significant digits (the `hdrhistogram` crate's layout, 1 ns to
//! about 137 s). Readers copy the counters into `hdrhistogram::Histogram`s,
//! which give the quantiles and merge processes. The counters live in one
//! memory map, zero-filled and committed page by page as values land: private
//! to the process, or a file other processes map too (a supervisor reads its
//! workers' files, [`StageStats::open`]; the format is in [`crate::stats_file`]).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use memmap2::{MmapMut, MmapRaw};

use crate::stages::{Stage, StageTimes};
use crate::stats_file;

/// The name statistics give requests that matched no route.
pub const UNROUTED: &str = "unrouted";

/// How responses are counted: by the first digit of their status.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A value has this many significant decimal digits…
const SIGNIFICANT_DIGITS: u8 = 2;
/// …so each power of two splits into `2^HALF_MAGNITUDE` counters.
const HALF_MAGNITUDE: u32 = 7;
const SUB_BUCKET_MASK: u64 = (1 << (HALF_MAGNITUDE + 1)) - 1;
/// Longer durations count as this one (about 137 s).
const HIGHEST: u64 = (1 << 37) - 1;
/// Counters per histogram: 30 powers of two of 128 each, the first of 256.
const BUCKETS: usize = ((37 - HALF_MAGNITUDE as usize) + 1) << HALF_MAGNITUDE;

/// What each route keeps: a histogram per stage and one of the total, each
/// after its sum; then responses by status class (1xx … 5xx).
const SERIES: usize = Stage::ALL.len() + 1;
const SERIES_LEN: usize = 1 + BUCKETS;
const ROUTE_LEN: usize = SERIES * SERIES_LEN + STATUS_CLASSES.len();
const TOTAL: usize = Stage::ALL.len();

/// The counter of a duration in nanoseconds (HDR's index, unit 1 ns).
fn bucket_of(nanos: u64) -> usize {
    let value = nanos.min(HIGHEST);
    let bucket = (63 - HALF_MAGNITUDE - (value | SUB_BUCKET_MASK).leading_zeros()) as usize;
    let sub_bucket = (value >> bucket) as usize;
    ((bucket + 1) << HALF_MAGNITUDE) + sub_bucket - (1 << HALF_MAGNITUDE)
}

/// The lowest duration counted by counter `index`.
fn lowest_of(index: usize) -> u64 {
    let half = 1usize << HALF_MAGNITUDE;
    match (index >> HALF_MAGNITUDE).checked_sub(1) {
        Some(bucket) if bucket > 0 => (((index & (half - 1)) + half) as u64) << bucket,
        _ => index as u64,
    }
}

/// The statistics of one process's routes.
pub struct StageStats {
    /// Route templates in the router's order, then [`UNROUTED`].
    routes: Vec<String>,
    /// Only ever accessed through raw pointers to atomics: other threads and
    /// processes change it, so no `&[u8]` over it may exist.
    map: MmapRaw,
    /// Where the counters begin in `map`.
    offset: usize,
}

// SAFETY: the map is only read and written through atomics.
unsafe impl Send for StageStats {}
unsafe impl Sync for StageStats {}

/// Bytes of counters for `routes` routes.
fn counters_len(routes: usize) -> usize {
    routes * ROUTE_LEN * 8
}

impl StageStats {
    /// Statistics for `routes` (in the router's order) and unrouted requests,
    /// private to this process.
    pub fn new(mut routes: Vec<String>) -> io::Result<Self> {
        routes.push(UNROUTED.to_owned());
        let map = MmapRaw::from(MmapMut::map_anon(counters_len(routes.len()))?);
        Ok(StageStats {
            routes,
            map,
            offset: 0,
        })
    }

    /// Like [`StageStats::new`], in a new file at `path` that other processes
    /// can read with [`StageStats::open`]; an existing file is an error.
    pub fn create(path: &Path, mut routes: Vec<String>) -> io::Result<Self> {
        routes.push(UNROUTED.to_owned());
        let len = counters_len(routes.len());
        let mapped = stats_file::create(path, routes, len)?;
        Ok(Self::from(mapped))
    }

    /// The statistics another process keeps in the file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        stats_file::open(path, counters_len).map(Self::from)
    }

    /// The index unrouted requests record under.
    pub fn unrouted(&self) -> usize {
        self.routes.len() - 1
    }

    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    fn counters(&self) -> &[AtomicU64] {
        let len = self.routes.len() * ROUTE_LEN;
        // SAFETY: the counters start page-aligned and hold `len` u64s (checked
        // when the map was made), are only ever accessed through these atomics,
        // and live as long as `self`; `as_ptr` makes no reference to the bytes.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(self.offset).cast::<AtomicU64>(), len)
        }
    }

    fn route(&self, route: usize) -> &[AtomicU64; ROUTE_LEN] {
        let start = route.min(self.unrouted()) * ROUTE_LEN;
        self.counters()[start..start + ROUTE_LEN]
            .try_into()
            .expect("a route's counters are ROUTE_LEN long")
    }

    /// Counts one request of `route` that ended with `status` after `times`.
    ///
    /// On every timed request's path, so it indexes without bounds checks:
    /// each index is in range by construction (`route` is clamped, a series
    /// starts below `SERIES * SERIES_LEN`, [`bucket_of`] is below `BUCKETS`).
    pub fn record(&self, route: usize, status: u16, times: &StageTimes) {
        let counters = self.route(route).as_ptr();
        let mut reached = times.reached_mask();
        while reached != 0 {
            let stage = reached.trailing_zeros() as usize;
            reached &= reached - 1;
            // SAFETY: `stage` < 5, so the series lies within the route's counters.
            unsafe { add(counters.add(stage * SERIES_LEN), times.nanos_of(stage)) };
        }
        // SAFETY: the total's series is the last of the route's SERIES.
        unsafe { add(counters.add(TOTAL * SERIES_LEN), times.total_nanos()) };
        let class = usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        // SAFETY: `class` < STATUS_CLASSES.len(), the counters after the series.
        unsafe { &*counters.add(SERIES * SERIES_LEN + class) }.fetch_add(1, Ordering::Relaxed);
    }

    /// Every route's figures as they are now.
    pub fn snapshot(&self) -> Vec<RouteFigures> {
        (0..self.routes.len())
            .map(|i| {
                let counters = self.route(i);
                let series =
                    |s: usize| Series::read(&counters[s * SERIES_LEN..(s + 1) * SERIES_LEN]);
                let mut statuses = [0; STATUS_CLASSES.len()];
                for (class, count) in statuses.iter_mut().enumerate() {
                    *count = counters[SERIES * SERIES_LEN + class].load(Ordering::Relaxed);
                }
                RouteFigures {
                    route: self.routes[i].clone(),
                    stages: Stage::ALL.map(|stage| series(stage as usize)),
                    total: series(TOTAL),
                    statuses,
                }
            })
            .collect()
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        for counter in self.counters() {
            // Most counters are zero; writing them all would commit every page.
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Adds `more` (another process's figures) into `into`, route by route name;
/// routes only `more` has are added in its order, [`UNROUTED`] kept last.
pub fn merge(into: &mut Vec<RouteFigures>, more: Vec<RouteFigures>) {
    for figures in more {
        match into.iter_mut().find(|known| known.route == figures.route) {
            Some(known) => known.add(&figures),
            None => {
                let at = into
                    .iter()
                    .position(|known| known.route == UNROUTED)
                    .filter(|_| figures.route != UNROUTED)
                    .unwrap_or(into.len());
                into.insert(at, figures);
            }
        }
    }
}

/// Adds `nanos` to the histogram (its sum, then its counters) at `series`.
///
/// # Safety
/// `series` points at the first of a histogram's `SERIES_LEN` counters.
#[inline(always)]
unsafe fn add(series: *const AtomicU64, nanos: u64) {
    // SAFETY: the caller's promise, and `1 + bucket_of(_)` <= BUCKETS.
    unsafe {
        (*series).fetch_add(nanos, Ordering::Relaxed);
        (*series.add(1 + bucket_of(nanos))).fetch_add(1, Ordering::Relaxed);
    }
}

/// One histogram, copied out.
#[derive(Clone, Debug)]
pub struct Series {
    pub histogram: Histogram<u64>,
    /// Of every value recorded, exactly (the histogram's mean is rounded).
    pub sum_nanos: u64,
}

impl Series {
    fn read(counters: &[AtomicU64]) -> Self {
        let mut histogram = empty_histogram();
        for (index, counter) in counters[1..].iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count != 0 {
                // In range by construction: HIGHEST is within the histogram's bounds.
                let _ = histogram.record_n(lowest_of(index), count);
            }
        }
        Series {
            histogram,
            sum_nanos: counters[0].load(Ordering::Relaxed),
        }
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Adds another process's figures.
    pub fn merge(&mut self, other: &Series) {
        // Same bounds and precision on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
    }

    /// Count, mean, p50, p90, p99 and max, in nanoseconds (zeros when empty).
    pub fn summary(&self) -> Summary {
        let count = self.count();
        if count == 0 {
            return Summary::default();
        }
        let h = &self.histogram;
        Summary {
            count,
            mean: self.sum_nanos as f64 / count as f64,
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST, SIGNIFICANT_DIGITS)
        .expect("constant bounds and precision are valid")
}

/// A histogram's figures, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl From<stats_file::Mapped> for StageStats {
    fn from(mapped: stats_file::Mapped) -> Self {
        StageStats {
            routes: mapped.routes,
            map: mapped.map,
            offset: mapped.offset,
        }
    }
}

impl RouteFigures {
    fn add(&mut self, other: &RouteFigures) {
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            mine.merge(theirs);
        }
        self.total.merge(&other.total);
        for (mine, theirs) in self.statuses.iter_mut().zip(other.statuses) {
            *mine += theirs;
        }
    }
}

/// One route's statistics, copied out.
#[derive(Clone, Debug)]
pub struct RouteFigures {
    /// `GET /items/{item_id}`, or [`UNROUTED`].
    pub route: String,
    /// Per stage, in [`Stage::ALL`] order.
    pub stages: [Series; 5],
    pub total: Series,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub statuses: [u64; STATUS_CLASSES.len()],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::Clock;

    #[test]
    fn counters_match_the_hdrhistogram_layout() {
        let reference = empty_histogram();
        for nanos in [
            0, 1, 127, 255, 256, 257, 511, 512, 4_000, 1_000_000, HIGHEST,
        ] {
            let index = bucket_of(nanos);
            assert!(index < BUCKETS, "{nanos}");
            let lowest = lowest_of(index);
            assert_eq!(lowest, reference.lowest_equivalent(nanos), "{nanos}");
            assert_eq!(bucket_of(lowest), index);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    /// A request that was parsed, then refused, after `total_micros`.
    fn times(total_micros: u64) -> StageTimes {
        let start = crate::stages::now();
        let mut clock = Clock::start(start);
        clock.lap(Stage::Parse);
        clock.finish(start + total_micros * 1000)
    }

    #[test]
    fn records_land_under_their_route_and_status_class() {
        let stats = StageStats::new(vec!["GET /a".into(), "GET /b/{id}".into()]).unwrap();
        for total in 1..=100 {
            stats.record(1, 200, &times(total * 10));
        }
        stats.record(stats.unrouted(), 404, &times(5));
        let figures = stats.snapshot();
        assert_eq!(figures.len(), 3);
        assert_eq!(figures[0].total.count(), 0);
        let b = &figures[1];
        assert_eq!(b.route, "GET /b/{id}");
        assert_eq!(b.statuses, [0, 100, 0, 0, 0]);
        assert_eq!(b.stages[0].count(), 100);
        assert_eq!(b.stages[1].count(), 0);
        let total = b.total.summary();
        assert_eq!(total.count, 100);
        assert!((total.mean - 505_000.0).abs() < 1.0);
        // Two significant digits: within 1% of 500 µs and 990 µs.
        assert!(
            (total.p50 as f64 - 500_000.0).abs() < 5_000.0,
            "{}",
            total.p50
        );
        assert!(
            (total.p99 as f64 - 990_000.0).abs() < 10_000.0,
            "{}",
            total.p99
        );
        assert_eq!(figures[2].route, UNROUTED);
        assert_eq!(figures[2].statuses[3], 1);
        stats.reset();
        assert!(stats.snapshot().iter().all(|r| r.total.count() == 0));
    }

    #[test]
    fn a_file_is_read_by_another_mapping_and_merged_by_route_name() {
        let dir = std::env::temp_dir().join(format!("spikard-stats-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("worker.stats");
        let _ = std::fs::remove_file(&path);
        let writer = StageStats::create(&path, vec!["GET /a".into(), "GET /b".into()]).unwrap();
        assert!(
            StageStats::create(&path, vec![]).is_err(),
            "never overwrites"
        );
        writer.record(1, 201, &times(7));
        let reader = StageStats::open(&path).unwrap();
        assert_eq!(reader.routes(), ["GET /a", "GET /b", UNROUTED]);
        writer.record(1, 503, &times(9));
        let mut merged = reader.snapshot();
        assert_eq!(merged[1].statuses, [0, 1, 0, 0, 1]);
        // Another process, after a reload: one route gone, one new.
        let other = StageStats::new(vec!["GET /b".into(), "GET /c".into()]).unwrap();
        other.record(0, 200, &times(3));
        other.record(2, 404, &times(1));
        merge(&mut merged, other.snapshot());
        let names: Vec<_> = merged.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(names, ["GET /a", "GET /b", "GET /c", UNROUTED]);
        assert_eq!(merged[1].total.count(), 3);
        assert_eq!(merged[3].statuses[3], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn series_from_two_processes_merge() {
        let one = StageStats::new(vec!["GET /".into()]).unwrap();
        let two = StageStats::new(vec!["GET /".into()]).unwrap();
        one.record(0, 200, &times(10));
        two.record(0, 500, &times(30));
        let mut merged = one.snapshot()[0].total.clone();
        merged.merge(&two.snapshot()[0].total);
        assert_eq!(merged.count(), 2);
        assert_eq!(merged.sum_nanos, 40_000);
    }
}
