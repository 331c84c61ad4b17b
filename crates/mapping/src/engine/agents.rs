//! The desk agent a source person becomes: mapped fields, roles (added, or replaced under full
//! role management), licence type and state under licence management, teams, CABs and line
//! manager; and agents this connection imported that no agent mapping selects any more.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::diff::{
    cabs_of, cabs_value, describe_sources, existing, ids_of, ids_value, teams_of, teams_value,
};
use super::matching::Match;
use super::page::PagePlanner;
use super::select::Decision;
use crate::config::{LicenceTypeChoice, RecordKind, SiteTarget};
use crate::fields::FieldKind;
use crate::plan::Entity;

impl PagePlanner<'_, '_> {
    /// The CABs a person (user or agent) belongs to: what the desk record has, plus each CAB
    /// mapped from a group the person is in, with its CAB role (the guide adds people to a CAB;
    /// it never takes them out). Unchanged memberships give the record's own value back, so a
    /// run that changes nothing writes no CAB rows.
    pub(crate) fn cabs_for(
        &self,
        user: &crate::input::SourceUser,
        existing: Option<&crate::input::DeskRecord>,
    ) -> (serde_json::Value, String) {
        let advanced = &self.settings.advanced;
        let mut cabs = existing
            .map(|r| cabs_of(r.fields.get("cabs")))
            .unwrap_or_default();
        let mut reasons = Vec::new();
        for entry in &advanced.cabs {
            if user.in_group(&entry.group, advanced.nested_groups) {
                let role = entry.cab_role_id.map(|r| r.0);
                let current = cabs.get(&entry.cab_id.0).copied();
                if current.is_none() || (role.is_some() && current != Some(role)) {
                    cabs.insert(entry.cab_id.0, role);
                    reasons.push(format!("CAB {} from group '{}'", entry.cab_id, entry.group));
                }
            }
        }
        (cabs_value(&cabs), reasons.join("; "))
    }

    pub(crate) fn plan_agent(&mut self, decision: &Decision<'_, '_>) {
        let Some(side) = &decision.agent_side else { return };
        let user = decision.user;
        if let Match::Conflict { rule, reason } = &side.matched {
            self.conflict(Entity::Agent, user, rule, reason);
            return;
        }
        let existing = existing(&self.agents, &side.matched);
        let settings = self.settings;
        let advanced = &settings.advanced;
        let rule = side.mapping.rule();
        let mut desired = side.fields.clone();
        desired.insert(
            "azure_object_id".into(),
            (json!(user.external_id), "the Azure object id".into()),
        );
        desired.insert(
            "azure_tenant_id".into(),
            (json!(self.tenant_id), "the tenant read".into()),
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
            self.line_manager(&mut desired, RecordKind::Agent, user, existing, &rule);
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

        desired.insert("cabs".into(), self.cabs_for(user, existing));

        let head = format!("{} — {}", user.label(), side.why);
        self.diff(
            RecordKind::Agent,
            user,
            existing,
            &side.matched,
            desired,
            &rule,
            head,
            deactivation,
        );
    }

    pub(crate) fn plan_orphan_agent(&mut self, decision: &Decision<'_, '_>) {
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
            user,
            Some(record),
            &matched,
            desired,
            "full role management",
            head,
            deactivation,
        );
    }
}
