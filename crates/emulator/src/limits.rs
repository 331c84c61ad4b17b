//! Graph's throttling model (resource units, token buckets) and injectable faults.
//!
//! Buckets refill continuously from the injected clock. Everything here is off by default.
use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Fault-injection and throttling switches. All off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Enforce the resource-unit buckets (429 with Retry-After when exhausted).
    pub throttling: bool,
    /// Added to every response.
    pub latency_ms: u64,
    /// Percentages (0–100) of Graph requests answered with that status.
    pub random_429_percent: f64,
    pub random_503_percent: f64,
    pub random_504_percent: f64,
    /// Percentage of Graph requests whose connection is dropped mid-response.
    pub dropped_connection_percent: f64,
    /// Percentage of collection pages answered with truncated JSON.
    pub malformed_page_percent: f64,
    /// Retry-After (seconds) on injected 429/503.
    pub retry_after_secs: u64,
    /// Delta and skip tokens older than this are rejected with 410 (Graph: 7 days).
    pub max_delta_token_age_secs: u64,
    /// Delta tokens issued at or before this instant are rejected (the admin API's
    /// `"expire_delta_tokens_now": true` sets it).
    pub delta_tokens_expired_before: Option<Timestamp>,
    /// Client ids whose secrets are treated as expired (AADSTS7000222).
    pub expired_secret_apps: Vec<String>,
    /// Incremental delta pages repeat some entries (clients must be idempotent).
    pub delta_replays: bool,
    /// Collection pages hold at most this many items whatever `$top` asks (Graph's `$top` is a
    /// maximum: the service may return fewer), so small tenants read in many pages.
    pub max_page_size: Option<usize>,
    /// The user listing's page with this number (1 for the first) is answered with truncated
    /// JSON every time it is asked for: a page no retry can read.
    pub malformed_users_page: Option<usize>,
    /// Properties of users rendered with another value than the world holds (user id →
    /// property → raw JSON value): wrong types, oversize values, what a client must refuse.
    pub corrupt_user_properties: Vec<(String, String, serde_json::Value)>,
    /// Intune's 429s come without `Retry-After` (reported of the real service; a client must
    /// then back off on its own). Off: they carry it, as Graph's throttling guidance promises.
    pub intune_429_without_retry_after: bool,
    /// Delta 410s (`resyncRequired`, `syncStateNotFound`) come without the `Location` header: the
    /// client must restart with a delta query without a token on its own.
    pub resync_without_location: bool,
    /// The `Location` of delta 410s is itself refused when followed (410 `syncStateNotFound`): a
    /// client must then restart with a delta query without a token rather than give up.
    pub resync_location_refused: bool,
    /// `$deltatoken=latest` is answered 400 (a service that does not take it): a client must not
    /// need it to start tracking or to recover from a resync.
    pub refuse_latest_delta_token: bool,
    /// Seed of the fault dice.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            throttling: false,
            latency_ms: 0,
            random_429_percent: 0.0,
            random_503_percent: 0.0,
            random_504_percent: 0.0,
            dropped_connection_percent: 0.0,
            malformed_page_percent: 0.0,
            retry_after_secs: 2,
            max_delta_token_age_secs: 7 * 24 * 3600,
            delta_tokens_expired_before: None,
            expired_secret_apps: vec![],
            delta_replays: false,
            max_page_size: None,
            malformed_users_page: None,
            corrupt_user_properties: Vec::new(),
            intune_429_without_retry_after: false,
            resync_without_location: false,
            resync_location_refused: false,
            refuse_latest_delta_token: false,
            seed: 1,
        }
    }
}

/// Which bucket family a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// Identity and access (users, groups, directory): resource units.
    Directory,
    /// Intune devices: requests.
    Intune,
    /// Anything else: not throttled by the model.
    Other,
}

#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Timestamp,
}

