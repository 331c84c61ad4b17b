//! Microsoft's identity-and-access resource-unit (RU) model, applied on the client side so a large
//! run waits for budget instead of being throttled.

use std::time::Duration;

use tokio::time::Instant;

/// Per app + tenant RU limit per 10 s, by tenant size (Microsoft's S / M / L tiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantSize {
    /// Fewer than 50 users: 3,500 RU / 10 s. The default until the size is known.
    #[default]
    Small,
    /// 50–500 users: 5,000 RU / 10 s.
    Medium,
    /// More than 500 users: 8,000 RU / 10 s.
    Large,
}

impl TenantSize {
    pub fn from_user_count(users: u64) -> Self {
        match users {
            0..50 => TenantSize::Small,
            50..=500 => TenantSize::Medium,
            _ => TenantSize::Large,
        }
    }

    pub fn resource_units_per_10s(self) -> u32 {
        match self {
            TenantSize::Small => 3_500,
            TenantSize::Medium => 5_000,
            TenantSize::Large => 8_000,
        }
    }
}

/// Per app across all tenants: 150,000 RU per 20 s.
pub const APP_RESOURCE_UNITS_PER_20S: u32 = 150_000;

/// Intune managed devices: 2,000 requests per 20 s per app + tenant.
pub const INTUNE_REQUESTS_PER_20S: u32 = 2_000;

/// RU cost of one request (one page), per Microsoft's table: `users` 2, `groups/{id}/members` 3,
/// `transitiveMembers` 5, `subscribedSkus` 3, `memberOf` 2, `licenseDetails` 2, `getByIds` 5,
/// everything else (incl. delta and organization) 1; `$select` −1, `$expand` +1, `$top` < 20 −1;
/// minimum 1. `path_and_query` is relative to the version root, e.g. `/users?$select=id`.
pub fn resource_unit_cost(path_and_query: &str) -> u32 {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let last = segments.last().map(String::as_str).unwrap_or_default();
    let first = segments.first().map(String::as_str).unwrap_or_default();
    let base: i32 = if last == "delta" {
        1
    } else if last == "transitivemembers" {
        5
    } else if last == "members" && first == "groups" {
        3
    } else if matches!(last, "getbyids" | "getobjectsbyid") {
        5
    } else if last == "subscribedskus" {
        3
    } else if matches!(last, "memberof" | "licensedetails") || (first == "users" && segments.len() <= 2) {
        2
    } else {
        1
    };
    let mut cost = base;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = key.replace("%24", "$").to_ascii_lowercase();
        match key.as_str() {
            "$select" => cost -= 1,
            "$expand" => cost += 1,
            "$top" if value.parse::<u32>().is_ok_and(|top| top < 20) => cost -= 1,
            _ => {}
        }
    }
    u32::try_from(cost.max(1)).unwrap_or(1)
}

/// A token bucket where requests reserve their cost up front: when the bucket runs dry, each
/// caller learns how long to wait for its share, so concurrent callers queue instead of racing.
#[derive(Debug)]
pub(crate) struct Bucket {
    capacity: f64,
    per_second: f64,
    available: f64,
    updated: Instant,
}

impl Bucket {
    pub(crate) fn new(limit: u32, window: Duration, now: Instant) -> Self {
        let capacity = f64::from(limit.max(1));
        Bucket {
            capacity,
            per_second: capacity / window.as_secs_f64().max(0.001),
            available: capacity,
            updated: now,
        }
    }

    /// Changes the limit (e.g. once the tenant's size is known), keeping what is already spent.
    pub(crate) fn set_limit(&mut self, limit: u32, window: Duration, now: Instant) {
        self.refill(now);
        let capacity = f64::from(limit.max(1));
        self.available += capacity - self.capacity;
        self.capacity = capacity;
        self.per_second = capacity / window.as_secs_f64().max(0.001);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.available = (self.available + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }

    /// Takes `cost` and returns how long the caller must wait before sending.
    pub(crate) fn reserve(&mut self, cost: u32, now: Instant) -> Duration {
        self.refill(now);
        self.available -= f64::from(cost);
        if self.available >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.available / self.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_microsofts_table() {
        assert_eq!(resource_unit_cost("/users"), 2);
        assert_eq!(resource_unit_cost("/users?$select=id,displayName&$top=999"), 1);
        assert_eq!(resource_unit_cost("/users/abc"), 2);
        assert_eq!(resource_unit_cost("/users?$expand=manager"), 3);
        assert_eq!(resource_unit_cost("/users?$top=5"), 1);
        assert_eq!(resource_unit_cost("/groups"), 1);
        assert_eq!(resource_unit_cost("/groups?$select=id"), 1, "minimum 1");
        assert_eq!(resource_unit_cost("/groups/g1/members"), 3);
        assert_eq!(resource_unit_cost("/groups/g1/members?$select=id"), 2);
        assert_eq!(resource_unit_cost("/groups/g1/transitiveMembers"), 5);
        assert_eq!(resource_unit_cost("/subscribedSkus"), 3);
        assert_eq!(resource_unit_cost("/users/u1/memberOf"), 2);
        assert_eq!(resource_unit_cost("/users/u1/licenseDetails"), 2);
        assert_eq!(resource_unit_cost("/users/delta?$select=id"), 1);
        assert_eq!(resource_unit_cost("/organization"), 1);
        assert_eq!(resource_unit_cost("/directoryObjects/getByIds"), 5);
        assert_eq!(resource_unit_cost("/users?%24select=id"), 1);
    }

    #[test]
    fn tenant_sizes() {
        assert_eq!(TenantSize::from_user_count(49).resource_units_per_10s(), 3_500);
        assert_eq!(TenantSize::from_user_count(50).resource_units_per_10s(), 5_000);
        assert_eq!(TenantSize::from_user_count(501).resource_units_per_10s(), 8_000);
    }

    #[test]
    fn bucket_makes_callers_queue_once_dry() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, Duration::from_secs(10), start);
        for _ in 0..5 {
            assert_eq!(bucket.reserve(2, start), Duration::ZERO);
        }
        // Dry: the next 2 RU need 2 s of refill at 1 RU/s, the one after 4 s.
        assert_eq!(bucket.reserve(2, start), Duration::from_secs(2));
        assert_eq!(bucket.reserve(2, start), Duration::from_secs(4));
        // After 10 s the debt (4) is repaid and 6 RU are back.
        assert_eq!(bucket.reserve(6, start + Duration::from_secs(10)), Duration::ZERO);
    }

    #[test]
    fn raising_the_limit_adds_the_difference() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, Duration::from_secs(10), start);
        bucket.reserve(10, start);
        bucket.set_limit(20, Duration::from_secs(10), start);
        assert_eq!(bucket.reserve(10, start), Duration::ZERO);
        assert!(bucket.reserve(1, start) > Duration::ZERO);
    }
}
