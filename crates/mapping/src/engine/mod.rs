//! Planning: source users + configuration + desk → [`Plan`], a tenant and a page of users at a
//! time ([`RunPlanner`]), or a whole run at once ([`plan`], which drives the same planner with
//! one page per tenant). Pure and deterministic: users are visited in external-id order within a
//! page, and every collection that reaches a plan is ordered.
//!
//! # The page-wise run
//!
//! A streaming pipeline holds one page of users at a time, never a whole tenant. Per tenant:
//!
//! 1. [`RunPlanner::begin_tenant`]: the tenant's licences (from its subscribed SKUs, when read).
//! 2. [`RunPlanner::plan_page`] for each page of users (with that page's delta removals), given a
//!    desk snapshot holding what [`RunPlanner::lookups`] asked for. The pipeline applies each
//!    page's plan before asking for the next — or, in a preview, does not: the plans are the same
//!    either way, because the planner never trusts the desk about anything this run did (it
//!    remembers it instead, see below).
//! 3. [`RunPlanner::finish_tenant`]: what only the whole read can decide — deactivation of records
//!    absent from a complete full read and of delta removals, deactivations and updates of
//!    existing records decided in the pages, the circuit breaker over all of them, managers read
//!    after their reports, and tickets of deactivated agents.
//!
//! Between pages the planner keeps compact run state ([`RunState`]): per external id a fingerprint
//! of the copy planned and what its user and agent matched (new, an existing desk id, a
//! conflict); the desk records claimed by field matching (with the values they had before the
//! run); sites and licences this run creates; per tenant the pending delta removals, the deferred
//! manager links (pairs of ids) and the deactivating and updating changes (what the breaker may
//! hold: the changes only, so a tenant's state grows with what the run changes, not with what it
//! reads). It never keeps users' records, and the desk snapshot of a page is dropped with the
//! page.
//!
//! # Where page-wise planning differs from the whole plan
//!
//! - **Matching across pages.** Within a page, a desk record that fits several source users is a
//!   conflict for all of them, as in the whole plan. A record linked by a user of an earlier page
//!   stays linked; a user of a later page that fits it is a `conflict` (the whole plan, seeing
//!   both at once, makes both conflicts). A record contested within a page stays contested for
//!   the rest of the run.
//! - **Replays.** A user read again in a later page is planned once; a later copy that differs
//!   from the one planned is a plan error and not planned (the whole plan plans none of the
//!   differing copies, having seen them all before planning any).
//! - **Managers in later pages.** A line manager neither planned yet nor on the desk is linked by
//!   `finish_tenant`, as a separate `update` of the report; the whole plan links it in the
//!   report's own change.
//! - **The circuit breaker** holds only what the pages could not apply yet, and of that only what
//!   tripped it: the tenant's deactivations (those decided in pages are deferred to
//!   `finish_tenant`) and the tickets re-assigned because of them, or its updates of existing
//!   records (deferred too: a run that moves or changes too many of them is held), or both.
//!   Creates, links and reactivations apply with their page. The whole plan holds the tenant
//!   whole.

mod agents;
mod breaker;
mod diff;
mod licences;
mod lookups;
mod matching;
mod owned;
mod page;
mod removals;
mod select;
mod subscriptions;
mod usage;
mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use diff::same;
pub use lookups::{ConnectionRecord, ConnectionRecords, DeskLookups, FinishLookups};

use crate::config::{MatchField, RecordKind};
use crate::input::{
    DeskRecord, DeskSnapshot, PlanInput, ReadMode, Removal, RemovalReason, SourceSubscription, SourceUser,
    SubscribedSku, TenantRead,
};
use crate::plan::{Action, Change, Counts, Entity, HeldTenant, Plan};
use crate::validate::ValidatedConfig;

