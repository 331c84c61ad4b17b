//! Dataverse's service protection limits, per organisation and user over a sliding window:
//! requests (6,000 / 300 s), combined execution time (1,200,000 ms / 300 s) and concurrent
//! requests (52). Enforced when `Faults::throttling` is on; the figures are settable with
//! `Emulator::set_dataverse_limits` so tests can reach them quickly. Every request that reaches
//! admission is also counted per (org, user), whatever the switch ([`DataverseLoad`]), so tests can
//! tell how many requests a client had in flight and when it was told it had too many.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{DvError, codes, error};

/// The limits and the simulated execution time of each request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceLimits {
    pub requests_per_window: u32,
    pub execution_ms_per_window: u64,
    pub concurrent_requests: u32,
    pub window_secs: u64,
    /// Every request takes this long on the server (counts towards the execution-time limit
    /// and keeps the request in flight for the concurrency limit).
    pub execution_ms: u64,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            requests_per_window: 6_000,
            execution_ms_per_window: 1_200_000,
            concurrent_requests: 52,
            window_secs: 300,
            execution_ms: 0,
        }
    }
}

#[derive(Default)]
struct Window {
    /// When each request in the window arrived, with its execution time.
    requests: VecDeque<(Timestamp, u64)>,
    in_flight: u32,
    load: DataverseLoad,
}

/// What one (org, user) has sent since the emulator started: `Emulator::dataverse_load`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DataverseLoad {
    /// The org's name.
    pub org: String,
    /// The caller's `systemuserid`.
    pub user: String,
    /// Requests that reached the limits' check (authenticated; the injected 429s and 503s of
    /// `Faults` are answered before it and not counted), numbered from 1 in arrival order.
    pub arrivals: u64,
    /// The most requests in flight at once, counting the arriving one whether admitted or not:
    /// what the client had outstanding at the server.
    pub peak_in_flight: u32,
    /// Arrival numbers answered 429 `0x80072326` (too many concurrent requests).
    pub concurrency_rejections: Vec<u64>,
}

type Windows = Arc<Mutex<HashMap<(String, String), Window>>>;

/// Live counters per (org, user).
#[derive(Default)]
pub(crate) struct Protection {
    windows: Windows,
    pub limits: Mutex<ServiceLimits>,
}

/// Holds a concurrency slot until dropped.
pub(crate) struct Slot {
    windows: Option<(Windows, (String, String))>,
    /// `x-ms-ratelimit-*` headers for the response.
    pub remaining: Vec<(String, String)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((windows, key)) = self.windows.take() {
            let mut map = windows.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(w) = map.get_mut(&key) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
        }
    }
}

pub(crate) fn too_many(retry_after: u64) -> DvError {
    let mut e = error(
        StatusCode::TOO_MANY_REQUESTS,
        codes::TOO_MANY_REQUESTS,
        "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    );
    e.retry_after = Some(retry_after.max(1));
    e
}

impl Protection {
    /// The load record of every (org, user) that has sent a request.
    pub(crate) fn load(&self) -> Vec<DataverseLoad> {
        let map = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<DataverseLoad> = map.values().map(|w| w.load.clone()).collect();
        all.sort_by(|a, b| (&a.org, &a.user).cmp(&(&b.org, &b.user)));
        all
    }

    /// Admits a request or answers 429 with `Retry-After`.
    pub(crate) fn admit(
        &self,
        org: &str,
        user: &str,
        enforce: bool,
        now: Timestamp,
    ) -> Result<Slot, DvError> {
        let limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let limits = &limits;
        let key = (org.to_ascii_lowercase(), user.to_ascii_lowercase());
        let mut map = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = map.entry(key.clone()).or_default();
        w.load.arrivals += 1;
        w.load.peak_in_flight = w.load.peak_in_flight.max(w.in_flight + 1);
        if w.load.org.is_empty() {
            w.load.org = org.to_owned();
            w.load.user = user.to_owned();
        }
        let window = jiff::SignedDuration::from_secs(i64::try_from(limits.window_secs).unwrap_or(300));
        let start = now.checked_sub(window).unwrap_or(now);
        while w.requests.front().is_some_and(|(t, _)| *t <= start) {
            w.requests.pop_front();
        }
        let retry_after = || {
            w.requests
                .front()
                .map(|(t, _)| {
                    let leaves = t.checked_add(window).unwrap_or(now);
                    u64::try_from(leaves.duration_since(now).as_secs()).unwrap_or(0) + 1
                })
                .unwrap_or(1)
        };
        if enforce {
            if w.requests.len() >= limits.requests_per_window as usize {
                let mut e = too_many(retry_after());
                e.message = format!(
                    "Number of requests exceeded the limit of {} over time window of {} seconds.",
                    limits.requests_per_window, limits.window_secs
                );
                return Err(e);
            }
            let used: u64 = w.requests.iter().map(|(_, ms)| ms).sum();
            if used >= limits.execution_ms_per_window {
                let mut e = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::EXECUTION_TIME,
                    format!(
                        "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                        limits.execution_ms_per_window, limits.window_secs
                    ),
                );
                e.retry_after = Some(retry_after());
                return Err(e);
            }
            if w.in_flight >= limits.concurrent_requests {
                let arrival = w.load.arrivals;
                w.load.concurrency_rejections.push(arrival);
                let mut e = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::CONCURRENCY_LIMIT,
                    format!(
                        "Number of concurrent requests exceeded the limit of {}.",
                        limits.concurrent_requests
                    ),
                );
                e.retry_after = Some(1);
                return Err(e);
            }
        }
        w.requests.push_back((now, limits.execution_ms));
        w.in_flight += 1;
        let used: u64 = w.requests.iter().map(|(_, ms)| ms).sum();
        let remaining = vec![
            (
                "x-ms-ratelimit-burst-remaining-xrm-requests".to_owned(),
                (limits.requests_per_window as usize)
                    .saturating_sub(w.requests.len())
                    .to_string(),
            ),
            (
                "x-ms-ratelimit-time-remaining-xrm-requests".to_owned(),
                format!(
                    "{:.2}",
                    limits.execution_ms_per_window.saturating_sub(used) as f64 / 1000.0
                ),
            ),
        ];
        drop(map);
        Ok(Slot {
            windows: Some((self.windows.clone(), key)),
            remaining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_record_counts_arrivals_peaks_and_concurrency_refusals() {
        let protection = Protection::default();
        *protection.limits.lock().unwrap_or_else(PoisonError::into_inner) = ServiceLimits {
            concurrent_requests: 1,
            ..ServiceLimits::default()
        };
        let now = Timestamp::UNIX_EPOCH;
        let first = protection.admit("Org", "User", true, now);
        assert!(first.is_ok());
        let second = protection.admit("org", "user", true, now);
        let refused = second.err().map(|e| (e.code, e.retry_after));
        assert_eq!(refused, Some((codes::CONCURRENCY_LIMIT, Some(1))));
        drop(first);
        // Not enforced: counted all the same.
        let third = protection.admit("org", "user", false, now);
        assert!(third.is_ok());
        let load = protection.load();
        assert_eq!(load.len(), 1, "one (org, user), whatever the case: {load:?}");
        assert_eq!(
            (
                load[0].arrivals,
                load[0].peak_in_flight,
                load[0].concurrency_rejections.clone()
            ),
            (3, 2, vec![2])
        );
    }
}
