//! The advanced mappings as forms: the group-driven role options, licence management, service
//! accounts, followers, the circuit breaker and the import options, each a form with the input
//! its values need (tick boxes, bounded numbers, selects). A submitted form changes its part of
//! a copy of the whole configuration, which `mappings.rs` validates in full before saving, as it
//! does the JSON. The lists of group mappings and locks have their own forms
//! (`group_mappings.rs`, `locks.rs`).
//!
//! A value the form cannot read is refused naming the field in words, never with parser text.

use std::collections::HashMap;

use deskbridge_mapping::{
    CircuitBreaker, FollowerMode, FollowerOptions, ImportOptions, MappingConfig, MatchField, ServiceAccounts,
};

use super::field;
use super::html::{Field, Opt, Section, checkbox, form, hidden, number_field, select, select_of, text_field};
use crate::error::ApiError;

type Fields = HashMap<String, String>;

/// The forms of the advanced tab, each posting to `action` with its own `op`.
pub(super) fn sections(mapping: &MappingConfig, action: &str) -> Vec<Section> {
    let a = &mapping.advanced;
    let licences = &mapping.licence_management;
    let service = mapping.service_accounts.clone().unwrap_or_default();
    let followers = &mapping.followers;
    vec![
        Section::titled("Roles and teams from groups")
            .text(
                "How the groups that give roles, teams and CABs (listed above) apply.",
            )
            .form(form(
                "advanced-options",
                action,
                "Save role options",
                vec![
                    hidden("op", "advanced-options"),
                    checkbox(
                        "full_role_management",
                        "Agents' roles become exactly the mapped ones (an agent left with none is made inactive)",
                        a.full_role_management,
                    ),
                    checkbox(
                        "remove_agents_from_unmapped_teams",
                        "Remove agents from mapped teams none of whose groups holds them",
                        a.remove_agents_from_unmapped_teams,
                    ),
                    checkbox(
                        "nested_groups",
                        "Count membership of groups nested inside the mapped groups",
                        a.nested_groups,
                    ),
                ],
            )),
        Section::titled("Licence management")
            .text("The agent roles that give a named licence or make an agent inactive are listed above.")
            .form(form(
                "licence-management",
                action,
                "Save licence management",
                vec![
                    hidden("op", "licence-management"),
                    checkbox(
                        "enabled",
                        "Agents' licence type follows their roles",
                        licences.enabled,
                    ),
                ],
            )),
        Section::titled("Service accounts")
            .text(
                "Users outside the group become service accounts; with SKUs, so do users holding none of them. \
                 Both apply when both are given.",
            )
            .form(form(
                "service-accounts",
                action,
                "Save service accounts",
                vec![
                    hidden("op", "service-accounts"),
                    checkbox(
                        "enabled",
                        "Mark service accounts",
                        mapping.service_accounts.is_some(),
                    ),
                    Field {
                        help: "The exact display name of an Entra group; empty: no group condition.".into(),
                        ..text_field("group", "People are those in the group", service.group.unwrap_or_default())
                    },
                    Field {
                        help: "SKU ids (GUIDs), separated by commas or spaces; empty: no licence condition.".into(),
                        ..text_field("required_skus", "People hold one of these SKUs", service.required_skus.join(", "))
                    },
                ],
            )),
        Section::titled("Distribution groups as ticket followers").form(form(
            "followers",
            action,
            "Save followers",
            vec![
                hidden("op", "followers"),
                checkbox(
                    "enabled",
                    "This connection's groups may be added as ticket followers",
                    followers.enabled,
                ),
                select(
                    "mode",
                    "Who follows",
                    follower_mode_value(followers.mode),
                    &[
                        ("group_address", "The group's own address (membership changes apply at once)"),
                        ("members", "Each member (not kept in step with the group)"),
                    ],
                ),
                number_field("member_cap", "Most members added", followers.member_cap, "1", "100000", "1"),
            ],
        )),
        Section::titled("Circuit breaker")
            .text("A tenant's whole plan is held for approval when it would deactivate more than this.")
            .form({
                let mut fields = vec![hidden("op", "circuit-breaker")];
                fields.extend(circuit_breaker_fields(&mapping.circuit_breaker));
                form("circuit-breaker", action, "Save circuit breaker", fields)
            }),
    ]
}

/// The import options' form (on the Imports tab), posting to the advanced tab's `action`.
pub(super) fn import_options_form(options: &ImportOptions, action: &str) -> Section {
    let order = match_order_value(&options.match_order);
    let mut choices: Vec<Opt> = MATCH_ORDERS
        .iter()
        .map(|(value, label)| Opt {
            value: (*value).into(),
            label: (*label).into(),
        })
        .collect();
    // An order set as code that the list does not hold is offered as it is, so that saving
    // the other options does not change it.
    if !MATCH_ORDERS.iter().any(|(value, _)| *value == order) {
        choices.insert(
            0,
            Opt {
                label: options
                    .match_order
                    .iter()
                    .map(|m| m.desk_field().replace('_', " "))
                    .collect::<Vec<_>>()
                    .join(", then "),
                value: order.clone(),
            },
        );
    }
    Section::titled("Import options").form(form(
        "import-options",
        action,
        "Save matching and options",
        vec![
            hidden("op", "import-options"),
            select_of("match_order", "Match unlinked desk records by", &order, choices),
            checkbox(
                "deactivate_not_found",
                "Deactivate records not found on a complete read, and records deleted in Entra",
                options.deactivate_not_found,
            ),
            checkbox(
                "sync_account_enabled",
                "A record is active while its Entra account is enabled",
                options.sync_account_enabled,
            ),
            checkbox(
                "reassign_tickets_of_inactive_agents",
                "Tickets of agents a run makes inactive go back to unassigned",
                options.reassign_tickets_of_inactive_agents,
            ),
        ],
    ))
}