/// Plans one run whole: every tenant's read and the desk at once. Never fails as a whole: a
/// record that cannot be planned becomes a [`crate::PlanError`] and nothing is changed for it.
///
/// It drives a [`RunPlanner`] with one page per tenant: first every tenant's licences, then every
/// tenant's users, then every tenant's end. Since nothing is applied before the end, a tenant the
/// circuit breaker trips on is held whole here (licences, creates and updates included).
pub fn plan(
    config: &ValidatedConfig,
    input: &PlanInput,
    snapshot: &DeskSnapshot,
    now: jiff::Timestamp,
) -> Plan {
    let mut planner = RunPlanner::new(config, input.connection_id, input.approved_tenants.clone(), now);
    planner.hold = HoldScope::WholeTenant;
    planner.run.disagreeing = disagreeing_copies(input);
    let mut tenants: Vec<&TenantRead> = input.tenants.iter().collect();
    tenants.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    let mut parts = Vec::new();
    for tenant in &tenants {
        let header = TenantHeader {
            tenant_id: tenant.tenant_id.clone(),
            customer_id: tenant.customer_id,
            mode: tenant.mode,
            active_records: active_records(snapshot, input.connection_id, &tenant.tenant_id),
        };
        let reference = TenantReference {
            skus: tenant.subscribed_skus.as_deref(),
            subscriptions: tenant.subscriptions.as_deref(),
            usage: tenant.usage.as_deref(),
        };
        let licences = planner.begin_tenant(&header, reference, snapshot);
        parts.push((tenant.tenant_id.as_str(), licences));
    }
    // One page of every tenant's users, so that matching sees the whole read at once.
    let group: Vec<(&str, &[SourceUser], &[Removal])> = tenants
        .iter()
        .map(|t| (t.tenant_id.as_str(), t.users.as_slice(), t.removed.as_slice()))
        .collect();
    for (tenant_id, page) in planner.plan_group(&group, snapshot) {
        let tenant = tenants
            .iter()
            .find(|t| t.tenant_id == tenant_id)
            .map_or("", |t| t.tenant_id.as_str());
        parts.push((tenant, page));
    }
    for tenant in &tenants {
        let records = planner.finish_records(&tenant.tenant_id, snapshot);
        let end = planner.finish_tenant(&tenant.tenant_id, tenant.completeness, &records);
        parts.push((tenant.tenant_id.as_str(), end));
    }
    merge_whole(parts, now)
}

/// Plans a connection's run a tenant and a page at a time (see the module documentation for the
/// order of calls and what the pipeline must load for each).
pub struct RunPlanner<'c> {
    config: &'c ValidatedConfig,
    connection: ConnectionId,
    approved_tenants: BTreeSet<String>,
    now: jiff::Timestamp,
    hold: HoldScope,
    run: RunState,
}

/// What a tripped circuit breaker holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldScope {
    /// Only what the pages deferred (deactivations and what depends on them, updates of
    /// existing records): the pages' other changes are applied already.
    Deactivations,
    /// The whole tenant: [`plan`] applies nothing before the verdict.
    WholeTenant,
}

/// What a source read of a tenant's reference lists, for [`RunPlanner::begin_tenant`]; `None`:
/// not read this run (the desk's records stay as they are).
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantReference<'a> {
    pub skus: Option<&'a [SubscribedSku]>,
    pub subscriptions: Option<&'a [SourceSubscription]>,
    pub usage: Option<&'a [crate::input::SourceUsageLine]>,
}

/// What the planner must know of a tenant before its users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantHeader {
    pub tenant_id: String,
    /// The customer the tenant belongs to (CSP); see [`TenantRead::customer_id`].
    #[serde(default)]
    pub customer_id: Option<RecordId>,
    pub mode: ReadMode,
    /// This connection's active desk users and agents of the tenant *before the run* (its first
    /// page applied): the circuit breaker's denominator. [`ConnectionRecords::active_count`] counts
    /// it from the records [`RunPlanner::finish_lookups`] names, loaded before the first page.
    pub active_records: usize,
}

