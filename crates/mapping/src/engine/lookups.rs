//! What the pipeline loads from the desk for each step, so that it never holds the whole desk:
//! per page the records the page's users may match ([`DeskLookups`]), and at a tenant's end a
//! compact list of the connection's records in the tenant with the tickets of agents that may be
//! made inactive ([`ConnectionRecords`]). Each comes with a `select`-like function over an
//! in-memory [`DeskSnapshot`], which is what previews of several steps and the tests use, and
//! which says exactly what a store query must return.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{RunPlanner, external_key};
use crate::config::{MatchField, RecordKind};
use crate::fields::{FieldKind, convert, read_source};
use crate::input::{DeskRecord, DeskSnapshot, DeskTicket, RecordLocks, SourceIdentity, SourceUser};

/// The desk records a page of users needs: [`RunPlanner::plan_page`]'s desk must hold every desk
/// user and agent that
/// - carries one of `external_ids` as this connection's source external id or in
///   `azure_object_id` (the page's users and their line managers), or
/// - has, in a field of `match_values`, one of the values listed for it (compared trimmed and
///   ignoring case; records linked to a source person may be included, they are ignored),
///
/// and all sites and all licences (small tables). Tickets are not needed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeskLookups {
    /// Lower-cased external ids (compare ignoring ASCII case).
    pub external_ids: BTreeSet<String>,
    /// Per match field (`email`, `network_login`, `name`), trimmed lower-cased values.
    pub match_values: BTreeMap<MatchField, BTreeSet<String>>,
}

impl DeskLookups {
    /// The part of an in-memory desk a store would load for these lookups.
    pub fn select(&self, desk: &DeskSnapshot, connection: ConnectionId) -> DeskSnapshot {
        let wanted = |record: &&DeskRecord| {
            let source = record
                .source
                .as_ref()
                .filter(|s| s.connection_id == connection)
                .is_some_and(|s| self.external_ids.contains(&external_key(&s.external_id)));
            let object_id = record
                .text("azure_object_id")
                .is_some_and(|id| self.external_ids.contains(&external_key(id)));
            let matches = self.match_values.iter().any(|(field, values)| {
                record
                    .text(field.desk_field())
                    .is_some_and(|value| values.contains(&value.trim().to_lowercase()))
            });
            source || object_id || matches
        };
        DeskSnapshot {
            users: desk.users.iter().filter(wanted).cloned().collect(),
            agents: desk.agents.iter().filter(wanted).cloned().collect(),
            sites: desk.sites.clone(),
            licences: desk.licences.clone(),
            tickets: Vec::new(),
            subscriptions: Vec::new(),
            usage_lines: Vec::new(),
            imported_customers: desk.imported_customers.clone(),
        }
    }
}

/// Which of this connection's records [`RunPlanner::finish_tenant`] needs: its users and agents
/// whose `azure_tenant_id` is `tenant_id` (ignoring case), and those carrying one of
/// `external_ids` (delta removals not seen again in the run) as their source external id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FinishLookups {
    pub tenant_id: String,
    /// Lower-cased (compare ignoring ASCII case).
    pub external_ids: BTreeSet<String>,
}

/// One of this connection's desk users or agents, as compact as the tenant's end needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub kind: RecordKind,
    pub id: RecordId,
    /// This connection's source external id of the record.
    pub external_id: String,
    /// `azure_tenant_id`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// For messages.
    #[serde(default)]
    pub name: Option<String>,
    pub active: bool,
    /// The record lock "never made inactive by a sync".
    #[serde(default)]
    pub keep_active: bool,
    /// Agents only, and only needed with "remove agents from unmapped teams": the record's
    /// `teams` in the desk's canonical shape.
    #[serde(default)]
    pub teams: Value,
}

impl ConnectionRecord {
    /// The compact form of a desk record this connection imported; `None` for other records.
    pub fn from_desk(record: &DeskRecord, kind: RecordKind, connection: ConnectionId) -> Option<Self> {
        let source = record.source.as_ref().filter(|s| s.connection_id == connection)?;
        Some(Self {
            kind,
            id: record.id,
            external_id: source.external_id.clone(),
            tenant_id: record.text("azure_tenant_id").map(str::to_owned),
            name: record.text("name").map(str::to_owned),
            active: record.is_active(),
            keep_active: record.locks.keep_active,
            teams: record.fields.get("teams").cloned().unwrap_or(Value::Null),
        })
    }

    /// The record as the engine's desk-record functions (locks, labels) read it.
    pub(crate) fn to_desk(&self, connection: ConnectionId) -> DeskRecord {
        let mut fields = Map::new();
        if let Some(name) = &self.name {
            fields.insert("name".into(), json!(name));
        }
        fields.insert("active".into(), json!(self.active));
        if !self.teams.is_null() {
            fields.insert("teams".into(), self.teams.clone());
        }
        DeskRecord {
            id: self.id,
            source: Some(SourceIdentity {
                connection_id: connection,
                external_id: self.external_id.clone(),
            }),
            fields,
            locks: RecordLocks {
                fields: BTreeSet::new(),
                keep_active: self.keep_active,
            },
        }
    }
}

