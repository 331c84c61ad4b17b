//! Desk fields: which ones a mapping may write, their types, and turning source values into them.

use serde_json::{Map, Value};

use crate::catalog::{Catalog, CustomField, CustomFieldEntity, CustomFieldType, SourceType};
use crate::config::{FieldSource, RecordKind};

/// The type a mapped desk field holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Text,
    Boolean,
    Number,
    /// RFC 3339 text, UTC.
    Date,
    SingleSelect(Vec<String>),
    MultiSelect(Vec<String>),
    /// `line_manager_id`, only from `manager`.
    Manager,
    /// `default_team_id`, from a team name.
    TeamByName,
    /// A single select filled from an option set: each option value through the desk options'
    /// external ids.
    OptionSet(OptionIds),
    /// A multi select filled from a multi-select option set (`"1,9"`), value by value.
    MultiOptionSet(OptionIds),
}

/// A select's options by external id, for filling it from an option set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OptionIds {
    /// The custom field's name, for messages.
    pub(crate) field: String,
    /// External id → option value.
    pub(crate) by_id: std::collections::BTreeMap<String, String>,
    pub(crate) options: Vec<String>,
}

impl OptionIds {
    fn of(field: &CustomField) -> Self {
        Self {
            field: field.name.clone(),
            by_id: field.option_ids.clone(),
            options: field.options.clone(),
        }
    }

    /// The option whose external id is `id`, or what to do about it.
    fn option(&self, id: &str) -> Result<Value, String> {
        self.by_id.get(id).map(|v| Value::String(v.clone())).ok_or_else(|| {
            let mapped = if self.by_id.is_empty() {
                "none of its options has one yet".to_owned()
            } else {
                format!(
                    "its options' external ids are {}",
                    self.by_id
                        .iter()
                        .map(|(id, v)| format!("{id} ({v})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "option value {id} has no desk option: give one of the options of custom field '{}' ({}) the \
                 external id {id} ({mapped})",
                self.field,
                self.options.join(", ")
            )
        })
    }
}

impl FieldKind {
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::Date => "date",
            Self::SingleSelect(_) => "single select",
            Self::MultiSelect(_) => "multi select",
            Self::Manager => "line manager",
            Self::TeamByName => "team (by name)",
            Self::OptionSet(_) => "single select (by the options' external ids)",
            Self::MultiOptionSet(_) => "multi select (by the options' external ids)",
        }
    }

    /// Whether a source property of type `source` can fill this field.
    pub(crate) fn accepts(&self, source: SourceType) -> bool {
        use SourceType as G;
        match self {
            Self::Text => matches!(
                source,
                G::String | G::Integer | G::Boolean | G::DateTime | G::StringCollection
            ),
            Self::Boolean => source == G::Boolean,
            Self::Number => source == G::Integer,
            Self::Date => source == G::DateTime,
            // An option set fills a select value by value (see `option_set_kind`); a multi-select
            // one only a multi select, as the guide says.
            Self::SingleSelect(_) => matches!(source, G::String | G::OptionSet),
            Self::TeamByName => source == G::String,
            Self::MultiSelect(_) => matches!(source, G::String | G::StringCollection | G::MultiOptionSet),
            Self::Manager => source == G::Manager,
            Self::OptionSet(_) => source == G::OptionSet,
            Self::MultiOptionSet(_) => source == G::MultiOptionSet,
        }
    }
}

/// The kind a custom select `target` takes when a source property of type `source` fills it: an
/// option set is mapped through the options' external ids, not their labels. `None`: the kind
/// [`target_kind`] gave stays.
pub(crate) fn option_set_kind(
    kind: RecordKind,
    target: &str,
    source: SourceType,
    catalog: &Catalog,
) -> Option<FieldKind> {
    let entity = match kind {
        RecordKind::User => CustomFieldEntity::User,
        RecordKind::Agent => CustomFieldEntity::Agent,
    };
    let field = catalog.custom_field(target.strip_prefix("custom:")?, entity)?;
    match (source, field.field_type) {
        (SourceType::OptionSet, CustomFieldType::SingleSelect) => {
            Some(FieldKind::OptionSet(OptionIds::of(field)))
        }
        (SourceType::MultiOptionSet, CustomFieldType::MultiSelect) => {
            Some(FieldKind::MultiOptionSet(OptionIds::of(field)))
        }
        _ => None,
    }
}

const USER_TEXT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "network_login",
    "phone",
    "mobile",
    "job_title",
    "department",
    "employee_id",
    "creation_type",
];
const AGENT_TEXT_FIELDS: &[&str] = &[
    "name",
    "email",
    "network_login",
    "phone",
    "job_title",
    "department",
    "creation_type",
];

