//! The "Assets" mapping tab: how a connection's managed devices become desk assets, as forms
//! (import on or off, asset types by one name, a device property or rules, user matching,
//! matching field, default site, statuses, Defender devices, and the field mappings). Each form
//! changes a copy of the whole configuration, which `api::save_mappings` validates in full
//! before anything is saved.

use std::collections::HashMap;

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    AssetMappings, AssetTypeRule, AssetTypes, AssetUserLink, DeviceUserField, FieldMapping, MappingConfig,
    UnmatchedDevice,
};

use super::html::{Field, Opt, Section, cell, checkbox, destructive, form, hidden, select, text_field};
use super::mappings::{site_options, source_text};
use super::{UiError, confirmed, field};
use crate::AppState;
use crate::access::Scope;
use crate::api;
use crate::error::ApiError;

const USER_FIELDS: &[(&str, &str)] = &[
    ("userPrincipalName", "User principal name (recommended)"),
    ("emailAddress", "Email address"),
    ("userId", "User object id"),
];

fn user_field_name(f: DeviceUserField) -> &'static str {
    match f {
        DeviceUserField::UserId => "userId",
        DeviceUserField::UserPrincipalName => "userPrincipalName",
        DeviceUserField::EmailAddress => "emailAddress",
    }
}

fn yes_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

fn types_text(types: &AssetTypes) -> String {
    match types {
        AssetTypes::Single { asset_type } => format!("every device is a '{asset_type}'"),
        AssetTypes::Field { property, fallback } => format!(
            "named by the device's {property}; when empty: {}",
            fallback
                .as_ref()
                .map_or("not imported".to_owned(), |f| format!("'{f}'"))
        ),
        AssetTypes::Rules { rules, unmatched } => format!(
            "{} rule(s), the first that matches decides; a device no rule matches: {}",
            rules.len(),
            unmatched_text(unmatched)
        ),
    }
}

fn unmatched_text(unmatched: &UnmatchedDevice) -> String {
    match unmatched {
        UnmatchedDevice::Fallback { asset_type } => format!("'{asset_type}'"),
        UnmatchedDevice::Exclude => "not imported".into(),
    }
}

fn user_link_text(link: AssetUserLink) -> String {
    match link {
        AssetUserLink::Asset { field } => format!(
            "asset method: the device's {} matched to a desk user of the customer",
            user_field_name(field)
        ),
        AssetUserLink::User => "user method: the devices the source lists for each imported user".into(),
        AssetUserLink::None => "devices are linked to no user".into(),
    }
}

/// The desk fields an asset field mapping (or the matching field) may name: the asset's name,
/// its serial number and its custom fields.
async fn desk_fields(state: &AppState) -> Result<Vec<(String, String)>, UiError> {
    let mut tx = state.store.read().await?;
    let custom = tx.custom_field_definitions().await?;
    tx.commit().await?;
    let mut out = vec![
        ("name".to_owned(), "Name".to_owned()),
        ("serial_number".to_owned(), "Serial number".to_owned()),
    ];
    out.extend(
        custom
            .into_iter()
            .filter(|d| d.entity == "asset")
            .map(|d| (format!("custom:{}", d.name), format!("{} (custom field)", d.name))),
    );
    Ok(out)
}

fn options(pairs: &[(String, String)]) -> Vec<Opt> {
    pairs
        .iter()
        .map(|(value, label)| Opt {
            value: value.clone(),
            label: label.clone(),
        })
        .collect()
}

/// A select of `choices` showing `value`. A saved value that is no longer offered (a deleted
/// custom field, another customer's site written as code) stays selected, marked, so saving
/// the form does not silently change it; validation then says what is wrong with it.
fn select_of(name: &'static str, label: &str, value: &str, mut choices: Vec<Opt>) -> Field {
    if !value.is_empty() && !choices.iter().any(|o| o.value == value) {
        choices.push(Opt {
            value: value.to_owned(),
            label: format!("{value} (not available here)"),
        });
    }
    let mut f = select(name, label, value, &[]);
    f.options = choices;
    f
}

