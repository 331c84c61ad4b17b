//! One page of devices: the page's desk indexed, replays, and what is decided per device before
//! matching — exclusion (Sense), the asset type (single, field or rules) and the mapped fields.
//! Matching is in `matching.rs`, users and sites in `users.rs`, the changes in `changes.rs`.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_odata::EvalOptions;
use serde_json::Value;

use super::config::{AssetMappings, AssetTypes, UnmatchedDevice};
use super::input::{AssetDesk, SourceDevice, present};
use super::matching::{Match, match_key};
use super::planner::{AssetRun, device_text, is_sense};
use super::users::UserIndex;
use super::validate::CompiledAssets;
use crate::config::FieldSource;
use crate::engine::external_key;
use crate::fields::{convert, read_source};
use crate::plan::{Action, Change, Counts, Entity, LockedChange, Plan, PlanError};

/// What a step decided, before it becomes a [`Plan`].
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) changes: Vec<Change>,
    pub(crate) targets: BTreeMap<String, RecordId>,
    pub(crate) errors: Vec<PlanError>,
    pub(crate) notes: Vec<String>,
    /// Changes a lock kept from being made.
    pub(crate) locked: Vec<LockedChange>,
    pub(crate) unchanged: usize,
}

impl Output {
    /// The plan, changes in apply order: asset types, then assets, each by external id.
    pub(crate) fn into_plan(mut self, now: jiff::Timestamp) -> Plan {
        self.changes
            .sort_by(|a, b| (a.entity, &a.external_id, a.action).cmp(&(b.entity, &b.external_id, b.action)));
        let mut counts = Counts {
            unchanged: self.unchanged,
            errors: self.errors.len(),
            ..Counts::default()
        };
        for change in &self.changes {
            match change.action {
                Action::Create => counts.created += 1,
                Action::Update | Action::Link | Action::Reactivate => counts.updated += 1,
                Action::Deactivate => counts.deactivated += 1,
                Action::Conflict => counts.conflicts += 1,
                Action::Skip => {}
            }
        }
        Plan {
            generated_at: now,
            changes: self.changes,
            targets: self.targets,
            locked: self.locked,
            circuit_breaker: Vec::new(),
            held: Vec::new(),
            errors: self.errors,
            notes: self.notes,
            counts,
        }
    }
}

/// What a page decided for one device before matching.
pub(crate) struct Decision<'d> {
    pub(super) device: &'d SourceDevice,
    pub(super) label: String,
    pub(super) asset_type: TypeChoice,
    /// Desk field → (value, where it came from).
    pub(super) fields: BTreeMap<String, (Value, String)>,
    pub(super) matched: Match,
}

/// The asset type a device gets, with the rule that gave it and why.
pub(super) struct TypeChoice {
    pub(super) name: String,
    pub(super) rule: String,
    pub(super) why: String,
}

/// The context one page is planned in.
pub(crate) struct Page<'p, 'c> {
    pub(super) settings: &'c AssetMappings,
    pub(super) compiled: &'c CompiledAssets,
    pub(super) tenant_id: &'p str,
    pub(super) customer_id: Option<RecordId>,
    pub(super) desk: &'p AssetDesk,
    pub(super) run: &'p mut AssetRun,
    pub(super) out: Output,
    /// Lower-cased device id → desk assets this connection links to it.
    pub(super) by_source: BTreeMap<String, Vec<usize>>,
    /// Matching value → desk assets of the customer no device of this connection is linked to
    /// (nor claimed earlier in the run).
    pub(super) unlinked: BTreeMap<String, Vec<usize>>,
    /// The users devices may be linked to.
    pub(super) users: UserIndex,
}

impl<'p, 'c> Page<'p, 'c> {
    pub(crate) fn new(
        settings: &'c AssetMappings,
        compiled: &'c CompiledAssets,
        connection: ConnectionId,
        tenant_id: &'p str,
        customer_id: Option<RecordId>,
        desk: &'p AssetDesk,
        run: &'p mut AssetRun,
    ) -> Self {
        let mut by_source: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut unlinked: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for (index, asset) in desk.assets.iter().enumerate() {
            // The store may list an asset twice (found by device id and by value): once is
            // enough, and twice would look like two candidates.
            if !ids.insert(asset.id) {
                continue;
            }
            if let Some(source) = asset.source.as_ref().filter(|s| s.connection_id == connection) {
                by_source
                    .entry(external_key(&source.external_id))
                    .or_default()
                    .push(index);
                continue;
            }
            // Claimed assets count as they were before the run, from the run's memory: a
            // later page's desk shows them linked in a sync and unlinked in a preview.
            if !of_customer(asset.customer_id, customer_id) || run.claims.contains_key(&asset.id) {
                continue;
            }
            if let Some(key) = asset.fields.get(&settings.match_field).and_then(match_key) {
                unlinked.entry(key).or_default().push(index);
            }
        }
        Self {
            settings,
            compiled,
            tenant_id,
            customer_id,
            desk,
            run,
            out: Output::default(),
            by_source,
            unlinked,
            users: UserIndex::new(desk, connection, customer_id),
        }
    }

    pub(crate) fn into_output(self) -> Output {
        self.out
    }

    pub(super) fn error(&mut self, external_id: &str, message: String) {
        self.out.errors.push(PlanError {
            tenant_id: self.tenant_id.to_owned(),
            external_id: external_id.to_owned(),
            message,
        });
    }

