//! Removing a connection: its cursors, runs, schedules and sealed credentials go with it, the
//! desk records it imported stay, and a desk customer it created for itself (an Entra or
//! Dynamics 365 connection's customer, made when no customer had its name) goes too when it
//! holds nothing else. A customer that still holds something is kept, and the removal says what
//! it holds. Everything happens in one journalled transaction.

use deskbridge_core::RecordId;
use deskbridge_source::SyncError;
use deskbridge_store::{Connection, Entity, StoreTx, WriteContext};
use serde::Serialize;
use serde_json::Value;

/// What removing a connection did to the desk customers it had created.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ConnectionRemoval {
    /// The names of the customers removed with it (they held nothing else).
    pub removed_customers: Vec<String>,
    /// The customers it had created that were kept, with what they still hold.
    pub kept_customers: Vec<KeptCustomer>,
}

/// A customer kept when its connection was removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeptCustomer {
    pub name: String,
    /// What it still holds, for people ("12 users", "the connection \"B\"").
    pub holds: Vec<String>,
}

impl ConnectionRemoval {
    /// One line per customer: removed, or kept and why.
    pub fn lines(&self) -> Vec<String> {
        let removed = self
            .removed_customers
            .iter()
            .map(|name| format!("removed the desk customer {name:?}, which the connection had created and which held nothing else"));
        let kept = self.kept_customers.iter().map(|k| {
            format!(
                "kept the desk customer {:?}, which the connection had created: it still holds {}",
                k.name,
                k.holds.join(", ")
            )
        });
        removed.chain(kept).collect()
    }
}

/// Removes `connection` and, in the same transaction, each customer it created that holds
/// nothing else.
pub async fn remove_connection(
    store: &deskbridge_store::Store,
    connection: &Connection,
) -> Result<ConnectionRemoval, SyncError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let mut removal = ConnectionRemoval::default();
    let others: Vec<Connection> = tx
        .connections()
        .await?
        .into_iter()
        .filter(|c| c.id != connection.id)
        .collect();
    for customer in tx.created_customers(connection.id).await? {
        let Some(record) = tx.get(Entity::Customer, customer).await? else {
            continue;
        };
        let name = record
            .text("name")
            .map_or_else(|| format!("#{customer}"), str::to_owned);
        let mut holds: Vec<String> = tx
            .customer_holdings(customer)
            .await?
            .into_iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let main_site = tx.main_site(customer).await?;
        holds.extend(
            others
                .iter()
                .filter(|c| {
                    refers_to(&c.config, "customer_id", customer)
                        || main_site.is_some_and(|site| refers_to(&c.config, "site_id", site))
                })
                .map(|c| format!("the connection {:?}", c.name)),
        );
        if holds.is_empty() {
            delete_customer(&mut tx, customer).await?;
            removal.removed_customers.push(name);
        } else {
            removal.kept_customers.push(KeptCustomer { name, holds });
        }
    }
    tx.delete_connection(connection.id).await?;
    tx.commit().await?;
    Ok(removal)
}

/// Deletes a customer holding nothing but its main site, the site first, each journalled.
async fn delete_customer(tx: &mut StoreTx, customer: RecordId) -> Result<(), SyncError> {
    if let Some(main_site) = tx.main_site(customer).await? {
        tx.delete(Entity::Site, main_site).await?;
    }
    tx.delete(Entity::Customer, customer).await?;
    Ok(())
}

/// Whether a connection's settings send records to the record `id`: `key` (`customer_id`,
/// `site_id`) with that value anywhere in them (the connection's own customer, a partner tenant
/// assigned to it, a site mapping's target).
fn refers_to(config: &Value, key: &str, id: RecordId) -> bool {
    match config {
        Value::Object(map) => map
            .iter()
            .any(|(k, value)| (k == key && value.as_i64() == Some(id.0)) || refers_to(value, key, id)),
        Value::Array(items) => items.iter().any(|v| refers_to(v, key, id)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_id_anywhere_in_the_settings_refers_to_the_customer() {
        let config = serde_json::json!({
            "customer_id": 3,
            "tenants": [{ "tenant_id": "t", "customer_id": 7 }],
        });
        assert!(refers_to(&config, "customer_id", RecordId(3)));
        assert!(refers_to(&config, "customer_id", RecordId(7)));
        assert!(!refers_to(&config, "customer_id", RecordId(4)));
        assert!(!refers_to(&config, "site_id", RecordId(3)));
    }
}
