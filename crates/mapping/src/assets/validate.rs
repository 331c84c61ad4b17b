//! Checking the asset part of a configuration against the catalog, and compiling it for the
//! asset planner: type rules parsed, field mappings typed. Locations are JSON paths
//! (`assets.types.rules[2].filter`, indices from 0) so the settings page can point at the input.

use std::collections::BTreeMap;

use deskbridge_odata::Expr;

use super::config::{AssetMappings, AssetTypes, AssetUserLink, UnmatchedDevice};
use crate::catalog::{Catalog, SourceType};
use crate::config::FieldSource;
use crate::fields::{FieldKind, TargetProblem, asset_target_kind, template_properties};
use crate::validate::{CompiledField, ConfigError, closest};

/// The asset configuration, ready for planning.
#[derive(Debug, Clone)]
pub(crate) struct CompiledAssets {
    pub(crate) fields: Vec<CompiledField>,
    /// The type rules in order (only for [`AssetTypes::Rules`]).
    pub(crate) rules: Vec<CompiledRule>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// 1-based, as the plan names the rule.
    pub(crate) number: usize,
    pub(crate) filter: Expr,
    pub(crate) asset_type: String,
}

impl CompiledRule {
    /// How the plan names the rule, e.g. `asset type rule 2 'operatingSystem eq 'iOS''`.
    pub(crate) fn rule(&self) -> String {
        format!("asset type rule {} '{}'", self.number, self.filter)
    }
}

/// Checks `assets`, adding every problem found to `errors`; the compiled form when there was
/// none.
pub(crate) fn check_assets(
    assets: &AssetMappings,
    catalog: &Catalog,
    errors: &mut Vec<ConfigError>,
) -> Option<CompiledAssets> {
    let before = errors.len();
    let mut checker = AssetChecker { catalog, errors };
    let rules = checker.types(&assets.types);
    let fields = checker.fields(assets);
    checker.user_link(assets.user_link);
    checker.imports(assets);
    checker.locks(assets);
    (errors.len() == before).then_some(CompiledAssets { fields, rules })
}

struct AssetChecker<'a, 'e> {
    catalog: &'a Catalog,
    errors: &'e mut Vec<ConfigError>,
}

