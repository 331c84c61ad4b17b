//! Which Entra groups give which desk agent roles, user roles, teams and CABs (the lists of
//! [`AdvancedMappings`]), in people's words: a table naming each record by its desk name, an add
//! form per list (the group's name and a pick of the desk's records) and a removal per row that
//! needs its tick box. A change is applied to a copy of the whole configuration, which
//! `mappings.rs` validates in full (the group must exist in the tenant, the record on the desk)
//! before saving.
//!
//! Roles, teams and CABs are desk-wide (not one customer's), so listing them to whoever may
//! change a connection's mappings shows no customer's data to another.

use std::collections::HashMap;

use deskbridge_core::RecordId;
use deskbridge_mapping::{AdvancedMappings, GroupToCab, GroupToRecord, MappingConfig};
use deskbridge_source::desk::{Listing, every};
use deskbridge_store::Entity;

use super::html::{Cell, Field, Opt, Section, cell, destructive, form, hidden, select_of, text_field};
use super::{UiError, confirmed, field};
use crate::AppState;
use crate::error::ApiError;

type Fields = HashMap<String, String>;

/// One of the four lists: its value in forms, its words, and the desk records it names.
#[derive(Clone, Copy)]
enum List {
    AgentRoles,
    UserRoles,
    Teams,
    Cabs,
}

const LISTS: [List; 4] = [List::AgentRoles, List::UserRoles, List::Teams, List::Cabs];

impl List {
    fn value(self) -> &'static str {
        match self {
            Self::AgentRoles => "agent_roles",
            Self::UserRoles => "user_roles",
            Self::Teams => "teams",
            Self::Cabs => "cabs",
        }
    }

    fn of(value: &str) -> Option<Self> {
        LISTS.into_iter().find(|l| l.value() == value)
    }

    /// What a member of the group gets, as a table's column and a select's label.
    fn what(self) -> &'static str {
        match self {
            Self::AgentRoles => "Agent role",
            Self::UserRoles => "User role",
            Self::Teams => "Team",
            Self::Cabs => "CAB",
        }
    }

    fn entity(self) -> Entity {
        match self {
            Self::AgentRoles => Entity::AgentRole,
            Self::UserRoles => Entity::UserRole,
            Self::Teams => Entity::Team,
            Self::Cabs => Entity::Cab,
        }
    }

    fn add_op(self) -> &'static str {
        match self {
            Self::AgentRoles => "add-agent-role",
            Self::UserRoles => "add-user-role",
            Self::Teams => "add-team",
            Self::Cabs => "add-cab",
        }
    }

    fn add_label(self) -> &'static str {
        match self {
            Self::AgentRoles => "Add agent role mapping",
            Self::UserRoles => "Add user role mapping",
            Self::Teams => "Add team mapping",
            Self::Cabs => "Add CAB mapping",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::AgentRoles => "Give an agent role to a group's members",
            Self::UserRoles => "Give a user role to a group's members",
            Self::Teams => "Put a group's agents in a team",
            Self::Cabs => "Make a group's members members of a CAB",
        }
    }

    fn entries(self, a: &AdvancedMappings) -> Vec<(String, RecordId, Option<RecordId>)> {
        let plain = |l: &[GroupToRecord]| l.iter().map(|r| (r.group.clone(), r.id, None)).collect();
        match self {
            Self::AgentRoles => plain(&a.agent_roles),
            Self::UserRoles => plain(&a.user_roles),
            Self::Teams => plain(&a.teams),
            Self::Cabs => a
                .cabs
                .iter()
                .map(|c| (c.group.clone(), c.cab_id, c.cab_role_id))
                .collect(),
        }
    }
}

/// The desk's roles, teams, CABs and CAB roles, by name.
struct Names {
    by_list: Vec<Vec<Opt>>,
    cab_roles: Vec<Opt>,
}

impl Names {
    fn options(&self, list: List) -> &[Opt] {
        &self.by_list[list as usize]
    }

    fn name(options: &[Opt], id: RecordId, what: &str) -> String {
        let value = id.0.to_string();
        options.iter().find(|o| o.value == value).map_or_else(
            || format!("{what} #{id} (no longer on the desk)"),
            |o| o.label.clone(),
        )
    }
}

async fn names(state: &AppState) -> Result<Names, UiError> {
    let mut tx = state.store.read().await?;
    let listed = |records: Vec<deskbridge_store::Record>| -> Vec<Opt> {
        records
            .into_iter()
            .map(|r| Opt {
                value: r.id.0.to_string(),
                label: r.text("name").map_or_else(|| format!("#{}", r.id), str::to_owned),
            })
            .collect()
    };
    let mut by_list = Vec::new();
    for list in LISTS {
        by_list.push(listed(every(&mut tx, list.entity(), Listing::Columns).await?));
    }
    let cab_roles = listed(every(&mut tx, Entity::CabRole, Listing::Columns).await?);
    tx.commit().await?;
    Ok(Names { by_list, cab_roles })
}

