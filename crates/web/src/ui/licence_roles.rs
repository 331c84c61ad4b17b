//! Licence management's role lists as forms: the agent roles that give a named licence and those
//! that make an agent inactive, each named by its desk name, with an add form (a pick of the
//! desk's agent roles) and a removal per row that needs its tick box. Applied to a copy of the
//! whole configuration, which `mappings.rs` validates in full before saving.

use std::collections::HashMap;

use deskbridge_core::RecordId;
use deskbridge_mapping::{LicenceManagement, MappingConfig};
use deskbridge_source::desk::{Listing, every};
use deskbridge_store::Entity;

use super::html::{Cell, Opt, Section, cell, destructive, form, hidden, select, select_of};
use super::{UiError, confirmed, field};
use crate::AppState;
use crate::error::ApiError;

type Fields = HashMap<String, String>;

/// The two lists: their value in forms and what a role on them does, in words.
const LISTS: [(&str, &str); 2] = [
    ("named", "gives a named licence"),
    ("inactive", "makes the agent inactive"),
];

fn list_mut<'a>(l: &'a mut LicenceManagement, list: &str) -> Option<&'a mut Vec<RecordId>> {
    match list {
        "named" => Some(&mut l.named_licence_roles),
        "inactive" => Some(&mut l.inactive_roles),
        _ => None,
    }
}

/// The table of the roles on either list, and for `modify` the add form and a confirmed removal
/// per row.
pub(super) async fn sections(
    state: &AppState,
    mapping: &MappingConfig,
    action: &str,
    modify: bool,
) -> Result<Vec<Section>, UiError> {
    let mut tx = state.store.read().await?;
    let roles: Vec<Opt> = every(&mut tx, Entity::AgentRole, Listing::Columns)
        .await?
        .into_iter()
        .map(|r| Opt {
            value: r.id.0.to_string(),
            label: r.text("name").map_or_else(|| format!("#{}", r.id), str::to_owned),
        })
        .collect();
    tx.commit().await?;
    let name = |id: RecordId| {
        roles.iter().find(|o| o.value == id.0.to_string()).map_or_else(
            || format!("agent role #{id} (no longer on the desk)"),
            |o| o.label.clone(),
        )
    };
    let l = &mapping.licence_management;
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut removals = Vec::new();
    for (list, does) in LISTS {
        let ids = if list == "named" {
            &l.named_licence_roles
        } else {
            &l.inactive_roles
        };
        for id in ids {
            let role = name(*id);
            rows.push(vec![cell(&role), cell(does)]);
            let mut remove = destructive(
                form(
                    &format!("remove-licence-role-{}", rows.len()),
                    action,
                    &format!("Remove “{role}” ({does})"),
                    vec![
                        hidden("op", "remove-licence-role"),
                        hidden("list", list),
                        hidden("id", id.0.to_string()),
                    ],
                ),
                &format!("Yes, “{role}” no longer {does}"),
            );
            remove.class = "inline";
            removals.push(remove);
        }
    }
    let mut table = Section::titled("Agent roles and licences")
        .text("With licence management on, an agent's licence type follows these roles.")
        .table(&["Agent role", "What it does"], rows);
    table.id = "licence-roles".into();
    if !modify {
        return Ok(vec![table]);
    }
    for remove in removals {
        table = table.form(remove);
    }
    let mut choices = vec![Opt {
        value: String::new(),
        label: "(choose one)".into(),
    }];
    choices.extend(roles);
    let add = form(
        "add-licence-role",
        action,
        "Add licence role",
        vec![
            hidden("op", "add-licence-role"),
            select_of("id", "Agent role", "", choices),
            select("list", "What it does", "named", &LISTS),
        ],
    );
    Ok(vec![
        table,
        Section::titled("Add an agent role to licence management").form(add),
    ])
}

/// The forms' operations.
pub(super) const OPS: &[&str] = &["add-licence-role", "remove-licence-role"];

/// Applies one of these forms ([`OPS`]) to `mapping`.
pub(super) fn apply(mapping: &mut MappingConfig, op: &str, f: &Fields) -> Result<(), ApiError> {
    let list = list_mut(&mut mapping.licence_management, field(f, "list"))
        .ok_or_else(|| ApiError::invalid("What it does: choose one from the list."))?;
    let id = field(f, "id").trim().parse::<i64>().ok().map(RecordId);
    match op {
        "remove-licence-role" => {
            confirmed(f, "the removal of that agent role from licence management")?;
            let at = id
                .and_then(|id| list.iter().position(|r| *r == id))
                .ok_or_else(|| {
                    ApiError::invalid("That agent role is no longer on the list: reload the page.")
                })?;
            list.remove(at);
        }
        _ => {
            let id = id.ok_or_else(|| ApiError::invalid("Agent role: choose one from the list."))?;
            if list.contains(&id) {
                return Err(ApiError::invalid("That agent role is on the list already."));
            }
            list.push(id);
        }
    }
    Ok(())
}
