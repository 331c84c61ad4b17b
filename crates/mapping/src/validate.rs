//! Checking a configuration against the catalog when it is saved, and compiling it for planning.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::RecordId;
use deskbridge_odata::Expr;
use serde::Serialize;
use serde_json::Value;

use crate::assets::{CompiledAssets, check_assets};
use crate::catalog::{Catalog, CustomFieldEntity, NamedRecord, SourceType};
use crate::config::{
    CONFIG_VERSION, FieldMapping, FieldSource, GroupFilter, MappingConfig, RecordKind, SiteMapping,
    SiteTarget, UnmatchedSite,
};
use crate::fields::{
    FieldKind, TargetProblem, canonical_target, convert, option_set_kind, target_kind, template_properties,
};

/// One problem with a configuration: where it is and what is wrong, in words an administrator
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// e.g. `site mapping #2 'London staff'`.
    pub location: String,
    pub message: String,
}

/// Configuration problems are the caller's to fix; saving again unchanged fails again.
impl deskbridge_core::HasErrorCode for ConfigError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        deskbridge_core::ErrorCode::InvalidConfiguration
    }
}

/// A configuration that passed [`validate`], with its filters parsed and its mappings in
/// evaluation order. Planning only accepts this.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    config: MappingConfig,
    pub(crate) user_fields: Vec<CompiledField>,
    pub(crate) agent_fields: Vec<CompiledField>,
    /// Site mappings in evaluation order: sequence, then id.
    pub(crate) mappings: Vec<CompiledMapping>,
    /// Lower-cased team name → team.
    pub(crate) teams_by_name: BTreeMap<String, RecordId>,
    /// The asset configuration compiled, when devices are imported.
    pub(crate) assets: Option<CompiledAssets>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledField {
    pub target: String,
    pub kind: FieldKind,
    pub source: FieldSource,
    /// 1-based position in the configuration, for rule names.
    pub number: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledMapping {
    pub mapping: SiteMapping,
    pub filter: Option<Expr>,
    /// `values`, converted to the desk fields' types.
    pub values: BTreeMap<String, Value>,
}

impl CompiledMapping {
    /// How the plan names this mapping, e.g. `site mapping #2 'London staff' (seq 10)`.
    pub(crate) fn rule(&self) -> String {
        format!(
            "site mapping #{} '{}' (seq {})",
            self.mapping.id, self.mapping.name, self.mapping.sequence
        )
    }

    pub(crate) fn is_agent(&self) -> bool {
        matches!(self.mapping.target, SiteTarget::Agent { .. })
    }
}

impl ValidatedConfig {
    pub fn config(&self) -> &MappingConfig {
        &self.config
    }

    /// Source user properties the configuration reads (field mappings, filters, kind-2 fields):
    /// what a read must request (Entra: `$select`), and what "mapped fields only" delta sync
    /// listens to. `id`, `accountEnabled`, `userType`, `userPrincipalName` and
    /// `assignedLicenses` are always included because the Entra connector reads them to fill
    /// [`crate::SourceUser`]'s own fields.
    pub fn source_properties(&self) -> BTreeSet<String> {
        let mut select: BTreeSet<String> = [
            "id",
            "accountEnabled",
            "userType",
            "userPrincipalName",
            "assignedLicenses",
        ]
        .map(str::to_owned)
        .into();
        select.extend(self.property_uses().into_keys());
        select
    }

    /// Each source user property (the root of a path) the mappings read, with where it is used
    /// ("user field email", "site mapping 3 (London) filter", …): what an administrator needs to
    /// see when a property cannot be tracked by a delta query.
    pub fn property_uses(&self) -> BTreeMap<String, Vec<String>> {
        let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |path: &str, used_by: String| {
            if let Some(root) = path.split('/').next().filter(|r| !r.is_empty()) {
                let list = uses.entry(root.to_owned()).or_default();
                if !list.contains(&used_by) {
                    list.push(used_by);
                }
            }
        };
        for (kind, fields) in [
            ("user", &self.config.user_fields),
            ("agent", &self.config.agent_fields),
        ] {
            for field in fields {
                let used_by = format!("{kind} field {}", field.target);
                match &field.source {
                    FieldSource::Property(path) => add(path, used_by),
                    FieldSource::Template(template) => template_properties(template)
                        .into_iter()
                        .for_each(|p| add(p, used_by.clone())),
                }
            }
        }
        for compiled in &self.mappings {
            let name = format!("site mapping {} ({})", compiled.mapping.id, compiled.mapping.name);
            if let Some(filter) = &compiled.filter {
                filter
                    .root_properties()
                    .iter()
                    .for_each(|path| add(path, format!("{name} filter")));
            }
            if let SiteTarget::CustomerByField { field, .. } = &compiled.mapping.target {
                add(field, format!("{name} customer field"));
            }
        }
        uses
    }

    /// Whether devices are imported as assets (the configuration has an asset part).
    pub fn imports_assets(&self) -> bool {
        self.assets.is_some()
    }

    /// Source device properties the asset configuration reads (field mappings, the type
    /// property or rules, the user link, `managementAgent` for the Sense exclusion), plus `id`:
    /// what a device read must request (Intune: `$select`). Empty when assets are not imported.
    pub fn device_properties(&self) -> BTreeSet<String> {
        let (Some(settings), Some(compiled)) = (&self.config.assets, &self.assets) else {
            return BTreeSet::new();
        };
        crate::assets::device_properties(settings, compiled)
    }

    /// Whether group memberships must be read at all.
    pub fn uses_groups(&self) -> bool {
        let advanced = &self.config.advanced;
        self.mappings.iter().any(|m| m.mapping.group.is_some())
            || !advanced.agent_roles.is_empty()
            || !advanced.user_roles.is_empty()
            || !advanced.teams.is_empty()
            || !advanced.cabs.is_empty()
            || self
                .config
                .service_accounts
                .as_ref()
                .is_some_and(|s| s.group.is_some())
    }
}

/// Checks `config` against what exists. Every problem found is reported, not just the first.
pub fn validate(config: &MappingConfig, catalog: &Catalog) -> Result<ValidatedConfig, Vec<ConfigError>> {
    let mut checker = Checker {
        catalog,
        errors: Vec::new(),
    };
    if config.version > CONFIG_VERSION {
        checker.error(
            "configuration",
            format!(
                "version {} was written by a newer deskbridge (this one reads up to {CONFIG_VERSION})",
                config.version
            ),
        );
    }
    let user_fields = checker.field_mappings(RecordKind::User, &config.user_fields);
    let agent_fields = checker.field_mappings(RecordKind::Agent, &config.agent_fields);
    let mut mappings = Vec::new();
    let mut seen_ids = BTreeSet::new();
    for mapping in &config.site_mappings {
        if !seen_ids.insert(mapping.id) {
            checker.error(
                mapping_location(mapping),
                format!("the id {} is used by another site mapping", mapping.id),
            );
        }
        if let Some(compiled) = checker.site_mapping(mapping, &user_fields) {
            mappings.push(compiled);
        }
    }
    mappings.sort_by_key(|compiled| (compiled.mapping.sequence, compiled.mapping.id));
    checker.advanced(config);
    checker.imports(config, &user_fields);
    let assets = config
        .assets
        .as_ref()
        .and_then(|assets| check_assets(assets, catalog, &mut checker.errors));
    for message in crate::rows::check_table_mappings(&config.custom_tables) {
        checker.errors.push(ConfigError {
            location: "custom_tables".into(),
            message,
        });
    }
    if let Some(customers) = &config.customers {
        let fields: Vec<_> = catalog
            .custom_fields
            .iter()
            .filter(|f| f.entity == crate::catalog::CustomFieldEntity::Customer)
            .cloned()
            .collect();
        for message in customers.check(&fields) {
            checker.errors.push(ConfigError {
                location: "customers".into(),
                message,
            });
        }
    }
    let teams_by_name = catalog
        .teams
        .iter()
        .map(|team| (team.name.to_lowercase(), team.id))
        .collect();
    if checker.errors.is_empty() {
        Ok(ValidatedConfig {
            config: config.clone(),
            user_fields,
            agent_fields,
            mappings,
            teams_by_name,
            assets,
        })
    } else {
        Err(checker.errors)
    }
}

fn mapping_location(mapping: &SiteMapping) -> String {
    format!("site mapping #{} '{}'", mapping.id, mapping.name)
}

fn kind_word(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::User => "user",
        RecordKind::Agent => "agent",
    }
}

