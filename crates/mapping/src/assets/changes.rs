//! The change a matched device becomes: the desired fields (mapped values, type, user, site,
//! status, customer, tenant), compared with an existing asset; and the asset types a run creates.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::input::{DeskAsset, SourceDevice};
use super::matching::Match;
use super::page::{Decision, Page};
use super::planner::NewType;
use super::users::UserLink;
use crate::engine::same;
use crate::plan::{Action, Change, Entity, FieldChange, LockedChange, Plan, Reference};

impl Page<'_, '_> {
    /// The change one matched device becomes.
    pub(crate) fn plan_device(&mut self, decision: Decision<'_>) {
        let device = decision.device;
        let label = &decision.label;
        let desk = self.desk;
        let (existing, link_rule) = match &decision.matched {
            Match::Conflict { rule, reason } => {
                let reason = format!("{label}: {reason}.");
                self.push(device, Action::Conflict, rule.clone(), reason);
                return;
            }
            Match::New => (None, None),
            Match::BySource(index) => (Some(&desk.assets[*index]), None),
            Match::ByField { index, value } => {
                let asset = &desk.assets[*index];
                // Another integration's asset now follows this connection: worth saying.
                let from = asset.source.as_ref().map_or_else(String::new, |source| {
                    format!(
                        " (it was recorded as device {} of connection {})",
                        source.external_id, source.connection_id
                    )
                });
                let why = format!(
                    "linked to desk asset {} whose {} is '{value}'{from}",
                    asset.id, self.settings.match_field
                );
                let rule = format!("asset matching field '{}'", self.settings.match_field);
                (Some(asset), Some((rule, why)))
            }
        };
        let mut desired: BTreeMap<String, (Value, String)> = BTreeMap::new();
        for (field, (value, origin)) in &decision.fields {
            // An unknown value does not wipe what the desk (or another tool) knows.
            if existing.is_none() || !value.is_null() {
                desired.insert(field.clone(), (value.clone(), origin.clone()));
            }
        }
        // Said whether or not a field changes: why the asset has no user.
        let mut remarks = Vec::new();
        let user = self.link_user(device);
        let user_site = match &user {
            UserLink::NotManaged => None,
            UserLink::Found { id, site, why } => {
                desired.insert("user_id".into(), (json!(id.0), why.clone()));
                *site
            }
            UserLink::Missing(why) => {
                desired.insert("user_id".into(), (Value::Null, why.clone()));
                remarks.push(format!("User: {why}."));
                None
            }
        };
        let kept_site = existing
            .and_then(|asset| asset.fields.get("site_id"))
            .filter(|v| !v.is_null());
        let site = match (user_site, kept_site) {
            (Some(site), _) => Some((site, "the site of the linked user".to_owned())),
            (None, Some(_)) => None,
            (None, None) => match self.fallback_site() {
                Ok(site) => Some(site),
                Err(why) => {
                    let reason = format!("{label}: {why}. Not imported; set a default site for assets.");
                    self.push(device, Action::Skip, "asset site".into(), reason);
                    return;
                }
            },
        };
        if let Some((site, why)) = site {
            desired.insert("site_id".into(), (json!(site.0), why));
        }
        let keep_type = existing.is_some() && self.settings.keep_existing_types;
        if !keep_type {
            let choice = &decision.asset_type;
            let reference = self.type_reference(&choice.name);
            let why = format!("'{}' by {} ({})", choice.name, choice.rule, choice.why);
            desired.insert("asset_type_id".into(), (reference.to_value(), why));
        }
        desired.insert(
            "tenant_id".into(),
            (
                json!(self.tenant_id),
                format!("read from tenant {}", self.tenant_id),
            ),
        );
        let Some(asset) = existing else {
            desired.insert(
                "status".into(),
                (json!(self.settings.new_status), "the status of new assets".into()),
            );
            if let Some(customer) = self.customer_id {
                desired.insert(
                    "customer_id".into(),
                    (json!(customer.0), "the tenant's customer".into()),
                );
            }
            self.create(device, label, &decision.asset_type.rule, desired, &remarks);
            return;
        };
        let deleted = &self.settings.deleted_status;
        let reactivating = asset
            .fields
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(|status| status.trim().eq_ignore_ascii_case(deleted.trim()));
        if reactivating {
            desired.insert(
                "status".into(),
                (
                    json!(self.settings.new_status),
                    format!("the device is back, so no longer '{deleted}'"),
                ),
            );
        }
        if keep_type {
            remarks.push("Its asset type is kept (existing assets keep their type).".into());
        }
        let head = match link_rule {
            Some((rule, why)) => (Action::Link, rule, why),
            None if reactivating => (
                Action::Reactivate,
                decision.asset_type.rule.clone(),
                format!("desk asset {} of this device had status '{deleted}'", asset.id),
            ),
            None => (
                Action::Update,
                decision.asset_type.rule.clone(),
                format!("desk asset {} carries this device", asset.id),
            ),
        };
        self.update(device, label, asset, head, desired, &remarks);
    }

