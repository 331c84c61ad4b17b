//! The Tenants tab: every customer tenant the connection found, the desk customer it goes to (or
//! "do not import"), and its own licence import type and relationship type (GDAP or DAP).
//!
//! Assigning a tenant to another desk customer moves the tenant's ownership to that customer and
//! gives it the customer's catch-all site mapping (the guide's "automatically create a site
//! mapping whenever an Azure tenant is assigned to a customer"); the tenant's earlier site
//! mappings, which pointed at the old customer's sites, are dropped with it (as they are when it
//! is no longer imported).

use std::collections::BTreeMap;

use deskbridge_core::{RecordId, SharedClock};
use deskbridge_source::settings::{Required, Setting, SettingKind, SettingPart};
use deskbridge_source::{BoxFuture, SyncError, TenantCustomer, TenantEntry, TenantTable, TenantUpdate};
use deskbridge_store::{Connection, Entity, Store, StoreTx, WriteContext};
use serde_json::{Value, json};

use crate::settings::{
    CspSettings, CspTenant, LICENCE_IMPORT, LicenceImport, RELATIONSHIP_TYPE, RelationshipType,
};

/// What a tenant may override.
const OVERRIDABLE: &[Setting] = &[
    Setting {
        key: "licence_import",
        label: "Licence import type",
        help: "This tenant's licence import type; left empty, the connection's.",
        kind: SettingKind::Choice {
            options: LICENCE_IMPORT,
        },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
    Setting {
        key: "relationship_type",
        label: "Relationship type",
        help: "How this tenant is read: GDAP (admin consent for the GDAP app in the tenant) or DAP (delegated \
               admin privileges, retired by Microsoft); left empty, the connection's type for new tenants.",
        kind: SettingKind::Choice {
            options: RELATIONSHIP_TYPE,
        },
        required: Required::Optional,
        part: SettingPart::Sync,
    },
];

/// The CSP connector's [`TenantTable`].
pub(crate) struct CspTenants;

async fn customer_name(tx: &mut StoreTx, customer: RecordId) -> Result<Option<String>, SyncError> {
    Ok(tx
        .get(Entity::Customer, customer)
        .await?
        .and_then(|c| c.text("name").map(str::to_owned)))
}

pub(crate) async fn entry(tx: &mut StoreTx, tenant: &CspTenant) -> Result<TenantEntry, SyncError> {
    let customer_name = match tenant.customer_id {
        Some(customer) => customer_name(tx, customer).await?,
        None => None,
    };
    let mut overrides = BTreeMap::new();
    if let Some(import) = tenant.licence_import {
        overrides.insert("licence_import".to_owned(), import.as_str().to_owned());
    }
    if let Some(kind) = tenant.relationship_type {
        overrides.insert("relationship_type".to_owned(), kind.as_str().to_owned());
    }
    Ok(TenantEntry {
        tenant_id: tenant.tenant_id.clone(),
        name: tenant.name.clone(),
        customer_id: tenant.customer_id,
        customer_name,
        overrides,
        consented_at: tenant.consented_at.map(|t| t.to_string()),
        relationship: tenant.relationship.map(|r| r.label().to_owned()),
    })
}

/// Takes `tenant_id` from the customer that owns it (this connection assigned it there) and
/// gives it to `customer`, refusing a customer that does not exist.
async fn move_tenant(tx: &mut StoreTx, tenant_id: &str, customer: RecordId) -> Result<String, SyncError> {
    let name = customer_name(tx, customer)
        .await?
        .ok_or_else(|| SyncError::InvalidSettings(format!("there is no desk customer {customer}")))?;
    if let Some(owner) = tx.customer_of_tenant(tenant_id).await?
        && owner != customer
        && let Some(record) = tx.get(Entity::Customer, owner).await?
    {
        let kept: Vec<Value> = record
            .get("tenant_ids")
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| !t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(tenant_id)))
            .cloned()
            .collect();
        tx.update(
            Entity::Customer,
            owner,
            &[("tenant_ids".to_owned(), json!(kept))].into_iter().collect(),
        )
        .await?;
    }
    deskbridge_source::desk::add_tenant(tx, customer, tenant_id).await?;
    Ok(name)
}

