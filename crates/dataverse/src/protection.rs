//! Dataverse's service protection limits on the client side, per organisation
//! (`MICROSOFT-APIS.md` E7): per user and web server, 6,000 requests and 1,200 s of execution time
//! over a sliding 300 s window, and **52 concurrent requests**; past any of them Dataverse answers
//! 429 with `Retry-After`.
//!
//! One [`OrgLimits`] exists per organisation URL in the process, shared by every
//! [`crate::DataverseClient`] of that organisation (a contacts sync, a custom-table sync and a
//! connection test of one organisation may run at once, each with its own client). It holds:
//! - the Retry-After pause: after a 429 no request of the process goes to the organisation before
//!   the time has passed;
//! - the request budget under 6,000 / 300 s;
//! - the concurrency gate: at most `max_concurrent_requests` (≤ 52) in flight, lowered when
//!   Dataverse answers 429 `0x80072326` (too many concurrent requests; another integration may
//!   share the user) to the limit its message names, or to half when that is not below the
//!   current cap, and restored after a whole window without such an answer.
//!
//! Dataverse counts per user; the client knows the organisation, not the user behind its tokens,
//! so two users reading one organisation from one process share these limits: stricter than
//! needed, never looser.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Dataverse's sliding window for its limits.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Concurrent requests per user Dataverse allows.
pub(crate) const MAX_CONCURRENT: usize = 52;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The limits of every organisation this process talks to, by lower-cased organisation URL.
/// Entries are weak: an organisation nobody reads any more is forgotten.
static ORGS: LazyLock<Mutex<HashMap<String, Weak<OrgLimits>>>> = LazyLock::new(Mutex::default);

/// The shared limits of one organisation.
#[derive(Debug)]
pub(crate) struct OrgLimits {
    /// No request before this instant (the longest Retry-After received).
    not_before: Mutex<Option<Instant>>,
    /// When each request of the last window was sent.
    sent: Mutex<VecDeque<Instant>>,
    /// Requests allowed per window (the strictest of the clients' shares).
    budget: Mutex<usize>,
    gate: Mutex<Gate>,
    /// Woken when a request ends or the cap changes.
    changed: Notify,
}

#[derive(Debug)]
struct Gate {
    in_flight: usize,
    /// The configured maximum (the strictest of the clients').
    max: usize,
    /// What is allowed now: `max`, or lower after a concurrency 429.
    cap: usize,
    /// Bumped at each lowering: a 429 to a request let in before it was sent under the old
    /// cap and says nothing new.
    generation: u64,
    lowered_at: Option<Instant>,
}

/// A request in flight; the slot is freed when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<OrgLimits>,
    generation: u64,
}

impl Permit {
    /// The gate's generation when this request was let in.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.limits.gate).in_flight -= 1;
        self.limits.changed.notify_waiters();
    }
}

impl OrgLimits {
    /// The organisation's limits, shared with every other client of `org_url` in the process;
    /// `budget` and `max_concurrent` tighten them if they are stricter than what is set.
    pub(crate) fn of(org_url: &str, budget: usize, max_concurrent: usize) -> Arc<OrgLimits> {
        let key = org_url.trim_end_matches('/').to_ascii_lowercase();
        let max_concurrent = max_concurrent.clamp(1, MAX_CONCURRENT);
        let budget = budget.max(1);
        let mut orgs = lock(&ORGS);
        orgs.retain(|_, weak| weak.strong_count() > 0);
        if let Some(limits) = orgs.get(&key).and_then(Weak::upgrade) {
            {
                let mut b = lock(&limits.budget);
                *b = (*b).min(budget);
            }
            let mut gate = lock(&limits.gate);
            gate.max = gate.max.min(max_concurrent);
            gate.cap = gate.cap.min(gate.max);
            return limits.clone();
        }
        let limits = Arc::new(Self::new(budget, max_concurrent));
        orgs.insert(key, Arc::downgrade(&limits));
        limits
    }

    fn new(budget: usize, max_concurrent: usize) -> Self {
        OrgLimits {
            not_before: Mutex::new(None),
            sent: Mutex::new(VecDeque::new()),
            budget: Mutex::new(budget),
            gate: Mutex::new(Gate {
                in_flight: 0,
                max: max_concurrent,
                cap: max_concurrent,
                generation: 0,
                lowered_at: None,
            }),
            changed: Notify::new(),
        }
    }

    /// How long the organisation is still paused for, if at all.
    pub(crate) fn paused_for(&self) -> Option<Duration> {
        let until = (*lock(&self.not_before))?;
        let remaining = until.saturating_duration_since(Instant::now());
        (!remaining.is_zero()).then_some(remaining)
    }

    /// No request to the organisation for `wait` (a Retry-After), unless a longer pause holds.
    pub(crate) fn pause(&self, wait: Duration) {
        // An absurd Retry-After must not overflow the clock; a day is already "fail now".
        let now = Instant::now();
        let until = now
            .checked_add(wait.min(Duration::from_secs(86_400)))
            .unwrap_or(now);
        let mut nb = lock(&self.not_before);
        if nb.is_none_or(|t| t < until) {
            *nb = Some(until);
        }
    }

