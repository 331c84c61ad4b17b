//! Metadata as the connector needs it: entities (with change tracking), attributes (types and
//! lookup targets) and option sets with their labels.
use serde_json::{Map, Value};

use crate::error::DataverseError;

#[derive(Debug, Clone, PartialEq)]
pub struct EntityMetadata {
    pub logical_name: String,
    pub entity_set_name: String,
    pub primary_id_attribute: String,
    pub primary_name_attribute: Option<String>,
    pub change_tracking_enabled: bool,
    pub is_custom: bool,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeMetadata {
    pub logical_name: String,
    /// `String`, `Picklist`, `Lookup`, `Customer`, `Virtual` (multi-select), …
    pub attribute_type: String,
    /// `AttributeTypeName.Value`: `MultiSelectPicklistType` tells multi-select choices apart.
    pub type_name: Option<String>,
    pub display_name: Option<String>,
    /// Lookup targets (table logical names).
    pub targets: Vec<String>,
}

impl AttributeMetadata {
    pub fn is_multi_select(&self) -> bool {
        self.type_name.as_deref() == Some("MultiSelectPicklistType")
    }

    pub fn is_lookup(&self) -> bool {
        matches!(self.attribute_type.as_str(), "Lookup" | "Customer" | "Owner")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionMetadata {
    pub value: i32,
    pub label: String,
}

/// The options of one choice column (single or multi-select).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSetMetadata {
    pub attribute: String,
    pub multi_select: bool,
    /// The option set's name (global ones are shared between tables).
    pub name: Option<String>,
    pub options: Vec<OptionMetadata>,
}

impl OptionSetMetadata {
    pub fn label(&self, value: i32) -> Option<&str> {
        self.options
            .iter()
            .find(|o| o.value == value)
            .map(|o| o.label.as_str())
    }
}

fn bad(url: &str, message: String) -> DataverseError {
    DataverseError::Malformed {
        url: deskbridge_core::redact::url(url),
        message,
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn required(url: &str, map: &Map<String, Value>, key: &str) -> Result<String, DataverseError> {
    text(map, key).ok_or_else(|| bad(url, format!("metadata without a string {key}")))
}

/// `{"UserLocalizedLabel": {"Label": "…"}}` (or the first localized label).
fn label(value: Option<&Value>) -> Option<String> {
    let v = value?;
    v.get("UserLocalizedLabel")
        .and_then(|l| l.get("Label"))
        .or_else(|| {
            v.get("LocalizedLabels")
                .and_then(|l| l.get(0))
                .and_then(|l| l.get("Label"))
        })
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub(crate) fn entity(url: &str, map: &Map<String, Value>) -> Result<EntityMetadata, DataverseError> {
    Ok(EntityMetadata {
        logical_name: required(url, map, "LogicalName")?,
        entity_set_name: required(url, map, "EntitySetName")?,
        primary_id_attribute: required(url, map, "PrimaryIdAttribute")?,
        primary_name_attribute: text(map, "PrimaryNameAttribute"),
        change_tracking_enabled: match map.get("ChangeTrackingEnabled") {
            Some(Value::Bool(b)) => *b,
            None | Some(Value::Null) => false,
            Some(_) => return Err(bad(url, "ChangeTrackingEnabled is not a boolean".into())),
        },
        is_custom: map
            .get("IsCustomEntity")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        display_name: label(map.get("DisplayName")),
    })
}

pub(crate) fn attribute(url: &str, map: &Map<String, Value>) -> Result<AttributeMetadata, DataverseError> {
    Ok(AttributeMetadata {
        logical_name: required(url, map, "LogicalName")?,
        attribute_type: required(url, map, "AttributeType")?,
        type_name: map
            .get("AttributeTypeName")
            .and_then(|t| t.get("Value"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        display_name: label(map.get("DisplayName")),
        targets: map
            .get("Targets")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

pub(crate) fn option_set(
    url: &str,
    map: &Map<String, Value>,
    multi_select: bool,
) -> Result<OptionSetMetadata, DataverseError> {
    let attribute = required(url, map, "LogicalName")?;
    let set = ["OptionSet", "GlobalOptionSet"]
        .iter()
        .find_map(|k| map.get(*k).filter(|v| v.is_object()))
        .ok_or_else(|| bad(url, format!("{attribute}: no OptionSet")))?;
    let items = set
        .get("Options")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(url, format!("{attribute}: OptionSet without Options")))?;
    let mut options = Vec::with_capacity(items.len());
    for item in items {
        let value = item
            .get("Value")
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| bad(url, format!("{attribute}: an option without an integer Value")))?;
        options.push(OptionMetadata {
            value,
            label: label(item.get("Label")).unwrap_or_default(),
        });
    }
    Ok(OptionSetMetadata {
        attribute,
        multi_select,
        name: set.get("Name").and_then(Value::as_str).map(str::to_owned),
        options,
    })
}