impl Bucket {
    fn new(capacity: f64, window_secs: f64, now: Timestamp) -> Self {
        Self {
            capacity,
            per_second: capacity / window_secs,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Seconds until `cost` is available.
    fn wait_for(&self, cost: f64) -> u64 {
        let missing = (cost - self.tokens).max(0.0);
        (missing / self.per_second).ceil().max(1.0) as u64
    }
}

/// Outcome of charging a request.
#[derive(Debug, Clone)]
pub(crate) enum Charge {
    Allowed {
        used_fraction: f64,
    },
    Throttled {
        retry_after: u64,
        scope: String,
        information: &'static str,
        /// Intune's own limits answer with Intune's error body and without the
        /// identity-and-access throttling headers.
        intune: bool,
    },
}

/// Graph's global limit: requests per app across all tenants, and its window in seconds.
const GLOBAL: (f64, f64) = (130_000.0, 10.0);
/// Intune's device limits (Graph's throttling-limits "Intune devices"), per 20 s: all requests
/// and writes, per app + tenant and per tenant for all apps.
const INTUNE_WINDOW_SECS: f64 = 20.0;
const INTUNE_APP_TENANT: f64 = 2_000.0;
const INTUNE_APP_TENANT_WRITES: f64 = 200.0;
const INTUNE_TENANT: f64 = 4_000.0;
const INTUNE_TENANT_WRITES: f64 = 400.0;

/// Token buckets per app + tenant (by tenant size), per app, the global per-app limit, and
/// Intune's buckets.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    app_tenant: HashMap<(String, String), Bucket>,
    app: HashMap<String, Bucket>,
    global: HashMap<String, Bucket>,
    intune: HashMap<(String, String), Bucket>,
    intune_writes: HashMap<(String, String), Bucket>,
    intune_tenant: HashMap<String, Bucket>,
    intune_tenant_writes: HashMap<String, Bucket>,
    writes: HashMap<(String, String), Bucket>,
}

/// The bucket under `key`, created full and refilled up to `now`.
fn bucket<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Bucket>,
    key: K,
    capacity: f64,
    window_secs: f64,
    now: Timestamp,
) -> &mut Bucket {
    let b = map
        .entry(key)
        .or_insert_with(|| Bucket::new(capacity, window_secs, now));
    b.refill(now);
    b
}

impl Throttle {
    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
    pub(crate) fn charge(
        &mut self,
        family: Family,
        app: &str,
        tenant: &str,
        tenant_users: usize,
        cost: u32,
        write: bool,
        now: Timestamp,
    ) -> Charge {
        // Every Graph request counts against the global limit first; the service's own limits
        // apply on top, and the first one reached throttles.
        let global = bucket(&mut self.global, app.to_owned(), GLOBAL.0, GLOBAL.1, now);
        if global.tokens < 1.0 {
            return Charge::Throttled {
                retry_after: global.wait_for(1.0),
                scope: format!("Application/130000/{app}/{tenant}"),
                information: "ResourceUnitLimitExceeded",
                intune: false,
            };
        }
        let charge = match family {
            Family::Other => Charge::Allowed { used_fraction: 0.0 },
            Family::Intune => self.charge_intune(app, tenant, write, now),
            Family::Directory => {
                self.charge_directory(app, tenant, tenant_users, f64::from(cost), write, now)
            }
        };
        if matches!(charge, Charge::Allowed { .. })
            && let Some(global) = self.global.get_mut(app)
        {
            global.tokens -= 1.0;
        }
        charge
    }

