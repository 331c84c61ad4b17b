//! The floor model of `../shared/docs/PERFORMANCE.md`, computed from an actual dataset: the least
//! time Microsoft's limits and the request latency allow for a full sync or a delta round.

use std::collections::BTreeMap;

use deskbridge_emulator::World;
use serde::Serialize;

/// Microsoft's per-app identity limit: 150,000 RU / 20 s.
pub const APP_RU_PER_SECOND: f64 = 7_500.0;
/// Graph's per-app request limit: 130,000 requests / 10 s.
pub const APP_REQUESTS_PER_SECOND: f64 = 13_000.0;
/// Largest `$top` for users, groups and members.
pub const PAGE: u64 = 999;
/// Server-chosen delta page sizes (the emulator's defaults: 200 users, 50 groups).
pub const DELTA_PAGE_USERS: u64 = 200;
pub const DELTA_PAGE_GROUPS: u64 = 50;

/// What one tenant holds, as the floor model counts it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TenantShape {
    pub users: u64,
    pub groups: u64,
    /// Members (of every kind) of each live group.
    pub members: Vec<u64>,
}

impl TenantShape {
    /// Per-tenant RU tier Q_t: 3,500 (< 50 users), 5,000 (50–500), 8,000 (> 500) per 10 s.
    pub fn ru_per_10s(&self) -> f64 {
        match self.users {
            0..50 => 3_500.0,
            50..=500 => 5_000.0,
            _ => 8_000.0,
        }
    }

    fn pages(n: u64, size: u64) -> u64 {
        // Every listing costs at least one request, even an empty one: the model's ⌈n/999⌉ is
        // read as max(1, ⌈n/999⌉).
        n.div_ceil(size).max(1)
    }

    /// Σ_g ⌈m_g/999⌉: the member listing requests.
    pub fn member_requests(&self) -> u64 {
        self.members.iter().map(|&m| Self::pages(m, PAGE)).sum()
    }

    /// R_t = ⌈M/999⌉ + ⌈K/999⌉ + Σ_g ⌈m_g/999⌉ + 1.
    pub fn full_requests(&self) -> u64 {
        Self::pages(self.users, PAGE) + Self::pages(self.groups, PAGE) + self.member_requests() + 1
    }

    /// RU_t = ⌈M/999⌉ + ⌈K/999⌉ + 2·Σ_g ⌈m_g/999⌉ + 3.
    pub fn full_resource_units(&self) -> u64 {
        Self::pages(self.users, PAGE) + Self::pages(self.groups, PAGE) + 2 * self.member_requests() + 3
    }
}

/// The shape of every customer tenant of a world (soft-deleted users and groups left out).
pub fn shapes(world: &World) -> BTreeMap<String, TenantShape> {
    world
        .customer_tenants()
        .map(|t| {
            let members = t
                .live_groups()
                .map(|g| g.members.iter().filter(|m| t.member_is_live(m)).count() as u64)
                .collect::<Vec<_>>();
            (
                t.id.clone(),
                TenantShape {
                    users: t.user_count() as u64,
                    groups: members.len() as u64,
                    members,
                },
            )
        })
        .collect()
}

/// The settings the floor depends on.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FloorSettings {
    /// ℓ, seconds per request.
    pub latency_s: f64,
    /// C: requests in flight across the app.
    pub app_concurrency: u64,
    /// c: requests in flight per tenant.
    pub tenant_concurrency: u64,
}

/// A floor and the terms it is the maximum of.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    pub seconds: f64,
    /// The term that decides the floor.
    pub binding: String,
    pub terms: BTreeMap<String, f64>,
    pub requests: u64,
    pub resource_units: u64,
}

fn floor_of(terms: BTreeMap<String, f64>, requests: u64, resource_units: u64) -> Floor {
    let (binding, seconds) = terms
        .iter()
        .fold(("none".to_owned(), 0.0_f64), |(name, best), (k, v)| {
            if *v > best { (k.clone(), *v) } else { (name, best) }
        });
    Floor {
        seconds,
        binding,
        terms,
        requests,
        resource_units,
    }
}