/// The circuit breaker's inputs. One function reads them ([`read_circuit_breaker`]) and one
/// writes them, so that a new setting is one input here and one line there.
pub(super) fn circuit_breaker_fields(breaker: &CircuitBreaker) -> Vec<Field> {
    vec![
        Field {
            help: "Percent of the tenant's active records, more than 0 and at most 100.".into(),
            ..number_field(
                "max_deactivate_percent",
                "Maximum share to deactivate (percent)",
                breaker.max_deactivate_percent,
                "0",
                "100",
                "any",
            )
        },
        Field {
            help: "Percent of the tenant's active records one run may move to another site or customer, or \
                   change in any one field; more is held for approval. More than 0 and at most 100."
                .into(),
            ..number_field(
                "max_change_percent",
                "Maximum share to move or change (percent)",
                breaker.max_change_percent,
                "0",
                "100",
                "any",
            )
        },
        Field {
            help: "The breaker never trips for this many deactivations, moves or changes of one field, or fewer."
                .into(),
            ..number_field(
                "floor",
                "Always allow this many deactivations",
                breaker.floor,
                "0",
                "1000000",
                "1",
            )
        },
    ]
}

fn read_circuit_breaker(f: &Fields, breaker: &mut CircuitBreaker) -> Result<(), ApiError> {
    let share = number::<f64>(f, "max_deactivate_percent")
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| {
            ApiError::invalid("Maximum share to deactivate must be a number more than 0 and at most 100.")
        })?;
    let change_share = number::<f64>(f, "max_change_percent")
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| {
            ApiError::invalid("Maximum share to move or change must be a number more than 0 and at most 100.")
        })?;
    let floor = number::<u32>(f, "floor").ok_or_else(|| {
        ApiError::invalid("Always allow this many deactivations must be a whole number, 0 or more.")
    })?;
    breaker.max_deactivate_percent = share;
    breaker.max_change_percent = change_share;
    breaker.floor = floor;
    Ok(())
}

/// The forms' operations.
pub(super) const OPS: &[&str] = &[
    "advanced-options",
    "licence-management",
    "service-accounts",
    "followers",
    "circuit-breaker",
    "import-options",
];

/// Applies one of these forms ([`OPS`]) to `mapping`.
pub(super) fn apply(mapping: &mut MappingConfig, op: &str, f: &Fields) -> Result<(), ApiError> {
    let on = |name: &str| field(f, name) == "on";
    match op {
        "advanced-options" => {
            let a = &mut mapping.advanced;
            a.full_role_management = on("full_role_management");
            a.remove_agents_from_unmapped_teams = on("remove_agents_from_unmapped_teams");
            a.nested_groups = on("nested_groups");
        }
        "licence-management" => mapping.licence_management.enabled = on("enabled"),
        "service-accounts" => {
            mapping.service_accounts = if on("enabled") {
                let group = field(f, "group").trim();
                Some(ServiceAccounts {
                    group: Some(group.to_owned()).filter(|g| !g.is_empty()),
                    required_skus: field(f, "required_skus")
                        .split([',', ' ', '\n'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                })
            } else {
                None
            };
        }
        "followers" => {
            let mode = match field(f, "mode") {
                "group_address" => FollowerMode::GroupAddress,
                "members" => FollowerMode::Members,
                _ => {
                    return Err(ApiError::invalid(
                        "Who follows must be one of the listed choices.",
                    ));
                }
            };
            let member_cap = number::<u32>(f, "member_cap")
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::invalid("Most members added must be a whole number, 1 or more."))?;
            mapping.followers = FollowerOptions {
                enabled: on("enabled"),
                mode,
                member_cap,
            };
        }
        "circuit-breaker" => read_circuit_breaker(f, &mut mapping.circuit_breaker)?,
        "import-options" => {
            let order = match_order_of(field(f, "match_order")).ok_or_else(|| {
                ApiError::invalid("Match unlinked desk records by must be one of the listed choices.")
            })?;
            let o = &mut mapping.imports;
            o.match_order = order;
            o.deactivate_not_found = on("deactivate_not_found");
            o.sync_account_enabled = on("sync_account_enabled");
            o.reassign_tickets_of_inactive_agents = on("reassign_tickets_of_inactive_agents");
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}

/// A submitted number; `None` when it is missing or not a number of that kind (the caller
/// names the field in its refusal).
fn number<T: std::str::FromStr>(f: &Fields, name: &str) -> Option<T> {
    field(f, name).trim().parse::<T>().ok()
}

/// The matching orders a person chooses among (each field at most once, as validation wants).
const MATCH_ORDERS: &[(&str, &str)] = &[
    ("email,network_login", "Email, then network login"),
    ("network_login,email", "Network login, then email"),
    ("email", "Email only"),
    ("network_login", "Network login only"),
    ("email,network_login,name", "Email, then network login, then name"),
    ("email,name", "Email, then name"),
    ("name", "Name only"),
    ("", "Do not match (link by Entra object id only)"),
];

fn match_order_value(order: &[MatchField]) -> String {
    order.iter().map(|m| m.desk_field()).collect::<Vec<_>>().join(",")
}

/// A submitted order (any order of the fields: one set in the JSON is offered as it is);
/// `None` when it names something else.
fn match_order_of(value: &str) -> Option<Vec<MatchField>> {
    value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| match v {
            "email" => Some(MatchField::Email),
            "network_login" => Some(MatchField::NetworkLogin),
            "name" => Some(MatchField::Name),
            _ => None,
        })
        .collect()
}

fn follower_mode_value(mode: FollowerMode) -> &'static str {
    match mode {
        FollowerMode::GroupAddress => "group_address",
        FollowerMode::Members => "members",
    }
}