    /// Intune: requests (not resource units) per app + tenant and per tenant, writes separately;
    /// nothing is consumed unless every bucket has room.
    fn charge_intune(&mut self, app: &str, tenant: &str, write: bool, now: Timestamp) -> Charge {
        let key = (app.to_owned(), tenant.to_owned());
        let w = INTUNE_WINDOW_SECS;
        bucket(&mut self.intune_tenant, tenant.to_owned(), INTUNE_TENANT, w, now);
        bucket(&mut self.intune, key.clone(), INTUNE_APP_TENANT, w, now);
        if write {
            bucket(
                &mut self.intune_tenant_writes,
                tenant.to_owned(),
                INTUNE_TENANT_WRITES,
                w,
                now,
            );
            bucket(
                &mut self.intune_writes,
                key.clone(),
                INTUNE_APP_TENANT_WRITES,
                w,
                now,
            );
        }
        let limits = [
            (self.intune_tenant.get(tenant), "Intune_Tenant/4000"),
            (self.intune.get(&key), "Intune/2000"),
            (
                self.intune_tenant_writes.get(tenant).filter(|_| write),
                "Intune_Tenant_Writes/400",
            ),
            (
                self.intune_writes.get(&key).filter(|_| write),
                "Intune_Writes/200",
            ),
        ];
        for (b, scope) in limits {
            if let Some(b) = b
                && b.tokens < 1.0
            {
                return Charge::Throttled {
                    retry_after: b.wait_for(1.0),
                    scope: format!("{scope}/{app}/{tenant}"),
                    information: "ResourceUnitLimitExceeded",
                    intune: true,
                };
            }
        }
        let mut used: f64 = 0.0;
        let mut take = |b: Option<&mut Bucket>| {
            if let Some(b) = b {
                b.tokens -= 1.0;
                used = used.max(1.0 - b.tokens / b.capacity);
            }
        };
        take(self.intune_tenant.get_mut(tenant));
        take(self.intune.get_mut(&key));
        if write {
            take(self.intune_tenant_writes.get_mut(tenant));
            take(self.intune_writes.get_mut(&key));
        }
        Charge::Allowed { used_fraction: used }
    }

    fn charge_directory(
        &mut self,
        app: &str,
        tenant: &str,
        tenant_users: usize,
        cost: f64,
        write: bool,
        now: Timestamp,
    ) -> Charge {
        let limit = match tenant_users {
            0..50 => 3_500.0,
            50..=500 => 5_000.0,
            _ => 8_000.0,
        };
        let key = (app.to_owned(), tenant.to_owned());
        if write {
            let w = bucket(&mut self.writes, key.clone(), 3_000.0, 150.0, now);
            if w.tokens < 1.0 {
                return Charge::Throttled {
                    retry_after: w.wait_for(1.0),
                    scope: format!("Tenant_Application/3000/{app}/{tenant}"),
                    information: "WriteLimitExceeded",
                    intune: false,
                };
            }
        }
        let per_app = bucket(&mut self.app, app.to_owned(), 150_000.0, 20.0, now);
        if per_app.tokens < cost {
            return Charge::Throttled {
                retry_after: per_app.wait_for(cost),
                scope: format!("Application/150000/{app}/{tenant}"),
                information: "ResourceUnitLimitExceeded",
                intune: false,
            };
        }
        let tenant_bucket = bucket(&mut self.app_tenant, key.clone(), limit, 10.0, now);
        if tenant_bucket.tokens < cost {
            return Charge::Throttled {
                retry_after: tenant_bucket.wait_for(cost),
                scope: format!("Tenant_Application/{limit}/{app}/{tenant}"),
                information: "ResourceUnitLimitExceeded",
                intune: false,
            };
        }
        tenant_bucket.tokens -= cost;
        let used = 1.0 - tenant_bucket.tokens / tenant_bucket.capacity;
        if let Some(per_app) = self.app.get_mut(app) {
            per_app.tokens -= cost;
        }
        if write && let Some(w) = self.writes.get_mut(&key) {
            w.tokens -= 1.0;
        }
        Charge::Allowed { used_fraction: used }
    }
}

