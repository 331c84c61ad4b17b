//! Field locks ("never overwrite this desk field") and record locks ("keep this person active",
//! "never overwrite these fields of this person") as tables, add forms and removals that need
//! their tick box. A change is applied to a copy of the whole configuration, which `mappings.rs`
//! validates in full (the desk field must exist, a record lock must do something) before saving.

use std::collections::HashMap;

use deskbridge_mapping::{FieldLock, MappingConfig, RecordKind, RecordLock};

use super::html::{Cell, Field, Section, cell, checkbox, destructive, form, hidden, select, text_field};
use super::{confirmed, field};
use crate::error::ApiError;

type Fields = HashMap<String, String>;

const KINDS: &[(&str, &str)] = &[("user", "Users"), ("agent", "Agents")];

fn kind_value(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::User => "user",
        RecordKind::Agent => "agent",
    }
}

fn kind_of(f: &Fields) -> Result<RecordKind, ApiError> {
    match field(f, "entity") {
        "user" => Ok(RecordKind::User),
        "agent" => Ok(RecordKind::Agent),
        _ => Err(ApiError::invalid("Applies to: choose users or agents.")),
    }
}

/// The two tables, and for `modify` their add forms and a confirmed removal per row.
pub(super) fn sections(mapping: &MappingConfig, action: &str, modify: bool) -> Vec<Section> {
    let field_rows: Vec<Vec<Cell>> = mapping
        .field_locks
        .iter()
        .map(|l| vec![cell(kind_value(l.entity)), cell(&l.field)])
        .collect();
    let mut field_table = Section::titled("Field locks")
        .text("Syncs never overwrite these desk fields, on any record of the kind.")
        .table(&["Record", "Desk field"], field_rows);
    field_table.id = "field-locks".into();
    let record_rows: Vec<Vec<Cell>> = mapping
        .record_locks
        .iter()
        .map(|l| {
            vec![
                cell(kind_value(l.entity)),
                cell(&l.external_id),
                cell(if l.keep_active { "yes" } else { "no" }),
                cell(if l.fields.is_empty() {
                    "(none)".to_owned()
                } else {
                    l.fields.join(", ")
                }),
            ]
        })
        .collect();
    let mut record_table = Section::titled("Record locks")
        .text("One person's record, by their Entra object id: kept active, or some of its fields never overwritten.")
        .table(&["Record", "Entra object id", "Kept active", "Fields never overwritten"], record_rows);
    record_table.id = "record-locks".into();
    if !modify {
        return vec![field_table, record_table];
    }
    // Form ids by position: a field name or object id may hold what an HTML id may not.
    for (i, l) in mapping.field_locks.iter().enumerate() {
        let kind = kind_value(l.entity);
        let mut remove = destructive(
            form(
                &format!("remove-field-lock-{i}"),
                action,
                &format!("Unlock the {kind} field “{}”", l.field),
                vec![
                    hidden("op", "remove-field-lock"),
                    hidden("entity", kind),
                    hidden("field", l.field.clone()),
                ],
            ),
            &format!("Yes, let syncs overwrite the {kind} field “{}” again", l.field),
        );
        remove.class = "inline";
        field_table = field_table.form(remove);
    }
    field_table = field_table.form(form(
        "add-field-lock",
        action,
        "Add field lock",
        vec![
            hidden("op", "add-field-lock"),
            select("entity", "Applies to", "user", KINDS),
            Field {
                help: "A desk field name, e.g. job_title or custom:<name>.".into(),
                required: true,
                ..text_field("field", "Desk field", "")
            },
        ],
    ));
    for (i, l) in mapping.record_locks.iter().enumerate() {
        let kind = kind_value(l.entity);
        let mut remove = destructive(
            form(
                &format!("remove-record-lock-{i}"),
                action,
                &format!("Remove the lock on {kind} {}", l.external_id),
                vec![
                    hidden("op", "remove-record-lock"),
                    hidden("entity", kind),
                    hidden("external_id", l.external_id.clone()),
                ],
            ),
            &format!(
                "Yes, syncs treat {kind} {} like everyone else again",
                l.external_id
            ),
        );
        remove.class = "inline";
        record_table = record_table.form(remove);
    }
    record_table = record_table.form(form(
        "add-record-lock",
        action,
        "Add record lock",
        vec![
            hidden("op", "add-record-lock"),
            select("entity", "Applies to", "user", KINDS),
            Field {
                help: "The person's object id in Microsoft Entra (a GUID).".into(),
                required: true,
                ..text_field("external_id", "Entra object id", "")
            },
            checkbox("keep_active", "Keep the record active", false),
            Field {
                help: "Desk field names, separated by commas; empty: none.".into(),
                ..text_field("fields", "Fields never overwritten", "")
            },
        ],
    ));
    vec![field_table, record_table]
}

/// The forms' operations.
pub(super) const OPS: &[&str] = &[
    "add-field-lock",
    "remove-field-lock",
    "add-record-lock",
    "remove-record-lock",
];

/// Applies one of these forms ([`OPS`]) to `mapping`.
pub(super) fn apply(mapping: &mut MappingConfig, op: &str, f: &Fields) -> Result<(), ApiError> {
    let entity = kind_of(f)?;
    match op {
        "add-field-lock" => {
            let name = field(f, "field").trim();
            if name.is_empty() {
                return Err(ApiError::invalid("Desk field must not be empty."));
            }
            let lock = FieldLock {
                entity,
                field: name.to_owned(),
            };
            if mapping.field_locks.contains(&lock) {
                return Err(ApiError::invalid(format!(
                    "Desk field: “{name}” is locked already."
                )));
            }
            mapping.field_locks.push(lock);
        }
        "remove-field-lock" => {
            let name = field(f, "field");
            let at = mapping
                .field_locks
                .iter()
                .position(|l| l.entity == entity && l.field == name)
                .ok_or_else(|| ApiError::invalid("That field lock is no longer there: reload the page."))?;
            confirmed(f, &format!("unlocking “{name}”"))?;
            mapping.field_locks.remove(at);
        }
        "add-record-lock" => {
            let external_id = field(f, "external_id").trim();
            if external_id.is_empty() {
                return Err(ApiError::invalid("Entra object id must not be empty."));
            }
            if mapping
                .record_locks
                .iter()
                .any(|l| l.entity == entity && l.external_id == external_id)
            {
                return Err(ApiError::invalid(format!(
                    "Entra object id: {external_id} is locked already; remove that lock first to change it."
                )));
            }
            mapping.record_locks.push(RecordLock {
                entity,
                external_id: external_id.to_owned(),
                keep_active: field(f, "keep_active") == "on",
                fields: field(f, "fields")
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            });
        }
        "remove-record-lock" => {
            let external_id = field(f, "external_id");
            let at = mapping
                .record_locks
                .iter()
                .position(|l| l.entity == entity && l.external_id == external_id)
                .ok_or_else(|| ApiError::invalid("That record lock is no longer there: reload the page."))?;
            confirmed(f, &format!("the removal of the lock on {external_id}"))?;
            mapping.record_locks.remove(at);
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}
