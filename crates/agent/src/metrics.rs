//! The agent's metrics, rendered in the Prometheus text format. Kept by hand (a handful of
//! counters and two histograms) rather than through a metrics framework: the set is small and
//! fixed, and the rendering is a few lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Buckets (seconds) shared by the run and page duration histograms.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Help text and type of every metric family, in render order.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "deskbridge_runs_total",
        "counter",
        "Runs finished by this process, by status.",
    ),
    (
        "deskbridge_records_total",
        "counter",
        "Desk records changed by runs, by action (created, updated, deactivated).",
    ),
    (
        "deskbridge_source_requests_total",
        "counter",
        "Upstream request attempts, by source kind, endpoint and HTTP status (0: no response).",
    ),
    (
        "deskbridge_source_throttled_total",
        "counter",
        "Upstream responses with status 429, by source kind.",
    ),
    (
        "deskbridge_source_retry_after_seconds_total",
        "counter",
        "Time the source's service asked us to wait (Retry-After) before retrying, by source kind.",
    ),
    (
        "deskbridge_run_duration_seconds",
        "histogram",
        "Wall-clock duration of runs.",
    ),
    (
        "deskbridge_page_duration_seconds",
        "histogram",
        "Duration of each upstream request attempt (one page of a read), by source kind.",
    ),
    (
        "deskbridge_jobs",
        "gauge",
        "Jobs in the database by status (queued is the queue depth).",
    ),
    (
        "deskbridge_lease_takeovers_total",
        "counter",
        "Jobs this process took over from a worker whose lease expired.",
    ),
    (
        "deskbridge_schedule_fires_total",
        "counter",
        "Schedule due times handled by this process, by outcome.",
    ),
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Counters and histograms of one process. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(&'static str, String), f64>>,
    histograms: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

/// `{a="x",b="y"}` with values escaped as the format requires.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

impl Metrics {
    pub fn add(&self, name: &'static str, labels: String, by: f64) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        *values.entry((name, labels)).or_default() += by;
    }

    pub fn set(&self, name: &'static str, labels: String, value: f64) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert((name, labels), value);
    }

    pub fn observe(&self, name: &'static str, labels: String, value: Duration) {
        let secs = value.as_secs_f64();
        let mut hists = self.histograms.lock().unwrap_or_else(PoisonError::into_inner);
        let h = hists.entry((name, labels)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// A counter's or gauge's current value (tests and the benchmark read these).
    pub fn value(&self, name: &str, labels: &str) -> f64 {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values
            .iter()
            .filter(|((n, l), _)| *n == name && l == labels)
            .map(|(_, v)| *v)
            .sum()
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let hists = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            if *kind == "histogram" {
                for ((_, l), h) in hists.iter().filter(|((n, _), _)| n == family) {
                    let inner = l.trim_start_matches('{').trim_end_matches('}');
                    let sep = if inner.is_empty() { "" } else { "," };
                    for (bound, count) in BUCKETS.iter().zip(h.buckets) {
                        let _ = writeln!(out, "{family}_bucket{{{inner}{sep}le=\"{bound}\"}} {count}");
                    }
                    let _ = writeln!(out, "{family}_bucket{{{inner}{sep}le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(out, "{family}_sum{l} {}", h.sum);
                    let _ = writeln!(out, "{family}_count{l} {}", h.count);
                }
            } else {
                for ((_, l), v) in values.iter().filter(|((n, _), _)| n == family) {
                    let _ = writeln!(out, "{family}{l} {v}");
                }
            }
        }
        out
    }
}

/// The endpoint of a Graph path for metrics: version and query dropped, object ids replaced, so
/// the label set stays small (`/v1.0/users/3f…/memberOf?$top=5` → `users/{id}/memberOf`).
pub fn endpoint(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .skip_while(|s| *s == "v1.0" || *s == "beta")
        .take(4)
        .map(|s| {
            if s.len() >= 16 && s.chars().any(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    if segments.is_empty() {
        "/".into()
    } else {
        segments.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.add("deskbridge_runs_total", labels(&[("status", "succeeded")]), 1.0);
        m.add("deskbridge_runs_total", labels(&[("status", "succeeded")]), 1.0);
        m.observe(
            "deskbridge_run_duration_seconds",
            String::new(),
            Duration::from_millis(300),
        );
        let text = m.render();
        assert!(
            text.contains("deskbridge_runs_total{status=\"succeeded\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("deskbridge_run_duration_seconds_bucket{le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("deskbridge_run_duration_seconds_bucket{le=\"0.25\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("deskbridge_run_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE deskbridge_lease_takeovers_total counter"));
        assert_eq!(labels(&[("a", "x\"y")]), "{a=\"x\\\"y\"}");
    }

    #[test]
    fn endpoints_drop_ids_and_queries() {
        assert_eq!(endpoint("/v1.0/users?$select=id&$skiptoken=…"), "users");
        assert_eq!(endpoint("/v1.0/users/delta?$deltatoken=…"), "users/delta");
        assert_eq!(
            endpoint("/v1.0/groups/6a1c2b0e-1111-2222-3333-444455556666/members"),
            "groups/{id}/members"
        );
    }
}
