//! The asset planner: the run's state between pages, what a page must load, and the tenant's
//! end (the deletion status). What one page decides per device is in `decide.rs`.
//!
//! Like the user planner it trusts its run state, not a later page's desk, about what the run
//! did: asset types it creates are named by reference for the rest of the run, and a desk asset
//! it linked on the matching field stays claimed (a later device fitting it is a conflict), so a
//! preview (nothing applied between pages) and a sync (each page applied) plan the same.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::Value;

use super::config::{AssetMappings, AssetTypes, AssetUserLink, DeviceUserField};
use super::input::{AssetDesk, AssetLookups, DeskAsset, SourceDevice, present};
use super::matching::match_key;
use super::page::{Output, Page};
use super::validate::CompiledAssets;
use crate::config::FieldSource;
use crate::engine::external_key;
use crate::fields::{read_path, read_source, template_properties};
use crate::input::Completeness;
use crate::plan::{Action, Change, Entity, FieldChange, LockedChange, Plan, PlanError};
use crate::validate::ValidatedConfig;

/// Plans one asset run of one connection, a tenant and a page of devices at a time.
pub struct AssetPlanner<'c> {
    settings: &'c AssetMappings,
    compiled: &'c CompiledAssets,
    connection_id: ConnectionId,
    now: jiff::Timestamp,
    run: AssetRun,
}

/// What the run remembers between pages: no device record, no desk record.
#[derive(Debug, Default)]
pub(crate) struct AssetRun {
    pub(crate) tenant: Option<TenantRun>,
    /// Every device planned this run (lower-cased id) with a fingerprint of the copy planned, so
    /// that a device read again is planned once.
    pub(crate) devices: BTreeMap<String, u64>,
    /// Lower-cased name → an asset type this run creates.
    pub(crate) new_types: BTreeMap<String, NewType>,
    /// Desk assets matched on the matching field this run, by id.
    pub(crate) claims: BTreeMap<RecordId, Claim>,
    /// Matching value (trimmed, lower-cased, as before the run) → the claimed assets having it.
    pub(crate) claimed_values: BTreeMap<String, Vec<RecordId>>,
}

#[derive(Debug)]
pub(crate) struct TenantRun {
    pub(crate) tenant_id: String,
    pub(crate) customer_id: Option<RecordId>,
    /// Lower-cased ids of the tenant's devices read this run, excluded and skipped ones too:
    /// none of them is absent.
    pub(crate) seen: BTreeSet<String>,
}

#[derive(Debug)]
pub(crate) struct NewType {
    /// The name as first seen.
    pub(crate) name: String,
    /// Whether a page's plan already carries its `create`.
    pub(crate) emitted: bool,
}

/// A desk asset a device matched on the matching field in this run.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) customer_id: Option<RecordId>,
    /// The device that linked it; `None` when several devices of one page fitted it.
    pub(crate) linked_to: Option<String>,
}

impl<'c> AssetPlanner<'c> {
    /// Fails when the configuration imports no assets.
    pub fn new(
        config: &'c ValidatedConfig,
        connection_id: ConnectionId,
        now: jiff::Timestamp,
    ) -> Result<Self, String> {
        let (Some(settings), Some(compiled)) = (&config.config().assets, &config.assets) else {
            return Err("the mapping configuration imports no assets (its asset settings are off)".into());
        };
        Ok(Self {
            settings,
            compiled,
            connection_id,
            now,
            run: AssetRun::default(),
        })
    }

    /// Starts a tenant. `customer_id`: the customer the tenant belongs to; its assets are the
    /// only ones matched, and its sites the only ones users are linked on.
    pub fn begin_tenant(&mut self, tenant_id: &str, customer_id: Option<RecordId>) {
        self.run.tenant = Some(TenantRun {
            tenant_id: tenant_id.to_owned(),
            customer_id,
            seen: BTreeSet::new(),
        });
    }

    /// What the desk snapshot for `devices` must hold (besides every asset type and the
    /// customer's sites): lower-cased keys.
    pub fn lookups(&self, devices: &[SourceDevice]) -> AssetLookups {
        let mut lookups = AssetLookups::default();
        let match_field = self
            .compiled
            .fields
            .iter()
            .find(|field| field.target == self.settings.match_field);
        for device in devices.iter().filter(|d| !self.excluded_by_sense(d)) {
            lookups.source_ids.insert(external_key(&device.external_id));
            if let Some(field) = match_field {
                let raw = read_source(&field.source, &device.properties);
                let converted = crate::fields::convert(&field.kind, &raw).unwrap_or(Value::Null);
                if let Some(key) = match_key(&converted) {
                    lookups.match_values.insert(key);
                }
            }
            match self.settings.user_link {
                AssetUserLink::None => {}
                AssetUserLink::User => {
                    if let Some(owner) = device.owner_id.as_deref().filter(|o| !o.trim().is_empty()) {
                        lookups.user_ids.insert(external_key(owner.trim()));
                    }
                }
                AssetUserLink::Asset { field } => {
                    let Some(value) = device_text(device, user_property(field)) else {
                        continue;
                    };
                    let set = match field {
                        DeviceUserField::UserId => {
                            lookups.user_ids.insert(external_key(&value));
                            continue;
                        }
                        DeviceUserField::UserPrincipalName => &mut lookups.user_logins,
                        DeviceUserField::EmailAddress => &mut lookups.user_emails,
                    };
                    set.insert(value.to_lowercase());
                }
            }
        }
        lookups
    }