struct Checker<'a> {
    catalog: &'a Catalog,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location: location.into(),
            message: message.into(),
        });
    }

    fn field_mappings(&mut self, kind: RecordKind, mappings: &[FieldMapping]) -> Vec<CompiledField> {
        let mut compiled = Vec::new();
        let mut targets: BTreeMap<String, usize> = BTreeMap::new();
        for (index, mapping) in mappings.iter().enumerate() {
            let number = index + 1;
            let source_text = match &mapping.source {
                FieldSource::Property(path) => path.clone(),
                FieldSource::Template(template) => format!("\"{template}\""),
            };
            let location = format!(
                "{} field mapping #{number} ({source_text} → {})",
                kind_word(kind),
                mapping.target
            );
            let target = canonical_target(kind, &mapping.target).to_owned();
            if let Some(first) = targets.get(&target) {
                self.error(
                    &location,
                    format!(
                        "the {} field '{target}' is already mapped by {} field mapping #{first}; each field can be mapped once",
                        kind_word(kind),
                        kind_word(kind)
                    ),
                );
                continue;
            }
            targets.insert(target.clone(), number);
            let Some(field_kind) = self.target(kind, &target, &location) else {
                continue;
            };
            let source_ok = match &mapping.source {
                FieldSource::Property(path) => {
                    self.property_source(path, &target, &field_kind, kind, &location)
                }
                FieldSource::Template(template) => {
                    let mut ok = true;
                    for placeholder in template_properties(template) {
                        if self.catalog.source_property(placeholder).is_none() {
                            self.error(&location, self.unknown_property(placeholder));
                            ok = false;
                        }
                    }
                    if ok && !field_kind.accepts(SourceType::String) {
                        self.error(
                            &location,
                            format!(
                                "a template gives text, which cannot fill the {} field '{target}' ({})",
                                kind_word(kind),
                                field_kind.describe()
                            ),
                        );
                        ok = false;
                    }
                    ok
                }
            };
            // An option set fills a select through the options' external ids.
            let field_kind = match &mapping.source {
                FieldSource::Property(path) if source_ok => self
                    .catalog
                    .source_property(path)
                    .and_then(|(_, source)| option_set_kind(kind, &target, source, self.catalog))
                    .unwrap_or(field_kind),
                _ => field_kind,
            };
            if source_ok {
                compiled.push(CompiledField {
                    target,
                    kind: field_kind,
                    source: mapping.source.clone(),
                    number,
                });
            }
        }
        compiled
    }

    fn target(&mut self, kind: RecordKind, target: &str, location: &str) -> Option<FieldKind> {
        match target_kind(kind, target, self.catalog) {
            Ok(field_kind) => Some(field_kind),
            Err(TargetProblem::EngineOwned) => {
                self.error(
                    location,
                    format!("'{target}' is set by deskbridge itself and cannot be mapped"),
                );
                None
            }
            Err(TargetProblem::Unknown) => {
                self.error(
                    location,
                    format!("unknown desk {} field '{target}'", kind_word(kind)),
                );
                None
            }
            Err(TargetProblem::UnknownCustomField) => {
                let name = target.trim_start_matches("custom:");
                self.error(
                    location,
                    format!("unknown {} custom field '{name}'", kind_word(kind)),
                );
                None
            }
        }
    }

    fn property_source(
        &mut self,
        path: &str,
        target: &str,
        field_kind: &FieldKind,
        kind: RecordKind,
        location: &str,
    ) -> bool {
        let is_manager = path.eq_ignore_ascii_case("manager");
        if *field_kind == FieldKind::Manager && !is_manager {
            self.error(
                location,
                format!("line_manager_id can only be mapped from 'manager', not from '{path}'"),
            );
            return false;
        }
        if is_manager && *field_kind != FieldKind::Manager {
            self.error(
                location,
                format!("'manager' can only be mapped to line_manager_id, not to '{target}'"),
            );
            return false;
        }
        let Some((_, source_type)) = self.catalog.source_property(path) else {
            self.error(location, self.unknown_property(path));
            return false;
        };
        if !field_kind.accepts(source_type) {
            self.error(
                location,
                format!(
                    "type mismatch: source property '{path}' is {}, the {} field '{target}' is {}",
                    source_type.describe(),
                    kind_word(kind),
                    field_kind.describe()
                ),
            );
            return false;
        }
        true
    }

    fn unknown_property(&self, path: &str) -> String {
        let suggestion = closest(path, self.catalog.source_properties.keys().map(String::as_str));
        match suggestion {
            Some(close) => format!("unknown Graph user property '{path}' (did you mean '{close}'?)"),
            None => format!("unknown Graph user property '{path}'"),
        }
    }

    fn group(&mut self, location: &str, name: &str) {
        if self.catalog.groups.contains(name) {
            return;
        }
        let message = match self
            .catalog
            .groups
            .iter()
            .find(|group| group.eq_ignore_ascii_case(name))
        {
            Some(close) => {
                format!("unknown Azure group '{name}' (group names must match exactly: '{close}'?)")
            }
            None => format!("unknown Azure group '{name}'"),
        };
        self.error(location, message);
    }

    fn exists(&mut self, location: &str, what: &str, records: &[NamedRecord], id: RecordId) {
        if !records.iter().any(|record| record.id == id) {
            self.error(location, format!("{what} {id} does not exist"));
        }
    }

    fn site_exists(&mut self, location: &str, id: RecordId) {
        if !self.catalog.sites.iter().any(|site| site.id == id) {
            self.error(location, format!("site {id} does not exist"));
        }
    }

    fn site_mapping(
        &mut self,
        mapping: &SiteMapping,
        user_fields: &[CompiledField],
    ) -> Option<CompiledMapping> {
        let location = mapping_location(mapping);
        let before = self.errors.len();
        let catalog = self.catalog;
        match &mapping.target {
            SiteTarget::ExistingSite { site_id } => self.site_exists(&location, *site_id),
            SiteTarget::CustomerByField { customer_id, field } => {
                self.exists(&location, "customer", &catalog.customers, *customer_id);
                match self.catalog.source_property(field) {
                    None => self.error(&location, self.unknown_property(field)),
                    Some((_, SourceType::String)) => {}
                    Some((_, other)) => self.error(
                        &location,
                        format!(
                            "sites are named from text, but source property '{field}' is {}",
                            other.describe()
                        ),
                    ),
                }
            }
            SiteTarget::MatchSiteField {
                customer_id,
                site_field,
                user_field,
                unmatched,
            } => {
                if let Some(customer_id) = customer_id {
                    self.exists(&location, "customer", &catalog.customers, *customer_id);
                }
                if let Some(custom) = site_field.strip_prefix("custom:") {
                    if self
                        .catalog
                        .custom_field(custom, CustomFieldEntity::Site)
                        .is_none()
                    {
                        self.error(&location, format!("unknown site custom field '{custom}'"));
                    }
                } else if site_field != "name" {
                    self.error(
                        &location,
                        format!("sites can be matched on 'name' or a custom field, not '{site_field}'"),
                    );
                }
                let filled = user_fields.iter().any(|field| field.target == *user_field)
                    || mapping.values.contains_key(user_field);
                if target_kind(RecordKind::User, user_field, self.catalog).is_err() {
                    self.error(&location, format!("unknown desk user field '{user_field}'"));
                } else if !filled {
                    self.error(
                        &location,
                        format!("the user field '{user_field}' is not filled by any user field mapping, so no site can match it"),
                    );
                }
                if let UnmatchedSite::DefaultSite { site_id } = unmatched {
                    self.site_exists(&location, *site_id);
                }
            }
            SiteTarget::ImportedCustomer { property, unmatched } => {
                match self.catalog.source_property(property) {
                    None => self.error(&location, self.unknown_property(property)),
                    Some((_, SourceType::String)) => {}
                    Some((_, other)) => self.error(
                        &location,
                        format!(
                            "a parent row is named by its id, a text, but property '{property}' is {}",
                            other.describe()
                        ),
                    ),
                }
                if let UnmatchedSite::DefaultSite { site_id } = unmatched {
                    self.site_exists(&location, *site_id);
                }
            }
            SiteTarget::Agent { .. } => {
                if mapping.user_role_id.is_some() {
                    self.error(
                        &location,
                        "the agent site gives agent roles through group mappings, not a user role",
                    );
                }
                if !mapping.values.is_empty() {
                    self.error(
                        &location,
                        "values to apply are for user site mappings, not the agent site",
                    );
                }
            }
        }
        if let Some(GroupFilter { name, .. }) = &mapping.group {
            self.group(&location, name);
        }
        if let Some(role) = mapping.user_role_id {
            self.exists(&location, "user role", &catalog.user_roles, role);
        }
        let filter = match mapping
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            None => None,
            Some(text) => match deskbridge_odata::parse(text) {
                Ok(expr) => {
                    for property in expr.root_properties() {
                        if self.catalog.source_property(&property).is_none() {
                            let message = self.unknown_property(&property);
                            self.error(&location, format!("the filter uses an {message}"));
                        }
                    }
                    Some(expr)
                }
                Err(error) => {
                    self.error(&location, format!("the filter does not parse: {error}"));
                    None
                }
            },
        };
        let mut values = BTreeMap::new();
        for (field, value) in &mapping.values {
            let value_location = format!("{location}, value for '{field}'");
            match self.target(RecordKind::User, field, &value_location) {
                Some(FieldKind::Manager | FieldKind::TeamByName) => {
                    self.error(
                        &value_location,
                        format!("'{field}' cannot be given a fixed value"),
                    );
                }
                Some(kind) => match convert(&kind, value) {
                    Ok(converted) => {
                        values.insert(field.clone(), converted);
                    }
                    Err(problem) => self.error(&value_location, problem),
                },
                None => {}
            }
        }
        (self.errors.len() == before).then(|| CompiledMapping {
            mapping: mapping.clone(),
            filter,
            values,
        })
    }

    fn advanced(&mut self, config: &MappingConfig) {
        let advanced = &config.advanced;
        let catalog = self.catalog;
        for (index, entry) in advanced.agent_roles.iter().enumerate() {
            let location = format!("agent role mapping #{} (group '{}')", index + 1, entry.group);
            self.group(&location, &entry.group);
            self.exists(&location, "agent role", &catalog.agent_roles, entry.id);
        }
        for (index, entry) in advanced.user_roles.iter().enumerate() {
            let location = format!("user role mapping #{} (group '{}')", index + 1, entry.group);
            self.group(&location, &entry.group);
            self.exists(&location, "user role", &catalog.user_roles, entry.id);
        }
        for (index, entry) in advanced.teams.iter().enumerate() {
            let location = format!("team mapping #{} (group '{}')", index + 1, entry.group);
            self.group(&location, &entry.group);
            self.exists(&location, "team", &catalog.teams, entry.id);
        }
        for (index, entry) in advanced.cabs.iter().enumerate() {
            let location = format!("CAB mapping #{} (group '{}')", index + 1, entry.group);
            self.group(&location, &entry.group);
            self.exists(&location, "CAB", &catalog.cabs, entry.cab_id);
            if let Some(role) = entry.cab_role_id {
                self.exists(&location, "CAB role", &catalog.cab_roles, role);
            }
        }
        if let Some(role) = advanced.role_for_users_without_manager {
            self.exists(
                "role for users with no manager",
                "user role",
                &catalog.user_roles,
                role,
            );
        }
        let licences = &config.licence_management;
        for role in licences
            .named_licence_roles
            .iter()
            .chain(&licences.inactive_roles)
        {
            self.exists("licence management", "agent role", &catalog.agent_roles, *role);
        }
        if let Some(service) = &config.service_accounts {
            if let Some(group) = &service.group {
                self.group("service accounts", group);
            }
            for sku in &service.required_skus {
                if !is_guid(sku) {
                    self.error("service accounts", format!("'{sku}' is not a SKU id (a GUID)"));
                }
            }
            if service.group.is_none() && service.required_skus.is_empty() {
                self.error(
                    "service accounts",
                    "name a group or at least one SKU, or turn service accounts off",
                );
            }
        }
    }

    fn imports(&mut self, config: &MappingConfig, user_fields: &[CompiledField]) {
        let mut seen = BTreeSet::new();
        for field in &config.imports.match_order {
            let name = field.desk_field();
            if !seen.insert(*field) {
                self.error(
                    "user matching",
                    format!("'{name}' appears twice in the matching order"),
                );
            } else if !user_fields.iter().any(|mapped| mapped.target == name) {
                self.error(
                    "user matching",
                    format!("matching on '{name}' needs a user field mapping to '{name}'"),
                );
            }
        }
        let breaker = &config.circuit_breaker;
        let shares = [
            ("deactivated", breaker.max_deactivate_percent),
            ("moved or changed", breaker.max_change_percent),
        ];
        for (what, share) in shares {
            if !(share > 0.0 && share <= 100.0) {
                self.error(
                    "circuit breaker",
                    format!(
                        "the share of active records a run may have {what} must be more than 0 and at most 100 percent, not {share}"
                    ),
                );
            }
        }
        if config.followers.member_cap == 0 {
            self.error(
                "distribution group followers",
                "the member cap must be at least 1",
            );
        }
        for lock in &config.record_locks {
            let location = format!("record lock on {} {}", kind_word(lock.entity), lock.external_id);
            if lock.external_id.trim().is_empty() {
                self.error(&location, "name the record by its Azure object id");
            }
            if !lock.keep_active && lock.fields.is_empty() {
                self.error(
                    &location,
                    "the lock neither keeps the record active nor names a field",
                );
            }
            for field in &lock.fields {
                if matches!(
                    target_kind(lock.entity, field, self.catalog),
                    Err(TargetProblem::Unknown | TargetProblem::UnknownCustomField)
                ) {
                    self.error(
                        &location,
                        format!("unknown desk {} field '{field}'", kind_word(lock.entity)),
                    );
                }
            }
        }
        for lock in &config.field_locks {
            let location = format!("field lock on {} '{}'", kind_word(lock.entity), lock.field);
            match target_kind(lock.entity, &lock.field, self.catalog) {
                Ok(_) | Err(TargetProblem::EngineOwned) => {}
                Err(_) => self.error(
                    location,
                    format!("unknown desk {} field '{}'", kind_word(lock.entity), lock.field),
                ),
            }
        }
    }
}

pub(crate) fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The closest name within two edits, for "did you mean" hints.
pub fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = wanted.to_lowercase();
    candidates
        .map(|candidate| (edit_distance(&wanted, &candidate.to_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, candidate)| (*distance, *candidate))
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}
