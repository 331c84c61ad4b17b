//! Planning: source users + configuration + desk snapshot → [`Plan`]. Pure and deterministic:
//! tenants are visited in id order and users in object-id order, and every collection that
//! reaches the plan is ordered.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_odata::EvalOptions;
use serde_json::{Map, Value, json};

use crate::config::{
    ExternalUsers, LicenceTypeChoice, MappingConfig, MatchField, RecordKind, SiteTarget, UnmatchedSite,
};
use crate::fields::{FieldKind, convert, read_path, read_source};
use crate::input::{
    Completeness, DeskLicence, DeskRecord, DeskSite, DeskSnapshot, DeskTicket, PlanInput, ReadMode,
    RemovalReason, SourceUser, SubscribedSku, TenantRead,
};
use crate::plan::{
    Action, BreakerVerdict, Change, Counts, Entity, FieldChange, HeldTenant, LockedChange, Plan, PlanError,
    Reference,
};
use crate::validate::{CompiledField, CompiledMapping, ValidatedConfig};

/// Plans one run. Never fails as a whole: a record that cannot be planned becomes a
/// [`PlanError`] and nothing is changed for it.
pub fn plan(
    config: &ValidatedConfig,
    input: &PlanInput,
    snapshot: &DeskSnapshot,
    now: jiff::Timestamp,
) -> Plan {
    let mut planner = Planner {
        config,
        settings: config.config(),
        snapshot,
        connection: input.connection_id,
        users: RecordIndex::new(&snapshot.users, input.connection_id, config.config()),
        agents: RecordIndex::new(&snapshot.agents, input.connection_id, config.config()),
        out: Output::default(),
        run_users: BTreeMap::new(),
        run_agents: BTreeMap::new(),
        new_sites: BTreeMap::new(),
        licences_by_sku: snapshot
            .licences
            .iter()
            .fold(BTreeMap::new(), |mut index, licence| {
                index
                    .entry(licence.sku_id.to_lowercase())
                    .or_insert_with(Vec::new)
                    .push(licence);
                index
            }),
        new_licences: BTreeSet::new(),
        planned_licences: BTreeSet::new(),
        sites_by_name: snapshot
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
            }),
    };
    let mut tenants: Vec<&TenantRead> = input.tenants.iter().collect();
    tenants.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));

    // A replayed user (identical copies) is planned once; copies that disagree cannot be
    // planned without guessing which is current, so none of them is.
    let mut copies: BTreeMap<String, Vec<&SourceUser>> = BTreeMap::new();
    for tenant in &tenants {
        for user in &tenant.users {
            copies.entry(object_key(&user.object_id)).or_default().push(user);
        }
    }
    let mut seen = BTreeSet::new();
    let mut decided = Vec::new();
    for tenant in &tenants {
        // Mappings restricted to other tenants are left out once here rather than per user.
        let applicable: Vec<&CompiledMapping> = config
            .mappings
            .iter()
            .filter(|m| {
                m.mapping
                    .tenant_id
                    .as_ref()
                    .is_none_or(|only| only.eq_ignore_ascii_case(&tenant.tenant_id))
            })
            .collect();
        let mut users: Vec<&SourceUser> = tenant.users.iter().collect();
        users.sort_by(|a, b| a.object_id.cmp(&b.object_id));
        for user in users {
            let key = object_key(&user.object_id);
            if !seen.insert(key.clone()) {
                continue;
            }
            let versions = copies.get(&key).map_or(&[][..], Vec::as_slice);
            if versions.iter().any(|other| *other != user) {
                let message = format!(
                    "the user appears {} times in the read with different content; not planned",
                    versions.len()
                );
                planner.error(tenant, &user.object_id, message);
                continue;
            }
            if let Some(decision) = planner.decide(tenant, user, &applicable) {
                decided.push(decision);
            }
        }
    }
    for tenant in &tenants {
        planner.plan_licences(tenant);
    }
    planner.match_all(&mut decided);
    for decision in &decided {
        planner.plan_user(decision);
        planner.plan_agent(decision);
        planner.plan_orphan_agent(decision);
    }
    for tenant in &tenants {
        planner.plan_removals(tenant, &seen);
    }
    planner.plan_ticket_reassignments();
    planner.finish(&tenants, input, now)
}

fn object_key(object_id: &str) -> String {
    object_id.to_ascii_lowercase()
}

/// Lookups over the desk's users or agents.
struct RecordIndex<'s> {
    records: &'s [DeskRecord],
    /// Lower-cased Azure object id → records carrying it (as this connection's source id or
    /// in `azure_object_id`).
    by_object_id: BTreeMap<String, Vec<usize>>,
    /// (match field, lower-cased value) → records not linked to any Azure object yet.
    unlinked: BTreeMap<(MatchField, String), Vec<usize>>,
    /// Lower-cased tenant id → records this connection imported from that tenant.
    by_tenant: BTreeMap<String, Vec<usize>>,
}

impl<'s> RecordIndex<'s> {
    fn new(records: &'s [DeskRecord], connection: ConnectionId, config: &MappingConfig) -> Self {
        let mut by_object_id: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut by_tenant: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut unlinked: BTreeMap<(MatchField, String), Vec<usize>> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            let mut keys = BTreeSet::new();
            if let Some(source) = record.source.as_ref().filter(|s| s.connection_id == connection) {
                keys.insert(object_key(&source.external_id));
                if let Some(tenant) = record.text("azure_tenant_id") {
                    by_tenant
                        .entry(tenant.to_ascii_lowercase())
                        .or_default()
                        .push(index);
                }
            }
            if let Some(object_id) = record.text("azure_object_id") {
                keys.insert(object_key(object_id));
            }
            if keys.is_empty() {
                for field in &config.imports.match_order {
                    if let Some(value) = record.text(field.desk_field()) {
                        unlinked
                            .entry((*field, value.trim().to_lowercase()))
                            .or_default()
                            .push(index);
                    }
                }
            }
            for key in keys {
                by_object_id.entry(key).or_default().push(index);
            }
        }
        Self {
            records,
            by_object_id,
            unlinked,
            by_tenant,
        }
    }

    /// Records this connection imported from `tenant`.
    fn of_tenant(&self, tenant: &str) -> impl Iterator<Item = &'s DeskRecord> + '_ {
        let indices = self
            .by_tenant
            .get(&tenant.to_ascii_lowercase())
            .map_or(&[][..], Vec::as_slice);
        indices.iter().map(|index| &self.records[*index])
    }

    fn by_object_id(&self, object_id: &str) -> &[usize] {
        self.by_object_id
            .get(&object_key(object_id))
            .map_or(&[], Vec::as_slice)
    }
}

/// How a source user was matched to a desk record.
#[derive(Debug, Clone)]
enum Match {
    New,
    ByObjectId(usize),
    /// Matched an unlinked record on a field: the plan links it.
    ByField {
        index: usize,
        field: MatchField,
        value: String,
    },
    Conflict {
        rule: String,
        reason: String,
    },
}

struct UserSide<'c> {
    mapping: &'c CompiledMapping,
    site: Reference,
    why: String,
    fields: BTreeMap<String, (Value, String)>,
    matched: Match,
}

struct AgentSide<'c> {
    mapping: &'c CompiledMapping,
    why: String,
    fields: BTreeMap<String, (Value, String)>,
    matched: Match,
}

struct Decision<'a, 'c> {
    tenant: &'a TenantRead,
    user: &'a SourceUser,
    user_side: Option<UserSide<'c>>,
    agent_side: Option<AgentSide<'c>>,
    /// An agent this connection imported that no agent mapping selects any more: under full
    /// role management its roles still follow its groups (and none left makes it inactive).
    orphan_agent: Option<usize>,
}