/// What a run decided for one source person, by lower-cased external id.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// A fingerprint of the copy planned, to tell a replay from a differing copy in a later page.
    copy: u64,
    /// Copies disagreed: nothing was planned, and no later copy is.
    disagreed: bool,
    pub(crate) user: Option<Outcome>,
    pub(crate) agent: Option<Outcome>,
}

/// How one side (user or agent) of a person was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Created by this run.
    New,
    /// An existing desk record (matched by external id, or linked on a field).
    Existing(RecordId),
    Conflict,
}

/// A desk record that a source user matched on a field in this run, with what it looked like
/// before the run: a later page's desk may show it linked and changed, or not (a preview).
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) label: String,
    /// The external id that linked it; `None` when several users of one page fitted it.
    pub(crate) linked_to: Option<String>,
}

/// Claims of one kind (users or agents).
#[derive(Debug, Clone, Default)]
pub(crate) struct Claims {
    pub(crate) records: BTreeMap<RecordId, Claim>,
    /// (match field, trimmed lower-cased value before the run) → claimed records.
    pub(crate) by_value: BTreeMap<(MatchField, String), Vec<RecordId>>,
}

/// A site this run creates.
#[derive(Debug, Clone)]
pub(crate) struct NewSite {
    /// The name as first seen.
    pub(crate) name: String,
    /// The rule that creates it.
    pub(crate) rule: String,
    /// Whether a page's plan already carries its `create`.
    pub(crate) emitted: bool,
}

/// A change decided in a page but applied only once the circuit breaker has spoken.
#[derive(Debug, Clone)]
pub(crate) struct DeferredChange {
    pub(crate) change: Change,
    pub(crate) target: RecordId,
    /// For an agent made inactive: its label, for the ticket re-assignments' reason.
    pub(crate) agent_label: Option<String>,
    /// The record was active before the run: one of the active records the circuit breaker
    /// weighs an update's share against (an inactive record's update is held, not counted).
    pub(crate) active: bool,
}

/// A line manager to link once the whole tenant was read: the manager was neither planned yet
/// nor on the desk when its report was planned.
#[derive(Debug, Clone)]
pub(crate) struct DeferredLink {
    pub(crate) kind: RecordKind,
    pub(crate) external_id: String,
    /// The report's desk record; `None` when this run creates it.
    pub(crate) target: Option<RecordId>,
    /// The report's desk record is active (see [`DeferredChange::active`]).
    pub(crate) active: bool,
    /// The report's current `line_manager_id`.
    pub(crate) before: Value,
    pub(crate) manager_id: String,
    /// A lock on `line_manager_id`, if one applies.
    pub(crate) lock: Option<String>,
    pub(crate) label: String,
    pub(crate) rule: String,
}

/// Per-tenant state between `begin_tenant` and `finish_tenant`.
#[derive(Debug, Clone)]
pub(crate) struct TenantState {
    pub(crate) header: TenantHeader,
    /// Lower-cased external id → (the last reason reported, how many times reported).
    pub(crate) removals: BTreeMap<String, (RemovalReason, usize)>,
    pub(crate) deactivations: Vec<DeferredChange>,
    /// Updates of existing records, weighed by the breaker's share of changes at the end.
    pub(crate) updates: Vec<DeferredChange>,
    pub(crate) links: Vec<DeferredLink>,
}

/// Everything a run remembers between pages. Compact: no source record, no desk record.
#[derive(Debug, Default)]
pub(crate) struct RunState {
    pub(crate) people: People,
    /// For [`plan`] only: external ids whose copies differ somewhere in the whole read, with the
    /// number of copies, so that none of them is planned (as before pages existed).
    pub(crate) disagreeing: BTreeMap<String, usize>,
    pub(crate) user_claims: Claims,
    pub(crate) agent_claims: Claims,
    /// (customer, lower-cased name) → the site this run creates.
    pub(crate) new_sites: BTreeMap<(RecordId, String), NewSite>,
    /// Licences this run creates: (customer, lower-cased SKU id).
    pub(crate) new_licences: BTreeSet<(Option<RecordId>, String)>,
    /// Licences already planned by a tenant: several tenants of one customer plan each once.
    pub(crate) planned_licences: BTreeSet<(Option<RecordId>, String)>,
    pub(crate) tenants: BTreeMap<String, TenantState>,
}

