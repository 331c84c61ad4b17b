//! A tenant's end ([`RunPlanner::finish_tenant`]): what only the whole read decides. Records
//! absent from a complete full read and delta removals not read again are deactivated; the
//! deactivations and updates the pages deferred join them; the circuit breaker weighs them all
//! (see `breaker`); tickets of agents made inactive go back to unassigned; line managers read
//! after their reports are linked.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::{Value, json};

use super::breaker::{Counted, weigh};
use super::diff::{kind_name, lock_for, same, teams_of, teams_value};
use super::lookups::{ConnectionRecord, ConnectionRecords};
use super::matching::reference_to;
use super::page::{Output, sort_changes};
use super::{DeferredLink, HoldScope, RunPlanner, RunState, deactivates, external_key, not_begun};
use crate::config::{MappingConfig, RecordKind};
use crate::input::{Completeness, DeskRecord, DeskTicket, ReadMode, RemovalReason};
use crate::plan::{Action, Change, Entity, FieldChange, HeldTenant, LockedChange, Plan, PlanError};

impl RunPlanner<'_> {
    /// Ends a tenant (see the module documentation). `completeness`: whether every page of the
    /// read was read. `desk`: what [`RunPlanner::finish_lookups`] and
    /// [`RunPlanner::ticket_agents`] name. The plan's `held` carries what tripped the circuit
    /// breaker: the tenant's deactivations (and the re-assignments depending on them), its
    /// updates of existing records (too many moves, or changes of one field), or both.
    pub fn finish_tenant(
        &mut self,
        tenant_id: &str,
        completeness: Completeness,
        desk: &ConnectionRecords,
    ) -> Plan {
        let Some(tenant) = self.run.tenants.remove(tenant_id) else {
            return not_begun(tenant_id, self.now);
        };
        let mut end = TenantEnd {
            settings: self.config.config(),
            connection: self.connection,
            tenant_id: tenant_id.to_owned(),
            out: Output::default(),
            holdable: Vec::new(),
            updates: Vec::new(),
            uncounted: Vec::new(),
            deactivated_agents: Vec::new(),
        };
        for link in &tenant.links {
            end.link_manager(link, &self.run);
        }
        for deferred in tenant.updates {
            let key = Plan::target_key(deferred.change.entity, &deferred.change.external_id);
            end.out.targets.insert(key, deferred.target);
            if deferred.active {
                end.updates.push(deferred.change);
            } else {
                end.uncounted.push(deferred.change);
            }
        }
        for deferred in tenant.deactivations {
            let key = Plan::target_key(deferred.change.entity, &deferred.change.external_id);
            end.out.targets.insert(key, deferred.target);
            if let Some(label) = deferred.agent_label {
                end.deactivated_agents.push((deferred.target, label));
            }
            end.holdable.push(deferred.change);
        }
        end.plan_removals(
            tenant.header.mode,
            completeness,
            &tenant.removals,
            desk,
            &self.run,
        );
        end.plan_ticket_reassignments(&desk.tickets);

        let counted = Counted {
            tenant_id,
            active_records: tenant.header.active_records,
            deactivations: end.holdable.iter().filter(|c| deactivates(c)).count(),
            updates: &end.updates,
        };
        let approved = self.approved_tenants.contains(tenant_id);
        let weighed = weigh(&end.settings.circuit_breaker, &counted, approved, self.hold);
        // The whole plan holds the tenant whole (see `merge_whole`): everything deferred goes
        // with the verdict. A page-wise run holds what tripped the breaker; the rest applies.
        let whole = self.hold == HoldScope::WholeTenant && weighed.verdict.held;
        let mut held_changes = Vec::new();
        if whole || weighed.hold_deactivations {
            held_changes.append(&mut end.holdable);
        }
        if whole || weighed.hold_updates {
            held_changes.append(&mut end.updates);
            held_changes.append(&mut end.uncounted);
        }
        end.out.changes.append(&mut end.holdable);
        end.out.changes.append(&mut end.updates);
        end.out.changes.append(&mut end.uncounted);
        let mut held = Vec::new();
        if weighed.verdict.held {
            sort_changes(&mut held_changes);
            held.push(HeldTenant {
                tenant_id: tenant_id.to_owned(),
                reason: weighed.verdict.reason.clone(),
                changes: held_changes,
            });
        }
        end.out.into_plan(self.now, vec![weighed.verdict], held)
    }
}