    /// Plans one page of the tenant's devices. `desk` must hold what [`AssetPlanner::lookups`]
    /// named for them, every asset type and the tenant customer's sites.
    pub fn plan_page(&mut self, devices: &[SourceDevice], desk: &AssetDesk) -> Plan {
        let Some(tenant) = &self.run.tenant else {
            let mut out = Output::default();
            out.errors.push(PlanError {
                tenant_id: String::new(),
                external_id: String::new(),
                message: "devices were planned before begin_tenant; nothing of them is planned".into(),
            });
            return out.into_plan(self.now);
        };
        let (tenant_id, customer_id) = (tenant.tenant_id.clone(), tenant.customer_id);
        let mut order: Vec<&SourceDevice> = devices.iter().collect();
        // Stable: of two copies of a device in one page, the first is planned.
        order.sort_by_key(|device| external_key(&device.external_id));
        let mut page = Page::new(
            self.settings,
            self.compiled,
            self.connection_id,
            &tenant_id,
            customer_id,
            desk,
            &mut self.run,
        );
        let mut decided = Vec::new();
        for device in order {
            if !page.first_copy(device, fingerprint(device)) {
                continue;
            }
            if let Some(decision) = page.decide(device) {
                decided.push(decision);
            }
        }
        page.match_all(&mut decided);
        for decision in decided {
            page.plan_device(decision);
        }
        page.into_output().into_plan(self.now)
    }

    /// Ends the tenant. After a complete read, every asset of `imported` (the assets this
    /// connection imported from the tenant) whose device was not read gets the deletion status;
    /// after a partial or failed read nothing does, and the plan says so.
    pub fn finish_tenant(&mut self, completeness: Completeness, imported: &[DeskAsset]) -> Plan {
        let mut out = Output::default();
        let Some(tenant) = self.run.tenant.take() else {
            out.errors.push(PlanError {
                tenant_id: String::new(),
                external_id: String::new(),
                message: "finish_tenant was called before begin_tenant; no asset gets the deletion status"
                    .into(),
            });
            return out.into_plan(self.now);
        };
        if completeness != Completeness::Complete {
            let how = match completeness {
                Completeness::Partial => "only partly",
                _ => "not",
            };
            out.notes.push(format!(
                "The devices of tenant {} were {how} read, so no asset is given the status '{}' for a missing device this run.",
                tenant.tenant_id, self.settings.deleted_status
            ));
            return out.into_plan(self.now);
        }
        let deleted = self.settings.deleted_status.trim();
        let mut absent: Vec<(&str, &DeskAsset)> = imported
            .iter()
            .filter_map(|asset| {
                let source = asset
                    .source
                    .as_ref()
                    .filter(|s| s.connection_id == self.connection_id)?;
                let of_tenant = asset
                    .tenant_id
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(&tenant.tenant_id));
                (of_tenant && !tenant.seen.contains(&external_key(&source.external_id)))
                    .then_some((source.external_id.as_str(), asset))
            })
            .collect();
        absent.sort_by_key(|(external_id, asset)| (external_key(external_id), asset.id));
        // An asset listed twice is one asset.
        absent.dedup_by_key(|(_, asset)| asset.id);
        // Assets carrying one device id: a plan can name only one target per device, and
        // choosing would be a guess; they are an administrator's (a conflict whenever the device
        // is read), and none gets the status.
        let mut carriers: BTreeMap<String, Vec<RecordId>> = BTreeMap::new();
        for (external_id, asset) in &absent {
            carriers
                .entry(external_key(external_id))
                .or_default()
                .push(asset.id);
        }
        for (external_id, asset) in absent {
            let status = asset.fields.get("status").cloned().unwrap_or(Value::Null);
            if status
                .as_str()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case(deleted))
            {
                continue;
            }
            if let Some(lock) = self.deletion_lock(external_id) {
                out.locked.push(LockedChange {
                    entity: Entity::Asset,
                    external_id: external_id.to_owned(),
                    field: "status".into(),
                    current: status,
                    wanted: Value::String(deleted.to_owned()),
                    lock,
                });
                continue;
            }
            let key = Plan::target_key(Entity::Asset, external_id);
            if let Some(ids) = carriers
                .get(&external_key(external_id))
                .filter(|ids| ids.len() > 1)
            {
                let ids = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                out.errors.push(PlanError {
                    tenant_id: tenant.tenant_id.clone(),
                    external_id: external_id.to_owned(),
                    message: format!(
                        "desk assets {ids} carry this device id; asset {}'s status is left as it is (resolve the duplicates by hand)",
                        asset.id
                    ),
                });
                continue;
            }
            out.targets.insert(key, asset.id);
            let label = asset.fields.get("name").and_then(Value::as_str).map_or_else(
                || format!("asset {}", asset.id),
                |name| format!("{name} (asset {})", asset.id),
            );
            out.changes.push(Change {
                entity: Entity::Asset,
                external_id: external_id.to_owned(),
                name: None,
                action: Action::Deactivate,
                fields: BTreeMap::from([(
                    "status".to_owned(),
                    FieldChange {
                        before: status,
                        after: Value::String(deleted.to_owned()),
                    },
                )]),
                rule: "asset deletion status".into(),
                reason: format!(
                    "{label}: device {external_id} was not in a complete read of tenant {}, so it was deleted from the source. The asset is kept with status '{deleted}'.",
                    tenant.tenant_id
                ),
            });
        }
        out.into_plan(self.now)
    }

    /// The lock that keeps an absent device's asset from the deletion status, if any.
    fn deletion_lock(&self, device_id: &str) -> Option<String> {
        if self.settings.keeps_status(device_id) {
            return Some("record lock: keep this asset's status".into());
        }
        self.settings.lock_on(device_id, "status")
    }

    fn excluded_by_sense(&self, device: &SourceDevice) -> bool {
        self.settings.exclude_sense && is_sense(device)
    }
}

