//! One page of devices: exclusion and type, mapped fields, matching a desk asset (source
//! identity, then the matching field, never guessing), the user link and the site, and the
//! change each device becomes.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_odata::EvalOptions;
use serde_json::{Value, json};

use super::config::{AssetMappings, AssetTypes, AssetUserLink, DeviceUserField, UnmatchedDevice};
use super::input::{AssetDesk, DeskAsset, SourceDevice, present};
use super::planner::{AssetRun, Claim, NewType, device_text, is_sense, user_property};
use super::validate::CompiledAssets;
use crate::config::FieldSource;
use crate::engine::{external_key, same};
use crate::fields::{convert, read_source};
use crate::input::DeskRecord;
use crate::plan::{Action, Change, Counts, Entity, FieldChange, Plan, PlanError, Reference};

/// What a step decided, before it becomes a [`Plan`].
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) changes: Vec<Change>,
    pub(crate) targets: BTreeMap<String, RecordId>,
    pub(crate) errors: Vec<PlanError>,
    pub(crate) notes: Vec<String>,
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
            locked: Vec::new(),
            circuit_breaker: Vec::new(),
            held: Vec::new(),
            errors: self.errors,
            notes: self.notes,
            counts,
        }
    }
}

/// How a device's matching-field value compares: trimmed and lower-cased; `None` for values
/// that never match (empty, placeholders, lists).
pub(crate) fn match_key(value: &Value) -> Option<String> {
    if !present(value) {
        return None;
    }
    let text = match value {
        Value::String(text) => text.trim().to_lowercase(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// What a page decided for one device before matching.
pub(crate) struct Decision<'d> {
    device: &'d SourceDevice,
    label: String,
    asset_type: TypeChoice,
    /// Desk field → (value, where it came from).
    fields: BTreeMap<String, (Value, String)>,
    matched: Match,
}

/// The asset type a device gets, with the rule that gave it and why.
struct TypeChoice {
    name: String,
    rule: String,
    why: String,
}

enum Match {
    New,
    BySource(usize),
    ByField { index: usize, value: String },
    Conflict { rule: String, reason: String },
}

enum UserLink {
    /// The configuration links no users: `user_id` is left as it is.
    NotManaged,
    Found {
        id: RecordId,
        site: Option<RecordId>,
        why: String,
    },
    /// No user, or not a single one: `user_id` is cleared.
    Missing(String),
}

/// The context one page is planned in.
pub(crate) struct Page<'p, 'c> {
    settings: &'c AssetMappings,
    compiled: &'c CompiledAssets,
    connection: ConnectionId,
    tenant_id: &'p str,
    customer_id: Option<RecordId>,
    desk: &'p AssetDesk,
    run: &'p mut AssetRun,
    out: Output,
    /// Lower-cased device id → desk assets this connection links to it.
    by_source: BTreeMap<String, Vec<usize>>,
    /// Matching value → desk assets of the customer no device of this connection is linked to
    /// (nor claimed earlier in the run).
    unlinked: BTreeMap<String, Vec<usize>>,
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
        for (index, asset) in desk.assets.iter().enumerate() {
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
            connection,
            tenant_id,
            customer_id,
            desk,
            run,
            out: Output::default(),
            by_source,
            unlinked,
        }
    }

    pub(crate) fn into_output(self) -> Output {
        self.out
    }

    fn error(&mut self, external_id: &str, message: String) {
        self.out.errors.push(PlanError {
            tenant_id: self.tenant_id.to_owned(),
            external_id: external_id.to_owned(),
            message,
        });
    }

    fn push(&mut self, device: &SourceDevice, action: Action, rule: String, reason: String) {
        self.out.changes.push(Change {
            entity: Entity::Asset,
            external_id: device.external_id.clone(),
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

    /// Matches every decided device of the page. A desk asset several devices of the page fit
    /// links none of them (each is a conflict); one claimed earlier in the run stays claimed.
    pub(crate) fn match_all(&mut self, decided: &mut [Decision<'_>]) {
        let mut fits: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for decision in decided.iter_mut() {
            decision.matched = self.find(decision);
            if let Match::ByField { index, .. } = decision.matched {
                fits.entry(index)
                    .or_default()
                    .push(decision.device.external_id.clone());
            }
        }
        let field = &self.settings.match_field;
        for decision in decided.iter_mut() {
            let Match::ByField { index, value } = &decision.matched else {
                continue;
            };
            let Some(devices) = fits.get(index).filter(|d| d.len() > 1) else {
                continue;
            };
            decision.matched = Match::Conflict {
                rule: format!("asset matching field '{field}'"),
                reason: format!(
                    "desk asset {} fits {} devices on {field} '{value}' ({}); not linked, resolve by hand",
                    self.desk.assets[*index].id,
                    devices.len(),
                    devices.join(", ")
                ),
            };
        }
        for (index, devices) in fits {
            let asset = &self.desk.assets[index];
            let claim = Claim {
                customer_id: asset.customer_id,
                linked_to: match devices.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                },
            };
            if let Some(key) = asset.fields.get(field).and_then(match_key) {
                self.run.claimed_values.entry(key).or_default().push(asset.id);
            }
            self.run.claims.insert(asset.id, claim);
        }
    }

    fn find(&self, decision: &Decision<'_>) -> Match {
        let device = decision.device;
        match self
            .by_source
            .get(&external_key(&device.external_id))
            .map_or(&[][..], Vec::as_slice)
        {
            [] => {}
            [only] => return Match::BySource(*only),
            several => {
                return Match::Conflict {
                    rule: "asset matching (device id)".into(),
                    reason: format!(
                        "{} desk assets carry device id {} from this connection (ids {}); not linked, resolve by hand",
                        several.len(),
                        device.external_id,
                        several
                            .iter()
                            .map(|i| self.desk.assets[*i].id.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
            }
        }
        let field = &self.settings.match_field;
        let Some((value, key)) = decision.fields.get(field).and_then(|(value, _)| {
            let shown = value
                .as_str()
                .map_or_else(|| value.to_string(), |text| text.trim().to_owned());
            Some((shown, match_key(value)?))
        }) else {
            return Match::New;
        };
        let rule = format!("asset matching field '{field}'");
        let on_desk: &[usize] = self.unlinked.get(&key).map_or(&[], Vec::as_slice);
        let claimed: Vec<RecordId> = self
            .run
            .claimed_values
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.run
                    .claims
                    .get(id)
                    .is_some_and(|claim| of_customer(claim.customer_id, self.customer_id))
            })
            .copied()
            .collect();
        match (on_desk, claimed.as_slice()) {
            ([], []) => Match::New,
            ([index], []) => Match::ByField { index: *index, value },
            ([], [id]) => {
                let reason = match self.run.claims.get(id).and_then(|c| c.linked_to.as_deref()) {
                    Some(earlier) => format!(
                        "desk asset {id} was linked earlier in this run to device {earlier} and also fits on {field} '{value}'; not linked, resolve by hand"
                    ),
                    None => format!(
                        "desk asset {id} fits several devices of this run, this one on {field} '{value}'; not linked, resolve by hand"
                    ),
                };
                Match::Conflict { rule, reason }
            }
            (desk, run) => {
                let ids: Vec<String> = desk
                    .iter()
                    .map(|i| self.desk.assets[*i].id.to_string())
                    .chain(run.iter().map(ToString::to_string))
                    .collect();
                Match::Conflict {
                    rule,
                    reason: format!(
                        "{} desk assets have {field} '{value}' (ids {}); not linked, resolve by hand",
                        ids.len(),
                        ids.join(", ")
                    ),
                }
            }
        }
    }

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
            Match::ByField { index, value } => (
                Some(&desk.assets[*index]),
                Some((
                    format!("asset matching field '{}'", self.settings.match_field),
                    format!(
                        "linked to desk asset {} whose {} is '{value}'",
                        desk.assets[*index].id, self.settings.match_field
                    ),
                )),
            ),
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
        let (fields, origins) = field_changes(desired, |field| current(asset, field));
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

    /// The site of a device linked to no user: the default site, else the customer's main site.
    fn fallback_site(&self) -> Result<(RecordId, String), String> {
        if let Some(site) = self.settings.default_site {
            return Ok((site, format!("no linked user, so the default site {site}")));
        }
        let mains: Vec<RecordId> = self
            .desk
            .sites
            .iter()
            .filter(|site| site.is_main && of_customer(Some(site.customer_id), self.customer_id))
            .map(|site| site.id)
            .collect();
        match mains.as_slice() {
            [site] => Ok((
                *site,
                format!("no linked user, so the customer's main site {site}"),
            )),
            [] => Err(
                "no user links it to a site, there is no default site and the customer has no main site"
                    .into(),
            ),
            several => Err(format!(
                "no user links it to a site, there is no default site and {} sites are main sites",
                several.len()
            )),
        }
    }

    fn link_user(&self, device: &SourceDevice) -> UserLink {
        let (wanted, what) = match self.settings.user_link {
            AssetUserLink::None => return UserLink::NotManaged,
            AssetUserLink::User => (
                device
                    .owner_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned),
                "owner",
            ),
            AssetUserLink::Asset { field } => {
                (device_text(device, user_property(field)), user_property(field))
            }
        };
        let Some(wanted) = wanted else {
            return UserLink::Missing(format!("the device names no user ({what} is empty), so no user"));
        };
        let eligible: Vec<&DeskRecord> = self
            .desk
            .users
            .iter()
            .filter(|user| self.eligible(user))
            .collect();
        let text_is = |user: &DeskRecord, field: &str| {
            user.text(field)
                .is_some_and(|v| v.trim().to_lowercase() == wanted.to_lowercase())
        };
        let by_id = |user: &DeskRecord| {
            user.source.as_ref().is_some_and(|s| {
                s.connection_id == self.connection && s.external_id.eq_ignore_ascii_case(&wanted)
            })
        };
        let (found, on): (Vec<&DeskRecord>, &str) = match self.settings.user_link {
            AssetUserLink::Asset {
                field: DeviceUserField::UserPrincipalName,
            } => {
                let by_login: Vec<_> = eligible
                    .iter()
                    .copied()
                    .filter(|u| text_is(u, "network_login"))
                    .collect();
                if by_login.is_empty() {
                    (
                        eligible.into_iter().filter(|u| text_is(u, "email")).collect(),
                        "email",
                    )
                } else {
                    (by_login, "network login")
                }
            }
            AssetUserLink::Asset {
                field: DeviceUserField::EmailAddress,
            } => (
                eligible.into_iter().filter(|u| text_is(u, "email")).collect(),
                "email",
            ),
            _ => (eligible.into_iter().filter(|u| by_id(u)).collect(), "external id"),
        };
        match found.as_slice() {
            [user] => UserLink::Found {
                id: user.id,
                site: user.fields.get("site_id").and_then(Value::as_i64).map(RecordId),
                why: format!("desk user {} whose {on} is {what} '{wanted}'", user.label()),
            },
            [] => UserLink::Missing(format!(
                "no active desk user of the customer matches {what} '{wanted}', so no user"
            )),
            several => UserLink::Missing(format!(
                "{what} '{wanted}' is ambiguous: {} desk users fit on {on} (ids {}), so no user",
                several.len(),
                several
                    .iter()
                    .map(|u| u.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Active, and on one of the tenant customer's sites (any site without a customer).
    fn eligible(&self, user: &DeskRecord) -> bool {
        if !user.is_active() {
            return false;
        }
        let Some(customer) = self.customer_id else {
            return true;
        };
        let site = user.fields.get("site_id").and_then(Value::as_i64);
        self.desk
            .sites
            .iter()
            .any(|s| Some(s.id.0) == site && s.customer_id == customer)
    }
}

fn of_customer(asset: Option<RecordId>, tenant: Option<RecordId>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_keys_ignore_case_and_blanks_and_never_come_from_no_value() {
        assert_eq!(match_key(&json!("  AB12 ")), Some("ab12".into()));
        assert_eq!(match_key(&json!(42)), Some("42".into()));
        for nothing in [
            json!(""),
            json!("   "),
            json!(null),
            json!("0001-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59Z"),
            json!(["AB12"]),
        ] {
            assert_eq!(match_key(&nothing), None, "{nothing}");
        }
    }

    #[test]
    fn only_the_tenants_customer_counts_unless_it_has_none() {
        let (one, two) = (Some(RecordId(1)), Some(RecordId(2)));
        assert!(of_customer(one, one));
        assert!(!of_customer(two, one));
        assert!(!of_customer(None, one));
        assert!(of_customer(two, None));
    }
}