    /// Counts a request against the window's budget, or says how long until one fits.
    pub(crate) fn take_budget(&self) -> Option<Duration> {
        let budget = *lock(&self.budget);
        let mut sent = lock(&self.sent);
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            sent.pop_front();
        }
        if sent.len() < budget {
            sent.push_back(now);
            None
        } else {
            sent.front().map(|t| (*t + WINDOW).saturating_duration_since(now))
        }
    }

    /// Waits for a slot under the concurrency cap.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            // Registered before the check, so a slot freed in between still wakes us.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut gate = lock(&self.gate);
                if gate.cap < gate.max
                    && gate
                        .lowered_at
                        .is_some_and(|t| Instant::now().saturating_duration_since(t) >= WINDOW)
                {
                    // A whole window without a concurrency 429: whoever crowded the user is gone.
                    gate.cap = gate.max;
                    gate.lowered_at = None;
                }
                if gate.in_flight < gate.cap {
                    gate.in_flight += 1;
                    return Permit {
                        limits: self.clone(),
                        generation: gate.generation,
                    };
                }
            }
            notified.await;
        }
    }

    /// Dataverse answered 429 `0x80072326` (too many concurrent requests) to a request let in at
    /// `generation`, with `message`. Lowers the cap to the limit the message names ("…exceeded the
    /// limit of 52.") when that is below the cap, else to half the cap (someone else uses part of
    /// the user's 52). Once per generation: the other requests already in flight were sent under
    /// the old cap, and their 429s say nothing new.
    pub(crate) fn too_many_concurrent(&self, generation: u64, message: &str) {
        let mut gate = lock(&self.gate);
        if generation < gate.generation {
            return;
        }
        gate.cap = match named_limit(message) {
            Some(limit) if limit < gate.cap => limit,
            _ => gate.cap / 2,
        }
        .max(1);
        gate.generation += 1;
        gate.lowered_at = Some(Instant::now());
        drop(gate);
        self.changed.notify_waiters();
    }

    /// Requests allowed in flight now.
    #[cfg(test)]
    pub(crate) fn cap(&self) -> usize {
        lock(&self.gate).cap
    }
}

/// The number in "Number of concurrent requests exceeded the limit of 52." (the documented
/// message), if the message has one.
fn named_limit(message: &str) -> Option<usize> {
    let (_, after) = message.split_once("limit of ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMED: &str = "Number of concurrent requests exceeded the limit of 4.";

    #[test]
    fn the_limit_is_read_from_dataverse_message() {
        assert_eq!(named_limit(NAMED), Some(4));
        assert_eq!(
            named_limit("Number of concurrent requests exceeded the limit of 52."),
            Some(52)
        );
        assert_eq!(named_limit("Too many requests"), None);
        assert_eq!(named_limit("the limit of 0."), None);
    }

    #[test]
    fn clients_of_one_organisation_share_its_limits() {
        let a = OrgLimits::of("https://share.crm.dynamics.com", 5_400, 16);
        let b = OrgLimits::of("HTTPS://Share.crm.dynamics.com/", 5_400, 8);
        let other = OrgLimits::of("https://elsewhere.crm.dynamics.com", 5_400, 16);
        assert!(Arc::ptr_eq(&a, &b), "one organisation, one set of limits");
        assert!(!Arc::ptr_eq(&a, &other));
        // The strictest client's settings hold for both.
        assert_eq!(a.cap(), 8);
        // Nobody may ask for more than Dataverse's 52.
        assert_eq!(OrgLimits::of("https://many.crm.dynamics.com", 1, 500).cap(), 52);
    }

    #[tokio::test(start_paused = true)]
    async fn a_concurrency_429_lowers_the_cap_once_per_generation_and_a_quiet_window_restores_it() {
        let limits = Arc::new(OrgLimits::new(100, 16));
        let early: Vec<Permit> = acquire_n(&limits, 6).await;
        // The first 429 names Dataverse's limit: the cap becomes 4.
        limits.too_many_concurrent(early[0].generation(), NAMED);
        assert_eq!(limits.cap(), 4);
        // Its siblings, sent under the old cap, change nothing.
        limits.too_many_concurrent(early[1].generation(), NAMED);
        assert_eq!(limits.cap(), 4);
        drop(early);
        // A 429 to a request sent under the new cap, naming no lower limit: halve.
        let late = limits.acquire().await;
        limits.too_many_concurrent(late.generation(), NAMED);
        assert_eq!(limits.cap(), 2);
        drop(late);
        // A whole window later without another, the configured maximum is back.
        tokio::time::advance(WINDOW).await;
        let _p = limits.acquire().await;
        assert_eq!(limits.cap(), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_requests_in_flight_than_the_cap() {
        let limits = Arc::new(OrgLimits::new(100, 16));
        let first = limits.acquire().await;
        limits.too_many_concurrent(first.generation(), "…exceeded the limit of 2.");
        let second = limits.acquire().await;
        // Two in flight (the first still is): a third waits…
        let third = tokio::time::timeout(Duration::from_secs(60), limits.acquire()).await;
        assert!(third.is_err(), "a third request went out with the cap at 2");
        // …until one ends.
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), limits.acquire()).await;
        assert!(third.is_ok(), "a freed slot was not handed on");
        drop(second);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_and_the_pause() {
        let limits = OrgLimits::new(2, 16);
        assert_eq!(limits.take_budget(), None);
        assert_eq!(limits.take_budget(), None);
        assert_eq!(limits.take_budget(), Some(WINDOW));
        limits.pause(Duration::from_secs(3));
        limits.pause(Duration::from_secs(1));
        assert_eq!(limits.paused_for(), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(limits.paused_for(), None);
    }

    async fn acquire_n(limits: &Arc<OrgLimits>, n: usize) -> Vec<Permit> {
        let mut permits = Vec::with_capacity(n);
        for _ in 0..n {
            permits.push(limits.acquire().await);
        }
        permits
    }
}
