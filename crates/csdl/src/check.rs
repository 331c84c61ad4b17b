//! The rules that decide whether a JSON value could have come from Graph for a declared type.

use serde_json::{Map, Value};

use crate::Violation;
use crate::model::{EnumType, Schema, StructuredType, TypeDef, TypeRef};
use crate::primitive::{check_primitive, kind};

struct Report {
    violations: Vec<Violation>,
}

impl Report {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.violations.push(Violation {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

fn member_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '.'));
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{key:?}]")
    }
}

/// Directory extension attributes (`extension_<app id without dashes>_<name>`) are the dynamic
/// properties Graph really puts on open directory objects.
fn is_directory_extension(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("extension_") else {
        return false;
    };
    let Some((app_id, name)) = rest.split_once('_') else {
        return false;
    };
    app_id.len() == 32 && app_id.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()
}

impl Schema {
    /// Checks one value (usually an entity) against a type such as `microsoft.graph.user`.
    /// `Collection(T)` is accepted too and expects an array.
    pub fn check(&self, type_name: &str, value: &Value) -> Vec<Violation> {
        let mut report = Report {
            violations: Vec::new(),
        };
        let type_ref = self.type_ref(type_name);
        if !type_ref.name.starts_with("Edm.") && !self.types.contains_key(&type_ref.name) {
            report.add("$", format!("type {type_name} is not in the schema"));
        } else {
            self.check_value(&type_ref, true, value, "$", &mut report);
        }
        report.violations
    }