#[derive(Default)]
struct Output {
    /// (tenant, change); `None` for changes no tenant owns (new sites).
    changes: Vec<(Option<String>, Change)>,
    targets: BTreeMap<String, RecordId>,
    locked: Vec<LockedChange>,
    errors: Vec<PlanError>,
    notes: Vec<String>,
    unchanged: usize,
    /// Agents this plan makes inactive: (tenant, desk id, label).
    deactivated_agents: Vec<(String, RecordId, String)>,
}

struct Planner<'a, 'c> {
    config: &'c ValidatedConfig,
    settings: &'c MappingConfig,
    snapshot: &'a DeskSnapshot,
    connection: ConnectionId,
    users: RecordIndex<'a>,
    agents: RecordIndex<'a>,
    out: Output,
    /// Object ids imported as users / agents in this run, with their match.
    run_users: BTreeMap<String, Match>,
    run_agents: BTreeMap<String, Match>,
    /// (customer, lower-cased name) → (name as first seen, rule that creates it).
    new_sites: BTreeMap<(RecordId, String), (String, String)>,
    /// (customer, lower-cased name) → the desk's site of that name.
    sites_by_name: BTreeMap<(RecordId, String), &'a DeskSite>,
    /// Lower-cased SKU id → the desk's licences of it.
    licences_by_sku: BTreeMap<String, Vec<&'a DeskLicence>>,
    /// Licences this plan creates: (customer, lower-cased SKU id).
    new_licences: BTreeSet<(Option<RecordId>, String)>,
    /// Licences already planned by a tenant: several tenants of one customer plan each once.
    planned_licences: BTreeSet<(Option<RecordId>, String)>,
}

/// Why a mapping did or did not select a user.
enum Selection {
    Selected(String),
    NotSelected(String),
}

impl<'a, 'c> Planner<'a, 'c> {
    fn error(&mut self, tenant: &TenantRead, external_id: &str, message: String) {
        self.out.errors.push(PlanError {
            tenant_id: tenant.tenant_id.clone(),
            external_id: external_id.to_owned(),
            message,
        });
    }

    fn push(&mut self, tenant: Option<&str>, change: Change) {
        self.out.changes.push((tenant.map(str::to_owned), change));
    }

    // ---------- deciding which mappings apply ----------