/// The sections of the Assets tab (the "as code" editor is added by the caller).
pub(super) async fn sections(
    state: &AppState,
    scope: &Scope,
    mapping: &MappingConfig,
    action: &str,
    modify: bool,
) -> Result<Vec<Section>, UiError> {
    let opened = api::source_of(state, &scope.connection)?.open(&scope.connection)?;
    let properties: Vec<String> = opened.device_properties().into_keys().collect();
    if properties.is_empty() {
        return Ok(vec![Section::titled("Assets").text(format!(
            "A {} connection reads no managed devices, so it imports no assets.",
            scope.connection.kind
        ))]);
    }
    let enabled = mapping.assets.is_some();
    let current = mapping.assets.clone().unwrap_or_default();
    let sites = site_options(state, scope).await?;
    let site_name = |id: Option<RecordId>| match id {
        None => "each customer's main site".to_owned(),
        Some(id) => sites.iter().find(|o| o.value == id.0.to_string()).map_or_else(
            || format!("site #{id} (not of this connection's customers)"),
            |o| o.label.clone(),
        ),
    };
    let mut out = Vec::new();
    let mut overview = Section::titled("Asset import");
    overview.id = "asset-settings".into();
    overview = if enabled {
        overview.table(
            &["Setting", "Value"],
            vec![
                vec![cell("Import managed devices as assets"), cell("yes")],
                vec![cell("Asset type"), cell(types_text(&current.types))],
                vec![
                    cell("Don't update the type of existing assets"),
                    cell(yes_no(current.keep_existing_types)),
                ],
                vec![cell("User matching"), cell(user_link_text(current.user_link))],
                vec![cell("Match existing assets by"), cell(&current.match_field)],
                vec![cell("Default site"), cell(site_name(current.default_site))],
                vec![cell("Status of new assets"), cell(&current.new_status)],
                vec![cell("Status of deleted devices"), cell(&current.deleted_status)],
                vec![
                    cell("Leave out Defender-managed (Sense) devices"),
                    cell(yes_no(current.exclude_sense)),
                ],
            ],
        )
    } else {
        overview.text("Asset import is off: this connection's managed devices are not imported.")
    };
    out.push(overview);
    let property_choices: Vec<(String, String)> = properties.iter().map(|p| (p.clone(), p.clone())).collect();
    let desk = desk_fields(state).await?;
    if modify {
        let (mode, single, property, fallback, unmatched, unmatched_type) = match &current.types {
            AssetTypes::Single { asset_type } => (
                "single",
                asset_type.clone(),
                "operatingSystem".to_owned(),
                String::new(),
                "fallback",
                String::new(),
            ),
            AssetTypes::Field { property, fallback } => (
                "field",
                String::new(),
                property.clone(),
                fallback.clone().unwrap_or_default(),
                "fallback",
                String::new(),
            ),
            AssetTypes::Rules { unmatched, .. } => match unmatched {
                UnmatchedDevice::Fallback { asset_type } => (
                    "rules",
                    String::new(),
                    "operatingSystem".to_owned(),
                    String::new(),
                    "fallback",
                    asset_type.clone(),
                ),
                UnmatchedDevice::Exclude => (
                    "rules",
                    String::new(),
                    "operatingSystem".to_owned(),
                    String::new(),
                    "exclude",
                    String::new(),
                ),
            },
        };
        let (user_method, user_field) = match current.user_link {
            AssetUserLink::Asset { field } => ("asset", user_field_name(field)),
            AssetUserLink::User => ("user", "userPrincipalName"),
            AssetUserLink::None => ("none", "userPrincipalName"),
        };
        let mut site_choices = vec![Opt {
            value: String::new(),
            label: "Each customer's main site".into(),
        }];
        site_choices.extend(sites.iter().map(|o| Opt {
            value: o.value.clone(),
            label: o.label.clone(),
        }));
        let fields = vec![
            hidden("op", "settings"),
            checkbox("enabled", "Import managed devices as assets", enabled),
            Field {
                help: "Single: one type for every device. From a device property: its value names the type. Rules: the type rules below decide.".into(),
                ..select("type_mode", "Asset type", mode, &[("single", "One type for every device"), ("field", "From a device property"), ("rules", "By rules")])
            },
            Field {
                help: "For \"one type\": the type's name; a type the desk lacks is created.".into(),
                ..text_field("asset_type", "Type name", single)
            },
            select_of("type_property", "Device property naming the type", &property, options(&property_choices)),
            Field {
                help: "For \"from a device property\": the type of a device whose property is empty (empty: such devices are not imported).".into(),
                ..text_field("type_fallback", "Type when the property is empty", fallback)
            },
            select("unmatched", "A device no rule matches", unmatched, &[("fallback", "Gets the type below"), ("exclude", "Is not imported")]),
            text_field("unmatched_type", "Type of devices no rule matches", unmatched_type),
            checkbox("keep_existing_types", "Don't update the type of existing assets", current.keep_existing_types),
            select("user_method", "User matching", user_method, &[("asset", "Asset method: a device field matched to a desk user (recommended)"), ("user", "User method: each imported user's devices"), ("none", "Don't link devices to users")]),
            select("user_field", "Device field matched to the user (asset method)", user_field, USER_FIELDS),
            Field {
                help: "A desk asset of the customer whose value of this field equals the device's is updated rather than duplicated.".into(),
                ..select_of("match_field", "Match existing assets by", &current.match_field, options(&desk))
            },
            Field {
                help: "Where a device linked to no user goes.".into(),
                ..select_of("default_site", "Default site", &current.default_site.map(|s| s.0.to_string()).unwrap_or_default(), site_choices)
            },
            Field { required: true, ..text_field("new_status", "Status of new assets", current.new_status.clone()) },
            Field {
                help: "Given when a complete read no longer finds the device; assets are never deleted.".into(),
                required: true,
                ..text_field("deleted_status", "Status of deleted devices", current.deleted_status.clone())
            },
            checkbox("exclude_sense", "Leave out devices managed by Microsoft Defender for Endpoint (Sense)", current.exclude_sense),
        ];
        out.push(Section::titled("Asset import settings").form(form(
            "asset-settings",
            action,
            "Save asset settings",
            fields,
        )));
    }
    if let AssetTypes::Rules { rules, .. } = &current.types {
        let rows = rules
            .iter()
            .enumerate()
            .map(|(i, r)| vec![cell((i + 1).to_string()), cell(&r.filter), cell(&r.asset_type)])
            .collect();
        let mut table = Section::titled("Asset type rules")
            .text("Evaluated in order; the first whose filter matches the device decides its type.")
            .table(&["#", "Filter", "Asset type"], rows);
        table.id = "asset-rules".into();
        if modify {
            for (i, r) in rules.iter().enumerate() {
                let remove = destructive(
                    form(
                        &format!("remove-rule-{}", i + 1),
                        action,
                        &format!("Remove rule {} ({})", i + 1, r.asset_type),
                        vec![hidden("op", "remove-rule"), hidden("index", i.to_string())],
                    ),
                    &format!(
                        "Yes, remove rule {}: devices it matched take the next rule's type",
                        i + 1
                    ),
                );
                table = table.form(remove);
            }
        }
        out.push(table);
    }
    if modify && enabled {
        out.push(Section::titled("Add a type rule").form(form(
            "add-rule",
            action,
            "Add rule",
            vec![
                hidden("op", "add-rule"),
                Field {
                    help: "An OData filter over the device's properties, e.g. operatingSystem eq 'Windows' and managedDeviceOwnerType eq 'company'. Adding a rule switches the type mode to rules.".into(),
                    required: true,
                    ..text_field("filter", "Filter", "")
                },
                Field { required: true, ..text_field("asset_type", "Asset type", "") },
            ],
        )));
    }
    if enabled {
        let rows = current
            .fields
            .iter()
            .map(|m| vec![cell(source_text(m)), cell(&m.target)])
            .collect();
        let mut table = Section::titled("Asset fields").table(&["Device property", "Desk asset field"], rows);
        table.id = "asset-fields".into();
        if modify {
            for (i, m) in current.fields.iter().enumerate() {
                let remove = destructive(
                    form(
                        &format!("remove-field-{}", i + 1),
                        action,
                        &format!("Remove the {} mapping", m.target),
                        vec![hidden("op", "remove-field"), hidden("index", i.to_string())],
                    ),
                    &format!("Yes, remove it: assets' {} is no longer written", m.target),
                );
                table = table.form(remove);
            }
        }
        out.push(table);
        if modify {
            out.push(Section::titled("Add an asset field mapping").form(form(
                "add-asset-field",
                action,
                "Add asset field mapping",
                vec![
                        hidden("op", "add-field"),
                        select_of("source", "Device property", "", options(&property_choices)),
                        Field {
                            help:
                                "A desk field takes one device property: this replaces its current mapping."
                                    .into(),
                            ..select_of("target", "Desk asset field", "", options(&desk))
                        },
                    ],
            )));
        }
    }
    Ok(out)
}