/// Managed by Microsoft Defender for Endpoint.
pub(crate) fn is_sense(device: &SourceDevice) -> bool {
    device_text(device, "managementAgent").is_some_and(|agent| agent.eq_ignore_ascii_case("msSense"))
}

/// The device property the asset method of user linking reads.
pub(crate) fn user_property(field: DeviceUserField) -> &'static str {
    match field {
        DeviceUserField::UserId => "userId",
        DeviceUserField::UserPrincipalName => "userPrincipalName",
        DeviceUserField::EmailAddress => "emailAddress",
    }
}

/// A device property as trimmed text, when present (not `""` nor a placeholder date).
pub(crate) fn device_text(device: &SourceDevice, property: &str) -> Option<String> {
    let value = read_path(&device.properties, property).filter(|v| present(v))?;
    let text = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// The device properties an asset configuration reads (see
/// [`ValidatedConfig::device_properties`]).
pub(crate) fn device_properties(settings: &AssetMappings, compiled: &CompiledAssets) -> BTreeSet<String> {
    let mut select: BTreeSet<String> = ["id".to_owned()].into();
    let root = |path: &str| path.split('/').next().unwrap_or(path).to_owned();
    for field in &compiled.fields {
        match &field.source {
            FieldSource::Property(path) => {
                select.insert(root(path));
            }
            FieldSource::Template(template) => {
                select.extend(template_properties(template).into_iter().map(root));
            }
        }
    }
    match &settings.types {
        AssetTypes::Single { .. } => {}
        AssetTypes::Field { property, .. } => {
            select.insert(root(property));
        }
        AssetTypes::Rules { .. } => {
            for rule in &compiled.rules {
                select.extend(rule.filter.root_properties());
            }
        }
    }
    if let AssetUserLink::Asset { field } = settings.user_link {
        select.insert(user_property(field).to_owned());
    }
    if settings.exclude_sense {
        select.insert("managementAgent".into());
    }
    select
}

/// A fingerprint of a device's whole content, independent of property order.
fn fingerprint(device: &SourceDevice) -> u64 {
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
    device.external_id.hash(&mut state);
    value(&Value::Object(device.properties.clone()), &mut state);
    device.owner_id.hash(&mut state);
    state.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with(properties: Value) -> SourceDevice {
        SourceDevice {
            external_id: "D1".into(),
            properties: properties.as_object().cloned().unwrap_or_default(),
            owner_id: None,
        }
    }

    #[test]
    fn sense_is_recognised_ignoring_case() {
        assert!(is_sense(&with(json!({"managementAgent": "MSSense"}))));
        assert!(!is_sense(&with(json!({"managementAgent": "mdm"}))));
        assert!(!is_sense(&with(json!({}))));
    }

    #[test]
    fn device_text_reads_present_values_trimmed() {
        let device = with(json!({"a": " x ", "b": "", "c": "0001-01-01T00:00:00Z", "d": 5}));
        assert_eq!(device_text(&device, "A").as_deref(), Some("x"));
        assert_eq!(device_text(&device, "b"), None);
        assert_eq!(device_text(&device, "c"), None);
        assert_eq!(device_text(&device, "d").as_deref(), Some("5"));
    }

    #[test]
    fn fingerprints_ignore_property_order() {
        let a = with(json!({"x": 1, "y": "z"}));
        let mut b = with(json!({"y": "z"}));
        b.properties.insert("x".into(), json!(1));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&with(json!({"x": 2, "y": "z"}))));
    }
}
