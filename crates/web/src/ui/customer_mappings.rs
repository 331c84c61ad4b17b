//! The "Customers" mapping tab: how the source's organisations (Dynamics 365: accounts) become
//! desk customers, as forms — import on or off, the name column, a filter, matching by name,
//! what a deleted account does, and field mappings into customer custom fields. Each form
//! changes a copy of the whole configuration, which `api::save_mappings` validates in full (and
//! allows administrators only) before anything is saved.

use std::collections::HashMap;

use deskbridge_mapping::{CustomerMappings, CustomerMatchField, MappingConfig, RemovedCustomers, RowField};

use super::html::{Field, Opt, Section, cell, checkbox, form, hidden, select, text_field};
use super::{UiError, field};
use crate::AppState;
use crate::error::ApiError;

/// The tab's sections: what is imported now, and (for those who may change it) the forms.
pub(super) async fn sections(
    state: &AppState,
    mapping: &MappingConfig,
    action: &str,
    modify: bool,
) -> Result<Vec<Section>, UiError> {
    let mut out = Vec::new();
    let current = mapping.customers.as_ref();
    let mut summary = Section::titled("Customers");
    summary = match current {
        None => summary.text(
            "Customers are not imported. Turn the import on to make each account a desk customer (with its main \
             site); contacts can then be placed on their account's customer with a site mapping of kind \
             imported_customer.",
        ),
        Some(c) => {
            let rows = c
                .fields
                .iter()
                .map(|f| vec![cell(&f.source), cell(&f.target)])
                .collect();
            summary
                .text(format!(
                    "Accounts{} become desk customers. Matching: {}. An account deleted in the source: {}.",
                    c.filter_text()
                        .map(|f| format!(" matching {f}"))
                        .unwrap_or_default(),
                    if c.match_fields.contains(&CustomerMatchField::Name) {
                        "the account's id, then a desk customer of the same name that no connection imported"
                    } else {
                        "the account's id only (every other account becomes a new customer)"
                    },
                    match c.removed {
                        RemovedCustomers::Keep => "its customer stays as it is",
                        RemovedCustomers::Deactivate => "its customer is made inactive",
                    }
                ))
                .table(&["Account column", "Desk customer field"], rows)
        }
    };
    out.push(summary);
    if !modify {
        return Ok(out);
    }
    let c = current.cloned().unwrap_or_default();
    let name_column = c
        .fields
        .iter()
        .find(|f| f.target == "name")
        .map_or("name", |f| f.source.as_str())
        .to_owned();
    out.push(Section::titled("Customer import").form(form(
        "customer-settings",
        action,
        "Save customer import",
        vec![
            hidden("op", "settings"),
            checkbox("enabled", "Import accounts as desk customers", current.is_some()),
            Field {
                help: "The account column that names the customer (usually name).".into(),
                required: true,
                ..text_field("name_column", "Name column", name_column)
            },
            Field {
                help: "Optional OData filter over accounts, e.g. statecode eq 0.".into(),
                ..text_field("filter", "Filter", c.filter.clone().unwrap_or_default())
            },
            checkbox(
                "match_by_name",
                "Link an existing desk customer of the same name (that no connection imported)",
                c.match_fields.contains(&CustomerMatchField::Name),
            ),
            select(
                "removed",
                "When an account is deleted",
                match c.removed {
                    RemovedCustomers::Keep => "keep",
                    RemovedCustomers::Deactivate => "deactivate",
                },
                &[
                    ("keep", "Keep the customer as it is"),
                    ("deactivate", "Make the customer inactive"),
                ],
            ),
        ],
    )));
    if current.is_some() {
        let fields = deskbridge_source::desk::customer_custom_fields(&state.store)
            .await
            .map_err(ApiError::from)?;
        let mut target = select("target", "Customer custom field", "", &[]);
        target.options = fields
            .iter()
            .map(|f| Opt {
                value: format!("custom:{}", f.name),
                label: f.name.clone(),
            })
            .collect();
        out.push(
            Section::titled("Add a customer field mapping")
                .text(if fields.is_empty() {
                    "The desk has no customer custom fields to fill."
                } else {
                    "A value must fit the field's type: a text column for a text field, a whole number for a number \
                     field, a choice's label for a select."
                })
                .form(form(
                    "customer-field",
                    action,
                    "Add customer field mapping",
                    vec![
                        hidden("op", "add-field"),
                        Field {
                            help: "An account column's logical name, e.g. accountnumber or numberofemployees.".into(),
                            required: true,
                            ..text_field("source", "Account column", "")
                        },
                        target,
                    ],
                )),
        );
    }
    Ok(out)
}

/// Applies one of the tab's forms to `mapping`.
pub(super) fn apply(
    mapping: &mut MappingConfig,
    op: &str,
    f: &HashMap<String, String>,
) -> Result<(), ApiError> {
    match op {
        "settings" => {
            if field(f, "enabled") != "on" {
                mapping.customers = None;
                return Ok(());
            }
            let mut c = mapping.customers.clone().unwrap_or_default();
            let name_column = field(f, "name_column").trim();
            if name_column.is_empty() {
                return Err(ApiError::invalid(
                    "name the account column that names the customer",
                ));
            }
            c.fields.retain(|m| m.target != "name");
            c.fields.insert(
                0,
                RowField {
                    source: name_column.to_owned(),
                    target: "name".into(),
                },
            );
            c.filter = Some(field(f, "filter").trim().to_owned()).filter(|s| !s.is_empty());
            c.match_fields = if field(f, "match_by_name") == "on" {
                vec![CustomerMatchField::Name]
            } else {
                Vec::new()
            };
            c.removed = match field(f, "removed") {
                "deactivate" => RemovedCustomers::Deactivate,
                _ => RemovedCustomers::Keep,
            };
            mapping.customers = Some(c);
        }
        "add-field" => {
            let c: &mut CustomerMappings = mapping
                .customers
                .as_mut()
                .ok_or_else(|| ApiError::invalid("turn the customer import on first"))?;
            let source = field(f, "source").trim();
            let target = field(f, "target").trim();
            if source.is_empty() || target.is_empty() {
                return Err(ApiError::invalid(
                    "name the account column and choose the customer field",
                ));
            }
            c.fields.push(RowField {
                source: source.to_owned(),
                target: target.to_owned(),
            });
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}