    fn decide(
        &mut self,
        tenant: &'a TenantRead,
        user: &'a SourceUser,
        applicable: &[&'c CompiledMapping],
    ) -> Option<Decision<'a, 'c>> {
        let user_fields = self.mapped_fields(tenant, user, &self.config.user_fields);
        let mut explanations = Vec::new();
        let mut user_side = None;
        let mut skip: Option<(String, String)> = None;
        let mut agent_side = None;
        let config = self.config;
        for compiled in applicable.iter().copied() {
            let done_user = user_side.is_some() || skip.is_some();
            if (compiled.is_agent() && agent_side.is_some()) || (!compiled.is_agent() && done_user) {
                continue;
            }
            let selection = match self.selects(compiled, tenant, user) {
                Ok(selection) => selection,
                Err(message) => {
                    self.error(tenant, &user.object_id, message);
                    return None;
                }
            };
            let why = match selection {
                Selection::Selected(why) => why,
                Selection::NotSelected(why_not) => {
                    if !compiled.is_agent() {
                        explanations.push(format!("{}: {why_not}", compiled.rule()));
                    }
                    continue;
                }
            };
            if let SiteTarget::Agent { creation_type, .. } = &compiled.mapping.target {
                let mut fields = self.mapped_fields(tenant, user, &config.agent_fields);
                if let Some(creation_type) = creation_type {
                    fields.insert(
                        "creation_type".into(),
                        (json!(creation_type), format!("{} creation type", compiled.rule())),
                    );
                }
                agent_side = Some(AgentSide {
                    mapping: compiled,
                    why,
                    fields,
                    matched: Match::New,
                });
                continue;
            }
            let mut fields = user_fields.clone();
            for (field, value) in &compiled.values {
                fields.insert(
                    field.clone(),
                    (value.clone(), format!("value applied by {}", compiled.rule())),
                );
            }
            match self.resolve_site(compiled, user, &fields) {
                Ok((site, site_why)) => {
                    user_side = Some(UserSide {
                        mapping: compiled,
                        site,
                        why: format!("{why}; {site_why}"),
                        fields,
                        matched: Match::New,
                    });
                }
                Err(SiteMiss::TryNext(why_not)) => {
                    explanations.push(format!("{}: {why_not}", compiled.rule()))
                }
                Err(SiteMiss::Skip(reason)) => skip = Some((compiled.rule(), format!("{why}, but {reason}"))),
            }
        }
        // An agent that no user mapping selects is simply an agent; a user mapping that
        // selected the person and said "do not import" is reported either way.
        if user_side.is_none() && (agent_side.is_none() || skip.is_some()) {
            let (rule, reason) = skip.unwrap_or_else(|| {
                let detail = if explanations.is_empty() {
                    format!("no site mapping applies to tenant {}", tenant.tenant_id)
                } else {
                    explanations.join("; ")
                };
                (
                    "site mappings".to_owned(),
                    format!("{} matched no site mapping ({detail})", user.label()),
                )
            });
            let existing = self
                .users
                .by_object_id(&user.object_id)
                .first()
                .map(|i| self.users.records[*i].label());
            let reason = match existing {
                Some(label) => {
                    format!("{reason}. Not imported; the existing desk user {label} is left as it is.")
                }
                None => format!("{reason}. Not imported."),
            };
            let change = Change {
                entity: Entity::User,
                external_id: user.object_id.clone(),
                action: Action::Skip,
                fields: BTreeMap::new(),
                rule,
                reason,
            };
            self.push(Some(&tenant.tenant_id), change);
        }
        let orphan_agent = if agent_side.is_none() && self.settings.advanced.full_role_management {
            match self.agents.by_object_id(&user.object_id) {
                [only] => Some(*only),
                _ => None,
            }
        } else {
            None
        };
        if user_side.is_none() && agent_side.is_none() && orphan_agent.is_none() {
            return None;
        }
        Some(Decision {
            tenant,
            user,
            user_side,
            agent_side,
            orphan_agent,
        })
    }

    fn selects(
        &self,
        compiled: &CompiledMapping,
        tenant: &TenantRead,
        user: &SourceUser,
    ) -> Result<Selection, String> {
        let mapping = &compiled.mapping;
        let mut because = Vec::new();
        if let Some(only) = &mapping.tenant_id {
            if !only.eq_ignore_ascii_case(&tenant.tenant_id) {
                return Ok(Selection::NotSelected(format!("only for tenant {only}")));
            }
            because.push(format!("tenant {only}"));
        }
        if user.is_external() {
            match mapping.external_users {
                ExternalUsers::Exclude => {
                    return Ok(Selection::NotSelected("external users are not included".into()));
                }
                ExternalUsers::IncludeIfLicensed if user.sku_ids.is_empty() => {
                    return Ok(Selection::NotSelected(
                        "external users need a licence and this one has none".into(),
                    ));
                }
                ExternalUsers::IncludeIfLicensed => because.push("licensed external user".into()),
                ExternalUsers::Include => because.push("external users included".into()),
            }
        }
        if let Some(group) = &mapping.group {
            if !user.in_group(&group.name, group.nested) {
                let how = if group.nested {
                    "a member (directly or nested) of"
                } else {
                    "a direct member of"
                };
                return Ok(Selection::NotSelected(format!(
                    "not {how} group '{}'",
                    group.name
                )));
            }
            because.push(format!("member of group '{}'", group.name));
        }
        if let Some(filter) = &compiled.filter {
            let matched = deskbridge_odata::evaluate_object(filter, &user.properties, &EvalOptions::graph())
                .map_err(|error| {
                    format!(
                        "{}: the filter `{filter}` cannot be evaluated: {error}",
                        compiled.rule()
                    )
                })?;
            if !matched {
                return Ok(Selection::NotSelected(format!(
                    "filter `{filter}` does not match"
                )));
            }
            because.push(format!("filter `{filter}` matches"));
        }
        let conditions = if because.is_empty() {
            "no conditions (catch-all)".to_owned()
        } else {
            because.join(", ")
        };
        Ok(Selection::Selected(format!(
            "selected by {} ({conditions})",
            compiled.rule()
        )))
    }

    fn resolve_site(
        &mut self,
        compiled: &CompiledMapping,
        user: &SourceUser,
        fields: &BTreeMap<String, (Value, String)>,
    ) -> Result<(Reference, String), SiteMiss> {
        match &compiled.mapping.target {
            SiteTarget::ExistingSite { site_id } => Ok((Reference::Id(*site_id), format!("site {site_id}"))),
            SiteTarget::CustomerByField { customer_id, field } => {
                let value = read_path(&user.properties, field)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| SiteMiss::TryNext(format!("no value in '{field}' to name a site")))?;
                let existing = self
                    .sites_by_name
                    .get(&(*customer_id, value.to_lowercase()))
                    .copied();
                if let Some(site) = existing {
                    return Ok((
                        Reference::Id(site.id),
                        format!("site '{}' ({}) from {field}", site.name, site.id),
                    ));
                }
                let key = (*customer_id, value.to_lowercase());
                let (name, _) = self
                    .new_sites
                    .entry(key)
                    .or_insert_with(|| (value.to_owned(), compiled.rule()))
                    .clone();
                Ok((
                    Reference::NewSite {
                        customer_id: *customer_id,
                        name: name.clone(),
                    },
                    format!("new site '{name}' under customer {customer_id} from {field}"),
                ))
            }
            SiteTarget::MatchSiteField {
                customer_id,
                site_field,
                user_field,
                unmatched,
            } => {
                let wanted = fields
                    .get(user_field)
                    .and_then(|(value, _)| value.as_str())
                    .map(str::trim);
                let candidates: Vec<_> = match wanted.filter(|v| !v.is_empty()) {
                    None => Vec::new(),
                    Some(wanted) => self
                        .snapshot
                        .sites
                        .iter()
                        .filter(|site| customer_id.is_none_or(|c| c == site.customer_id))
                        .filter(|site| {
                            let value = if site_field == "name" {
                                Some(site.name.as_str())
                            } else {
                                site.fields.get(site_field).and_then(Value::as_str)
                            };
                            value.is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
                        })
                        .collect(),
                };
                let shown = wanted.unwrap_or("(empty)");
                match candidates.as_slice() {
                    [site] => Ok((
                        Reference::Id(site.id),
                        format!(
                            "site '{}' ({}) whose {site_field} equals {user_field} '{shown}'",
                            site.name, site.id
                        ),
                    )),
                    [] => match unmatched {
                        UnmatchedSite::DefaultSite { site_id } => Ok((
                            Reference::Id(*site_id),
                            format!(
                                "no site's {site_field} equals {user_field} '{shown}', so the default site {site_id}"
                            ),
                        )),
                        UnmatchedSite::DoNotImport => Err(SiteMiss::Skip(format!(
                            "no site's {site_field} equals {user_field} '{shown}' and the mapping says do not import"
                        ))),
                    },
                    several => Err(SiteMiss::Skip(format!(
                        "{} sites have {site_field} '{shown}' (ids {}); the site is not guessed",
                        several.len(),
                        several
                            .iter()
                            .map(|s| s.id.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
            SiteTarget::Agent { .. } => Err(SiteMiss::TryNext("the agent site".into())),
        }
    }

    /// Field mappings evaluated for one user: desk field → (value, where it came from). The
    /// manager and team fields are resolved later; conversion problems become plan errors.
    fn mapped_fields(
        &mut self,
        tenant: &TenantRead,
        user: &SourceUser,
        mappings: &[CompiledField],
    ) -> BTreeMap<String, (Value, String)> {
        let mut fields = BTreeMap::new();
        for field in mappings {
            if field.kind == FieldKind::Manager {
                continue;
            }
            let origin = match &field.source {
                crate::config::FieldSource::Property(path) => {
                    format!("field mapping #{} ({path})", field.number)
                }
                crate::config::FieldSource::Template(template) => {
                    format!("field mapping #{} (\"{template}\")", field.number)
                }
            };
            let raw = read_source(&field.source, &user.properties);
            match convert(&field.kind, &raw) {
                Ok(value) => {
                    fields.insert(field.target.clone(), (value, origin));
                }
                Err(problem) => self.error(
                    tenant,
                    &user.object_id,
                    format!("{}: {origin}: {problem}; field left as it is", field.target),
                ),
            }
        }
        fields
    }

    // ---------- matching to desk records ----------

    /// Matches every decided person to a desk record. A desk record that fits several source
    /// users on a field links none of them: each is a conflict, so no run guesses and the next
    /// run sees the same ambiguity.
    fn match_all(&mut self, decided: &mut [Decision<'a, 'c>]) {
        let order = &self.settings.imports.match_order;
        let mut user_claims: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut agent_claims: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for decision in decided.iter_mut() {
            let object_id = &decision.user.object_id;
            if let Some(side) = decision.user_side.as_mut() {
                side.matched = find_match(&self.users, "user", object_id, &side.fields, order);
                if let Match::ByField { index, .. } = side.matched {
                    user_claims.entry(index).or_default().push(object_id.clone());
                }
            }
            if let Some(side) = decision.agent_side.as_mut() {
                side.matched = find_match(&self.agents, "agent", object_id, &side.fields, order);
                if let Match::ByField { index, .. } = side.matched {
                    agent_claims.entry(index).or_default().push(object_id.clone());
                }
            }
        }
        for decision in decided.iter_mut() {
            let key = object_key(&decision.user.object_id);
            if let Some(side) = decision.user_side.as_mut() {
                contest(&mut side.matched, &self.users, "user", &user_claims);
                self.run_users.insert(key.clone(), side.matched.clone());
            }
            if let Some(side) = decision.agent_side.as_mut() {
                contest(&mut side.matched, &self.agents, "agent", &agent_claims);
                self.run_agents.insert(key, side.matched.clone());
            }
        }
    }

    /// The line manager reference: only a person imported from Entra (in this run, or before).
    fn manager_reference(&self, manager_id: Option<&str>, as_agent: bool) -> Option<Reference> {
        let manager_id = manager_id?;
        let (run, index, new): (_, _, fn(String) -> Reference) = if as_agent {
            (&self.run_agents, &self.agents, Reference::NewAgent)
        } else {
            (&self.run_users, &self.users, Reference::NewUser)
        };
        match run.get(&object_key(manager_id)) {
            Some(Match::New) => return Some(new(manager_id.to_owned())),
            Some(Match::ByObjectId(i) | Match::ByField { index: i, .. }) => {
                return Some(Reference::Id(index.records[*i].id));
            }
            Some(Match::Conflict { .. }) => return None,
            None => {}
        }
        match index.by_object_id(manager_id) {
            [only] => Some(Reference::Id(index.records[*only].id)),
            _ => None,
        }
    }

    fn group_ids(
        &self,
        user: &SourceUser,
        entries: &[crate::config::GroupToRecord],
    ) -> BTreeMap<i64, String> {
        let nested = self.settings.advanced.nested_groups;
        entries
            .iter()
            .filter(|entry| user.in_group(&entry.group, nested))
            .map(|entry| (entry.id.0, format!("group '{}'", entry.group)))
            .fold(BTreeMap::new(), |mut acc, (id, why)| {
                acc.entry(id).or_insert(why);
                acc
            })
    }

    // ---------- users ----------

    fn plan_user(&mut self, decision: &Decision<'a, 'c>) {
        let Some(side) = &decision.user_side else { return };
        let user = decision.user;
        let tenant = decision.tenant;
        let existing = self.existing(&self.users, &side.matched);
        let mut desired = side.fields.clone();
        let rule = side.mapping.rule();
        if let Match::Conflict { rule, reason } = &side.matched {
            self.conflict(tenant, Entity::User, user, rule, reason);
            return;
        }
        desired.insert("site_id".into(), (side.site.to_value(), side.why.clone()));
        desired.insert(
            "azure_object_id".into(),
            (json!(user.object_id), "the Azure object id".into()),
        );
        desired.insert(
            "azure_tenant_id".into(),
            (json!(tenant.tenant_id), "the tenant read".into()),
        );
        self.name_fallback(&mut desired, user);
        if self
            .config
            .user_fields
            .iter()
            .any(|f| f.kind == FieldKind::Manager)
        {
            let manager = self.manager_reference(user.manager_id.as_deref(), false);
            let why = match (&manager, &user.manager_id) {
                (Some(_), Some(id)) => format!("manager {id}, a user imported from Entra"),
                (None, Some(id)) => format!("manager {id} is not a user imported from Entra"),
                (_, None) => "no manager in Entra".into(),
            };
            desired.insert(
                "line_manager_id".into(),
                (manager.map_or(Value::Null, |r| r.to_value()), why),
            );
        }

        let mut roles: BTreeMap<i64, String> = self.group_ids(user, &self.settings.advanced.user_roles);
        if let Some(role) = side.mapping.mapping.user_role_id {
            roles.entry(role.0).or_insert_with(|| format!("{rule} user role"));
        }
        if user.manager_id.is_none()
            && let Some(role) = self.settings.advanced.role_for_users_without_manager
        {
            roles
                .entry(role.0)
                .or_insert_with(|| "role for users with no manager".into());
        }
        let current_roles = existing
            .map(|r| ids_of(r.fields.get("roles")))
            .unwrap_or_default();
        let all_roles: BTreeSet<i64> = current_roles
            .union(&roles.keys().copied().collect())
            .copied()
            .collect();
        let roles_why = describe_sources(&roles, "role");
        desired.insert("roles".into(), (ids_value(&all_roles), roles_why));

        let licences = self.licences_for(tenant, user);
        desired.insert("licences".into(), (licences, "licences assigned in Entra".into()));

        if let Some(service) = &self.settings.service_accounts {
            let outside_group = service
                .group
                .as_ref()
                .is_some_and(|g| !user.in_group(g, self.settings.advanced.nested_groups));
            let without_sku = !service.required_skus.is_empty()
                && !service
                    .required_skus
                    .iter()
                    .any(|sku| user.sku_ids.iter().any(|s| s.eq_ignore_ascii_case(sku)));
            let why = match (outside_group, without_sku) {
                (true, _) => format!(
                    "service accounts: not in group '{}'",
                    service.group.as_deref().unwrap_or_default()
                ),
                (false, true) => "service accounts: holds none of the required licences".into(),
                (false, false) => "service accounts: a regular user".into(),
            };
            desired.insert(
                "is_service_account".into(),
                (json!(outside_group || without_sku), why),
            );
        }
        let mut deactivation = None;
        if self.settings.imports.sync_account_enabled {
            desired.insert(
                "active".into(),
                (
                    json!(user.account_enabled),
                    format!("accountEnabled is {}", user.account_enabled),
                ),
            );
            if !user.account_enabled {
                deactivation = Some("accountEnabled → inactive".to_owned());
            }
        } else if existing.is_none() {
            desired.insert("active".into(), (json!(true), "new users are active".into()));
        }
        let head = format!("{} — {}", user.label(), side.why);
        self.diff(
            RecordKind::User,
            tenant,
            user,
            existing,
            &side.matched,
            desired,
            &rule,
            head,
            deactivation,
        );
    }

    fn existing(&self, index: &RecordIndex<'a>, matched: &Match) -> Option<&'a DeskRecord> {
        match matched {
            Match::ByObjectId(i) | Match::ByField { index: i, .. } => index.records.get(*i),
            Match::New | Match::Conflict { .. } => None,
        }
    }

    fn name_fallback(&self, desired: &mut BTreeMap<String, (Value, String)>, user: &SourceUser) {
        let missing = desired.get("name").is_none_or(|(value, _)| value.is_null());
        if missing {
            desired.insert(
                "name".into(),
                (
                    json!(user.label()),
                    "no name mapped: display name, UPN or object id".into(),
                ),
            );
        }
    }

    /// The desk licences for the user's SKUs: existing ones by id (of the tenant's customer, or
    /// without a customer), then those this plan creates, by reference.
    fn licences_for(&self, tenant: &TenantRead, user: &SourceUser) -> Value {
        let mut ids = BTreeSet::new();
        let mut created = BTreeSet::new();
        for sku in &user.sku_ids {
            let sku = sku.to_lowercase();
            let existing: Vec<i64> = self
                .licences_by_sku
                .get(&sku)
                .into_iter()
                .flatten()
                .filter(|licence| match (tenant.customer_id, licence.customer_id) {
                    (Some(wanted), Some(owner)) => wanted == owner,
                    _ => true,
                })
                .map(|licence| licence.id.0)
                .collect();
            if !existing.is_empty() {
                ids.extend(existing);
            } else if self.new_licences.contains(&(tenant.customer_id, sku.clone())) {
                created.insert(sku);
            }
        }
        let mut values: Vec<Value> = ids.into_iter().map(Value::from).collect();
        values.extend(created.into_iter().map(|sku_id| {
            Reference::NewLicence {
                customer_id: tenant.customer_id,
                sku_id,
            }
            .to_value()
        }));
        Value::Array(values)
    }

    /// Desk licences from the tenant's subscribed SKUs, one per customer and SKU.
    fn plan_licences(&mut self, tenant: &TenantRead) {
        let Some(skus) = &tenant.subscribed_skus else {
            return;
        };
        let mut skus: Vec<&SubscribedSku> = skus.iter().collect();
        skus.sort_by_key(|sku| sku.sku_id.to_lowercase());
        skus.dedup_by_key(|sku| sku.sku_id.to_lowercase());
        let customer_text = tenant
            .customer_id
            .map_or_else(|| "-".to_owned(), |c| c.to_string());
        for sku in skus {
            let sku_key = sku.sku_id.to_lowercase();
            if !self
                .planned_licences
                .insert((tenant.customer_id, sku_key.clone()))
            {
                // The first tenant (by id) of the customer decides the licence's figures.
                continue;
            }
            let external_id = format!("{customer_text}/{sku_key}");
            let existing = self
                .licences_by_sku
                .get(&sku_key)
                .into_iter()
                .flatten()
                .filter(|licence| licence.customer_id == tenant.customer_id)
                .min_by_key(|licence| licence.id)
                .copied();
            let mut desired = BTreeMap::from([
                ("part_number".to_owned(), json!(sku.sku_part_number)),
                ("total_units".to_owned(), json!(sku.enabled_units)),
                ("consumed_units".to_owned(), json!(sku.consumed_units)),
                ("capability_status".to_owned(), json!(sku.capability_status)),
            ]);
            let rule = "licence import".to_owned();
            let Some(licence) = existing else {
                if !self.new_licences.insert((tenant.customer_id, sku_key.clone())) {
                    continue; // another tenant of the same customer already creates it
                }
                let name = sku
                    .friendly_name
                    .clone()
                    .unwrap_or_else(|| sku.sku_part_number.clone());
                desired.insert("friendly_name".into(), json!(name));
                desired.insert("sku_id".into(), json!(sku_key));
                if let Some(customer) = tenant.customer_id {
                    desired.insert("customer_id".into(), json!(customer.0));
                }
                let fields = desired
                    .into_iter()
                    .filter(|(_, value)| !value.is_null())
                    .map(|(field, after)| {
                        (
                            field,
                            FieldChange {
                                before: Value::Null,
                                after,
                            },
                        )
                    })
                    .collect();
                let reason = format!(
                    "{} ({}) is subscribed in tenant {} and the desk has no licence for it under customer {customer_text}.",
                    sku.sku_part_number, sku.sku_id, tenant.tenant_id
                );
                let change = Change {
                    entity: Entity::Licence,
                    external_id,
                    action: Action::Create,
                    fields,
                    rule,
                    reason,
                };
                self.push(Some(&tenant.tenant_id), change);
                continue;
            };
            let fields: BTreeMap<String, FieldChange> = desired
                .into_iter()
                .filter_map(|(field, after)| {
                    let before = licence.fields.get(&field).cloned().unwrap_or(Value::Null);
                    (!same(&before, &after)).then_some((field, FieldChange { before, after }))
                })
                .collect();
            if fields.is_empty() {
                continue;
            }
            self.out
                .targets
                .insert(Plan::target_key(Entity::Licence, &external_id), licence.id);
            let reason = format!(
                "{} ({}) as subscribed in tenant {}.",
                sku.sku_part_number, sku.sku_id, tenant.tenant_id
            );
            let change = Change {
                entity: Entity::Licence,
                external_id,
                action: Action::Update,
                fields,
                rule,
                reason,
            };
            self.push(Some(&tenant.tenant_id), change);
        }
    }

    fn conflict(&mut self, tenant: &TenantRead, entity: Entity, user: &SourceUser, rule: &str, reason: &str) {
        let change = Change {
            entity,
            external_id: user.object_id.clone(),
            action: Action::Conflict,
            fields: BTreeMap::new(),
            rule: rule.to_owned(),
            reason: format!("{}: {reason}", user.label()),
        };
        self.push(Some(&tenant.tenant_id), change);
    }

    // ---------- agents ----------

    fn plan_agent(&mut self, decision: &Decision<'a, 'c>) {
        let Some(side) = &decision.agent_side else { return };
        let user = decision.user;
        let tenant = decision.tenant;
        if let Match::Conflict { rule, reason } = &side.matched {
            self.conflict(tenant, Entity::Agent, user, rule, reason);
            return;
        }
        let existing = self.existing(&self.agents, &side.matched);
        let settings = self.settings;
        let advanced = &settings.advanced;
        let rule = side.mapping.rule();
        let mut desired = side.fields.clone();
        desired.insert(
            "azure_object_id".into(),
            (json!(user.object_id), "the Azure object id".into()),
        );
        desired.insert(
            "azure_tenant_id".into(),
            (json!(tenant.tenant_id), "the tenant read".into()),
        );
        self.name_fallback(&mut desired, user);

        let mut default_team = None;
        // A team name that matches no team leaves an existing agent's default team alone and
        // gives a new agent none.
        if let Some((value, origin)) = desired.remove("default_team_id")
            && let Some(team) = value
                .as_str()
                .and_then(|name| self.config.teams_by_name.get(&name.to_lowercase()))
        {
            default_team = Some(*team);
            let why = format!("team '{}' from {origin}", value.as_str().unwrap_or_default());
            desired.insert("default_team_id".into(), (json!(team.0), why));
        }
        if self
            .config
            .agent_fields
            .iter()
            .any(|f| f.kind == FieldKind::Manager)
        {
            let manager = self.manager_reference(user.manager_id.as_deref(), true);
            let why = match (&manager, &user.manager_id) {
                (Some(_), Some(id)) => format!("manager {id}, an agent imported from Entra"),
                (None, Some(id)) => format!("manager {id} is not an agent imported from Entra"),
                (_, None) => "no manager in Entra".into(),
            };
            desired.insert(
                "line_manager_id".into(),
                (manager.map_or(Value::Null, |r| r.to_value()), why),
            );
        }

        let mapped_roles = self.group_ids(user, &advanced.agent_roles);
        let current_roles = existing
            .map(|r| ids_of(r.fields.get("roles")))
            .unwrap_or_default();
        let roles: BTreeSet<i64> = if advanced.full_role_management {
            mapped_roles.keys().copied().collect()
        } else {
            current_roles
                .union(&mapped_roles.keys().copied().collect())
                .copied()
                .collect()
        };
        let roles_why = if advanced.full_role_management {
            format!(
                "full role management: {}",
                describe_sources(&mapped_roles, "role")
            )
        } else {
            describe_sources(&mapped_roles, "role")
        };
        desired.insert("roles".into(), (ids_value(&roles), roles_why));

        let (mut active, mut active_why, mut deactivation) = if settings.imports.sync_account_enabled {
            let rule = (!user.account_enabled).then(|| "accountEnabled → inactive".to_owned());
            (
                Some(user.account_enabled),
                format!("accountEnabled is {}", user.account_enabled),
                rule,
            )
        } else if existing.is_none() {
            (Some(true), "new agents are active".to_owned(), None)
        } else {
            (None, String::new(), None)
        };
        if advanced.full_role_management && roles.is_empty() && active != Some(false) {
            active = Some(false);
            active_why = "full role management: no group gives this agent a role".into();
            deactivation = Some("full role management".into());
        }
        let licences = &settings.licence_management;
        if licences.enabled
            && active != Some(false)
            && let Some(role) = licences
                .inactive_roles
                .iter()
                .find(|role| roles.contains(&role.0))
        {
            active = Some(false);
            active_why = format!("licence management: agent role {role} makes agents inactive");
            deactivation = Some("licence management".into());
        }
        if let Some(active) = active {
            desired.insert("active".into(), (json!(active), active_why));
        }

        let licence_type = if licences.enabled {
            let named = licences
                .named_licence_roles
                .iter()
                .find(|role| roles.contains(&role.0));
            Some(match named {
                Some(role) => (
                    "named",
                    format!("licence management: agent role {role} gives a named licence"),
                ),
                None => (
                    "concurrent",
                    "licence management: no role gives a named licence".into(),
                ),
            })
        } else if let SiteTarget::Agent { licence_type, .. } = &side.mapping.mapping.target {
            match (licence_type, existing) {
                (LicenceTypeChoice::Named, _) => Some(("named", format!("{rule} licence type"))),
                (LicenceTypeChoice::Concurrent, _) => Some(("concurrent", format!("{rule} licence type"))),
                (LicenceTypeChoice::NoChange, None) => {
                    Some(("concurrent", "new agents are concurrent".into()))
                }
                (LicenceTypeChoice::NoChange, Some(_)) => None,
            }
        } else {
            None
        };
        if let Some((licence_type, why)) = licence_type {
            desired.insert("licence_type".into(), (json!(licence_type), why));
        }

        let mut teams = existing
            .map(|r| teams_of(r.fields.get("teams")))
            .unwrap_or_default();
        let team_groups = self.group_ids(user, &advanced.teams);
        let mut team_reasons = Vec::new();
        for (team, why) in &team_groups {
            if !teams.contains_key(team) {
                teams.insert(*team, [true, false, false]);
                team_reasons.push(format!("team {team} from {why}"));
            }
        }
        if advanced.remove_agents_from_unmapped_teams {
            let managed: BTreeSet<i64> = advanced.teams.iter().map(|entry| entry.id.0).collect();
            let before = teams.len();
            teams.retain(|team, _| {
                !managed.contains(team)
                    || team_groups.contains_key(team)
                    || Some(*team) == default_team.map(|t| t.0)
            });
            if teams.len() != before {
                team_reasons.push("removed from mapped teams whose groups no longer hold the agent".into());
            }
        }
        if let Some(team) = default_team {
            let flags = teams.entry(team.0).or_insert([false; 3]);
            if *flags != [true; 3] {
                *flags = [true; 3];
                team_reasons.push(format!("default team {team} grants all three membership flags"));
            }
        }
        desired.insert("teams".into(), (teams_value(&teams), team_reasons.join("; ")));

        let mut cabs = existing
            .map(|r| cabs_of(r.fields.get("cabs")))
            .unwrap_or_default();
        let mut cab_reasons = Vec::new();
        for entry in &advanced.cabs {
            if user.in_group(&entry.group, advanced.nested_groups) {
                let role = entry.cab_role_id.map(|r| r.0);
                let current = cabs.get(&entry.cab_id.0).copied();
                if current.is_none() || (role.is_some() && current != Some(role)) {
                    cabs.insert(entry.cab_id.0, role);
                    cab_reasons.push(format!("CAB {} from group '{}'", entry.cab_id, entry.group));
                }
            }
        }
        desired.insert("cabs".into(), (cabs_value(&cabs), cab_reasons.join("; ")));

        let head = format!("{} — {}", user.label(), side.why);
        self.diff(
            RecordKind::Agent,
            tenant,
            user,
            existing,
            &side.matched,
            desired,
            &rule,
            head,
            deactivation,
        );
    }

    fn plan_orphan_agent(&mut self, decision: &Decision<'a, 'c>) {
        let Some(index) = decision.orphan_agent else {
            return;
        };
        let record = &self.agents.records[index];
        let user = decision.user;
        let settings = self.settings;
        let mapped_roles = self.group_ids(user, &settings.advanced.agent_roles);
        let roles: BTreeSet<i64> = mapped_roles.keys().copied().collect();
        let mut desired = BTreeMap::new();
        let roles_why = format!(
            "full role management: {}",
            describe_sources(&mapped_roles, "role")
        );
        desired.insert("roles".to_owned(), (ids_value(&roles), roles_why));
        let mut deactivation = None;
        if roles.is_empty() {
            let why =
                "full role management: no agent site mapping selects this agent and no group gives it a role";
            desired.insert("active".into(), (json!(false), why.to_owned()));
            deactivation = Some("full role management".to_owned());
        } else if settings.imports.sync_account_enabled && !user.account_enabled {
            desired.insert(
                "active".into(),
                (json!(false), "accountEnabled is false".to_owned()),
            );
            deactivation = Some("accountEnabled → inactive".to_owned());
        }
        let head = format!(
            "{} — no agent site mapping selects this agent any more",
            user.label()
        );
        let matched = Match::ByObjectId(index);
        self.diff(
            RecordKind::Agent,
            decision.tenant,
            user,
            Some(record),
            &matched,
            desired,
            "full role management",
            head,
            deactivation,
        );
    }

    // ---------- diffing ----------

    #[allow(clippy::too_many_arguments)]
    fn diff(
        &mut self,
        kind: RecordKind,
        tenant: &TenantRead,
        user: &SourceUser,
        existing: Option<&'a DeskRecord>,
        matched: &Match,
        desired: BTreeMap<String, (Value, String)>,
        rule: &str,
        head: String,
        deactivation_rule: Option<String>,
    ) {
        let entity = match kind {
            RecordKind::User => Entity::User,
            RecordKind::Agent => Entity::Agent,
        };
        let Some(record) = existing else {
            let fields: BTreeMap<String, FieldChange> = desired
                .iter()
                .filter(|(_, (value, _))| !is_empty(value))
                .map(|(field, (value, _))| {
                    (
                        field.clone(),
                        FieldChange {
                            before: Value::Null,
                            after: value.clone(),
                        },
                    )
                })
                .collect();
            let origins = desired
                .iter()
                .filter(|(_, (value, why))| !is_empty(value) && !why.is_empty())
                .map(|(field, (_, why))| format!("{field} ← {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            let change = Change {
                entity,
                external_id: user.object_id.clone(),
                action: Action::Create,
                fields,
                rule: rule.to_owned(),
                reason: format!("New {}: {head}. {origins}.", entity.as_str()),
            };
            self.push(Some(&tenant.tenant_id), change);
            return;
        };
        let mut fields = BTreeMap::new();
        let mut origins = Vec::new();
        for (field, (wanted, why)) in desired {
            let current = record.fields.get(&field).cloned().unwrap_or(Value::Null);
            if same(&current, &wanted) {
                continue;
            }
            if let Some(lock) = self.lock_for(kind, record, &field, &wanted) {
                self.out.locked.push(LockedChange {
                    entity,
                    external_id: user.object_id.clone(),
                    field: field.clone(),
                    current,
                    wanted,
                    lock,
                });
                continue;
            }
            if !why.is_empty() {
                origins.push(format!("{field} ← {why}"));
            }
            fields.insert(
                field,
                FieldChange {
                    before: current,
                    after: wanted,
                },
            );
        }
        let becomes = fields
            .get("active")
            .map(|change| change.after.as_bool().unwrap_or(true));
        let (action, rule, head) = match (matched, becomes) {
            (Match::ByField { field, value, .. }, _) => (
                Action::Link,
                rule.to_owned(),
                format!(
                    "{head}; linked to existing desk {} {} matched on {} '{value}'",
                    entity.as_str(),
                    record.label(),
                    field.desk_field()
                ),
            ),
            (_, Some(false)) if record.is_active() => (
                Action::Deactivate,
                deactivation_rule.unwrap_or_else(|| rule.to_owned()),
                head,
            ),
            (_, Some(true)) if !record.is_active() => (Action::Reactivate, rule.to_owned(), head),
            _ if fields.is_empty() => {
                self.out.unchanged += 1;
                return;
            }
            _ => (Action::Update, rule.to_owned(), head),
        };
        if action == Action::Deactivate && kind == RecordKind::Agent {
            self.out
                .deactivated_agents
                .push((tenant.tenant_id.clone(), record.id, record.label()));
        }
        self.out
            .targets
            .insert(Plan::target_key(entity, &user.object_id), record.id);
        let change = Change {
            entity,
            external_id: user.object_id.clone(),
            action,
            fields,
            rule,
            reason: format!(
                "{head}. {}.",
                if origins.is_empty() {
                    "No field changes".into()
                } else {
                    origins.join("; ")
                }
            ),
        };
        self.push(Some(&tenant.tenant_id), change);
    }

    fn lock_for(&self, kind: RecordKind, record: &DeskRecord, field: &str, wanted: &Value) -> Option<String> {
        let external_id = record
            .source
            .as_ref()
            .map(|s| s.external_id.as_str())
            .or_else(|| record.text("azure_object_id"));
        let configured = self.settings.record_locks.iter().find(|lock| {
            lock.entity == kind && external_id.is_some_and(|id| id.eq_ignore_ascii_case(&lock.external_id))
        });
        let deactivating = field == "active" && wanted == &Value::Bool(false);
        if deactivating && record.locks.keep_active {
            return Some("record lock: keep active".into());
        }
        if deactivating && configured.is_some_and(|lock| lock.keep_active) {
            return Some("record lock (configuration): keep active".into());
        }
        if record.locks.fields.contains(field) {
            return Some(format!("record lock: never overwrite '{field}'"));
        }
        if configured.is_some_and(|lock| lock.fields.iter().any(|f| f == field)) {
            return Some(format!("record lock (configuration): never overwrite '{field}'"));
        }
        self.settings
            .field_locks
            .iter()
            .any(|lock| lock.entity == kind && lock.field == field)
            .then(|| format!("field lock: never overwrite '{field}' on any {}", kind_name(kind)))
    }

    // ---------- records not found / deleted ----------

    fn plan_removals(&mut self, tenant: &TenantRead, seen: &BTreeSet<String>) {
        let deactivate = self.settings.imports.deactivate_not_found;
        let mut gone: BTreeMap<String, (String, String)> = BTreeMap::new();
        match (tenant.mode, tenant.completeness) {
            (ReadMode::Full, Completeness::Complete) if deactivate => {
                let records = self
                    .users
                    .of_tenant(&tenant.tenant_id)
                    .chain(self.agents.of_tenant(&tenant.tenant_id));
                for record in records {
                    let Some(source) = record.source.as_ref() else {
                        continue;
                    };
                    if !seen.contains(&object_key(&source.external_id)) {
                        gone.insert(
                            object_key(&source.external_id),
                            (
                                "deactivate users not found (full import)".into(),
                                format!(
                                    "not found in the complete full read of tenant {}",
                                    tenant.tenant_id
                                ),
                            ),
                        );
                    }
                }
            }
            (ReadMode::Full, completeness) if completeness != Completeness::Complete => {
                self.out.notes.push(format!(
                    "tenant {}: the full read was {}; records it did not see were not deactivated",
                    tenant.tenant_id,
                    if completeness == Completeness::Partial {
                        "partial"
                    } else {
                        "failed"
                    }
                ));
            }
            _ => {}
        }
        let mut ignored = 0;
        for removal in &tenant.removed {
            let key = object_key(&removal.object_id);
            if seen.contains(&key) {
                continue; // also present as a user: a later restore wins
            }
            if !deactivate {
                ignored += 1;
                continue;
            }
            let why = match removal.reason {
                RemovalReason::Deleted => "permanently deleted in Entra (delta)".to_owned(),
                RemovalReason::Changed => {
                    "deleted in Entra and in its recycle bin (delta, restorable: a restore reactivates)"
                        .to_owned()
                }
            };
            gone.insert(key, ("deactivate users deleted in Entra (delta)".into(), why));
        }
        if ignored > 0 {
            self.out.notes.push(format!(
                "tenant {}: {ignored} deletion(s) reported by delta were not applied because 'deactivate users not found' is off",
                tenant.tenant_id
            ));
        }
        for (key, (rule, why)) in gone {
            for kind in [RecordKind::User, RecordKind::Agent] {
                let index = match kind {
                    RecordKind::User => &self.users,
                    RecordKind::Agent => &self.agents,
                };
                let records: Vec<&'a DeskRecord> = index
                    .by_object_id(&key)
                    .iter()
                    .map(|i| &index.records[*i])
                    .filter(|r| {
                        r.source
                            .as_ref()
                            .is_some_and(|s| s.connection_id == self.connection)
                    })
                    .collect();
                if records.len() > 1 {
                    let ids = records
                        .iter()
                        .map(|r| r.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let message = format!(
                        "{} desk {}s carry Azure object id {key} (ids {ids}); none is deactivated, resolve by hand",
                        records.len(),
                        kind_name(kind)
                    );
                    self.error(tenant, &key, message);
                    continue;
                }
                for record in records {
                    self.deactivate_missing(kind, tenant, record, &rule, &why);
                }
            }
        }
    }

    fn deactivate_missing(
        &mut self,
        kind: RecordKind,
        tenant: &TenantRead,
        record: &'a DeskRecord,
        rule: &str,
        why: &str,
    ) {
        let entity = if kind == RecordKind::User {
            Entity::User
        } else {
            Entity::Agent
        };
        let external_id = record
            .source
            .as_ref()
            .map(|s| s.external_id.clone())
            .unwrap_or_default();
        let mut fields = BTreeMap::new();
        if record.is_active() {
            match self.lock_for(kind, record, "active", &Value::Bool(false)) {
                Some(lock) => self.out.locked.push(LockedChange {
                    entity,
                    external_id: external_id.clone(),
                    field: "active".into(),
                    current: Value::Bool(true),
                    wanted: Value::Bool(false),
                    lock,
                }),
                None => {
                    fields.insert(
                        "active".to_owned(),
                        FieldChange {
                            before: json!(true),
                            after: json!(false),
                        },
                    );
                }
            }
        }
        let advanced = &self.settings.advanced;
        if kind == RecordKind::Agent && advanced.remove_agents_from_unmapped_teams {
            let managed: BTreeSet<i64> = advanced.teams.iter().map(|entry| entry.id.0).collect();
            let current = teams_of(record.fields.get("teams"));
            let mut kept = current.clone();
            kept.retain(|team, _| !managed.contains(team));
            if kept != current {
                fields.insert(
                    "teams".into(),
                    FieldChange {
                        before: teams_value(&current),
                        after: teams_value(&kept),
                    },
                );
            }
        }
        if fields.is_empty() {
            return;
        }
        let action = if fields.contains_key("active") {
            Action::Deactivate
        } else {
            Action::Update
        };
        if action == Action::Deactivate && kind == RecordKind::Agent {
            self.out
                .deactivated_agents
                .push((tenant.tenant_id.clone(), record.id, record.label()));
        }
        self.out
            .targets
            .insert(Plan::target_key(entity, &external_id), record.id);
        let change = Change {
            entity,
            external_id,
            action,
            fields,
            rule: rule.to_owned(),
            reason: format!("Desk {} {}: {why}.", entity.as_str(), record.label()),
        };
        self.push(Some(&tenant.tenant_id), change);
    }

    fn plan_ticket_reassignments(&mut self) {
        if !self.settings.imports.reassign_tickets_of_inactive_agents {
            return;
        }
        let deactivated = std::mem::take(&mut self.out.deactivated_agents);
        let mut tickets_by_agent: BTreeMap<RecordId, Vec<&DeskTicket>> = BTreeMap::new();
        for ticket in &self.snapshot.tickets {
            if let Some(agent) = ticket.agent_id {
                tickets_by_agent.entry(agent).or_default().push(ticket);
            }
        }
        tickets_by_agent
            .values_mut()
            .for_each(|tickets| tickets.sort_by_key(|t| t.id));
        for (tenant, agent, label) in deactivated {
            for ticket in tickets_by_agent.get(&agent).into_iter().flatten() {
                let external_id = ticket.id.to_string();
                self.out
                    .targets
                    .insert(Plan::target_key(Entity::Ticket, &external_id), ticket.id);
                let change = Change {
                    entity: Entity::Ticket,
                    external_id,
                    action: Action::Update,
                    fields: BTreeMap::from([(
                        "agent_id".to_owned(),
                        FieldChange {
                            before: json!(agent.0),
                            after: Value::Null,
                        },
                    )]),
                    rule: "re-assign tickets of agents made inactive".into(),
                    reason: format!(
                        "Agent {label} is made inactive by this sync, so ticket {} goes back to unassigned.",
                        ticket.id
                    ),
                };
                self.push(Some(&tenant), change);
            }
        }
    }

    // ---------- assembling ----------

    fn finish(mut self, tenants: &[&TenantRead], input: &PlanInput, now: jiff::Timestamp) -> Plan {
        for ((customer_id, _), (name, rule)) in std::mem::take(&mut self.new_sites) {
            let change = Change {
                entity: Entity::Site,
                external_id: format!("{customer_id}/{name}"),
                action: Action::Create,
                fields: BTreeMap::from([
                    (
                        "customer_id".to_owned(),
                        FieldChange {
                            before: Value::Null,
                            after: json!(customer_id.0),
                        },
                    ),
                    (
                        "name".to_owned(),
                        FieldChange {
                            before: Value::Null,
                            after: json!(name),
                        },
                    ),
                    (
                        "is_main".to_owned(),
                        FieldChange {
                            before: Value::Null,
                            after: json!(false),
                        },
                    ),
                ]),
                rule,
                reason: format!(
                    "No site named '{name}' exists under customer {customer_id}; users of this value are placed there."
                ),
            };
            self.push(None, change);
        }
        let mut changes = std::mem::take(&mut self.out.changes);
        changes.sort_by(|(ta, a), (tb, b)| {
            (a.entity, ta, &a.external_id, a.action).cmp(&(b.entity, tb, &b.external_id, b.action))
        });
        let breaker = &self.settings.circuit_breaker;
        let mut verdicts = Vec::new();
        let mut held = Vec::new();
        let mut kept = Vec::new();
        let mut deactivations_by_tenant: BTreeMap<&str, usize> = BTreeMap::new();
        for (tenant, change) in &changes {
            if let Some(tenant) = tenant.as_deref()
                && change.action == Action::Deactivate
                && matches!(change.entity, Entity::User | Entity::Agent)
            {
                *deactivations_by_tenant.entry(tenant).or_default() += 1;
            }
        }
        for tenant in tenants {
            let deactivations = deactivations_by_tenant
                .get(tenant.tenant_id.as_str())
                .copied()
                .unwrap_or(0);
            let active_records = self
                .users
                .of_tenant(&tenant.tenant_id)
                .chain(self.agents.of_tenant(&tenant.tenant_id))
                .filter(|r| r.is_active())
                .count();
            let share = if active_records == 0 {
                0.0
            } else {
                deactivations as f64 * 100.0 / active_records as f64
            };
            let trips = deactivations > breaker.floor as usize && share > breaker.max_deactivate_percent;
            let approved = input.approved_tenants.contains(&tenant.tenant_id);
            let reason = if trips {
                format!(
                    "this run would deactivate {deactivations} of {active_records} active records ({share:.1} %), more than the {} % allowed",
                    breaker.max_deactivate_percent
                ) + if approved {
                    "; approved by an administrator"
                } else {
                    "; held for approval, nothing of this tenant is applied"
                }
            } else if deactivations <= breaker.floor as usize {
                format!(
                    "{deactivations} deactivation(s) of {active_records} active records ({share:.1} %): not more than the floor of {}, so the breaker does not trip",
                    breaker.floor
                )
            } else {
                format!(
                    "{deactivations} deactivation(s) of {active_records} active records ({share:.1} %): within the {} % allowed",
                    breaker.max_deactivate_percent
                )
            };
            let is_held = trips && !approved;
            if is_held {
                held.push(HeldTenant {
                    tenant_id: tenant.tenant_id.clone(),
                    reason: reason.clone(),
                    changes: Vec::new(),
                });
            }
            verdicts.push(BreakerVerdict {
                tenant_id: tenant.tenant_id.clone(),
                held: is_held,
                deactivations,
                active_records,
                reason,
            });
        }
        for (tenant, change) in changes {
            match tenant
                .as_ref()
                .and_then(|t| held.iter_mut().find(|h| &h.tenant_id == t))
            {
                Some(held_tenant) => held_tenant.changes.push(change),
                None => kept.push(change),
            }
        }
        let mut counts = Counts {
            unchanged: self.out.unchanged,
            errors: self.out.errors.len(),
            ..Counts::default()
        };
        for change in &kept {
            match change.action {
                Action::Create => counts.created += 1,
                Action::Update | Action::Link | Action::Reactivate => counts.updated += 1,
                Action::Deactivate => counts.deactivated += 1,
                Action::Conflict => counts.conflicts += 1,
                Action::Skip => {}
            }
        }
        // Held changes keep their targets too, so an approved re-plan and the preview agree.
        let targets = self.out.targets;
        Plan {
            generated_at: now,
            changes: kept,
            targets,
            locked: self.out.locked,
            circuit_breaker: verdicts,
            held,
            errors: self.out.errors,
            notes: self.out.notes,
            counts,
        }
    }
}

enum SiteMiss {
    /// The mapping does not apply; try the next one.
    TryNext(String),
    /// The mapping applies and says not to import.
    Skip(String),
}

fn find_match(
    index: &RecordIndex<'_>,
    entity: &str,
    object_id: &str,
    fields: &BTreeMap<String, (Value, String)>,
    order: &[MatchField],
) -> Match {
    match index.by_object_id(object_id) {
        [] => {}
        [only] => return Match::ByObjectId(*only),
        several => {
            return Match::Conflict {
                rule: format!("{entity} matching (Azure object id)"),
                reason: format!(
                    "{} desk {entity}s carry Azure object id {object_id} (ids {}); not linked, resolve by hand",
                    several.len(),
                    ids_text(index, several)
                ),
            };
        }
    }
    for field in order {
        let Some(value) = fields
            .get(field.desk_field())
            .and_then(|(v, _)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let candidates = index
            .unlinked
            .get(&(*field, value.to_lowercase()))
            .map_or(&[][..], Vec::as_slice);
        match candidates {
            [] => continue,
            [only] => {
                return Match::ByField {
                    index: *only,
                    field: *field,
                    value: value.to_owned(),
                };
            }
            several => {
                return Match::Conflict {
                    rule: format!("{entity} matching ({})", field.desk_field()),
                    reason: format!(
                        "{} desk {entity}s have {} '{value}' (ids {}); not linked, resolve by hand",
                        several.len(),
                        field.desk_field(),
                        ids_text(index, several)
                    ),
                };
            }
        }
    }
    Match::New
}

/// Turns a field match into a conflict when other source users fit the same desk record.
fn contest(
    matched: &mut Match,
    index: &RecordIndex<'_>,
    entity: &str,
    claims: &BTreeMap<usize, Vec<String>>,
) {
    let Match::ByField {
        index: record,
        field,
        value,
    } = matched
    else {
        return;
    };
    let Some(claimants) = claims.get(record).filter(|c| c.len() > 1) else {
        return;
    };
    *matched = Match::Conflict {
        rule: format!("{entity} matching ({})", field.desk_field()),
        reason: format!(
            "desk {entity} {} fits {} Azure users on {} '{value}' ({}); not linked, resolve by hand",
            index.records[*record].label(),
            claimants.len(),
            field.desk_field(),
            claimants.join(", ")
        ),
    };
}

fn ids_text(index: &RecordIndex<'_>, indices: &[usize]) -> String {
    indices
        .iter()
        .map(|i| index.records[*i].id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::User => "user",
        RecordKind::Agent => "agent",
    }
}

fn describe_sources(sources: &BTreeMap<i64, String>, what: &str) -> String {
    sources
        .iter()
        .map(|(id, why)| format!("{what} {id} from {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Equality of desk values, where null, a missing value and an empty set are alike and numbers
/// compare by value.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, value)| y.get(key).is_some_and(|other| same(value, other)))
        }
        _ if is_empty(a) && is_empty(b) => true,
        _ => a == b,
    }
}

pub(crate) fn ids_of(value: Option<&Value>) -> BTreeSet<i64> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

pub(crate) fn ids_value(ids: &BTreeSet<i64>) -> Value {
    Value::Array(ids.iter().map(|id| json!(id)).collect())
}

pub(crate) fn teams_of(value: Option<&Value>) -> BTreeMap<i64, [bool; 3]> {
    let flag =
        |entry: &Map<String, Value>, name: &str| entry.get(name).and_then(Value::as_bool).unwrap_or(false);
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|entry| {
                    let team = entry.get("team_id")?.as_i64()?;
                    Some((
                        team,
                        [
                            flag(entry, "can_be_assigned"),
                            flag(entry, "can_see_unassigned"),
                            flag(entry, "can_see_others_tickets"),
                        ],
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn teams_value(teams: &BTreeMap<i64, [bool; 3]>) -> Value {
    Value::Array(
        teams
            .iter()
            .map(|(team, [assigned, unassigned, others])| {
                json!({"team_id": team, "can_be_assigned": assigned, "can_see_unassigned": unassigned, "can_see_others_tickets": others})
            })
            .collect(),
    )
}

pub(crate) fn cabs_of(value: Option<&Value>) -> BTreeMap<i64, Option<i64>> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|entry| {
                    Some((
                        entry.get("cab_id")?.as_i64()?,
                        entry.get("cab_role_id").and_then(Value::as_i64),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn cabs_value(cabs: &BTreeMap<i64, Option<i64>>) -> Value {
    Value::Array(
        cabs.iter()
            .map(|(cab, role)| json!({"cab_id": cab, "cab_role_id": role}))
            .collect(),
    )
}