/// T_full ≥ max(ΣRU/7,500, ΣR/13,000, ΣR·ℓ/C, max_t[RU_t/(Q_t/10), ⌈M_t/999⌉·ℓ, Σ_g⌈m_g/999⌉·ℓ/c]).
pub fn full_sync<'a>(tenants: impl IntoIterator<Item = &'a TenantShape>, s: FloorSettings) -> Floor {
    let (mut requests, mut units) = (0_u64, 0_u64);
    let (mut tenant_ru, mut chain, mut members) = (0.0_f64, 0.0_f64, 0.0_f64);
    let c = s.tenant_concurrency.max(1) as f64;
    for t in tenants {
        requests += t.full_requests();
        units += t.full_resource_units();
        tenant_ru = tenant_ru.max(t.full_resource_units() as f64 / (t.ru_per_10s() / 10.0));
        chain = chain.max(TenantShape::pages(t.users, PAGE) as f64 * s.latency_s);
        members = members.max(t.member_requests() as f64 * s.latency_s / c);
    }
    let terms = BTreeMap::from([
        ("app_resource_units".to_owned(), units as f64 / APP_RU_PER_SECOND),
        (
            "app_requests".to_owned(),
            requests as f64 / APP_REQUESTS_PER_SECOND,
        ),
        (
            "latency_over_app_concurrency".to_owned(),
            requests as f64 * s.latency_s / s.app_concurrency.max(1) as f64,
        ),
        ("tenant_resource_units".to_owned(), tenant_ru),
        ("tenant_users_chain".to_owned(), chain),
        ("tenant_members_over_tenant_concurrency".to_owned(), members),
    ]);
    floor_of(terms, requests, units)
}

/// Intune's page of managed devices (not documented; what third parties report and the emulator
/// serves).
pub const DEVICE_PAGE: u64 = 1_000;
/// Intune's own limit: 2,000 requests / 20 s per app and tenant.
pub const INTUNE_REQUESTS_PER_SECOND: f64 = 100.0;

/// An asset run: each tenant's devices read a page at a time (no delta exists for them), under
/// Graph's per-app limit, Intune's per-tenant limit and the latency of each tenant's page chain.
pub fn device_import(devices_per_tenant: impl IntoIterator<Item = u64>, s: FloorSettings) -> Floor {
    let (mut requests, mut intune, mut chain) = (0_u64, 0.0_f64, 0.0_f64);
    for devices in devices_per_tenant {
        let pages = devices.max(1).div_ceil(DEVICE_PAGE);
        requests += pages;
        intune = intune.max(pages as f64 / INTUNE_REQUESTS_PER_SECOND);
        chain = chain.max(pages as f64 * s.latency_s);
    }
    let terms = BTreeMap::from([
        (
            "app_requests".to_owned(),
            requests as f64 / APP_REQUESTS_PER_SECOND,
        ),
        (
            "latency_over_app_concurrency".to_owned(),
            requests as f64 * s.latency_s / s.app_concurrency.max(1) as f64,
        ),
        ("tenant_intune_requests".to_owned(), intune),
        ("tenant_devices_chain".to_owned(), chain),
    ]);
    floor_of(terms, requests, 0)
}

/// Partner Center's customers page as the CSP connector asks for it (`size=100`).
pub const PC_CUSTOMERS_PAGE: u64 = 100;
/// The partner tenant's GDAP relationships page as the CSP connector asks for it (`$top=300`).
pub const GDAP_RELATIONSHIPS_PAGE: u64 = 300;

/// A CSP connection's full sync and what reading its tenants one after another costs at best.
#[derive(Debug, Clone, Serialize)]
pub struct CspFloor {
    pub floor: Floor,
    /// The least time with the tenants read one after another, as the CSP connector reads them
    /// today: discovery, then each tenant's user page chain (its subscribed SKUs beside it).
    pub one_after_another_seconds: f64,
}

