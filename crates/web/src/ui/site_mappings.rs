//! A connection's site mappings in people's words: the table names each target ("London —
//! Contoso", "a site per officeLocation under Contoso"), the add form picks the target among the
//! connection's customers' sites or has a site made per value of a property, and each mapping
//! can be removed once the removal is confirmed. Every other target kind (matching a site field,
//! the imported customer) is set in the JSON editor below; the table still names it.

use std::collections::HashMap;

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    ExternalUsers, GroupFilter, LicenceTypeChoice, MappingConfig, SiteMapping, SiteTarget, UnmatchedSite,
};
use deskbridge_store::Entity;

use super::html::{
    Cell, Field, Opt, Section, cell, checkbox, destructive, form, hidden, number_field, select, select_of,
    text_field,
};
use super::{UiError, confirmed, field};
use crate::AppState;
use crate::access::Scope;
use crate::api;
use crate::error::ApiError;

type Fields = HashMap<String, String>;

/// The connection's customers (those it imports into) and their sites, by name.
pub(super) struct Names {
    pub(super) customers: Vec<Opt>,
    pub(super) sites: Vec<Opt>,
}

impl Names {
    fn customer(&self, id: RecordId) -> String {
        label_of(&self.customers, id).unwrap_or_else(|| format!("customer #{id}"))
    }

    fn site(&self, id: RecordId) -> String {
        label_of(&self.sites, id)
            .unwrap_or_else(|| format!("site #{id} (not one of this connection's customers')"))
    }
}

fn label_of(options: &[Opt], id: RecordId) -> Option<String> {
    let id = id.0.to_string();
    options.iter().find(|o| o.value == id).map(|o| o.label.clone())
}

/// The sites and customers a connection's mappings may name, as "Site — Customer": only those
/// of the customers it imports into (a mapping to another customer's site is refused anyway, and
/// listing them would show one customer's sites to another's administrator).
pub(super) async fn names(state: &AppState, scope: &Scope) -> Result<Names, UiError> {
    let customers = api::connection_customers(state, &scope.connection)?;
    let mut names = Names {
        customers: Vec::new(),
        sites: Vec::new(),
    };
    let mut tx = state.store.read().await?;
    for customer in customers {
        let customer_name = tx
            .get(Entity::Customer, customer)
            .await?
            .and_then(|c| c.text("name").map(str::to_owned))
            .unwrap_or_else(|| format!("customer #{customer}"));
        names.customers.push(Opt {
            value: customer.0.to_string(),
            label: customer_name.clone(),
        });
        // The store narrows by customer only together with a connection (its records, or its
        // customer's); the customer's own sites are picked out of that here, page by page.
        let mut filter = deskbridge_store::DirectoryFilter {
            connection: Some(scope.connection.id),
            customer: Some(customer),
            limit: 500,
            ..Default::default()
        };
        for _ in 0..20 {
            let sites = tx.directory_page(Entity::Site, &filter).await?;
            let more = sites.len() == filter.limit as usize;
            filter.after = sites.last().map(|s| s.id);
            names.sites.extend(
                sites
                    .iter()
                    .filter(|s| s.get("customer_id").as_i64() == Some(customer.0))
                    .map(|s| Opt {
                        value: s.id.0.to_string(),
                        label: format!("{} — {customer_name}", s.text("name").unwrap_or_default()),
                    }),
            );
            if !more {
                break;
            }
        }
    }
    tx.commit().await?;
    Ok(names)
}

/// Where a mapping puts people, in words.
fn target_text(target: &SiteTarget, names: &Names) -> String {
    let unmatched = |u: &UnmatchedSite| match u {
        UnmatchedSite::DefaultSite { site_id } => format!("others go to {}", names.site(*site_id)),
        UnmatchedSite::DoNotImport => "others are not imported".to_owned(),
    };
    match target {
        SiteTarget::ExistingSite { site_id } => names.site(*site_id),
        SiteTarget::CustomerByField { customer_id, field } => format!(
            "A site per value of {field} under {} (made when missing)",
            names.customer(*customer_id)
        ),
        SiteTarget::MatchSiteField {
            customer_id,
            site_field,
            user_field,
            unmatched: u,
        } => format!(
            "The site of {} whose {site_field} is the user's {user_field}; {}",
            customer_id.map_or_else(|| "any customer".to_owned(), |c| names.customer(c)),
            unmatched(u)
        ),
        SiteTarget::ImportedCustomer {
            property,
            unmatched: u,
        } => format!(
            "The main site of the imported customer named by {property}; {}",
            unmatched(u)
        ),
        SiteTarget::Agent { licence_type, .. } => {
            format!("Imported as agents ({})", licence_text(*licence_type))
        }
    }
}