fn trimmed(f: &HashMap<String, String>, name: &str) -> String {
    field(f, name).trim().to_owned()
}

/// The asset settings of a configuration being edited; an edit of a part other than the
/// settings form needs asset import to be on.
fn assets_mut(mapping: &mut MappingConfig) -> Result<&mut AssetMappings, ApiError> {
    mapping
        .assets
        .as_mut()
        .ok_or_else(|| ApiError::invalid("asset import is off: turn it on in the asset settings first"))
}

fn index_of(f: &HashMap<String, String>, len: usize, what: &str) -> Result<usize, ApiError> {
    field(f, "index")
        .parse::<usize>()
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| ApiError::invalid(format!("that {what} no longer exists: reload the page")))
}

/// Applies one of the Assets tab's forms (`op`) to a copy of the configuration.
pub(super) fn apply(
    mapping: &mut MappingConfig,
    op: &str,
    f: &HashMap<String, String>,
) -> Result<(), ApiError> {
    match op {
        "settings" => {
            if field(f, "enabled") != "on" {
                mapping.assets = None;
                return Ok(());
            }
            let mut a = mapping.assets.clone().unwrap_or_default();
            a.types = match field(f, "type_mode") {
                "single" => AssetTypes::Single {
                    asset_type: trimmed(f, "asset_type"),
                },
                "field" => AssetTypes::Field {
                    property: trimmed(f, "type_property"),
                    fallback: Some(trimmed(f, "type_fallback")).filter(|t| !t.is_empty()),
                },
                "rules" => {
                    let rules = match &a.types {
                        AssetTypes::Rules { rules, .. } => rules.clone(),
                        _ => Vec::new(),
                    };
                    if rules.is_empty() {
                        return Err(ApiError::invalid(
                            "the type mode \"by rules\" needs a rule: add one under \"Add a type rule\" (it switches the mode to rules)",
                        ));
                    }
                    AssetTypes::Rules {
                        rules,
                        unmatched: if field(f, "unmatched") == "exclude" {
                            UnmatchedDevice::Exclude
                        } else {
                            UnmatchedDevice::Fallback {
                                asset_type: trimmed(f, "unmatched_type"),
                            }
                        },
                    }
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "choose an asset type mode, not {other:?}"
                    )));
                }
            };
            a.keep_existing_types = field(f, "keep_existing_types") == "on";
            a.user_link = match field(f, "user_method") {
                "asset" => AssetUserLink::Asset {
                    field: match field(f, "user_field") {
                        "userId" => DeviceUserField::UserId,
                        "emailAddress" => DeviceUserField::EmailAddress,
                        _ => DeviceUserField::UserPrincipalName,
                    },
                },
                "user" => AssetUserLink::User,
                "none" => AssetUserLink::None,
                other => {
                    return Err(ApiError::invalid(format!(
                        "choose a user matching method, not {other:?}"
                    )));
                }
            };
            a.match_field = trimmed(f, "match_field");
            let site = trimmed(f, "default_site");
            a.default_site = if site.is_empty() {
                None
            } else {
                Some(RecordId(site.parse().map_err(|_| {
                    ApiError::invalid("choose a default site from the list")
                })?))
            };
            a.new_status = trimmed(f, "new_status");
            a.deleted_status = trimmed(f, "deleted_status");
            a.exclude_sense = field(f, "exclude_sense") == "on";
            mapping.assets = Some(a);
        }
        "add-rule" => {
            let a = assets_mut(mapping)?;
            let rule = AssetTypeRule {
                filter: trimmed(f, "filter"),
                asset_type: trimmed(f, "asset_type"),
            };
            match &mut a.types {
                AssetTypes::Rules { rules, .. } => rules.push(rule),
                other => {
                    // Switching to rules: devices no rule matches keep the one type they had,
                    // rather than silently disappearing from the import.
                    let unmatched = match other {
                        AssetTypes::Single { asset_type } => UnmatchedDevice::Fallback {
                            asset_type: asset_type.clone(),
                        },
                        AssetTypes::Field {
                            fallback: Some(asset_type),
                            ..
                        } => UnmatchedDevice::Fallback {
                            asset_type: asset_type.clone(),
                        },
                        _ => UnmatchedDevice::Exclude,
                    };
                    *other = AssetTypes::Rules {
                        rules: vec![rule],
                        unmatched,
                    };
                }
            }
        }
        "remove-rule" => {
            confirmed(f, "the removal of the rule")?;
            let a = assets_mut(mapping)?;
            let AssetTypes::Rules { rules, .. } = &mut a.types else {
                return Err(ApiError::invalid(
                    "the asset types are not decided by rules: reload the page",
                ));
            };
            let i = index_of(f, rules.len(), "rule")?;
            rules.remove(i);
        }
        "add-field" => {
            let a = assets_mut(mapping)?;
            let target = trimmed(f, "target");
            a.fields.retain(|m| m.target != target);
            a.fields
                .push(FieldMapping::property(&trimmed(f, "source"), &target));
        }
        "remove-field" => {
            confirmed(f, "the removal of the field mapping")?;
            let a = assets_mut(mapping)?;
            let i = index_of(f, a.fields.len(), "field mapping")?;
            a.fields.remove(i);
        }
        _ => return Err(ApiError::invalid("unknown asset mapping operation")),
    }
    Ok(())
}