impl RunState {
    pub(crate) fn claims_mut(&mut self, kind: RecordKind) -> &mut Claims {
        match kind {
            RecordKind::User => &mut self.user_claims,
            RecordKind::Agent => &mut self.agent_claims,
        }
    }

    /// What this run decided for one side of a person, if it planned that side.
    pub(crate) fn outcome(&self, external_id: &str, kind: RecordKind) -> Option<Outcome> {
        let person = self.people.get(external_id)?;
        match kind {
            RecordKind::User => person.user,
            RecordKind::Agent => person.agent,
        }
    }
}

impl<'c> RunPlanner<'c> {
    /// A planner for one run of `connection`. `approved_tenants`: tenants whose held plan an
    /// administrator approved, which the circuit breaker lets through.
    pub fn new(
        config: &'c ValidatedConfig,
        connection: ConnectionId,
        approved_tenants: BTreeSet<String>,
        now: jiff::Timestamp,
    ) -> Self {
        Self {
            config,
            connection,
            approved_tenants,
            now,
            hold: HoldScope::Deactivations,
            run: RunState::default(),
        }
    }

    /// Starts a tenant: licences from its subscribed SKUs and its customer's subscriptions (each
    /// when read this run), planned before its users so that they can link the licences. `desk`
    /// needs only its `licences` (all of them) and, when subscriptions were read, the tenant's
    /// `subscriptions`.
    pub fn begin_tenant(
        &mut self,
        tenant: &TenantHeader,
        reference: TenantReference<'_>,
        desk: &DeskSnapshot,
    ) -> Plan {
        self.run
            .tenants
            .entry(tenant.tenant_id.clone())
            .and_modify(|state| state.header = tenant.clone())
            .or_insert_with(|| TenantState {
                header: tenant.clone(),
                removals: BTreeMap::new(),
                deactivations: Vec::new(),
                updates: Vec::new(),
                links: Vec::new(),
            });
        let mut page = page::PagePlanner::new(self.config, self.connection, desk, &mut self.run, tenant);
        if let Some(skus) = reference.skus {
            page.plan_licences(skus);
        }
        if let Some(subscriptions) = reference.subscriptions {
            page.plan_subscriptions(subscriptions);
        }
        if let Some(usage) = reference.usage {
            page.plan_usage(usage);
        }
        page.into_plan(self.now)
    }

    /// Plans one page of a tenant's users, with the page's delta removals (deactivated by
    /// [`RunPlanner::finish_tenant`], since a later page may still bring the user back). `desk`
    /// must hold what [`RunPlanner::lookups`] names for these users, all sites and all licences.
    pub fn plan_page(
        &mut self,
        tenant_id: &str,
        users: &[SourceUser],
        removed: &[Removal],
        desk: &DeskSnapshot,
    ) -> Plan {
        let mut plans = self.plan_group(&[(tenant_id, users, removed)], desk).into_iter();
        let Some((_, mut plan)) = plans.next() else {
            return not_begun(tenant_id, self.now);
        };
        plans.for_each(|(_, other)| plan.absorb(other));
        plan
    }