    fn create(
        &mut self,
        device: &SourceDevice,
        label: &str,
        type_rule: &str,
        desired: BTreeMap<String, (Value, String)>,
        remarks: &[String],
    ) {
        let (fields, origins) = field_changes(desired, |_| Value::Null);
        self.emit_new_types();
        self.out.changes.push(Change {
            entity: Entity::Asset,
            external_id: device.external_id.clone(),
            name: None,
            action: Action::Create,
            fields,
            rule: type_rule.to_owned(),
            reason: format!(
                "{label}: no desk asset carries this device or fits it on {}, so a new asset. {}.{}",
                self.settings.match_field,
                origins.join("; "),
                remarks.iter().map(|r| format!(" {r}")).collect::<String>()
            ),
        });
    }

    /// An existing asset's change: `head` is its action, rule and first sentence. A link is
    /// planned even with no field to change (it records the device on the asset).
    fn update(
        &mut self,
        device: &SourceDevice,
        label: &str,
        asset: &DeskAsset,
        (action, rule, head): (Action, String, String),
        desired: BTreeMap<String, (Value, String)>,
        remarks: &[String],
    ) {
        let (mut fields, mut origins) = field_changes(desired, |field| current(asset, field));
        // Locks win over the source: the change not made is listed with the lock.
        let locked: Vec<(String, String)> = fields
            .keys()
            .filter_map(|field| Some((field.clone(), self.settings.lock_on(&device.external_id, field)?)))
            .collect();
        for (field, lock) in locked {
            if let Some(change) = fields.remove(&field) {
                origins.retain(|origin| !origin.starts_with(&format!("{field}: ")));
                self.out.locked.push(LockedChange {
                    entity: Entity::Asset,
                    external_id: device.external_id.clone(),
                    field,
                    current: change.before,
                    wanted: change.after,
                    lock,
                });
            }
        }
        if fields.is_empty() && action != Action::Link {
            self.out.unchanged += 1;
            return;
        }
        self.emit_new_types();
        let kept: String = remarks.iter().map(|r| format!(" {r}")).collect();
        let detail = if origins.is_empty() {
            "No field changes".to_owned()
        } else {
            origins.join("; ")
        };
        self.out
            .targets
            .insert(Plan::target_key(Entity::Asset, &device.external_id), asset.id);
        self.out.changes.push(Change {
            entity: Entity::Asset,
            external_id: device.external_id.clone(),
            name: None,
            action,
            fields,
            rule,
            reason: format!("{label}: {head}. {detail}.{kept}"),
        });
    }

    /// The reference to a type by name: what this run creates first (a later page's desk may
    /// show it or not), then the desk's type of that name ignoring case, else a new one.
    fn type_reference(&mut self, name: &str) -> Reference {
        let key = name.to_lowercase();
        if let Some(new) = self.run.new_types.get(&key) {
            return Reference::NewAssetType(new.name.clone());
        }
        if let Some(existing) = self
            .desk
            .asset_types
            .iter()
            .filter(|t| t.name.trim().to_lowercase() == key)
            .min_by_key(|t| t.id)
        {
            return Reference::Id(existing.id);
        }
        self.run.new_types.insert(
            key,
            NewType {
                name: name.to_owned(),
                emitted: false,
            },
        );
        Reference::NewAssetType(name.to_owned())
    }

    /// Puts the `create` of each new type a change of this page refers to in the page's plan.
    fn emit_new_types(&mut self) {
        for new in self.run.new_types.values_mut().filter(|new| !new.emitted) {
            new.emitted = true;
            self.out.changes.push(Change {
                entity: Entity::AssetType,
                external_id: new.name.clone(),
                name: None,
                action: Action::Create,
                fields: BTreeMap::from([(
                    "name".to_owned(),
                    FieldChange {
                        before: Value::Null,
                        after: json!(new.name),
                    },
                )]),
                rule: "asset types".into(),
                reason: format!(
                    "no desk asset type is named '{}', and devices of this run need it",
                    new.name
                ),
            });
        }
    }
}

/// A desk asset's current value of a field as plans name it.
fn current(asset: &DeskAsset, field: &str) -> Value {
    match field {
        "tenant_id" => asset.tenant_id.clone().map_or(Value::Null, Value::String),
        "customer_id" => asset.customer_id.map_or(Value::Null, |c| json!(c.0)),
        _ => asset.fields.get(field).cloned().unwrap_or(Value::Null),
    }
}

/// The changed fields (nulls left out of creates) and a sentence part for each.
fn field_changes(
    desired: BTreeMap<String, (Value, String)>,
    before: impl Fn(&str) -> Value,
) -> (BTreeMap<String, FieldChange>, Vec<String>) {
    let mut fields = BTreeMap::new();
    let mut origins = Vec::new();
    for (field, (after, why)) in desired {
        let before = before(&field);
        if same(&before, &after) {
            continue;
        }
        origins.push(format!("{field}: {why}"));
        fields.insert(field, FieldChange { before, after });
    }
    (fields, origins)
}