/// A CSP connection's full sync: discovery reads Partner Center's customers (⌈P/100⌉ pages) and
/// the partner tenant's GDAP relationships (⌈G/300⌉ pages, 1 RU each), the two chains side by
/// side; then each tenant t costs R_t = ⌈M_t/999⌉ user pages + 1 subscribedSkus and
/// RU_t = ⌈M_t/999⌉ + 3 (the default mappings use no groups, so no group or member listing).
/// T ≥ max(discovery chain + max_t ⌈M_t/999⌉·ℓ, ΣR·ℓ/C, ΣRU/7,500, ΣR/13,000, max_t RU_t/(Q_t/10)).
pub fn csp_full_sync<'a>(
    customers: u64,
    relationships: u64,
    tenants: impl IntoIterator<Item = &'a TenantShape>,
    s: FloorSettings,
) -> CspFloor {
    let customer_pages = TenantShape::pages(customers, PC_CUSTOMERS_PAGE);
    let relationship_pages = TenantShape::pages(relationships, GDAP_RELATIONSHIPS_PAGE);
    let discovery = customer_pages.max(relationship_pages) as f64 * s.latency_s;
    let (mut requests, mut units) = (customer_pages + relationship_pages, relationship_pages);
    let (mut tenant_ru, mut longest, mut chains) = (0.0_f64, 0_u64, 0_u64);
    for t in tenants {
        let pages = TenantShape::pages(t.users, PAGE);
        requests += pages + 1;
        units += pages + 3;
        tenant_ru = tenant_ru.max((pages + 3) as f64 / (t.ru_per_10s() / 10.0));
        longest = longest.max(pages);
        chains += pages;
    }
    let terms = BTreeMap::from([
        ("app_resource_units".to_owned(), units as f64 / APP_RU_PER_SECOND),
        (
            "app_requests".to_owned(),
            requests as f64 / APP_REQUESTS_PER_SECOND,
        ),
        (
            "latency_over_app_concurrency".to_owned(),
            requests as f64 * s.latency_s / s.app_concurrency.max(1) as f64,
        ),
        ("tenant_resource_units".to_owned(), tenant_ru),
        (
            "discovery_then_longest_users_chain".to_owned(),
            discovery + longest as f64 * s.latency_s,
        ),
    ]);
    CspFloor {
        floor: floor_of(terms, requests, units),
        one_after_another_seconds: discovery + chains as f64 * s.latency_s,
    }
}

/// Dataverse's service protection per user and web server (`MICROSOFT-APIS.md` E7): 6,000
/// requests in any 300 s…
pub const DATAVERSE_REQUESTS_PER_WINDOW: u64 = 6_000;
/// …the sliding window…
pub const DATAVERSE_WINDOW_SECONDS: f64 = 300.0;
/// …1,200 s of combined execution time in it…
pub const DATAVERSE_EXECUTION_SECONDS_PER_WINDOW: f64 = 1_200.0;
/// …and 52 requests in flight.
pub const DATAVERSE_CONCURRENT: u64 = 52;
/// The largest page Dataverse serves (`Prefer: odata.maxpagesize`, E4).
pub const DATAVERSE_PAGE: u64 = 5_000;

/// One Dataverse table read in pages, as the floor counts it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DataverseRead {
    pub rows: u64,
    pub page_size: u64,
    /// Requests that must end before the first page is asked for: the token, and the metadata
    /// the read needs (none for contacts: their columns are fixed).
    pub setup_requests: u64,
    /// The server's own time to produce every page (and answer the setup), without latency:
    /// what even an infinitely fast client waits for.
    pub serve_seconds: f64,
}

impl DataverseRead {
    pub fn pages(&self) -> u64 {
        TenantShape::pages(self.rows, self.page_size.clamp(1, DATAVERSE_PAGE))
    }

    pub fn requests(&self) -> u64 {
        self.setup_requests + self.pages()
    }
}