impl CspTenants {
    async fn list(&self, store: &Store, connection: &Connection) -> Result<Vec<TenantEntry>, SyncError> {
        let settings = CspSettings::of(connection)?;
        let mut tx = store.read().await?;
        let mut out = Vec::with_capacity(settings.tenants.len());
        for tenant in &settings.tenants {
            out.push(entry(&mut tx, tenant).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn set(
        &self,
        store: &Store,
        connection: &Connection,
        tenant_id: &str,
        update: &TenantUpdate,
    ) -> Result<TenantEntry, SyncError> {
        let mut tx = store.begin(WriteContext::manual()).await?;
        // The settings as stored now: a sync may have found tenants since the caller read them.
        let current = tx
            .connection(connection.id)
            .await?
            .ok_or_else(|| SyncError::UnknownConnection(connection.name.clone()))?;
        let mut settings = CspSettings::of(&current)?;
        let index = settings
            .tenants
            .iter()
            .position(|t| t.tenant_id.eq_ignore_ascii_case(tenant_id))
            .ok_or_else(|| {
                SyncError::InvalidSettings(format!(
                    "connection {:?} has no customer tenant {tenant_id}: a sync lists the partner's customers \
                     (deskbridge sync --connection {:?} --plan finds new ones)",
                    connection.name, connection.name
                ))
            })?;
        let tenant = settings.tenants[index].tenant_id.clone();
        for (key, value) in &update.overrides {
            match (key.as_str(), value.as_deref()) {
                ("licence_import", None) => settings.tenants[index].licence_import = None,
                ("licence_import", Some(text)) => {
                    let import = LicenceImport::parse(text).ok_or_else(|| {
                        SyncError::InvalidSettings(format!(
                            "Licence import type: {text:?} is not one of subscribed_skus, subscriptions, \
                             subscriptions_and_skus (or empty for the connection's)"
                        ))
                    })?;
                    settings.tenants[index].licence_import = Some(import);
                }
                ("relationship_type", None) => settings.tenants[index].relationship_type = None,
                ("relationship_type", Some(text)) => {
                    let kind = RelationshipType::parse(text).ok_or_else(|| {
                        SyncError::InvalidSettings(format!(
                            "Relationship type: {text:?} is not one of gdap, dap (or empty for the connection's)"
                        ))
                    })?;
                    settings.tenants[index].relationship_type = Some(kind);
                }
                (other, _) => {
                    return Err(SyncError::InvalidSettings(format!(
                        "{other:?} is not a setting a tenant may override; it may override licence_import and \
                         relationship_type"
                    )));
                }
            }
        }
        match update.customer {
            None => {}
            Some(TenantCustomer::DoNotImport) => {
                // Its site mappings point at its customer's sites: they go with it (assigning it
                // again generates the catch-all one).
                settings.tenants[index].customer_id = None;
                settings.mapping.site_mappings.retain(|m| {
                    !m.tenant_id
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(&tenant))
                });
            }
            Some(TenantCustomer::Customer(customer))
                if settings.tenants[index].customer_id != Some(customer) =>
            {
                let name = move_tenant(&mut tx, &tenant, customer).await?;
                let main_site = tx.main_site(customer).await?.ok_or_else(|| {
                    SyncError::InvalidSettings(format!("the desk customer {name:?} has no main site"))
                })?;
                settings.tenants[index].customer_id = Some(customer);
                settings.mapping.site_mappings.retain(|m| {
                    !m.tenant_id
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(&tenant))
                });
                settings.mapping.add_tenant_mapping(&tenant, &name, main_site);
            }
            Some(TenantCustomer::Customer(_)) => {}
        }
        tx.update_connection_config(connection.id, &settings.to_config(&connection.name)?)
            .await?;
        let done = entry(&mut tx, &settings.tenants[index]).await?;
        tx.commit().await?;
        Ok(done)
    }
}

impl CspTenants {
    async fn generate(&self, store: &Store, connection: &Connection) -> Result<usize, SyncError> {
        let mut tx = store.begin(WriteContext::manual()).await?;
        let current = tx
            .connection(connection.id)
            .await?
            .ok_or_else(|| SyncError::UnknownConnection(connection.name.clone()))?;
        let mut settings = CspSettings::of(&current)?;
        let mut added = 0;
        for tenant in settings.tenants.clone() {
            let Some(customer) = tenant.customer_id else {
                continue;
            };
            let has_one = settings.mapping.site_mappings.iter().any(|m| {
                m.tenant_id
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(&tenant.tenant_id))
            });
            if has_one {
                continue;
            }
            let name = customer_name(&mut tx, customer)
                .await?
                .unwrap_or_else(|| format!("customer {customer}"));
            let main_site = tx.main_site(customer).await?.ok_or_else(|| {
                SyncError::InvalidSettings(format!("the desk customer {name:?} has no main site"))
            })?;
            settings
                .mapping
                .add_tenant_mapping(&tenant.tenant_id, &name, main_site);
            added += 1;
        }
        if added > 0 {
            tx.update_connection_config(connection.id, &settings.to_config(&connection.name)?)
                .await?;
        }
        tx.commit().await?;
        Ok(added)
    }
}

impl TenantTable for CspTenants {
    fn overridable(&self) -> &'static [Setting] {
        OVERRIDABLE
    }

    fn generate_mappings<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<usize, SyncError>> {
        Box::pin(self.generate(store, connection))
    }

    fn tenants<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Vec<TenantEntry>, SyncError>> {
        Box::pin(self.list(store, connection))
    }

    fn set_tenant<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        tenant_id: &'a str,
        update: &'a TenantUpdate,
    ) -> BoxFuture<'a, Result<TenantEntry, SyncError>> {
        Box::pin(self.set(store, connection, tenant_id, update))
    }

    fn begin_consent<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        tenant_id: &'a str,
        redirect_uri: &'a str,
        clock: &'a SharedClock,
    ) -> BoxFuture<'a, Result<String, SyncError>> {
        Box::pin(crate::consent::begin(
            store,
            connection,
            tenant_id,
            redirect_uri,
            clock,
        ))
    }

    fn complete_consent<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect: &'a str,
        clock: &'a SharedClock,
    ) -> BoxFuture<'a, Result<TenantEntry, SyncError>> {
        Box::pin(crate::consent::complete(store, connection, redirect, clock))
    }
}
