//! Stage statistics in the Prometheus text exposition format (version 0.0.4).
//!
//! Histograms per route and stage, and of the total, with buckets from 1 µs:
//! the usual defaults start at 5 ms, where a 10 µs `parse` cannot be told
//! from zero. Only routes that counted a request are shown, as client
//! libraries show a labelled series from its first observation. A value is
//! known to two significant digits; one within 1% of a bucket's bound counts
//! in the next bucket up.

use std::fmt::Write;

use crate::stages::Stage;
use crate::stats::{RouteFigures, Series, STATUS_CLASSES};

/// Upper bounds of the buckets: (nanoseconds, as the `le` label).
const BUCKETS: [(u64, &str); 22] = [
    (1_000, "1e-06"),
    (2_500, "2.5e-06"),
    (5_000, "5e-06"),
    (10_000, "1e-05"),
    (25_000, "2.5e-05"),
    (50_000, "5e-05"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
];

const STAGE_METRIC: &str = "spikard_stage_duration_seconds";
const TOTAL_METRIC: &str = "spikard_request_duration_seconds";
const RESPONSES_METRIC: &str = "spikard_responses_total";

/// The exposition of `figures` (one process's, or several merged).
pub fn prometheus_text(figures: &[RouteFigures]) -> String {
    let served: Vec<&RouteFigures> = figures.iter().filter(|r| r.total.count() > 0).collect();
    let mut out = String::with_capacity(4096 + served.len() * 16 * 1024);
    header(
        &mut out,
        STAGE_METRIC,
        "histogram",
        "Time requests spent in each stage (parse, validate, ffi, handler, response), by route.",
    );
    for route in &served {
        for (stage, series) in Stage::ALL.iter().zip(&route.stages) {
            let labels = format!(
                "route=\"{}\",stage=\"{}\"",
                escape(&route.route),
                stage.name()
            );
            histogram(&mut out, STAGE_METRIC, &labels, series);
        }
    }
    header(
        &mut out,
        TOTAL_METRIC,
        "histogram",
        "Time from a request's first byte until its response head was ready, by route.",
    );
    for route in &served {
        let labels = format!("route=\"{}\"", escape(&route.route));
        histogram(&mut out, TOTAL_METRIC, &labels, &route.total);
    }
    header(
        &mut out,
        RESPONSES_METRIC,
        "counter",
        "Responses by route and status class.",
    );
    for route in &served {
        for (class, count) in STATUS_CLASSES.iter().zip(route.statuses) {
            let route = escape(&route.route);
            let _ = writeln!(
                out,
                "{RESPONSES_METRIC}{{route=\"{route}\",status=\"{class}\"}} {count}"
            );
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, series: &Series) {
    let h = &series.histogram;
    let mut recorded = h.iter_recorded().peekable();
    let mut below = 0u64;
    for (bound, le) in BUCKETS {
        while let Some(step) = recorded.peek() {
            // A bucket counts below a bound only if all of it is (values are
            // known to two significant digits; this errs on the high side).
            if h.highest_equivalent(step.value_iterated_to()) > bound {
                break;
            }
            below += step.count_at_value();
            recorded.next();
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {below}");
    }
    let count = series.count();
    let seconds = series.sum_nanos as f64 / 1e9;
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {seconds}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::Clock;
    use crate::stats::StageStats;

    #[test]
    fn microsecond_stages_land_in_microsecond_buckets() {
        let stats = StageStats::new(vec!["GET /items/{id}".into(), "GET /idle".into()]).unwrap();
        let start = crate::stages::now();
        for micros in [3, 4, 30, 2_000] {
            let mut clock = Clock::start(start);
            clock.lap(Stage::Parse);
            let times = clock.finish(start + micros * 1000);
            stats.record(0, 200, &times);
        }
        let text = prometheus_text(&stats.snapshot());
        let total = |le: &str| {
            let line = format!("{TOTAL_METRIC}_bucket{{route=\"GET /items/{{id}}\",le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .unwrap_or_else(|| panic!("no {line} in\n{text}"))
                .to_owned()
        };
        assert_eq!(total("2.5e-06"), "0");
        assert_eq!(total("5e-06"), "2");
        assert_eq!(total("5e-05"), "3");
        assert_eq!(total("0.0025"), "4");
        assert_eq!(total("+Inf"), "4");
        assert!(
            text.contains("spikard_responses_total{route=\"GET /items/{id}\",status=\"2xx\"} 4\n")
        );
        assert!(
            !text.contains("GET /idle"),
            "a route without requests is left out"
        );
        assert!(text.contains("# TYPE spikard_stage_duration_seconds histogram\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