/// The least time Dataverse's limits and the latency allow for one table read in pages:
/// - the chain: each `@odata.nextLink` (its paging cookie) comes in the previous page, so the
///   pages are sequential, after the setup requests: (setup + ⌈rows/page⌉)·ℓ, plus the server's
///   time to produce them (`serve_seconds`, measured on the emulator without latency);
/// - the request limit: 6,000 requests go at once and each further 6,000 one window later:
///   (⌈R/6,000⌉ − 1)·300 s;
/// - the execution-time limit, alike: (⌈serve/1,200 s⌉ − 1)·300 s;
/// - the concurrency limit: R·ℓ/52 — never binding for one chain, kept so many tables or
///   organisations read side by side can be modelled with the same terms.
///
/// For 100,000 contacts in pages of 5,000 at ℓ = 50 ms: 1 token + 20 pages = 21 requests; the
/// chain is 1.05 s plus the serve time, the limits allow all 21 at once.
pub fn dataverse_import(read: &DataverseRead, latency_s: f64) -> Floor {
    let requests = read.requests();
    let windows_after_first =
        |used: f64, per_window: f64| ((used / per_window).ceil() - 1.0).max(0.0) * DATAVERSE_WINDOW_SECONDS;
    let terms = BTreeMap::from([
        (
            "page_chain_latency_and_serve".to_owned(),
            requests as f64 * latency_s + read.serve_seconds,
        ),
        (
            "requests_per_window".to_owned(),
            windows_after_first(requests as f64, DATAVERSE_REQUESTS_PER_WINDOW as f64),
        ),
        (
            "execution_time_per_window".to_owned(),
            windows_after_first(read.serve_seconds, DATAVERSE_EXECUTION_SECONDS_PER_WINDOW),
        ),
        (
            "latency_over_concurrency".to_owned(),
            requests as f64 * latency_s / DATAVERSE_CONCURRENT as f64,
        ),
    ]);
    floor_of(terms, requests, 0)
}

/// Changes in one tenant's round, by tracked resource.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DeltaChanges {
    pub users: u64,
    pub groups: u64,
}

