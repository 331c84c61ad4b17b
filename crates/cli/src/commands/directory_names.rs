//! What `deskbridge directory …` needs besides the records themselves: the names of the customer
//! and site each record belongs to (people read "Contoso / Main", not "site 12"), and the
//! `--customer NAME` / `--site NAME` filters, which go through those names. Customers and sites
//! are read once (they are few beside users); a user an agent points at is read when met.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ErrorCode, RecordId};
use deskbridge_store::{Entity, StoreTx};
use serde_json::{Map, Value};

use crate::error::CliError;

/// Page size for reading customers and sites.
const PAGE: u32 = 500;

/// How many close names an unknown name's error offers.
const SUGGESTIONS: usize = 5;

/// The customers and sites of the store, by id.
pub struct Names {
    customers: BTreeMap<i64, String>,
    /// A site's name and customer.
    sites: BTreeMap<i64, (String, i64)>,
    /// Each Azure tenant id (lowercase) of a customer.
    tenants: BTreeMap<String, i64>,
    /// The site of each user met so far (agents point at users).
    user_sites: BTreeMap<i64, Option<i64>>,
}

/// The customer and site a row belongs to, as far as it says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner {
    pub customer: Option<i64>,
    pub site: Option<i64>,
}

impl Names {
    pub async fn load(tx: &mut StoreTx) -> anyhow::Result<Self> {
        let mut names = Self {
            customers: BTreeMap::new(),
            sites: BTreeMap::new(),
            tenants: BTreeMap::new(),
            user_sites: BTreeMap::new(),
        };
        let mut after = None;
        loop {
            let page = tx.list(Entity::Customer, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for customer in &page {
                names.customers.insert(
                    customer.id.0,
                    customer.text("name").unwrap_or_default().to_owned(),
                );
                for tenant in customer.get("tenant_ids").as_array().into_iter().flatten() {
                    if let Some(tenant) = tenant.as_str() {
                        names.tenants.insert(tenant.to_lowercase(), customer.id.0);
                    }
                }
            }
        }
        let mut after = None;
        loop {
            let page = tx.list_columns(Entity::Site, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for site in &page {
                let Some(customer) = site.get("customer_id").as_i64() else {
                    continue;
                };
                names.sites.insert(
                    site.id.0,
                    (site.text("name").unwrap_or_default().to_owned(), customer),
                );
            }
        }
        Ok(names)
    }

    /// The customers named `name` (ignoring case; several customers may share a name), or an
    /// error naming close ones.
    pub fn customers_named(&self, name: &str) -> Result<BTreeSet<i64>, CliError> {
        let wanted = name.trim().to_lowercase();
        let found: BTreeSet<i64> = self
            .customers
            .iter()
            .filter(|(_, n)| n.to_lowercase() == wanted)
            .map(|(id, _)| *id)
            .collect();
        if found.is_empty() {
            return Err(unknown(
                "customer",
                name,
                self.customers.values().map(String::as_str),
                "`deskbridge directory customers` lists them",
            ));
        }
        Ok(found)
    }

    /// The sites named `name` (ignoring case), of `customers` when given, or an error naming
    /// close ones.
    pub fn sites_named(
        &self,
        name: &str,
        customers: Option<&BTreeSet<i64>>,
    ) -> Result<BTreeSet<i64>, CliError> {
        let wanted = name.trim().to_lowercase();
        let candidates: Vec<(i64, &str)> = self
            .sites
            .iter()
            .filter(|(_, (_, customer))| customers.is_none_or(|c| c.contains(customer)))
            .map(|(id, (n, _))| (*id, n.as_str()))
            .collect();
        let found: BTreeSet<i64> = candidates
            .iter()
            .filter(|(_, n)| n.to_lowercase() == wanted)
            .map(|(id, _)| *id)
            .collect();
        if found.is_empty() {
            let hint = if customers.is_some() {
                "`deskbridge directory sites --customer NAME` lists that customer's sites"
            } else {
                "`deskbridge directory sites` lists them"
            };
            let what = if customers.is_some() {
                "site of that customer"
            } else {
                "site"
            };
            return Err(unknown(what, name, candidates.iter().map(|(_, n)| *n), hint));
        }
        Ok(found)
    }

    /// A customer's name (`#id (gone)` for a dangling id).
    pub fn customer(&self, id: i64) -> String {
        self.customers
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id} (gone)"))
    }

    /// A site's name (`#id (gone)` for a dangling id).
    pub fn site(&self, id: i64) -> String {
        self.sites
            .get(&id)
            .map_or_else(|| format!("#{id} (gone)"), |(name, _)| name.clone())
    }

    fn customer_of_site(&self, site: Option<i64>) -> Option<i64> {
        site.and_then(|s| self.sites.get(&s))
            .map(|(_, customer)| *customer)
    }

    /// Whom a record of `entity` belongs to: its own customer and site, or its site's customer;
    /// an agent through the user it is (or, without one, its Azure tenant's customer).
    pub async fn owner(
        &mut self,
        tx: &mut StoreTx,
        entity: Entity,
        record: &Map<String, Value>,
    ) -> anyhow::Result<Owner> {
        let id = |field: &str| record.get(field).and_then(Value::as_i64);
        Ok(match entity {
            Entity::Customer => Owner {
                customer: id("id"),
                site: None,
            },
            Entity::Site => Owner {
                customer: id("customer_id"),
                site: id("id"),
            },
            Entity::User => Owner {
                customer: self.customer_of_site(id("site_id")),
                site: id("site_id"),
            },
            Entity::Asset => Owner {
                customer: id("customer_id").or_else(|| self.customer_of_site(id("site_id"))),
                site: id("site_id"),
            },
            Entity::Agent => {
                let site = match id("user_id") {
                    Some(user) => self.user_site(tx, user).await?,
                    None => None,
                };
                let tenant = record
                    .get("azure_tenant_id")
                    .and_then(Value::as_str)
                    .and_then(|t| self.tenants.get(&t.to_lowercase()).copied());
                Owner {
                    customer: self.customer_of_site(site).or(tenant),
                    site,
                }
            }
            _ => Owner {
                customer: id("customer_id"),
                site: None,
            },
        })
    }

    async fn user_site(&mut self, tx: &mut StoreTx, user: i64) -> anyhow::Result<Option<i64>> {
        if let Some(site) = self.user_sites.get(&user) {
            return Ok(*site);
        }
        let site = tx
            .get(Entity::User, RecordId(user))
            .await?
            .and_then(|u| u.get("site_id").as_i64());
        self.user_sites.insert(user, site);
        Ok(site)
    }
}

/// "there is no customer "Contso"; did you mean "Contoso"? (…)".
fn unknown<'a>(what: &str, name: &str, candidates: impl Iterator<Item = &'a str>, hint: &str) -> CliError {
    let wanted = name.trim().to_lowercase();
    // Names containing what was typed, or with a word (or the whole) within two edits of it:
    // "contso" finds "Contoso Ltd".
    let near = |text: &str| deskbridge_mapping::closest(&wanted, std::iter::once(text)).is_some();
    let mut close: Vec<&str> = candidates
        .filter(|c| {
            let lower = c.to_lowercase();
            !wanted.is_empty()
                && (lower.contains(&wanted) || near(&lower) || lower.split_whitespace().any(near))
        })
        .collect();
    close.sort_unstable();
    close.dedup();
    close.truncate(SUGGESTIONS);
    let suggestion = match close.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one:?}?"),
        many => format!(
            "; did you mean one of {}?",
            many.iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    CliError::new(
        ErrorCode::NotFound,
        format!("there is no {what} named {:?}{suggestion} ({hint})", name.trim()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            customers: BTreeMap::from([
                (1, "Contoso".to_owned()),
                (2, "Fabrikam".to_owned()),
                (3, "Contoso Retail".to_owned()),
            ]),
            sites: BTreeMap::from([(10, ("Main".to_owned(), 1)), (11, ("Main".to_owned(), 2))]),
            tenants: BTreeMap::new(),
            user_sites: BTreeMap::new(),
        }
    }

    #[test]
    fn names_match_ignoring_case_and_unknown_ones_name_close_matches() {
        let n = names();
        assert_eq!(n.customers_named("contoso").unwrap(), BTreeSet::from([1]));
        let e = n.customers_named("Contos").unwrap_err();
        assert!(
            e.message
                .contains(r#"did you mean one of "Contoso", "Contoso Retail"?"#),
            "{}",
            e.message
        );
        let e = n.customers_named("Fabrikan").unwrap_err();
        assert!(e.message.contains(r#"did you mean "Fabrikam"?"#), "{}", e.message);
        let e = n.customers_named("contso").unwrap_err();
        assert!(
            e.message
                .contains(r#"did you mean one of "Contoso", "Contoso Retail"?"#),
            "{}",
            e.message
        );
        let e = n.customers_named("Northwind").unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(!e.message.contains("did you mean"), "{}", e.message);
        assert_eq!(n.sites_named("main", None).unwrap(), BTreeSet::from([10, 11]));
        let only = BTreeSet::from([2]);
        assert_eq!(n.sites_named("MAIN", Some(&only)).unwrap(), BTreeSet::from([11]));
    }
}
