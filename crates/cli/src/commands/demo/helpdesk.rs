//! The demo's agents: every customer tenant of the sample world gets two helpdesk groups (its
//! first few enabled members in "Helpdesk Agents", the first of them in "Helpdesk Leads" too),
//! the desk gets the agent roles and teams they map to (made once, by name), and each demo
//! connection's mappings import the groups' members as agents with those roles and teams, as the
//! Entra guide's `*agent*` site mapping and group → role / team mappings do. The summary lists
//! the agents with their roles and teams by name.

use std::collections::BTreeMap;

use deskbridge_core::{RecordId, SharedClock};
use deskbridge_emulator::World;
use deskbridge_emulator::world::{Group, MemberRef, ObjectKind};
use deskbridge_mapping::{GroupFilter, GroupToRecord, LicenceTypeChoice, SiteMapping, SiteTarget};
use deskbridge_source::SourceRegistry;
use deskbridge_store::{Entity, Record, RecordScope, Store, StoreTx, WriteContext};
use serde_json::{Value, json};

use super::SCOPE_LIMIT;
use crate::output::outln;

/// The tenants' group of helpdesk agents.
pub(super) const AGENTS_GROUP: &str = "Helpdesk Agents";
/// The tenants' group of helpdesk leads (also agents).
pub(super) const LEADS_GROUP: &str = "Helpdesk Leads";
/// Members of [`AGENTS_GROUP`] per tenant.
const AGENTS_PER_TENANT: usize = 3;
/// Group → (desk agent role, desk team).
const GROUP_ROLES: &[(&str, &str, &str)] = &[
    (AGENTS_GROUP, "Service Desk", "1st Line"),
    (LEADS_GROUP, "Team Lead", "2nd Line"),
];
/// The name of the agents' site mapping in a demo connection.
const MAPPING_NAME: &str = "Helpdesk agents";

/// Adds the helpdesk groups to every customer tenant of `world` (not the partner's), with the
/// same ids on every demo of the same seed, so that a rerun reads the same groups.
pub(super) fn add_groups(world: &mut World) {
    let partner = world.partner_tenant_id.clone();
    for tenant in &mut world.tenants {
        if partner.as_deref() == Some(tenant.id.as_str()) {
            continue;
        }
        let members: Vec<String> = tenant
            .live_users()
            .filter(|u| {
                u.account_enabled
                    && u.user_type.eq_ignore_ascii_case("member")
                    && !u.user_principal_name.contains("#EXT#")
            })
            .take(AGENTS_PER_TENANT)
            .map(|u| u.id.clone())
            .collect();
        let prefix: String = tenant.id.chars().take(8).collect();
        for (n, (name, members)) in [
            (AGENTS_GROUP, members.as_slice()),
            (LEADS_GROUP, &members[..members.len().min(1)]),
        ]
        .into_iter()
        .enumerate()
        {
            if tenant.groups.iter().any(|g| g.display_name == name) {
                continue;
            }
            tenant.groups.push(Group {
                id: format!("{prefix}-4e1d-4000-8000-{:012x}", n + 1),
                display_name: name.to_owned(),
                description: Some(format!("{name} ({})", tenant.display_name)),
                mail_nickname: name.to_lowercase().replace(' ', ""),
                security_enabled: true,
                members: members
                    .iter()
                    .map(|id| MemberRef {
                        kind: ObjectKind::User,
                        id: id.clone(),
                        display_name: None,
                    })
                    .collect(),
                ..Group::default()
            });
        }
    }
}

/// The desk's agent roles and teams the groups map to, made when the desk has none of that name.
async fn desk_records(store: &Store) -> anyhow::Result<Vec<(&'static str, RecordId, RecordId)>> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let mut out = Vec::new();
    for (group, role, team) in GROUP_ROLES {
        let role = named(&mut tx, Entity::AgentRole, role).await?;
        let team = named(&mut tx, Entity::Team, team).await?;
        out.push((*group, role, team));
    }
    tx.commit().await?;
    Ok(out)
}