    pub(super) fn push(&mut self, device: &SourceDevice, action: Action, rule: String, reason: String) {
        self.out.changes.push(Change {
            entity: Entity::Asset,
            external_id: device.external_id.clone(),
            name: None,
            action,
            fields: BTreeMap::new(),
            rule,
            reason,
        });
    }

    /// Records the device as read; false for a later copy of a device planned already (a
    /// differing copy is a plan error: the first one was planned).
    pub(crate) fn first_copy(&mut self, device: &SourceDevice, print: u64) -> bool {
        let key = external_key(&device.external_id);
        if let Some(tenant) = self.run.tenant.as_mut() {
            tenant.seen.insert(key.clone());
        }
        match self.run.devices.get(&key) {
            None => {
                self.run.devices.insert(key, print);
                true
            }
            Some(planned) if *planned == print => false,
            Some(_) => {
                self.error(
                    &device.external_id,
                    "the device was read twice with different content; the first copy was planned".into(),
                );
                false
            }
        }
    }

    /// Exclusion, type and mapped fields; `None` when the device is not imported (a `skip`
    /// or a plan error says why).
    pub(crate) fn decide<'d>(&mut self, device: &'d SourceDevice) -> Option<Decision<'d>> {
        let label = label(device);
        if self.settings.exclude_sense && is_sense(device) {
            self.push(
                device,
                Action::Skip,
                "asset exclusion (Sense)".into(),
                format!(
                    "{label} is managed by Microsoft Defender for Endpoint (managementAgent msSense) and such devices are excluded. Not imported; an asset imported from it earlier is left as it is."
                ),
            );
            return None;
        }
        let asset_type = self.asset_type(device, &label)?;
        let mut fields = BTreeMap::new();
        for field in &self.compiled.fields {
            let origin = match &field.source {
                FieldSource::Property(path) => format!("asset field mapping #{} ({path})", field.number),
                FieldSource::Template(template) => {
                    format!("asset field mapping #{} (\"{template}\")", field.number)
                }
            };
            let raw = read_source(&field.source, &device.properties);
            // Intune's "" and placeholder dates mean "unknown": no value.
            let raw = if present(&raw) { raw } else { Value::Null };
            match convert(&field.kind, &raw) {
                Ok(value) => {
                    fields.insert(field.target.clone(), (value, origin));
                }
                Err(problem) => self.error(
                    &device.external_id,
                    format!("{}: {origin}: {problem}; field left as it is", field.target),
                ),
            }
        }
        Some(Decision {
            device,
            label,
            asset_type,
            fields,
            matched: Match::New,
        })
    }

    /// The device's type, or `None` (skipped or an error) when it gets none.
    fn asset_type(&mut self, device: &SourceDevice, label: &str) -> Option<TypeChoice> {
        let choice = |name: &str, rule: String, why: String| {
            Some(TypeChoice {
                name: name.trim().to_owned(),
                rule,
                why,
            })
        };
        match &self.settings.types {
            AssetTypes::Single { asset_type } => choice(
                asset_type,
                format!("asset type '{}'", asset_type.trim()),
                "the type of every device".into(),
            ),
            AssetTypes::Field { property, fallback } => {
                if let Some(value) = device_text(device, property) {
                    return choice(
                        &value,
                        format!("asset type from '{property}'"),
                        format!("{property} is '{value}'"),
                    );
                }
                if let Some(fallback) = fallback {
                    return choice(
                        fallback,
                        format!("asset type fallback '{}'", fallback.trim()),
                        format!("{property} is empty, so the fallback type"),
                    );
                }
                self.push(
                    device,
                    Action::Skip,
                    format!("asset type from '{property}'"),
                    format!(
                        "{label} has no value in {property} and there is no fallback type. Not imported."
                    ),
                );
                None
            }
            AssetTypes::Rules { unmatched, .. } => {
                for rule in &self.compiled.rules {
                    match deskbridge_odata::evaluate_object(
                        &rule.filter,
                        &device.properties,
                        &EvalOptions::graph(),
                    ) {
                        Ok(true) => {
                            return choice(
                                &rule.asset_type,
                                rule.rule(),
                                "the first rule that matches".into(),
                            );
                        }
                        Ok(false) => {}
                        Err(error) => {
                            self.error(
                                &device.external_id,
                                format!(
                                    "{}: the filter cannot be evaluated: {error}; not imported",
                                    rule.rule()
                                ),
                            );
                            return None;
                        }
                    }
                }
                match unmatched {
                    UnmatchedDevice::Fallback { asset_type } => choice(
                        asset_type,
                        format!("asset type fallback '{}'", asset_type.trim()),
                        "no asset type rule matches".into(),
                    ),
                    UnmatchedDevice::Exclude => {
                        self.push(
                            device,
                            Action::Skip,
                            "asset type rules".into(),
                            format!("{label} matches no asset type rule and unmatched devices are excluded. Not imported."),
                        );
                        None
                    }
                }
            }
        }
    }
}

pub(super) fn of_customer(asset: Option<RecordId>, tenant: Option<RecordId>) -> bool {
    tenant.is_none() || asset == tenant
}

/// A device's name for messages.
fn label(device: &SourceDevice) -> String {
    ["deviceName", "managedDeviceName"]
        .iter()
        .find_map(|key| device_text(device, key))
        .map_or_else(
            || format!("device {}", device.external_id),
            |name| format!("{name} ({})", device.external_id),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tenants_customer_counts_unless_it_has_none() {
        let (one, two) = (Some(RecordId(1)), Some(RecordId(2)));
        assert!(of_customer(one, one));
        assert!(!of_customer(two, one));
        assert!(!of_customer(None, one));
        assert!(of_customer(two, None));
    }
}