/// Desk fields the engine sets itself; a field mapping may not target them.
const ENGINE_FIELDS: &[&str] = &[
    "azure_object_id",
    "azure_tenant_id",
    "site_id",
    "active",
    "is_service_account",
    "roles",
    "licences",
    "licence_type",
    "teams",
    "cabs",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetProblem {
    EngineOwned,
    Unknown,
    UnknownCustomField,
}

/// Normalises the `team` alias of agents' `default_team_id`.
pub(crate) fn canonical_target(kind: RecordKind, target: &str) -> &str {
    if kind == RecordKind::Agent && target == "team" {
        "default_team_id"
    } else {
        target
    }
}

/// The type of a desk field a mapping writes, or why it may not be written.
pub(crate) fn target_kind(
    kind: RecordKind,
    target: &str,
    catalog: &Catalog,
) -> Result<FieldKind, TargetProblem> {
    let target = canonical_target(kind, target);
    if let Some(custom) = target.strip_prefix("custom:") {
        let entity = match kind {
            RecordKind::User => CustomFieldEntity::User,
            RecordKind::Agent => CustomFieldEntity::Agent,
        };
        let field = catalog
            .custom_field(custom, entity)
            .ok_or(TargetProblem::UnknownCustomField)?;
        return Ok(custom_kind(field));
    }
    let text_fields = match kind {
        RecordKind::User => USER_TEXT_FIELDS,
        RecordKind::Agent => AGENT_TEXT_FIELDS,
    };
    if text_fields.contains(&target) {
        return Ok(FieldKind::Text);
    }
    match (kind, target) {
        (_, "line_manager_id") => Ok(FieldKind::Manager),
        (RecordKind::User, "last_sign_in") => Ok(FieldKind::Date),
        (RecordKind::Agent, "default_team_id") => Ok(FieldKind::TeamByName),
        _ if ENGINE_FIELDS.contains(&target) => Err(TargetProblem::EngineOwned),
        _ => Err(TargetProblem::Unknown),
    }
}

fn custom_kind(field: &CustomField) -> FieldKind {
    match field.field_type {
        CustomFieldType::Text => FieldKind::Text,
        CustomFieldType::Number => FieldKind::Number,
        CustomFieldType::Date => FieldKind::Date,
        CustomFieldType::Boolean => FieldKind::Boolean,
        CustomFieldType::SingleSelect => FieldKind::SingleSelect(field.options.clone()),
        CustomFieldType::MultiSelect => FieldKind::MultiSelect(field.options.clone()),
    }
}

/// Desk asset fields a device field mapping may write besides asset custom fields; the others
/// (`status`, `site_id`, `user_id`, `asset_type_id`, …) the asset planner sets itself.
pub(crate) const ASSET_TEXT_FIELDS: &[&str] = &["name", "serial_number"];

/// The type of a desk asset field an asset field mapping writes, or why it may not be written.
pub(crate) fn asset_target_kind(target: &str, catalog: &Catalog) -> Result<FieldKind, TargetProblem> {
    if let Some(custom) = target.strip_prefix("custom:") {
        return catalog
            .custom_field(custom, CustomFieldEntity::Asset)
            .map(custom_kind)
            .ok_or(TargetProblem::UnknownCustomField);
    }
    if ASSET_TEXT_FIELDS.contains(&target) {
        return Ok(FieldKind::Text);
    }
    match target {
        "status" | "site_id" | "user_id" | "asset_type_id" | "customer_id" | "tenant_id" => {
            Err(TargetProblem::EngineOwned)
        }
        _ => Err(TargetProblem::Unknown),
    }
}

/// Reads a property path from a source record: exact names first, then ignoring case.
pub(crate) fn read_path<'a>(properties: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('/');
    let mut current = lookup(properties, segments.next()?)?;
    for segment in segments {
        current = match current {
            Value::Object(map) => lookup(map, segment)?,
            _ => return None,
        };
    }
    Some(current)
}

fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The raw value a source gives for one user. `manager` is handled by the engine.
pub(crate) fn read_source(source: &FieldSource, properties: &Map<String, Value>) -> Value {
    match source {
        FieldSource::Property(path) => read_path(properties, path).cloned().unwrap_or(Value::Null),
        FieldSource::Template(template) => {
            let mut out = String::new();
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open + 1..];
                match after.find('}') {
                    Some(close) => {
                        if let Some(value) = read_path(properties, &after[..close]) {
                            out.push_str(&text_of(value).unwrap_or_default());
                        }
                        rest = &after[close + 1..];
                    }
                    None => {
                        out.push_str(&rest[open..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
            if collapsed.is_empty() {
                Value::Null
            } else {
                Value::String(collapsed)
            }
        }
    }
}

/// Placeholders a template reads.
pub(crate) fn template_properties(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                found.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    found
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Array(items) => items.iter().find_map(text_of),
        Value::Null | Value::Object(_) => None,
    }
}

/// Converts a source value into the desk field's representation. Null and empty text are null.
/// An error says what the value was and what the field wanted.
pub(crate) fn convert(kind: &FieldKind, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let wrong = || format!("{} is not a valid {} value", short(value), kind.describe());
    match kind {
        Kind::Text | Kind::TeamByName => Ok(match text_of(value) {
            Some(text) if !text.trim().is_empty() => Value::String(text.trim().to_owned()),
            _ => Value::Null,
        }),
        // A boolean or a number arrives as one, never as text: the fields that fill these kinds
        // are typed so (`FieldKind::accepts`), so `"false"` is a source sending the wrong type,
        // and reading it as `false` would change the desk on a guess.
        Kind::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err(received(value, "a boolean (true or false)")),
        },
        Kind::Number => match value {
            Value::Number(_) => Ok(value.clone()),
            _ => Err(received(value, "a number")),
        },
        Kind::Date => match value {
            Value::String(text) => match text.parse::<jiff::Timestamp>() {
                Ok(timestamp) => Ok(Value::String(timestamp.to_string())),
                Err(_) => match text.parse::<jiff::civil::Date>() {
                    Ok(date) => Ok(Value::String(format!("{date}T00:00:00Z"))),
                    Err(_) => Err(wrong()),
                },
            },
            _ => Err(wrong()),
        },
        Kind::SingleSelect(options) => {
            let text = text_of(value).ok_or_else(wrong)?;
            match options
                .iter()
                .find(|option| option.eq_ignore_ascii_case(text.trim()))
            {
                Some(option) => Ok(Value::String(option.clone())),
                None if text.trim().is_empty() => Ok(Value::Null),
                None => Err(format!(
                    "{} is not one of the options ({})",
                    short(value),
                    options.join(", ")
                )),
            }
        }
        Kind::MultiSelect(options) => {
            let parts: Vec<String> = match value {
                Value::Array(items) => items.iter().filter_map(text_of).collect(),
                Value::String(text) => text.split([';', ',']).map(str::to_owned).collect(),
                _ => return Err(wrong()),
            };
            let mut chosen = Vec::new();
            for part in parts
                .iter()
                .map(|part| part.trim())
                .filter(|part| !part.is_empty())
            {
                match options.iter().find(|option| option.eq_ignore_ascii_case(part)) {
                    Some(option) => chosen.push(Value::String(option.clone())),
                    None => {
                        return Err(format!(
                            "'{part}' is not one of the options ({})",
                            options.join(", ")
                        ));
                    }
                }
            }
            chosen.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            chosen.dedup();
            Ok(Value::Array(chosen))
        }
        Kind::Manager => Err("the line manager is set from 'manager' only".into()),
        Kind::OptionSet(ids) => match value {
            Value::Number(n) if n.is_i64() => ids.option(&n.to_string()),
            _ => Err(format!(
                "{} is not an option value (a whole number)",
                short(value)
            )),
        },
        Kind::MultiOptionSet(ids) => {
            let Value::String(text) = value else {
                return Err(format!(
                    "{} is not a multi-select option set's values (text such as \"1,9\")",
                    short(value)
                ));
            };
            let mut chosen = Vec::new();
            let mut unmapped = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if part.parse::<i64>().is_err() {
                    return Err(format!(
                        "'{part}' of {} is not an option value (a whole number)",
                        short(value)
                    ));
                }
                match ids.option(part) {
                    Ok(option) => chosen.push(option),
                    Err(why) => unmapped.push(why),
                }
            }
            if let Some(first) = unmapped.first() {
                return Err(if unmapped.len() == 1 {
                    first.clone()
                } else {
                    format!("{} option values have no desk option; {first}", unmapped.len())
                });
            }
            chosen.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            chosen.dedup();
            Ok(Value::Array(chosen))
        }
    }
}