/// The desk record of `entity` named `name` (ignoring case), made when there is none.
async fn named(tx: &mut StoreTx, entity: Entity, name: &str) -> anyhow::Result<RecordId> {
    let existing = tx
        .list(entity, None, SCOPE_LIMIT)
        .await?
        .into_iter()
        .find(|r| r.text("name").is_some_and(|n| n.eq_ignore_ascii_case(name)));
    if let Some(record) = existing {
        return Ok(record.id);
    }
    let fields = [("name".to_owned(), json!(name))].into_iter().collect();
    Ok(tx.insert(entity, None, &fields).await?)
}

/// Whether the helpdesk agents are mapped in a demo connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Mapped {
    /// Mapped now or by an earlier demo.
    Yes,
    /// Not yet: the connection reads no tenant whose groups it could check the mappings against
    /// (a CSP tenant first found by the sync is read only then); the mappings' problem, as said.
    NotYet(String),
}

/// Turns on the helpdesk agents in the demo connection `name` (once; a later demo keeps what
/// was set): the members of [`AGENTS_GROUP`] become agents, each group gives its role and team.
pub(super) async fn map_agents(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    clock: &SharedClock,
) -> anyhow::Result<Mapped> {
    let records = desk_records(store).await?;
    let mut mapping = deskbridge_sync::open_connection(store, sources, name)
        .await?
        .mapping()
        .clone();
    if mapping.site_mappings.iter().any(|m| m.name == MAPPING_NAME) {
        return Ok(Mapped::Yes);
    }
    let id = mapping.site_mappings.iter().map(|m| m.id).max().unwrap_or(0) + 1;
    mapping.site_mappings.push(SiteMapping {
        id,
        name: MAPPING_NAME.into(),
        sequence: 10,
        target: SiteTarget::Agent {
            licence_type: LicenceTypeChoice::NoChange,
            creation_type: None,
        },
        group: Some(GroupFilter {
            name: AGENTS_GROUP.into(),
            nested: false,
        }),
        ..SiteMapping::default()
    });
    for (group, role, team) in records {
        mapping.advanced.agent_roles.push(GroupToRecord {
            group: group.into(),
            id: role,
        });
        mapping.advanced.teams.push(GroupToRecord {
            group: group.into(),
            id: team,
        });
    }
    // The mappings are checked against the groups of the tenants the connection reads now.
    match deskbridge_sync::save_mappings(store, sources, name, mapping, clock).await {
        Ok(_) => Ok(Mapped::Yes),
        Err(deskbridge_sync::SyncError::InvalidMappings(problem)) => Ok(Mapped::NotYet(problem)),
        Err(e) => Err(e.into()),
    }
}

/// One agent on the desk, for the summary.
pub(super) struct Agent {
    pub name: String,
    pub roles: Vec<String>,
    pub teams: Vec<String>,
}

/// The agents a connection imported from `tenant`, with their roles' and teams' names.
pub(super) async fn agents_of(
    store: &Store,
    connection: deskbridge_core::ConnectionId,
    tenant: &str,
) -> anyhow::Result<Vec<Agent>> {
    let mut tx = store.read().await?;
    let scope = RecordScope::OfConnectionTenant {
        connection,
        tenant_id: tenant.to_owned(),
        external_ids: Vec::new(),
    };
    let records = tx.list_scoped(Entity::Agent, &scope, None, SCOPE_LIMIT).await?;
    let mut names: BTreeMap<(Entity, i64), String> = BTreeMap::new();
    let mut agents = Vec::new();
    for record in records
        .iter()
        .filter(|a| a.get("active").as_bool() != Some(false))
    {
        let roles = names_of(&mut tx, &mut names, Entity::AgentRole, ids(record, "roles", None)).await?;
        let teams = names_of(
            &mut tx,
            &mut names,
            Entity::Team,
            ids(record, "teams", Some("team_id")),
        )
        .await?;
        agents.push(Agent {
            name: record.text("name").unwrap_or_default().to_owned(),
            roles,
            teams,
        });
    }
    tx.commit().await?;
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(agents)
}

