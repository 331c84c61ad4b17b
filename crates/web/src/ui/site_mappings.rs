//! A connection's site mappings in people's words: the table names each target ("London —
//! Contoso", "a site per officeLocation under Contoso"), the add form picks the target among the
//! connection's customers' sites or has a site made per value of a property, and each mapping
//! can be removed once the removal is confirmed. A target may also match a site field against a
//! user field, or be the main site of the customer a `customers` run imported; for both, people
//! who match no site go to a chosen site or are not imported.

use std::collections::HashMap;

use deskbridge_core::RecordId;
use deskbridge_mapping::{
    ExternalUsers, GroupFilter, LicenceTypeChoice, MappingConfig, SiteMapping, SiteTarget, SourceType,
    UnmatchedSite,
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

/// What the "match a site field" and "imported customer" targets pick among: the site fields a
/// site may be matched on (its name and its custom fields), the user fields this connection's
/// mappings fill, and the source's text properties (a parent row is named by its id, a text).
async fn target_choices(
    state: &AppState,
    scope: &Scope,
    mapping: &MappingConfig,
) -> Result<(Vec<Opt>, Vec<Opt>, Vec<Opt>), UiError> {
    let opt = |value: String, label: String| Opt { value, label };
    let mut tx = state.store.read().await?;
    let custom = tx.custom_field_definitions().await?;
    tx.commit().await?;
    let mut site_fields = vec![opt("name".into(), "Name".into())];
    site_fields.extend(
        custom
            .into_iter()
            .filter(|d| d.entity == "site")
            .map(|d| opt(format!("custom:{}", d.name), format!("{} (custom field)", d.name))),
    );
    let mut user_fields: Vec<Opt> = Vec::new();
    for m in &mapping.user_fields {
        if !user_fields.iter().any(|o| o.value == m.target) {
            user_fields.push(opt(m.target.clone(), m.target.replace('_', " ")));
        }
    }
    let opened = api::source_of(state, &scope.connection)?.open(&scope.connection)?;
    let properties = opened
        .source_properties()
        .into_iter()
        .filter(|(_, t)| *t == SourceType::String)
        .map(|(name, _)| opt(name.clone(), name))
        .collect();
    Ok((site_fields, user_fields, properties))
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
    let (site_fields, user_fields, properties) = target_choices(state, scope, mapping).await?;
    let mut others = vec![Opt {
        value: String::new(),
        label: "(choose one)".into(),
    }];
    others.extend(names.sites.iter().cloned());
    let mut match_customers = vec![Opt {
        value: String::new(),
        label: "(any customer)".into(),
    }];
    match_customers.extend(names.customers.iter().cloned());
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
                    (
                        "match_site_field",
                        "To the site whose field holds the user's value",
                    ),
                    (
                        "imported_customer",
                        "To the main site of the imported customer a property names",
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
            Field {
                help: "For “the site whose field holds the user's value”: the site field compared.".into(),
                ..select_of("site_field", "Site field", "name", site_fields)
            },
            Field {
                help:
                    "For “the site whose field holds the user's value”: a desk user field this connection's \
                       field mappings fill."
                        .into(),
                ..select_of("user_field", "User field", "", user_fields)
            },
            Field {
                help: "For “the site whose field holds the user's value”: whose sites are compared.".into(),
                ..select_of(
                    "match_customer_id",
                    "Customer whose sites match",
                    "",
                    match_customers,
                )
            },
            Field {
                help: "For “the imported customer”: the source property holding the id of the person's \
                       organisation (Dynamics 365: _parentcustomerid_value)."
                    .into(),
                ..select_of(
                    "customer_property",
                    "Property that names the customer",
                    "",
                    properties,
                )
            },
            select(
                "unmatched",
                "Users who match no site",
                "do_not_import",
                &[
                    ("do_not_import", "Are not imported"),
                    ("default_site", "Go to the site below"),
                ],
            ),
            Field {
                help: "For users who match no site, when they go to a site.".into(),
                ..select_of("unmatched_site_id", "Site for the others", "", others)
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
                "match_site_field" => SiteTarget::MatchSiteField {
                    customer_id: match field(f, "match_customer_id").trim() {
                        "" => None,
                        _ => Some(id_of("match_customer_id", "Customer whose sites match")?),
                    },
                    site_field: chosen(f, "site_field", "Site field")?,
                    user_field: chosen(f, "user_field", "User field")?,
                    unmatched: unmatched_of(f)?,
                },
                "imported_customer" => SiteTarget::ImportedCustomer {
                    property: chosen(f, "customer_property", "Property that names the customer")?,
                    unmatched: unmatched_of(f)?,
                },
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

/// A value picked from a select, refused naming the field when none was.
fn chosen(f: &Fields, name: &str, what: &str) -> Result<String, ApiError> {
    match field(f, name).trim() {
        "" => Err(ApiError::invalid(format!("{what}: choose one from the list."))),
        value => Ok(value.to_owned()),
    }
}

/// Where people who match no site go.
fn unmatched_of(f: &Fields) -> Result<UnmatchedSite, ApiError> {
    match field(f, "unmatched") {
        "do_not_import" => Ok(UnmatchedSite::DoNotImport),
        "default_site" => Ok(UnmatchedSite::DefaultSite {
            site_id: field(f, "unmatched_site_id")
                .trim()
                .parse::<i64>()
                .map(RecordId)
                .map_err(|_| ApiError::invalid("Site for the others: choose one from the list."))?,
        }),
        _ => Err(ApiError::invalid(
            "Users who match no site: choose one from the list.",
        )),
    }
}