/// The state of one tenant's end being planned.
struct TenantEnd<'c> {
    settings: &'c MappingConfig,
    connection: ConnectionId,
    tenant_id: String,
    out: Output,
    /// Deactivations and what depends on them: what a tripped breaker holds.
    holdable: Vec<Change>,
    /// Updates of existing records (deferred from the pages, and line managers linked here):
    /// what the breaker counts as moves and changes, and holds when they are too many.
    updates: Vec<Change>,
    /// Updates of records inactive before the run: not among the active records the breaker
    /// weighs against, so not counted, but held with the updates.
    uncounted: Vec<Change>,
    /// Agents made inactive: (desk id, label).
    deactivated_agents: Vec<(RecordId, String)>,
}

impl TenantEnd<'_> {
    fn link_manager(&mut self, link: &DeferredLink, run: &RunState) {
        let manager = run
            .outcome(&link.manager_id, link.kind)
            .and_then(|outcome| reference_to(outcome, &link.manager_id, link.kind));
        let wanted = manager.as_ref().map_or(Value::Null, |r| r.to_value());
        if same(&link.before, &wanted) {
            return;
        }
        let entity = entity_of(link.kind);
        if let Some(lock) = &link.lock {
            self.out.locked.push(LockedChange {
                entity,
                external_id: link.external_id.clone(),
                field: "line_manager_id".into(),
                current: link.before.clone(),
                wanted,
                lock: lock.clone(),
            });
            return;
        }
        let what = match link.kind {
            RecordKind::User => "a user",
            RecordKind::Agent => "an agent",
        };
        let id = &link.manager_id;
        let why = match manager {
            Some(_) => format!(
                "manager {id}, {what} imported from Entra, read after this {}",
                kind_name(link.kind)
            ),
            None => format!("manager {id} is not {what} imported from Entra"),
        };
        let change = Change {
            entity,
            external_id: link.external_id.clone(),
            name: None,
            action: Action::Update,
            fields: BTreeMap::from([(
                "line_manager_id".to_owned(),
                FieldChange {
                    before: link.before.clone(),
                    after: wanted,
                },
            )]),
            rule: link.rule.clone(),
            reason: format!(
                "{} — the line manager, once the whole tenant was read. line_manager_id ← {why}.",
                link.label
            ),
        };
        // An existing record's new manager is an update the breaker counts; a record this run
        // created gets its manager with the rest of its creation.
        match link.target {
            Some(target) => {
                self.out
                    .targets
                    .insert(Plan::target_key(entity, &link.external_id), target);
                if link.active {
                    self.updates.push(change);
                } else {
                    self.uncounted.push(change);
                }
            }
            None => self.out.changes.push(change),
        }
    }

    fn error(&mut self, external_id: &str, message: String) {
        self.out.errors.push(PlanError {
            tenant_id: self.tenant_id.clone(),
            external_id: external_id.to_owned(),
            message,
        });
    }

    fn plan_removals(
        &mut self,
        mode: ReadMode,
        completeness: Completeness,
        removals: &BTreeMap<String, (RemovalReason, usize)>,
        desk: &ConnectionRecords,
        run: &RunState,
    ) {
        let deactivate = self.settings.imports.deactivate_not_found;
        let tenant_id = self.tenant_id.clone();
        let mut gone: BTreeMap<String, (String, String)> = BTreeMap::new();
        match (mode, completeness) {
            (ReadMode::Full, Completeness::Complete) if deactivate => {
                let of_tenant = desk.records.iter().filter(|r| {
                    r.tenant_id
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(&tenant_id))
                });
                for record in of_tenant {
                    let key = external_key(&record.external_id);
                    if !run.people.contains(&key) {
                        gone.insert(
                            key,
                            (
                                "deactivate users not found (full import)".into(),
                                format!("not found in the complete full read of tenant {tenant_id}"),
                            ),
                        );
                    }
                }
            }
            (ReadMode::Full, completeness) if completeness != Completeness::Complete => {
                self.out.notes.push(format!(
                    "tenant {tenant_id}: the full read was {}; records it did not see were not deactivated",
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
        for (key, (reason, reports)) in removals {
            if run.people.contains(key) {
                continue; // also read as a user: a later restore wins
            }
            if !deactivate {
                ignored += reports;
                continue;
            }
            let why = match reason {
                RemovalReason::Deleted => "permanently deleted in Entra (delta)".to_owned(),
                RemovalReason::Changed => {
                    "deleted in Entra and in its recycle bin (delta, restorable: a restore reactivates)"
                        .to_owned()
                }
            };
            gone.insert(
                key.clone(),
                ("deactivate users deleted in Entra (delta)".into(), why),
            );
        }
        if ignored > 0 {
            self.out.notes.push(format!(
                "tenant {tenant_id}: {ignored} deletion(s) reported by delta were not applied because 'deactivate users not found' is off"
            ));
        }
        let mut by_key: BTreeMap<(RecordKind, String), Vec<&ConnectionRecord>> = BTreeMap::new();
        for record in &desk.records {
            by_key
                .entry((record.kind, external_key(&record.external_id)))
                .or_default()
                .push(record);
        }
        for (key, (rule, why)) in gone {
            for kind in [RecordKind::User, RecordKind::Agent] {
                let records = by_key.get(&(kind, key.clone())).map_or(&[][..], Vec::as_slice);
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
                    self.error(&key, message);
                    continue;
                }
                for record in records {
                    let record = record.to_desk(self.connection);
                    self.deactivate_missing(kind, &record, &rule, &why);
                }
            }
        }
    }

    fn deactivate_missing(&mut self, kind: RecordKind, record: &DeskRecord, rule: &str, why: &str) {
        let entity = entity_of(kind);
        let external_id = record
            .source
            .as_ref()
            .map(|s| s.external_id.clone())
            .unwrap_or_default();
        let mut fields = BTreeMap::new();
        if record.is_active() {
            match lock_for(self.settings, kind, record, "active", &Value::Bool(false)) {
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
            self.deactivated_agents.push((record.id, record.label()));
        }
        self.out
            .targets
            .insert(Plan::target_key(entity, &external_id), record.id);
        self.holdable.push(Change {
            entity,
            external_id,
            name: record.text("name").map(str::to_owned),
            action,
            fields,
            rule: rule.to_owned(),
            reason: format!("Desk {} {}: {why}.", entity.as_str(), record.label()),
        });
    }

    fn plan_ticket_reassignments(&mut self, tickets: &[DeskTicket]) {
        if !self.settings.imports.reassign_tickets_of_inactive_agents {
            return;
        }
        let mut tickets_by_agent: BTreeMap<RecordId, Vec<&DeskTicket>> = BTreeMap::new();
        for ticket in tickets {
            if let Some(agent) = ticket.agent_id {
                tickets_by_agent.entry(agent).or_default().push(ticket);
            }
        }
        tickets_by_agent
            .values_mut()
            .for_each(|tickets| tickets.sort_by_key(|t| t.id));
        for (agent, label) in std::mem::take(&mut self.deactivated_agents) {
            for ticket in tickets_by_agent.get(&agent).into_iter().flatten() {
                let external_id = ticket.id.to_string();
                self.out
                    .targets
                    .insert(Plan::target_key(Entity::Ticket, &external_id), ticket.id);
                self.holdable.push(Change {
                    entity: Entity::Ticket,
                    external_id,
                    name: None,
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
                });
            }
        }
    }
}

fn entity_of(kind: RecordKind) -> Entity {
    match kind {
        RecordKind::User => Entity::User,
        RecordKind::Agent => Entity::Agent,
    }
}