/// R_δ = Σ_t Σ_r ⌈max(1, C_t,r)/P_δ⌉ requests of 1 RU; T_δ ≥ max(R_δ/7,500, R_δ·ℓ/C).
pub fn delta_round(changes: impl IntoIterator<Item = DeltaChanges>, s: FloorSettings) -> Floor {
    let requests: u64 = changes
        .into_iter()
        .map(|c| c.users.max(1).div_ceil(DELTA_PAGE_USERS) + c.groups.max(1).div_ceil(DELTA_PAGE_GROUPS))
        .sum();
    let terms = BTreeMap::from([
        (
            "app_resource_units".to_owned(),
            requests as f64 / APP_RU_PER_SECOND,
        ),
        (
            "app_requests".to_owned(),
            requests as f64 / APP_REQUESTS_PER_SECOND,
        ),
        (
            "latency_over_app_concurrency".to_owned(),
            requests as f64 * s.latency_s / s.app_concurrency.max(1) as f64,
        ),
    ]);
    floor_of(terms, requests, requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(latency_s: f64) -> FloorSettings {
        FloorSettings {
            latency_s,
            app_concurrency: 100,
            tenant_concurrency: 8,
        }
    }

    #[test]
    fn the_worked_example_of_the_performance_doc() {
        // 3,000 tenants × 1,000 users × 100 groups (< 999 members each): ≈ 312 k requests,
        // 618 k RU; RU floor ≈ 82 s; at ℓ = 250 ms and C = 100 the latency floor ≈ 13 min.
        let tenant = TenantShape {
            users: 1_000,
            groups: 100,
            members: vec![20; 100],
        };
        let all = vec![tenant; 3_000];
        let floor = full_sync(&all, settings(0.25));
        assert_eq!(floor.requests, 3_000 * (2 + 1 + 100 + 1));
        assert_eq!(floor.resource_units, 3_000 * (2 + 1 + 200 + 3));
        let ru = floor.terms["app_resource_units"];
        assert!((ru - 82.4).abs() < 0.1, "{ru}");
        assert_eq!(floor.binding, "latency_over_app_concurrency");
        assert!((floor.seconds / 60.0 - 13.0).abs() < 0.1, "{}", floor.seconds);
    }

    #[test]
    fn one_large_tenant_is_bound_by_its_own_budget_or_chain() {
        let tenant = TenantShape {
            users: 100_000,
            groups: 1,
            members: vec![100_000],
        };
        let floor = full_sync([&tenant], settings(0.05));
        // 101 user pages in a chain at 50 ms = 5.05 s; RU: 101 + 1 + 202 + 3 = 307 at 800/s.
        assert_eq!(floor.binding, "tenant_users_chain");
        assert!((floor.seconds - 5.05).abs() < 1e-9);
        assert_eq!(floor.terms["tenant_resource_units"], 307.0 / 800.0);
    }

    #[test]
    fn tiers_follow_tenant_size() {
        let shape = |users| TenantShape {
            users,
            groups: 0,
            members: vec![],
        };
        assert_eq!(shape(49).ru_per_10s(), 3_500.0);
        assert_eq!(shape(50).ru_per_10s(), 5_000.0);
        assert_eq!(shape(500).ru_per_10s(), 5_000.0);
        assert_eq!(shape(501).ru_per_10s(), 8_000.0);
    }

    #[test]
    fn a_csp_sync_waits_for_discovery_and_reads_each_tenant_once() {
        let tenant = TenantShape {
            users: 1_000,
            groups: 50,
            members: vec![20; 50],
        };
        let all = vec![tenant; 100];
        let csp = csp_full_sync(100, 100, &all, settings(0.05));
        // 1 customers page + 1 relationships page, then 2 user pages + 1 SKU read per tenant.
        assert_eq!(csp.floor.requests, 2 + 100 * 3);
        assert_eq!(csp.floor.resource_units, 1 + 100 * 5);
        // 302 requests at 50 ms over 100 in flight: 0.151 s; discovery + two pages: 0.15 s.
        assert_eq!(csp.floor.binding, "latency_over_app_concurrency");
        assert!((csp.floor.seconds - 0.151).abs() < 1e-9, "{}", csp.floor.seconds);
        // One after another: discovery, then 200 user pages in a row.
        assert!((csp.one_after_another_seconds - 0.05 * 201.0).abs() < 1e-9);
    }

    #[test]
    fn a_dataverse_read_is_one_chain_of_pages_under_the_window() {
        let read = DataverseRead {
            rows: 100_000,
            page_size: 5_000,
            setup_requests: 1,
            serve_seconds: 2.0,
        };
        let floor = dataverse_import(&read, 0.05);
        // 1 token + 20 pages in a chain at 50 ms, plus 2 s of serving.
        assert_eq!(floor.requests, 21);
        assert_eq!(floor.binding, "page_chain_latency_and_serve");
        assert!(
            (floor.seconds - (21.0 * 0.05 + 2.0)).abs() < 1e-9,
            "{}",
            floor.seconds
        );
        assert_eq!(floor.terms["requests_per_window"], 0.0);
        // A page size above Dataverse's 5,000 is read as 5,000; 12,001 requests need two more windows.
        let huge = DataverseRead {
            rows: 60_000_000,
            page_size: 10_000,
            setup_requests: 1,
            serve_seconds: 0.0,
        };
        assert_eq!(huge.pages(), 12_000);
        let floor = dataverse_import(&huge, 0.0);
        assert_eq!(floor.terms["requests_per_window"], 600.0);
        assert_eq!(floor.binding, "requests_per_window");
    }

    #[test]
    fn a_quiet_delta_round_costs_one_request_per_resource() {
        let floor = delta_round(vec![DeltaChanges::default(); 300], settings(0.05));
        assert_eq!(floor.requests, 600);
        assert!((floor.seconds - 600.0 * 0.05 / 100.0).abs() < 1e-9);
        let busy = delta_round(
            [DeltaChanges {
                users: 401,
                groups: 0,
            }],
            settings(0.0),
        );
        assert_eq!(busy.requests, 3 + 1);
    }
}