    /// Plans one page holding users of several tenants, matched together; a plan per tenant.
    fn plan_group(
        &mut self,
        group: &[(&str, &[SourceUser], &[Removal])],
        desk: &DeskSnapshot,
    ) -> Vec<(String, Plan)> {
        let mut headers = Vec::new();
        let mut missing = Vec::new();
        for (tenant_id, _, removed) in group {
            let Some(state) = self.run.tenants.get_mut(*tenant_id) else {
                missing.push(((*tenant_id).to_owned(), not_begun(tenant_id, self.now)));
                continue;
            };
            for removal in *removed {
                let entry = state
                    .removals
                    .entry(external_key(&removal.external_id))
                    .or_insert((removal.reason, 0));
                // The last report wins, as a later delta entry supersedes an earlier one.
                *entry = (removal.reason, entry.1 + 1);
            }
            headers.push(state.header.clone());
        }
        let Some(first) = headers.first() else {
            return missing;
        };
        let users: Vec<(&TenantHeader, &[SourceUser])> = headers
            .iter()
            .filter_map(|header| {
                let (_, users, _) = group.iter().find(|(id, _, _)| *id == header.tenant_id)?;
                Some((header, *users))
            })
            .collect();
        let mut page = page::PagePlanner::new(self.config, self.connection, desk, &mut self.run, first);
        page.plan_users(&users);
        let mut plans = page.into_plans(self.now);
        plans.extend(missing);
        plans
    }
}

/// A plan that says a tenant was used before [`RunPlanner::begin_tenant`]: a bug in the caller,
/// reported rather than guessed around (the read mode decides what may be deactivated).
fn not_begun(tenant_id: &str, now: jiff::Timestamp) -> Plan {
    let mut out = page::Output::default();
    out.errors.push(crate::plan::PlanError {
        tenant_id: tenant_id.to_owned(),
        external_id: String::new(),
        message: "the tenant was planned before begin_tenant; nothing of it is planned".into(),
    });
    out.into_plan(now, Vec::new(), Vec::new())
}

/// Everyone a run read, by external id (compared ignoring ASCII case). Keyed by a 128-bit hash of
/// the lower-cased id rather than the id's text: a run holds one entry per person read, and the
/// hash is 16 bytes where the text is a heap string. Two ids colliding is about as likely as
/// 2^-128 a pair (10^-27 for a million people).
#[derive(Debug, Default)]
pub(crate) struct People(BTreeMap<u128, Person>);

impl People {
    fn key(external_id: &str) -> u128 {
        let lower = external_key(external_id);
        // Two SipHash runs told apart by a prefix give the two halves.
        let half = |prefix: u8| {
            let mut hasher = DefaultHasher::new();
            prefix.hash(&mut hasher);
            lower.hash(&mut hasher);
            hasher.finish()
        };
        (u128::from(half(1)) << 64) | u128::from(half(0))
    }

    pub(crate) fn get(&self, external_id: &str) -> Option<&Person> {
        self.0.get(&Self::key(external_id))
    }

    pub(crate) fn get_mut(&mut self, external_id: &str) -> Option<&mut Person> {
        self.0.get_mut(&Self::key(external_id))
    }

    pub(crate) fn contains(&self, external_id: &str) -> bool {
        self.0.contains_key(&Self::key(external_id))
    }

    pub(crate) fn insert(&mut self, external_id: &str, person: Person) {
        self.0.insert(Self::key(external_id), person);
    }
}

/// The key a person is known by in a run: external ids compare ignoring ASCII case.
pub(crate) fn external_key(external_id: &str) -> String {
    external_id.to_ascii_lowercase()
}

/// A fingerprint of a source user's whole content, independent of property order.
pub(crate) fn fingerprint(user: &SourceUser) -> u64 {
    fn value(v: &Value, state: &mut DefaultHasher) {
        match v {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => (1u8, b).hash(state),
            Value::Number(n) => (2u8, n.to_string()).hash(state),
            Value::String(s) => (3u8, s).hash(state),
            Value::Array(items) => {
                (4u8, items.len()).hash(state);
                items.iter().for_each(|item| value(item, state));
            }
            Value::Object(map) => {
                (5u8, map.len()).hash(state);
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (key, item) in entries {
                    key.hash(state);
                    value(item, state);
                }
            }
        }
    }
    let mut state = DefaultHasher::new();
    user.external_id.hash(&mut state);
    value(&Value::Object(user.properties.clone()), &mut state);
    user.manager_id.hash(&mut state);
    user.groups.hash(&mut state);
    user.transitive_groups.hash(&mut state);
    user.sku_ids.hash(&mut state);
    user.account_enabled.hash(&mut state);
    user.external.hash(&mut state);
    state.finish()
}