    /// Checks a collection response: `{"@odata.context", "value": [...], "@odata.nextLink" | "@odata.deltaLink"}`
    /// where every item is of `type_name` (or derived from it).
    pub fn check_collection(&self, type_name: &str, body: &Value) -> Vec<Violation> {
        let mut report = Report {
            violations: Vec::new(),
        };
        let item_type = self.type_ref(type_name);
        if item_type.collection
            || (!item_type.name.starts_with("Edm.") && !self.types.contains_key(&item_type.name))
        {
            report.add("$", format!("type {type_name} is not an item type in the schema"));
            return report.violations;
        }
        let Some(envelope) = body.as_object() else {
            report.add(
                "$",
                format!("expected a collection envelope object, found {}", kind(body)),
            );
            return report.violations;
        };
        match envelope.get("value") {
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_value(&item_type, true, item, &format!("$.value[{index}]"), &mut report);
                }
            }
            Some(other) => report.add("$.value", format!("expected an array, found {}", kind(other))),
            None => report.add("$", "the envelope has no \"value\" array"),
        }
        for (key, value) in envelope {
            let path = member_path("$", key);
            match key.as_str() {
                "value" => {}
                "@odata.nextLink" | "@odata.deltaLink" | "@odata.context" => {
                    if !value.is_string() {
                        report.add(&path, format!("expected a string, found {}", kind(value)));
                    }
                }
                "@odata.count" => {
                    if value.as_u64().is_none() {
                        report.add(
                            &path,
                            format!("expected a non-negative integer, found {}", kind(value)),
                        );
                    }
                }
                other if other.starts_with("@odata.") || is_namespaced_annotation(other) => {}
                other => report.add(
                    &path,
                    format!("unexpected member {other:?} in a collection envelope"),
                ),
            }
        }
        if envelope.contains_key("@odata.nextLink") && envelope.contains_key("@odata.deltaLink") {
            report.add(
                "$",
                "a page carries either @odata.nextLink or @odata.deltaLink, never both",
            );
        }
        report.violations
    }

    fn check_value(
        &self,
        type_ref: &TypeRef,
        nullable: bool,
        value: &Value,
        path: &str,
        report: &mut Report,
    ) {
        if !type_ref.collection {
            self.check_single(&type_ref.name, nullable, value, path, report);
            return;
        }
        match value {
            // A collection property is normally `[]` when empty; only a non-nullable one must never be null.
            Value::Null if nullable => {}
            Value::Null => report.add(path, "null is not allowed here (Nullable=\"false\")"),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_single(
                        &type_ref.name,
                        nullable,
                        item,
                        &format!("{path}[{index}]"),
                        report,
                    );
                }
            }
            other => report.add(
                path,
                format!(
                    "expected an array for Collection({}), found {}",
                    type_ref.name,
                    kind(other)
                ),
            ),
        }
    }

    fn check_single(&self, type_name: &str, nullable: bool, value: &Value, path: &str, report: &mut Report) {
        if value.is_null() {
            if !nullable {
                report.add(path, "null is not allowed here (Nullable=\"false\")");
            }
            return;
        }
        if type_name.starts_with("Edm.") {
            if let Some(problem) = check_primitive(type_name, value) {
                report.add(path, problem);
            }
            return;
        }
        match self.types.get(type_name) {
            Some(TypeDef::Enum(enum_type)) => check_enum(type_name, enum_type, value, path, report),
            Some(TypeDef::Structured(structured)) => self.check_structured(structured, value, path, report),
            None => report.add(
                path,
                format!("the schema refers to type {type_name}, which it does not define"),
            ),
        }
    }

    fn check_structured(&self, declared: &StructuredType, value: &Value, path: &str, report: &mut Report) {
        let Some(object) = value.as_object() else {
            report.add(
                path,
                format!(
                    "expected an object of type {}, found {}",
                    declared.name,
                    kind(value)
                ),
            );
            return;
        };
        let actual = match self.runtime_type(declared, object, path, report) {
            Some(actual) => actual,
            None => declared,
        };
        for (key, member) in object {
            let member_at = member_path(path, key);
            if let Some(annotation) = key.strip_prefix('@') {
                self.check_instance_annotation(annotation, member, &member_at, report);
            } else if let Some((property, term)) = key.split_once('@') {
                self.check_property_annotation(actual, property, term, member, &member_at, report);
            } else if let Some(property) = self.find_property(actual, key) {
                self.check_value(&property.type_ref, property.nullable, member, &member_at, report);
            } else if !(self.is_open(actual) && is_directory_extension(key)) {
                report.add(
                    &member_at,
                    format!(
                        "property {key:?} is not defined on {} or its base types",
                        actual.name
                    ),
                );
            }
        }
    }

    /// Resolves `@odata.type`, which must name the declared type or one derived from it.
    fn runtime_type<'a>(
        &'a self,
        declared: &'a StructuredType,
        object: &Map<String, Value>,
        path: &str,
        report: &mut Report,
    ) -> Option<&'a StructuredType> {
        let annotation = object.get("@odata.type")?;
        let at = format!("{path}.@odata.type");
        let Some(raw) = annotation.as_str() else {
            report.add(&at, format!("expected a string, found {}", kind(annotation)));
            return None;
        };
        let name = self.qualify(raw.strip_prefix('#').unwrap_or(raw));
        let Some(actual) = self.structured(&name) else {
            report.add(&at, format!("{raw:?} is not a structured type in the schema"));
            return None;
        };
        if !self.derives_from(&actual.name, &declared.name) {
            report.add(
                &at,
                format!(
                    "{} does not derive from the declared type {}",
                    actual.name, declared.name
                ),
            );
            return None;
        }
        if actual.kind != declared.kind {
            report.add(
                &at,
                format!(
                    "{} is not the same kind of type as {}",
                    actual.name, declared.name
                ),
            );
        }
        Some(actual)
    }

    fn check_instance_annotation(&self, annotation: &str, value: &Value, path: &str, report: &mut Report) {
        match annotation {
            "removed" => {
                // Delta tombstones: {"reason": "changed" | "deleted"}.
                let reason = value.get("reason").and_then(Value::as_str);
                if !matches!(reason, Some("changed" | "deleted")) {
                    report.add(path, "expected {\"reason\": \"changed\" | \"deleted\"}");
                }
            }
            a if a.starts_with("odata.") || is_namespaced_annotation(a) => {}
            other => report.add(path, format!("unknown instance annotation @{other}")),
        }
    }

    fn check_property_annotation(
        &self,
        owner: &StructuredType,
        property_name: &str,
        term: &str,
        value: &Value,
        path: &str,
        report: &mut Report,
    ) {
        let Some(property) = self.find_property(owner, property_name) else {
            report.add(
                path,
                format!(
                    "annotation @{term} is for {property_name:?}, which {} does not define",
                    owner.name
                ),
            );
            return;
        };
        if term == "delta" {
            if !property.navigation {
                report.add(
                    path,
                    format!("@delta applies to navigation properties; {property_name:?} is not one"),
                );
                return;
            }
            // members@delta / manager@delta carry references (possibly tombstoned with @removed).
            let element = TypeRef {
                collection: false,
                name: property.type_ref.name.clone(),
            };
            match value {
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.check_value(&element, true, item, &format!("{path}[{index}]"), report);
                    }
                }
                other => self.check_value(&element, true, other, path, report),
            }
        } else if !(term.starts_with("odata.") || is_namespaced_annotation(term)) {
            report.add(path, format!("unknown property annotation @{term}"));
        }
    }
}

/// Custom instance annotations are namespace-qualified terms (`@microsoft.graph.tips`).
fn is_namespaced_annotation(term: &str) -> bool {
    let term = term.strip_prefix('@').unwrap_or(term);
    term.contains('.') && !term.starts_with('.') && !term.ends_with('.')
}

fn check_enum(type_name: &str, enum_type: &EnumType, value: &Value, path: &str, report: &mut Report) {
    let Some(text) = value.as_str() else {
        report.add(
            path,
            format!(
                "expected a member name of enum {type_name}, found {}",
                kind(value)
            ),
        );
        return;
    };
    let names: Vec<&str> = if enum_type.flags {
        text.split(',').map(str::trim).collect()
    } else {
        vec![text]
    };
    for name in names {
        if !enum_type.members.contains(name) {
            report.add(path, format!("{name:?} is not a member of enum {type_name}"));
        }
    }
}