/// Resource-unit cost of a request (Graph's identity-and-access table).
pub(crate) fn resource_units(base: u32, has_select: bool, has_expand: bool, top: Option<usize>) -> u32 {
    let mut cost = i64::from(base);
    if has_select {
        cost -= 1;
    }
    if has_expand {
        cost += 1;
    }
    if top.is_some_and(|t| t < 20) {
        cost -= 1;
    }
    u32::try_from(cost.max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_modifiers_with_a_floor_of_one() {
        assert_eq!(resource_units(2, false, false, None), 2);
        assert_eq!(resource_units(2, true, false, None), 1);
        assert_eq!(resource_units(2, true, true, Some(5)), 1);
        assert_eq!(resource_units(5, false, true, Some(999)), 6);
        assert_eq!(resource_units(1, true, false, Some(1)), 1);
    }

    #[test]
    fn small_tenant_bucket_runs_dry_and_refills() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut throttle = Throttle::default();
        let mut allowed = 0;
        loop {
            match throttle.charge(Family::Directory, "app", "t", 10, 2, false, t0) {
                Charge::Allowed { .. } => allowed += 1,
                Charge::Throttled {
                    retry_after, scope, ..
                } => {
                    assert!(retry_after >= 1);
                    assert!(scope.starts_with("Tenant_Application/3500/app/t"));
                    break;
                }
            }
        }
        assert_eq!(allowed, 1750);
        let later = t0.checked_add(jiff::SignedDuration::from_secs(10)).unwrap();
        assert!(matches!(
            throttle.charge(Family::Directory, "app", "t", 10, 2, false, later),
            Charge::Allowed { .. }
        ));
    }

    #[test]
    fn intune_and_write_buckets_have_their_own_limits() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut throttle = Throttle::default();
        for _ in 0..2_000 {
            assert!(matches!(
                throttle.charge(Family::Intune, "app", "t", 10, 1, false, t0),
                Charge::Allowed { .. }
            ));
        }
        match throttle.charge(Family::Intune, "app", "t", 10, 1, false, t0) {
            Charge::Throttled { scope, .. } => assert!(scope.starts_with("Intune/2000/")),
            other => panic!("expected a throttle, got {other:?}"),
        }
        // Directory calls of the same app are not affected by the Intune bucket.
        assert!(matches!(
            throttle.charge(Family::Directory, "app", "t", 10, 1, false, t0),
            Charge::Allowed { .. }
        ));
        // Writes: 3,000 per 150 s per app + tenant, in a large tenant.
        let mut writes = 0;
        let information = loop {
            match throttle.charge(Family::Directory, "app", "big", 5_000, 1, true, t0) {
                Charge::Allowed { .. } => writes += 1,
                Charge::Throttled { information, .. } => break information,
            }
        };
        assert_eq!((writes, information), (3_000, "WriteLimitExceeded"));
        assert!(matches!(
            throttle.charge(Family::Other, "app", "t", 10, 1, false, t0),
            Charge::Allowed { .. }
        ));
    }

    #[test]
    fn intune_limits_per_tenant_and_for_writes_come_on_top() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut throttle = Throttle::default();
        let mut run = |app: &str, write: bool| {
            let mut allowed = 0;
            loop {
                match throttle.charge(Family::Intune, app, "t", 10, 1, write, t0) {
                    Charge::Allowed { .. } => allowed += 1,
                    Charge::Throttled { scope, intune, .. } => {
                        assert!(intune);
                        break (allowed, scope);
                    }
                }
            }
        };
        // Writes: 200 per app + tenant; they count as requests too.
        let (writes, scope) = run("a", true);
        assert_eq!(writes, 200);
        assert!(scope.starts_with("Intune_Writes/200/a/t"), "{scope}");
        assert_eq!(run("a", false).0, 1_800);
        // 4,000 per tenant for all apps: a second app has 2,000 of its own, a third only what
        // the tenant has left.
        assert_eq!(run("b", false).0, 2_000);
        let (left, scope) = run("c", false);
        assert_eq!(left, 0);
        assert!(scope.starts_with("Intune_Tenant/4000/"), "{scope}");
    }

    #[test]
    fn the_global_limit_counts_every_request_of_an_app() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut throttle = Throttle::default();
        let mut served = 0u32;
        // Spread over many tenants so no per-tenant limit is reached first.
        let scope = loop {
            let tenant = format!("t{}", served / 1_000);
            let family = if served.is_multiple_of(2) {
                Family::Intune
            } else {
                Family::Other
            };
            match throttle.charge(family, "app", &tenant, 10, 1, false, t0) {
                Charge::Allowed { .. } => served += 1,
                Charge::Throttled { scope, intune, .. } => {
                    assert!(!intune);
                    break scope;
                }
            }
        };
        assert_eq!(served, 130_000);
        assert!(scope.starts_with("Application/130000/app/"), "{scope}");
    }
}