/// What [`RunPlanner::finish_tenant`] reads of the desk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectionRecords {
    /// The records [`RunPlanner::finish_lookups`] names. Loaded before the tenant's first page or
    /// after its last, the result is the same: the records the end deactivates are ones the
    /// pages did not touch.
    pub records: Vec<ConnectionRecord>,
    /// The tickets assigned to the agents [`RunPlanner::ticket_agents`] names (more do no harm).
    #[serde(default)]
    pub tickets: Vec<DeskTicket>,
}

impl ConnectionRecords {
    /// Active records of `tenant_id` (ignoring case): [`super::TenantHeader::active_records`]
    /// when these were loaded before the tenant's first page.
    pub fn active_count(&self, tenant_id: &str) -> usize {
        self.records
            .iter()
            .filter(|r| {
                r.active
                    && r.tenant_id
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(tenant_id))
            })
            .count()
    }
}

impl RunPlanner<'_> {
    /// What the desk snapshot for a page of `users` must hold (see [`DeskLookups`]).
    pub fn lookups(&self, users: &[SourceUser]) -> DeskLookups {
        let settings = self.config.config();
        let mut lookups = DeskLookups::default();
        let fields: Vec<_> = self
            .config
            .user_fields
            .iter()
            .chain(&self.config.agent_fields)
            .filter(|f| f.kind != FieldKind::Manager)
            .filter(|f| {
                settings
                    .imports
                    .match_order
                    .iter()
                    .any(|m| m.desk_field() == f.target)
            })
            .collect();
        for user in users {
            lookups.external_ids.insert(external_key(&user.external_id));
            if let Some(manager) = &user.manager_id {
                lookups.external_ids.insert(external_key(manager));
            }
            for field in &fields {
                let value = convert(&field.kind, &read_source(&field.source, &user.properties));
                add_match_value(&mut lookups, &field.target, value.ok().as_ref());
            }
        }
        // Values a site mapping applies are the same for every user it selects.
        for compiled in &self.config.mappings {
            for (field, value) in &compiled.values {
                add_match_value(&mut lookups, field, Some(value));
            }
        }
        lookups
    }

    /// Whether this run read the person `external_id` (in any page of any tenant). Records of
    /// people read need not be given to [`RunPlanner::finish_tenant`]: it decides only about the
    /// people it did not see, so a pipeline may leave them out and hold the absent only.
    pub fn was_read(&self, external_id: &str) -> bool {
        self.run.people.contains(external_id)
    }

    /// Which of this connection's records [`RunPlanner::finish_tenant`] needs for `tenant_id`.
    pub fn finish_lookups(&self, tenant_id: &str) -> FinishLookups {
        let external_ids = self
            .run
            .tenants
            .get(tenant_id)
            .map(|tenant| {
                tenant
                    .removals
                    .keys()
                    .filter(|key| !self.run.people.contains(key))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        FinishLookups {
            tenant_id: tenant_id.to_owned(),
            external_ids,
        }
    }

    /// The agents whose assigned tickets [`RunPlanner::finish_tenant`] may re-assign: those the
    /// pages made inactive, and the active agents of `records` this run did not see.
    pub fn ticket_agents(&self, tenant_id: &str, records: &[ConnectionRecord]) -> BTreeSet<RecordId> {
        let mut agents: BTreeSet<RecordId> = self
            .run
            .tenants
            .get(tenant_id)
            .map(|tenant| {
                tenant
                    .deactivations
                    .iter()
                    .filter(|d| d.agent_label.is_some())
                    .map(|d| d.target)
                    .collect()
            })
            .unwrap_or_default();
        agents.extend(
            records
                .iter()
                .filter(|r| r.kind == RecordKind::Agent && r.active)
                .filter(|r| !self.run.people.contains(&r.external_id))
                .map(|r| r.id),
        );
        agents
    }

    /// [`ConnectionRecords`] for `tenant_id` from an in-memory desk: what the store's queries
    /// for [`RunPlanner::finish_lookups`] and [`RunPlanner::ticket_agents`] return.
    pub fn finish_records(&self, tenant_id: &str, desk: &DeskSnapshot) -> ConnectionRecords {
        let lookups = self.finish_lookups(tenant_id);
        let connection = self.connection;
        let wanted = |record: &ConnectionRecord| {
            record
                .tenant_id
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&lookups.tenant_id))
                || lookups.external_ids.contains(&external_key(&record.external_id))
        };
        let records: Vec<ConnectionRecord> = desk
            .users
            .iter()
            .filter_map(|r| ConnectionRecord::from_desk(r, RecordKind::User, connection))
            .chain(
                desk.agents
                    .iter()
                    .filter_map(|r| ConnectionRecord::from_desk(r, RecordKind::Agent, connection)),
            )
            .filter(wanted)
            .collect();
        let agents = self.ticket_agents(tenant_id, &records);
        let tickets = desk
            .tickets
            .iter()
            .filter(|t| t.agent_id.is_some_and(|a| agents.contains(&a)))
            .cloned()
            .collect();
        ConnectionRecords { records, tickets }
    }
}

fn add_match_value(lookups: &mut DeskLookups, target: &str, value: Option<&Value>) {
    let Some(field) = [MatchField::Email, MatchField::NetworkLogin, MatchField::Name]
        .into_iter()
        .find(|f| f.desk_field() == target)
    else {
        return;
    };
    if let Some(text) = value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        lookups
            .match_values
            .entry(field)
            .or_default()
            .insert(text.to_lowercase());
    }
}