fn licence_text(l: LicenceTypeChoice) -> &'static str {
    match l {
        LicenceTypeChoice::Named => "named licence",
        LicenceTypeChoice::Concurrent => "concurrent licence",
        LicenceTypeChoice::NoChange => "licence unchanged; new agents concurrent",
    }
}

fn external_text(e: ExternalUsers) -> &'static str {
    match e {
        ExternalUsers::Exclude => "guests excluded",
        ExternalUsers::Include => "guests included",
        ExternalUsers::IncludeIfLicensed => "licensed guests included",
    }
}

/// The table of mappings, the add form and a confirmed removal per mapping.
pub(super) async fn sections(
    state: &AppState,
    scope: &Scope,
    mapping: &MappingConfig,
    action: &str,
    modify: bool,
) -> Result<Vec<Section>, UiError> {
    let names = names(state, scope).await?;
    let rows: Vec<Vec<Cell>> = mapping
        .site_mappings
        .iter()
        .map(|m| {
            let mut who = Vec::new();
            if let Some(g) = &m.group {
                who.push(format!(
                    "members of {}{}",
                    g.name,
                    if g.nested { " (and nested groups)" } else { "" }
                ));
            }
            if let Some(f) = &m.filter {
                who.push(format!("where {f}"));
            }
            if let Some(t) = &m.tenant_id {
                who.push(format!("of tenant {t}"));
            }
            if who.is_empty() {
                who.push("everyone".into());
            }
            who.push(external_text(m.external_users).into());
            vec![
                cell(m.sequence.to_string()),
                cell(&m.name),
                cell(who.join(", ")),
                cell(target_text(&m.target, &names)),
            ]
        })
        .collect();
    let mut table = Section::titled("Site mappings")
        .text("Evaluated by sequence, lowest first; the first that matches a user decides their site.")
        .table(&["Sequence", "Name", "Who", "Where they go"], rows);
    table.id = "site-mappings".into();
    if !modify {
        return Ok(vec![table]);
    }
    for m in &mapping.site_mappings {
        let mut remove = destructive(
            form(
                &format!("remove-site-mapping-{}", m.id),
                action,
                &format!("Remove “{}”", m.name),
                vec![hidden("op", "remove"), hidden("mapping", m.id.to_string())],
            ),
            &format!(
                "Yes, remove “{}”: the people it matched go by the next mapping (or are not imported)",
                m.name
            ),
        );
        remove.class = "inline";
        table = table.form(remove);
    }
    let add = Section::titled("Add a site mapping").form(form(
        "add-site",
        action,
        "Add site mapping",
        vec![
            hidden("op", "add"),
            Field {
                required: true,
                ..text_field("name", "Name", "")
            },
            number_field("sequence", "Sequence", 10, "-100000", "100000", "1"),
            select(
                "target",
                "Where the users go",
                "existing_site",
                &[
                    ("existing_site", "To one desk site"),
                    (
                        "customer_by_field",
                        "To a site per value of a property, made when missing",
                    ),
                    ("agent", "Imported as agents"),
                ],
            ),
            Field {
                help: "For “to one desk site”.".into(),
                ..select_of("site_id", "Desk site", "", names.sites.clone())
            },
            Field {
                help: "For “a site per value”: the customer the sites are under.".into(),
                ..select_of("customer_id", "Desk customer", "", names.customers.clone())
            },
            Field {
                help: "For “a site per value”: a Microsoft Entra user property, e.g. officeLocation; each \
                       value names a site (a user without one does not match)."
                    .into(),
                ..text_field("by", "Property that names the site", "")
            },
            select(
                "licence_type",
                "Agents' licence",
                "no_change",
                &[
                    ("no_change", "Leave as it is (new agents concurrent)"),
                    ("named", "Named"),
                    ("concurrent", "Concurrent"),
                ],
            ),
            Field {
                help: "Optional: only members of this Entra group (its exact display name).".into(),
                ..text_field("group", "Group", "")
            },
            checkbox("nested", "Members of groups nested in it count too", false),
            Field {
                help: "Optional OData filter over the user's properties, e.g. officeLocation eq 'London'."
                    .into(),
                ..text_field("filter", "Filter", "")
            },
            select(
                "external_users",
                "Guests",
                "exclude",
                &[
                    ("exclude", "Never match"),
                    ("include", "Match"),
                    ("include_if_licensed", "Match when they hold a licence"),
                ],
            ),
        ],
    ));
    Ok(vec![table, add])
}