impl AssetChecker<'_, '_> {
    fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location: location.into(),
            message: message.into(),
        });
    }

    /// Whether the catalog names device properties at all: a connection that reads no devices
    /// yet cannot say which exist, so names are then taken on trust.
    fn knows_devices(&self) -> bool {
        !self.catalog.device_properties.is_empty()
    }

    fn device_property(&mut self, location: &str, path: &str) -> Option<SourceType> {
        if !self.knows_devices() {
            return None;
        }
        if let Some((_, source_type)) = self.catalog.device_property(path) {
            return Some(source_type);
        }
        let known = self.catalog.device_properties.keys().map(String::as_str);
        let hint = match closest(path, known) {
            Some(close) => format!(" (did you mean '{close}'?)"),
            None => String::new(),
        };
        self.error(
            location,
            format!("unknown device property '{path}'{hint}; use one the device connector reads"),
        );
        None
    }

    fn type_name(&mut self, location: &str, name: &str) {
        if name.trim().is_empty() {
            self.error(
                location,
                "name the asset type (it is created if the desk lacks it)",
            );
        }
    }

    fn types(&mut self, types: &AssetTypes) -> Vec<CompiledRule> {
        let mut compiled = Vec::new();
        match types {
            AssetTypes::Single { asset_type } => self.type_name("assets.types.asset_type", asset_type),
            AssetTypes::Field { property, fallback } => {
                if property.trim().is_empty() {
                    self.error(
                        "assets.types.property",
                        "name the device property that gives the type",
                    );
                } else {
                    self.device_property("assets.types.property", property);
                }
                if let Some(fallback) = fallback {
                    self.type_name("assets.types.fallback", fallback);
                }
            }
            AssetTypes::Rules { rules, unmatched } => {
                if rules.is_empty() {
                    self.error(
                        "assets.types.rules",
                        "add at least one rule, or give every device the same type",
                    );
                }
                for (index, rule) in rules.iter().enumerate() {
                    let location = format!("assets.types.rules[{index}]");
                    self.type_name(&format!("{location}.asset_type"), &rule.asset_type);
                    let filter_location = format!("{location}.filter");
                    let text = rule.filter.trim();
                    if text.is_empty() {
                        self.error(
                            &filter_location,
                            "write a filter (e.g. operatingSystem eq 'Windows'); for devices no rule matches use the fallback",
                        );
                        continue;
                    }
                    match deskbridge_odata::parse(text) {
                        Ok(filter) => {
                            for property in filter.root_properties() {
                                self.device_property(&filter_location, &property);
                            }
                            compiled.push(CompiledRule {
                                number: index + 1,
                                filter,
                                asset_type: rule.asset_type.trim().to_owned(),
                            });
                        }
                        Err(error) => self.error(
                            &filter_location,
                            format!("the filter does not parse: {error}; fix it to OData $filter syntax"),
                        ),
                    }
                }
                if let UnmatchedDevice::Fallback { asset_type } = unmatched {
                    self.type_name("assets.types.unmatched.asset_type", asset_type);
                }
            }
        }
        compiled
    }

    fn fields(&mut self, assets: &AssetMappings) -> Vec<CompiledField> {
        let mut compiled = Vec::new();
        let mut targets: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, mapping) in assets.fields.iter().enumerate() {
            let location = format!("assets.fields[{index}]");
            let target = mapping.target.as_str();
            if let Some(first) = targets.insert(target, index) {
                targets.insert(target, first);
                self.error(
                    &location,
                    format!(
                        "the asset field '{target}' is already mapped by assets.fields[{first}]; map each field once"
                    ),
                );
                continue;
            }
            let kind = match asset_target_kind(target, self.catalog) {
                Ok(kind) => kind,
                Err(problem) => {
                    let message = match problem {
                        TargetProblem::EngineOwned => format!(
                            "'{target}' is set by deskbridge itself (type, site, user, status); map name, serial_number or an asset custom field"
                        ),
                        TargetProblem::UnknownCustomField => format!(
                            "unknown asset custom field '{}'; create it on the desk for assets first",
                            target.trim_start_matches("custom:")
                        ),
                        TargetProblem::Unknown => format!(
                            "unknown desk asset field '{target}'; map name, serial_number or custom:<asset custom field>"
                        ),
                    };
                    self.error(&location, message);
                    continue;
                }
            };
            let ok = match &mapping.source {
                FieldSource::Property(path) => match self.device_property(&location, path) {
                    Some(source_type) if !kind.accepts(source_type) => {
                        self.error(
                            &location,
                            format!(
                                "type mismatch: device property '{path}' is {}, the asset field '{target}' is {}; pick a field of a matching type",
                                source_type.describe(),
                                kind.describe()
                            ),
                        );
                        false
                    }
                    Some(_) => true,
                    None => !self.knows_devices(),
                },
                FieldSource::Template(template) => {
                    let before = self.errors.len();
                    for placeholder in template_properties(template) {
                        self.device_property(&location, placeholder);
                    }
                    if !kind.accepts(SourceType::String) {
                        self.error(
                            &location,
                            format!(
                                "a template gives text, which cannot fill the asset field '{target}' ({})",
                                kind.describe()
                            ),
                        );
                    }
                    self.errors.len() == before
                }
            };
            if ok {
                compiled.push(CompiledField {
                    target: target.to_owned(),
                    kind,
                    source: mapping.source.clone(),
                    number: index + 1,
                });
            }
        }
        compiled
    }

    /// Locked fields must be fields a sync writes on assets.
    fn locks(&mut self, assets: &AssetMappings) {
        const PLANNED: [&str; 6] = [
            "name",
            "serial_number",
            "site_id",
            "user_id",
            "asset_type_id",
            "status",
        ];
        let mut check = |location: String, field: &str| {
            let custom = field
                .strip_prefix("custom:")
                .is_some_and(|_| asset_target_kind(field, self.catalog).is_ok());
            if !(PLANNED.contains(&field) || custom) {
                self.error(
                    location,
                    format!(
                        "'{field}' is not an asset field a sync writes; lock one of {} or custom:<asset field>",
                        PLANNED.join(", ")
                    ),
                );
            }
        };
        for (i, field) in assets.field_locks.iter().enumerate() {
            check(format!("assets.field_locks[{i}]"), field);
        }
        for (i, lock) in assets.record_locks.iter().enumerate() {
            for (j, field) in lock.fields.iter().enumerate() {
                check(format!("assets.record_locks[{i}].fields[{j}]"), field);
            }
        }
        for (i, lock) in assets.record_locks.iter().enumerate() {
            if lock.device_id.trim().is_empty() {
                self.error(
                    format!("assets.record_locks[{i}].device_id"),
                    "name the device id the lock is for",
                );
            }
        }
    }

    fn user_link(&mut self, link: AssetUserLink) {
        // The device property each method reads must exist where the catalog names them.
        if let AssetUserLink::Asset { field } = link {
            self.device_property("assets.user_link.field", super::planner::user_property(field));
        }
    }

    fn imports(&mut self, assets: &AssetMappings) {
        let match_field = assets.match_field.as_str();
        match asset_target_kind(match_field, self.catalog) {
            Ok(FieldKind::Text | FieldKind::Number | FieldKind::SingleSelect(_)) => {
                let mapped = assets.fields.iter().any(|mapping| mapping.target == match_field);
                if !mapped {
                    self.error(
                        "assets.match_field",
                        format!(
                            "matching on '{match_field}' needs an asset field mapping to '{match_field}'; add one (e.g. serialNumber → {match_field})"
                        ),
                    );
                }
            }
            Ok(other) => self.error(
                "assets.match_field",
                format!(
                    "assets cannot be matched on a {} field; use name, serial_number or a text asset custom field",
                    other.describe()
                ),
            ),
            Err(_) => self.error(
                "assets.match_field",
                format!(
                    "assets can be matched on name, serial_number or an asset custom field (custom:<name>), not '{match_field}'"
                ),
            ),
        }
        if let Some(site) = assets.default_site
            && !self.catalog.sites.iter().any(|s| s.id == site)
        {
            self.error(
                "assets.default_site",
                format!("site {site} does not exist; pick an existing site of the connection's customers"),
            );
        }
        if assets.new_status.trim().is_empty() {
            self.error("assets.new_status", "name the status new assets get");
        }
        if assets.deleted_status.trim().is_empty() {
            self.error(
                "assets.deleted_status",
                "name the status an asset gets when its device is deleted",
            );
        }
    }
}