/// The table of group mappings, and for `modify` the add forms and a confirmed removal per row.
pub(super) async fn sections(
    state: &AppState,
    mapping: &MappingConfig,
    action: &str,
    modify: bool,
) -> Result<Vec<Section>, UiError> {
    let names = names(state).await?;
    let a = &mapping.advanced;
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut removals = Vec::new();
    for list in LISTS {
        for (group, id, cab_role) in list.entries(a) {
            let mut record = Names::name(names.options(list), id, list.what());
            if let Some(role) = cab_role {
                record = format!("{record}, as {}", Names::name(&names.cab_roles, role, "CAB role"));
            }
            rows.push(vec![cell(&group), cell(list.what()), cell(&record)]);
            let mut remove = destructive(
                form(
                    &format!("remove-{}-{}", list.value(), rows.len()),
                    action,
                    &format!("Remove “{group}” → {record}"),
                    vec![
                        hidden("op", "remove-group-mapping"),
                        hidden("list", list.value()),
                        hidden("group", group.clone()),
                        hidden("id", id.0.to_string()),
                    ],
                ),
                &format!("Yes, members of “{group}” no longer get {record} from it"),
            );
            remove.class = "inline";
            removals.push(remove);
        }
    }
    let mut table = Section::titled("Groups that give roles, teams and CABs")
        .text("Members of each group get the desk record beside it; the options below say how these apply.")
        .table(&["Group", "Gives", "Desk record"], rows);
    table.id = "group-mappings".into();
    if !modify {
        return Ok(vec![table]);
    }
    for remove in removals {
        table = table.form(remove);
    }
    let mut out = vec![table];
    for list in LISTS {
        let mut records = vec![Opt {
            value: String::new(),
            label: "(choose one)".into(),
        }];
        records.extend(names.options(list).iter().cloned());
        let mut fields = vec![
            hidden("op", list.add_op()),
            Field {
                help: "The exact display name of an Entra group.".into(),
                required: true,
                ..text_field("group", "Group name", "")
            },
            select_of("id", list.what(), "", records),
        ];
        if let List::Cabs = list {
            let mut roles = vec![Opt {
                value: String::new(),
                label: "(no CAB role)".into(),
            }];
            roles.extend(names.cab_roles.iter().cloned());
            fields.push(select_of("cab_role_id", "CAB role", "", roles));
        }
        out.push(Section::titled(list.title()).form(form(list.add_op(), action, list.add_label(), fields)));
    }
    Ok(out)
}

/// The forms' operations.
pub(super) const OPS: &[&str] = &[
    "add-agent-role",
    "add-user-role",
    "add-team",
    "add-cab",
    "remove-group-mapping",
];

/// Applies one of these forms ([`OPS`]) to `mapping`.
pub(super) fn apply(mapping: &mut MappingConfig, op: &str, f: &Fields) -> Result<(), ApiError> {
    let a = &mut mapping.advanced;
    if op == "remove-group-mapping" {
        let list =
            List::of(field(f, "list")).ok_or_else(|| ApiError::invalid("unknown mapping operation"))?;
        let group = field(f, "group");
        let id = field(f, "id");
        let gone = || ApiError::invalid("That group mapping is no longer there: reload the page.");
        confirmed(f, &format!("the removal of the mapping of “{group}”"))?;
        match list {
            List::Cabs => {
                let at = a
                    .cabs
                    .iter()
                    .position(|c| c.group == group && c.cab_id.0.to_string() == id)
                    .ok_or_else(gone)?;
                a.cabs.remove(at);
            }
            _ => {
                let records = records_mut(a, list).ok_or_else(gone)?;
                let at = records
                    .iter()
                    .position(|r| r.group == group && r.id.0.to_string() == id)
                    .ok_or_else(gone)?;
                records.remove(at);
            }
        }
        return Ok(());
    }
    let list = LISTS
        .into_iter()
        .find(|l| l.add_op() == op)
        .ok_or_else(|| ApiError::invalid("unknown mapping operation"))?;
    let group = field(f, "group").trim().to_owned();
    if group.is_empty() {
        return Err(ApiError::invalid("Group name must not be empty."));
    }
    let id = chosen(f, "id")
        .ok_or_else(|| ApiError::invalid(format!("{}: choose one from the list.", list.what())))?;
    match list {
        List::Cabs => {
            let cab_role_id = match field(f, "cab_role_id").trim() {
                "" => None,
                _ => Some(
                    chosen(f, "cab_role_id")
                        .ok_or_else(|| ApiError::invalid("CAB role: choose one from the list."))?,
                ),
            };
            a.cabs.push(GroupToCab {
                group,
                cab_id: id,
                cab_role_id,
            });
        }
        _ => records_mut(a, list)
            .ok_or_else(|| ApiError::invalid("unknown mapping operation"))?
            .push(GroupToRecord { group, id }),
    }
    Ok(())
}

/// The list of a kind that maps a group to one record (`None` for CABs, which carry a role too).
fn records_mut(a: &mut AdvancedMappings, list: List) -> Option<&mut Vec<GroupToRecord>> {
    match list {
        List::AgentRoles => Some(&mut a.agent_roles),
        List::UserRoles => Some(&mut a.user_roles),
        List::Teams => Some(&mut a.teams),
        List::Cabs => None,
    }
}

/// A record picked in a select; `None` when nothing (or not an id) was sent.
fn chosen(f: &Fields, name: &str) -> Option<RecordId> {
    field(f, name).trim().parse::<i64>().ok().map(RecordId)
}
