//! The desk user a source person becomes: site, mapped fields, roles, licences, service-account
//! flag, state and line manager (also used for agents), then diffed against the matched record.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::DeferredLink;
use super::diff::{describe_sources, existing, ids_of, ids_value, lock_for};
use super::matching::{ManagerRef, Match};
use super::page::PagePlanner;
use super::select::Decision;
use crate::config::RecordKind;
use crate::fields::FieldKind;
use crate::input::{DeskRecord, SourceUser};
use crate::plan::{Action, Change, Entity};

impl PagePlanner<'_, '_> {
    pub(crate) fn group_ids(
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

    pub(crate) fn plan_user(&mut self, decision: &Decision<'_, '_>) {
        let Some(side) = &decision.user_side else { return };
        let user = decision.user;
        let existing = existing(&self.users, &side.matched);
        let mut desired = side.fields.clone();
        let rule = side.mapping.rule();
        if let Match::Conflict { rule, reason } = &side.matched {
            self.conflict(Entity::User, user, rule, reason);
            return;
        }
        desired.insert("site_id".into(), (side.site.to_value(), side.why.clone()));
        desired.insert(
            "azure_object_id".into(),
            (json!(user.external_id), "the Azure object id".into()),
        );
        desired.insert(
            "azure_tenant_id".into(),
            (json!(self.tenant_id), "the tenant read".into()),
        );
        self.name_fallback(&mut desired, user);
        if self
            .config
            .user_fields
            .iter()
            .any(|f| f.kind == FieldKind::Manager)
        {
            self.line_manager(&mut desired, RecordKind::User, user, existing, &rule);
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

        let licences = self.licences_for(user);
        desired.insert("licences".into(), (licences, "licences assigned in Entra".into()));
        if !self.settings.advanced.cabs.is_empty() {
            desired.insert("cabs".into(), self.cabs_for(user, existing));
        }

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
            user,
            existing,
            &side.matched,
            desired,
            &rule,
            head,
            deactivation,
        );
    }

    pub(crate) fn name_fallback(&self, desired: &mut BTreeMap<String, (Value, String)>, user: &SourceUser) {
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

    pub(crate) fn conflict(&mut self, entity: Entity, user: &SourceUser, rule: &str, reason: &str) {
        let change = Change {
            entity,
            external_id: user.external_id.clone(),
            name: Some(user.label()),
            action: Action::Conflict,
            fields: BTreeMap::new(),
            rule: rule.to_owned(),
            reason: format!("{}: {reason}", user.label()),
        };
        self.push(change);
    }

    /// The `line_manager_id` wanted for a person: users link to users and agents to agents, and
    /// only to people imported from the source. A manager this run has not met yet (a later
    /// page) is linked by `finish_tenant`: the field is left out of this change.
    pub(crate) fn line_manager(
        &mut self,
        desired: &mut BTreeMap<String, (Value, String)>,
        kind: RecordKind,
        user: &SourceUser,
        existing: Option<&DeskRecord>,
        rule: &str,
    ) {
        let what = match kind {
            RecordKind::User => "a user",
            RecordKind::Agent => "an agent",
        };
        let manager = match self.manager_reference(user.manager_id.as_deref(), kind) {
            ManagerRef::Resolved(manager) => manager,
            ManagerRef::Later => {
                let link = DeferredLink {
                    kind,
                    external_id: user.external_id.clone(),
                    target: existing.map(|record| record.id),
                    active: existing.is_some_and(DeskRecord::is_active),
                    before: existing
                        .and_then(|record| record.fields.get("line_manager_id").cloned())
                        .unwrap_or(Value::Null),
                    manager_id: user.manager_id.clone().unwrap_or_default(),
                    lock: existing.and_then(|record| {
                        lock_for(self.settings, kind, record, "line_manager_id", &Value::Null)
                    }),
                    label: user.label(),
                    rule: rule.to_owned(),
                };
                if let Some(tenant) = self.run.tenants.get_mut(&self.tenant_id) {
                    tenant.links.push(link);
                }
                return;
            }
        };
        let why = match (&manager, &user.manager_id) {
            (Some(_), Some(id)) => format!("manager {id}, {what} imported from Entra"),
            (None, Some(id)) => format!("manager {id} is not {what} imported from Entra"),
            (_, None) => "no manager in Entra".into(),
        };
        desired.insert(
            "line_manager_id".into(),
            (manager.map_or(Value::Null, |r| r.to_value()), why),
        );
    }
}
