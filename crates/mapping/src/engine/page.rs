//! One page of one tenant: the context a page is planned in ([`PagePlanner`]: the page's desk
//! snapshot, indexed, and the run state), the walk over the page's users (replays, decisions,
//! matching, then each person's user and agent), and turning what a page decided into a [`Plan`].

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::{Value, json};

use super::matching::RecordIndex;
use super::select::Decision;
use super::{Person, RunState, TenantHeader, external_key, fingerprint};
use crate::config::MappingConfig;
use crate::input::{DeskLicence, DeskSite, DeskSnapshot, SourceUser};
use crate::plan::{
    Action, BreakerVerdict, Change, Counts, Entity, FieldChange, HeldTenant, LockedChange, Plan, PlanError,
};
use crate::validate::{CompiledMapping, ValidatedConfig};

/// What a step of the run decided, before it becomes a [`Plan`].
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) changes: Vec<Change>,
    pub(crate) targets: BTreeMap<String, RecordId>,
    pub(crate) locked: Vec<LockedChange>,
    pub(crate) errors: Vec<PlanError>,
    pub(crate) notes: Vec<String>,
    pub(crate) unchanged: usize,
}

impl Output {
    /// The plan, its changes in apply order: sites, licences, users, agents, tickets, each by
    /// external id. (A step's changes are all one tenant's, sites aside.)
    pub(crate) fn into_plan(
        mut self,
        now: jiff::Timestamp,
        circuit_breaker: Vec<BreakerVerdict>,
        held: Vec<HeldTenant>,
    ) -> Plan {
        sort_changes(&mut self.changes);
        let counts = count(&self.changes, self.unchanged, self.errors.len());
        Plan {
            generated_at: now,
            changes: self.changes,
            targets: self.targets,
            locked: self.locked,
            circuit_breaker,
            held,
            errors: self.errors,
            notes: self.notes,
            counts,
        }
    }
}

pub(crate) fn sort_changes(changes: &mut [Change]) {
    changes.sort_by(|a, b| (a.entity, &a.external_id, a.action).cmp(&(b.entity, &b.external_id, b.action)));
}

/// Counts of the changes a plan applies.
pub(crate) fn count(changes: &[Change], unchanged: usize, errors: usize) -> Counts {
    let mut counts = Counts {
        unchanged,
        errors,
        ..Counts::default()
    };
    for change in changes {
        match change.action {
            Action::Create => counts.created += 1,
            Action::Update | Action::Link | Action::Reactivate => counts.updated += 1,
            Action::Deactivate => counts.deactivated += 1,
            Action::Conflict => counts.conflicts += 1,
            Action::Skip => {}
        }
    }
    counts
}

/// The context one page (or a tenant's licences) is planned in.
pub(crate) struct PagePlanner<'p, 'c> {
    pub(crate) config: &'c ValidatedConfig,
    pub(crate) settings: &'c MappingConfig,
    pub(crate) snapshot: &'p DeskSnapshot,
    pub(crate) users: RecordIndex<'p>,
    pub(crate) agents: RecordIndex<'p>,
    /// (customer, lower-cased name) → the desk's site of that name.
    pub(crate) sites_by_name: BTreeMap<(RecordId, String), &'p DeskSite>,
    /// Lower-cased SKU id → the desk's licences of it.
    pub(crate) licences_by_sku: BTreeMap<String, Vec<&'p DeskLicence>>,
    pub(crate) run: &'p mut RunState,
    /// The tenant whose users are being decided or planned.
    pub(crate) tenant_id: String,
    pub(crate) customer_id: Option<RecordId>,
    /// What each tenant of the page decided, in the order the tenants were given.
    outs: Vec<(String, Output)>,
}