/// Applies the add form or a confirmed removal to `mapping`.
pub(super) fn apply(mapping: &mut MappingConfig, op: &str, f: &Fields) -> Result<(), ApiError> {
    match op {
        "add" => {
            let name = field(f, "name").trim().to_owned();
            if name.is_empty() {
                return Err(ApiError::invalid("Name: give the mapping a name."));
            }
            let sequence = match field(f, "sequence").trim() {
                "" => 50,
                s => s
                    .parse::<i32>()
                    .ok()
                    .filter(|n| n.abs() <= 100_000)
                    .ok_or_else(|| {
                        ApiError::invalid("Sequence must be a whole number from -100000 to 100000.")
                    })?,
            };
            let id_of = |name: &str, what: &str| {
                field(f, name)
                    .trim()
                    .parse::<i64>()
                    .map(RecordId)
                    .map_err(|_| ApiError::invalid(format!("{what}: choose one from the list.")))
            };
            let target = match field(f, "target") {
                "" | "existing_site" => SiteTarget::ExistingSite {
                    site_id: id_of("site_id", "Desk site")?,
                },
                "customer_by_field" => {
                    let by = field(f, "by").trim();
                    if by.is_empty() {
                        return Err(ApiError::invalid(
                            "Property that names the site: give a user property, e.g. officeLocation.",
                        ));
                    }
                    SiteTarget::CustomerByField {
                        customer_id: id_of("customer_id", "Desk customer")?,
                        field: by.to_owned(),
                    }
                }
                "agent" => SiteTarget::Agent {
                    licence_type: match field(f, "licence_type") {
                        "named" => LicenceTypeChoice::Named,
                        "concurrent" => LicenceTypeChoice::Concurrent,
                        "no_change" | "" => LicenceTypeChoice::NoChange,
                        _ => return Err(ApiError::invalid("Agents' licence: choose one from the list.")),
                    },
                    creation_type: None,
                },
                _ => return Err(ApiError::invalid("Where the users go: choose one from the list.")),
            };
            let group = field(f, "group").trim();
            let filter = field(f, "filter").trim();
            let id = mapping.site_mappings.iter().map(|m| m.id).max().unwrap_or(0) + 1;
            mapping.site_mappings.push(SiteMapping {
                id,
                name,
                sequence,
                target,
                group: (!group.is_empty()).then(|| GroupFilter {
                    name: group.to_owned(),
                    nested: field(f, "nested") == "on",
                }),
                filter: (!filter.is_empty()).then(|| filter.to_owned()),
                external_users: match field(f, "external_users") {
                    "" | "exclude" => ExternalUsers::Exclude,
                    "include" => ExternalUsers::Include,
                    "include_if_licensed" => ExternalUsers::IncludeIfLicensed,
                    _ => return Err(ApiError::invalid("Guests: choose one from the list.")),
                },
                ..SiteMapping::default()
            });
        }
        "remove" => {
            let id = field(f, "mapping").trim();
            let at = mapping
                .site_mappings
                .iter()
                .position(|m| m.id.to_string() == id)
                .ok_or_else(|| ApiError::invalid("That site mapping is no longer there: reload the page."))?;
            confirmed(f, &format!("the removal of “{}”", mapping.site_mappings[at].name))?;
            mapping.site_mappings.remove(at);
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}