/// The names of the `entity` records `ids`, each read once (`#id` for one no longer there).
async fn names_of(
    tx: &mut StoreTx,
    cache: &mut BTreeMap<(Entity, i64), String>,
    entity: Entity,
    ids: Vec<i64>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(name) = cache.get(&(entity, id)) {
            out.push(name.clone());
            continue;
        }
        let name = tx
            .get(entity, RecordId(id))
            .await?
            .and_then(|r| r.text("name").map(str::to_owned))
            .unwrap_or_else(|| format!("#{id}"));
        cache.insert((entity, id), name.clone());
        out.push(name);
    }
    Ok(out)
}

/// The ids in an agent's link field: plain ids, or each item's `key`.
fn ids(record: &Record, field: &str, key: Option<&str>) -> Vec<i64> {
    record
        .get(field)
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| match key {
                    Some(key) => item.get(key).and_then(Value::as_i64),
                    None => item.as_i64(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The summary's agents: how they are mapped, then each tenant's agents with roles and teams.
pub(super) fn print_agents(per_tenant: &[(String, Vec<Agent>)], unmapped: Option<&str>) {
    if let Some(problem) = unmapped {
        outln!(
            "  agents:             none: the helpdesk groups could not be mapped, as no customer tenant was read \
             ({}{})",
            problem.split("; ").next().unwrap_or(problem),
            if problem.contains("; ") { "; …" } else { "" }
        );
        return;
    }
    let total: usize = per_tenant.iter().map(|(_, a)| a.len()).sum();
    outln!(
        "  agents:             {total} agents from the tenants' helpdesk groups ({})",
        GROUP_ROLES
            .iter()
            .map(|(group, role, team)| format!("{group} → role {role}, team {team}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for (tenant, agents) in per_tenant {
        let shown = if agents.is_empty() {
            "none".to_owned()
        } else {
            agents
                .iter()
                .map(|a| {
                    format!(
                        "{} (roles: {}; teams: {})",
                        a.name,
                        list(&a.roles),
                        list(&a.teams)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        outln!("    agents of {tenant}: {shown}");
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_customer_tenant_gets_the_helpdesk_groups_once_with_the_same_ids() {
        let options = deskbridge_emulator::GenerateOptions {
            seed: 7,
            tenants: 2,
            users_per_tenant: Some(10),
            ..deskbridge_emulator::GenerateOptions::default()
        };
        let mut world = World::generate(&options).unwrap_or_else(|e| panic!("{e}"));
        add_groups(&mut world);
        let ids = |w: &World| -> Vec<String> {
            w.tenants
                .iter()
                .flat_map(|t| {
                    t.groups
                        .iter()
                        .filter(|g| g.display_name.starts_with("Helpdesk "))
                })
                .filter(|g| g.display_name != "Helpdesk Escalation")
                .map(|g| g.id.clone())
                .collect()
        };
        let first = ids(&world);
        assert_eq!(
            first.len(),
            4,
            "two groups in each of two customer tenants: {first:?}"
        );
        add_groups(&mut world);
        assert_eq!(ids(&world), first, "added once");
        let mut again = World::generate(&options).unwrap_or_else(|e| panic!("{e}"));
        add_groups(&mut again);
        assert_eq!(ids(&again), first, "the same ids on every demo of the seed");
        for tenant in world
            .tenants
            .iter()
            .filter(|t| Some(&t.id) != world.partner_tenant_id.as_ref())
        {
            let group = |name: &str| {
                tenant
                    .groups
                    .iter()
                    .find(|g| g.display_name == name)
                    .map(|g| g.members.len())
            };
            assert_eq!(group(AGENTS_GROUP), Some(AGENTS_PER_TENANT));
            assert_eq!(group(LEADS_GROUP), Some(1));
        }
    }
}