impl<'p, 'c> PagePlanner<'p, 'c> {
    pub(crate) fn new(
        config: &'c ValidatedConfig,
        connection: ConnectionId,
        snapshot: &'p DeskSnapshot,
        run: &'p mut RunState,
        tenant: &TenantHeader,
    ) -> Self {
        let settings = config.config();
        let licences_by_sku = snapshot
            .licences
            .iter()
            .fold(BTreeMap::new(), |mut index, licence| {
                index
                    .entry(licence.sku_id.to_lowercase())
                    .or_insert_with(Vec::new)
                    .push(licence);
                index
            });
        let sites_by_name = snapshot
            .sites
            .iter()
            .rev()
            .fold(BTreeMap::new(), |mut index, site| {
                let key = (site.customer_id, site.name.to_lowercase());
                // Lowest id wins when names repeat, as in the store's own lookups.
                let keep = index.get(&key).is_none_or(|kept: &&DeskSite| kept.id > site.id);
                if keep {
                    index.insert(key, site);
                }
                index
            });
        Self {
            config,
            settings,
            snapshot,
            users: RecordIndex::new(&snapshot.users, connection, settings),
            agents: RecordIndex::new(&snapshot.agents, connection, settings),
            sites_by_name,
            licences_by_sku,
            run,
            tenant_id: tenant.tenant_id.clone(),
            customer_id: tenant.customer_id,
            outs: vec![(tenant.tenant_id.clone(), Output::default())],
        }
    }

    /// Makes `tenant` the one whose users are decided or planned next.
    fn enter(&mut self, tenant: &TenantHeader) {
        self.tenant_id.clone_from(&tenant.tenant_id);
        self.customer_id = tenant.customer_id;
        if !self.outs.iter().any(|(id, _)| *id == tenant.tenant_id) {
            self.outs.push((tenant.tenant_id.clone(), Output::default()));
        }
    }

    /// The current tenant's output.
    pub(crate) fn out(&mut self) -> &mut Output {
        let position = self.outs.iter().position(|(id, _)| *id == self.tenant_id);
        let position = position.unwrap_or_else(|| {
            self.outs.push((self.tenant_id.clone(), Output::default()));
            self.outs.len() - 1
        });
        &mut self.outs[position].1
    }

    pub(crate) fn error(&mut self, external_id: &str, message: String) {
        let tenant_id = self.tenant_id.clone();
        self.out().errors.push(PlanError {
            tenant_id,
            external_id: external_id.to_owned(),
            message,
        });
    }

    pub(crate) fn push(&mut self, change: Change) {
        self.out().changes.push(change);
    }

    /// Plans a page: each person once, then all of them matched against the desk together,
    /// then each person's user and agent. A page is one tenant's, except in [`super::plan`],
    /// whose one page holds every tenant so that matching sees the whole read at once.
    pub(crate) fn plan_users(&mut self, groups: &[(&TenantHeader, &[SourceUser])]) {
        let mut decided = Vec::new();
        for (position, (tenant, users)) in groups.iter().enumerate() {
            self.enter(tenant);
            for decision in self.decide_tenant(users) {
                decided.push((position, decision));
            }
        }
        let mut decisions: Vec<Decision<'_, '_>> = Vec::with_capacity(decided.len());
        let mut owners = Vec::with_capacity(decided.len());
        for (position, decision) in decided {
            owners.push(position);
            decisions.push(decision);
        }
        self.match_page(&mut decisions);
        for (position, decision) in owners.into_iter().zip(&decisions) {
            if let Some((tenant, _)) = groups.get(position) {
                self.enter(tenant);
            }
            self.plan_user(decision);
            self.plan_agent(decision);
            self.plan_orphan_agent(decision);
        }
    }