use FieldKind as Kind;

/// "received text "false", expected a boolean (true or false)": the JSON type that came and
/// the one the field takes, so a person can tell a wrong type from a wrong value.
fn received(value: &Value, expected: &str) -> String {
    format!(
        "received {} {}, expected {expected}",
        deskbridge_core::json_kind(value),
        short(value)
    )
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn option_sets_map_each_value_through_the_options_external_ids() {
        let ids = OptionIds {
            field: "hobbies".into(),
            by_id: [("1", "Reading"), ("9", "Swimming")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            options: vec!["Reading".into(), "Swimming".into(), "Travel".into()],
        };
        let single = FieldKind::OptionSet(ids.clone());
        assert_eq!(convert(&single, &json!(9)), Ok(json!("Swimming")));
        assert_eq!(convert(&single, &Value::Null), Ok(Value::Null));
        let unmapped = convert(&single, &json!(10)).unwrap_err();
        assert!(
            unmapped.starts_with("option value 10 has no desk option: give one of the options of custom field 'hobbies' (Reading, Swimming, Travel) the external id 10"),
            "{unmapped}"
        );
        assert!(unmapped.contains("1 (Reading), 9 (Swimming)"), "{unmapped}");
        // A label is not an option value: never matched by name.
        assert!(
            convert(&single, &json!("Swimming"))
                .unwrap_err()
                .contains("not an option value")
        );
        let multi = FieldKind::MultiOptionSet(ids);
        assert_eq!(
            convert(&multi, &json!("9,1, 9")),
            Ok(json!(["Reading", "Swimming"]))
        );
        let two = convert(&multi, &json!("1,10,11")).unwrap_err();
        assert!(
            two.starts_with("2 option values have no desk option; option value 10"),
            "{two}"
        );
        assert!(convert(&multi, &json!([1, 9])).is_err());
        assert!(
            convert(&multi, &json!("1,x"))
                .unwrap_err()
                .contains("'x' of \"1,x\" is not an option value")
        );
    }

    #[test]
    fn templates_join_properties_and_collapse_blanks() {
        let user = json!({"givenName": "Ann", "surname": "Lee", "nested": {"x": 3}});
        let properties = user.as_object().unwrap();
        let read = |t: &str| read_source(&FieldSource::Template(t.into()), properties);
        assert_eq!(read("{givenName} {surname}"), json!("Ann Lee"));
        assert_eq!(read("{givenName} {middle} {surname}"), json!("Ann Lee"));
        assert_eq!(read("{nested/x}-x"), json!("3-x"));
        assert_eq!(read("{missing}"), Value::Null);
        assert_eq!(read("open {brace"), json!("open {brace"));
        assert_eq!(template_properties("{a} and {b/c}"), vec!["a", "b/c"]);
    }

    #[test]
    fn conversions_follow_the_field_type() {
        assert_eq!(
            convert(&Kind::Text, &json!(["+44 1", "+44 2"])).unwrap(),
            json!("+44 1")
        );
        assert_eq!(convert(&Kind::Text, &json!("  ")).unwrap(), Value::Null);
        assert_eq!(convert(&Kind::Boolean, &json!(false)).unwrap(), json!(false));
        assert_eq!(
            convert(&Kind::Boolean, &json!("false")).unwrap_err(),
            "received text \"false\", expected a boolean (true or false)"
        );
        assert_eq!(convert(&Kind::Number, &json!(42)).unwrap(), json!(42));
        assert_eq!(
            convert(&Kind::Number, &json!("42")).unwrap_err(),
            "received text \"42\", expected a number"
        );
        assert_eq!(
            convert(&Kind::Date, &json!("2024-01-02")).unwrap(),
            json!("2024-01-02T00:00:00Z")
        );
        assert_eq!(
            convert(&Kind::Date, &json!("soon")).unwrap_err(),
            "\"soon\" is not a valid date value"
        );
        let select = Kind::SingleSelect(vec!["Gold".into(), "Silver".into()]);
        assert_eq!(convert(&select, &json!("gold")).unwrap(), json!("Gold"));
        assert_eq!(
            convert(&select, &json!("Bronze")).unwrap_err(),
            "\"Bronze\" is not one of the options (Gold, Silver)"
        );
        let multi = Kind::MultiSelect(vec!["A".into(), "B".into()]);
        assert_eq!(convert(&multi, &json!("b; a;b")).unwrap(), json!(["A", "B"]));
    }
}