/// External ids whose copies differ anywhere in the whole read, with their number of copies.
fn disagreeing_copies(input: &PlanInput) -> BTreeMap<String, usize> {
    let mut copies: BTreeMap<String, Vec<&SourceUser>> = BTreeMap::new();
    for tenant in &input.tenants {
        for user in &tenant.users {
            copies
                .entry(external_key(&user.external_id))
                .or_default()
                .push(user);
        }
    }
    copies
        .into_iter()
        .filter(|(_, versions)| versions.iter().any(|other| *other != versions[0]))
        .map(|(key, versions)| (key, versions.len()))
        .collect()
}

/// Active desk users and agents this connection imported from `tenant`.
fn active_records(snapshot: &DeskSnapshot, connection: ConnectionId, tenant: &str) -> usize {
    let of_tenant = |record: &&DeskRecord| {
        record
            .source
            .as_ref()
            .is_some_and(|s| s.connection_id == connection)
            && record
                .text("azure_tenant_id")
                .is_some_and(|t| t.eq_ignore_ascii_case(tenant))
    };
    snapshot
        .users
        .iter()
        .chain(&snapshot.agents)
        .filter(of_tenant)
        .filter(|record| record.is_active())
        .count()
}

/// Joins the parts of a whole run into one plan in apply order, holding whole every tenant whose
/// verdict is held (sites are no tenant's and never held).
fn merge_whole(parts: Vec<(&str, Plan)>, now: jiff::Timestamp) -> Plan {
    let mut changes: Vec<(Option<String>, Change)> = Vec::new();
    let mut merged = Plan {
        generated_at: now,
        changes: Vec::new(),
        targets: BTreeMap::new(),
        locked: Vec::new(),
        circuit_breaker: Vec::new(),
        held: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
        counts: Counts::default(),
    };
    for (tenant, part) in parts {
        let owned = part
            .changes
            .into_iter()
            .chain(part.held.into_iter().flat_map(|held| held.changes));
        for change in owned {
            let owner = (change.entity != Entity::Site).then(|| tenant.to_owned());
            changes.push((owner, change));
        }
        merged.targets.extend(part.targets);
        merged.locked.extend(part.locked);
        merged.circuit_breaker.extend(part.circuit_breaker);
        merged.errors.extend(part.errors);
        merged.notes.extend(part.notes);
        merged.counts.unchanged += part.counts.unchanged;
    }
    changes.sort_by(|(ta, a), (tb, b)| {
        (a.entity, ta, &a.external_id, a.action).cmp(&(b.entity, tb, &b.external_id, b.action))
    });
    merged.held = merged
        .circuit_breaker
        .iter()
        .filter(|verdict| verdict.held)
        .map(|verdict| HeldTenant {
            tenant_id: verdict.tenant_id.clone(),
            reason: verdict.reason.clone(),
            changes: Vec::new(),
        })
        .collect();
    for (tenant, change) in changes {
        match tenant
            .as_ref()
            .and_then(|t| merged.held.iter_mut().find(|h| &h.tenant_id == t))
        {
            Some(held) => held.changes.push(change),
            None => merged.changes.push(change),
        }
    }
    merged.counts = page::count(&merged.changes, merged.counts.unchanged, merged.errors.len());
    merged
}

/// Whether a change makes a desk user or agent inactive: what the circuit breaker counts.
pub(crate) fn deactivates(change: &Change) -> bool {
    change.action == Action::Deactivate && matches!(change.entity, Entity::User | Entity::Agent)
}