    /// Decides one tenant's users of the page, each person once.
    fn decide_tenant<'u>(&mut self, users: &'u [SourceUser]) -> Vec<Decision<'u, 'c>> {
        // Mappings restricted to other tenants are left out once here rather than per user.
        let config = self.config;
        let applicable: Vec<&CompiledMapping> = config
            .mappings
            .iter()
            .filter(|m| {
                m.mapping
                    .tenant_id
                    .as_ref()
                    .is_none_or(|only| only.eq_ignore_ascii_case(&self.tenant_id))
            })
            .collect();
        let mut sorted: Vec<&SourceUser> = users.iter().collect();
        sorted.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        let mut copies: BTreeMap<String, Vec<&SourceUser>> = BTreeMap::new();
        let mut decided = Vec::new();
        for user in &sorted {
            copies
                .entry(external_key(&user.external_id))
                .or_default()
                .push(user);
        }
        let mut handled = BTreeSet::new();
        for user in sorted {
            let key = external_key(&user.external_id);
            if !handled.insert(key.clone()) {
                continue;
            }
            if let Some(&count) = self.run.disagreeing.get(&key) {
                if !self.run.people.contains(&key) {
                    self.remember(key, user, true);
                    let message = format!(
                        "the user appears {count} times in the read with different content; not planned"
                    );
                    self.error(&user.external_id, message);
                }
                continue;
            }
            let versions = copies.get(&key).map_or(&[][..], Vec::as_slice);
            if let Some(earlier) = self.run.people.get(&key) {
                // Read again after an earlier page planned it: planned once. A copy that differs
                // from the one planned cannot be planned without guessing which is current.
                let differs =
                    earlier.disagreed || versions.iter().any(|copy| fingerprint(copy) != earlier.copy);
                if differs {
                    let message = "the user was read again in this run with content that differs from the copy planned before; this copy is not planned".to_owned();
                    self.error(&user.external_id, message);
                }
                continue;
            }
            // A replayed user (identical copies) is planned once; copies that disagree cannot be
            // planned without guessing which is current, so none of them is.
            if versions.iter().any(|other| *other != user) {
                self.remember(key, user, true);
                let message = format!(
                    "the user appears {} times in the read with different content; not planned",
                    versions.len()
                );
                self.error(&user.external_id, message);
                continue;
            }
            self.remember(key, user, false);
            if let Some(decision) = self.decide(user, &applicable) {
                decided.push(decision);
            }
        }
        decided
    }

    fn remember(&mut self, key: String, user: &SourceUser, disagreed: bool) {
        let person = Person {
            copy: fingerprint(user),
            disagreed,
            user: None,
            agent: None,
        };
        self.run.people.insert(&key, person);
    }

    /// Records a decided person's outcome for later pages and `finish_tenant`.
    pub(crate) fn record_outcome(&mut self, decision: &Decision<'_, '_>) {
        let key = external_key(&decision.user.external_id);
        let user = decision
            .user_side
            .as_ref()
            .map(|side| side.matched.outcome(&self.users));
        let agent = decision
            .agent_side
            .as_ref()
            .map(|side| side.matched.outcome(&self.agents));
        if let Some(person) = self.run.people.get_mut(&key) {
            person.user = user;
            person.agent = agent;
        }
    }

    /// The page's plan per tenant, in the order the tenants were given; sites first needed by
    /// this page are created by it (in the first tenant's plan: sites are no tenant's).
    pub(crate) fn into_plans(self, now: jiff::Timestamp) -> Vec<(String, Plan)> {
        let mut sites = Vec::new();
        for ((customer_id, _), site) in &mut self.run.new_sites {
            if site.emitted {
                continue;
            }
            site.emitted = true;
            sites.push(new_site_change(*customer_id, &site.name, &site.rule));
        }
        let mut outs = self.outs;
        if let Some((_, first)) = outs.first_mut() {
            first.changes.extend(sites);
        }
        outs.into_iter()
            .map(|(tenant, out)| (tenant, out.into_plan(now, Vec::new(), Vec::new())))
            .collect()
    }

    /// The plan of a page of one tenant.
    pub(crate) fn into_plan(self, now: jiff::Timestamp) -> Plan {
        let mut plans = self.into_plans(now).into_iter().map(|(_, plan)| plan);
        let mut plan = plans
            .next()
            .unwrap_or_else(|| Output::default().into_plan(now, Vec::new(), Vec::new()));
        for other in plans {
            plan.absorb(other);
        }
        plan
    }
}

fn new_site_change(customer_id: RecordId, name: &str, rule: &str) -> Change {
    let created = |after: Value| FieldChange {
        before: Value::Null,
        after,
    };
    Change {
        entity: Entity::Site,
        external_id: format!("{customer_id}/{name}"),
        name: Some(name.to_owned()),
        action: Action::Create,
        fields: BTreeMap::from([
            ("customer_id".to_owned(), created(json!(customer_id.0))),
            ("name".to_owned(), created(json!(name))),
            ("is_main".to_owned(), created(json!(false))),
        ]),
        rule: rule.to_owned(),
        reason: format!(
            "No site named '{name}' exists under customer {customer_id}; users of this value are placed there."
        ),
    }
}
