//! An asset run's steps: managed devices → desk assets. Per tenant the asset types and the
//! customer's sites are loaded once; each page of devices loads only the desk assets and users
//! its devices can match; the tenant's end loads the assets the connection imported from it, so
//! that a complete read can give the deletion status to those no longer in the source.
//!
//! The circuit breaker applies as it does to users: a tenant's end that would give the deletion
//! status to more than the configured share of its assets (and more than the floor) is held.

use std::collections::BTreeSet;

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{
    AssetDesk, AssetLookups, AssetPlanner, CircuitBreaker, Completeness, DeskAsset, DeskRecord, DeskSite,
    NamedRecord, Plan, RecordLocks, SourceDevice, SourceIdentity,
};
use deskbridge_source::desk::{id_of, listed};
use deskbridge_store::{Entity, Record, RecordScope, StoreTx};

use crate::SyncError;

/// The asset side of a run's steps.
pub(crate) struct AssetRun<'r> {
    planner: AssetPlanner<'r>,
    connection: ConnectionId,
    match_field: String,
    deleted_status: String,
    default_site: Option<RecordId>,
    breaker: CircuitBreaker,
    /// Tenants an administrator approved: the breaker lets their deletions through.
    approved: BTreeSet<String>,
    /// The open tenant: its customer, and the asset types and sites its pages plan against.
    open: Option<OpenTenant>,
}

struct OpenTenant {
    customer: Option<RecordId>,
    asset_types: Vec<NamedRecord>,
    sites: Vec<DeskSite>,
}

impl<'r> AssetRun<'r> {
    pub(crate) fn new(
        planner: AssetPlanner<'r>,
        connection: ConnectionId,
        mapping: &deskbridge_mapping::MappingConfig,
        approved: BTreeSet<String>,
    ) -> Self {
        let assets = mapping.assets.clone().unwrap_or_default();
        Self {
            planner,
            connection,
            match_field: assets.match_field,
            deleted_status: assets.deleted_status,
            default_site: assets.default_site,
            breaker: mapping.circuit_breaker.clone(),
            approved,
            open: None,
        }
    }

    /// A tenant's read begins: its reference data is loaded.
    pub(crate) async fn begin(
        &mut self,
        tx: &mut StoreTx,
        tenant_id: &str,
        customer: Option<RecordId>,
    ) -> Result<(), SyncError> {
        let asset_types = listed(tx, Entity::AssetType, None)
            .await?
            .into_iter()
            .filter_map(|r| {
                Some(NamedRecord {
                    id: r.id,
                    name: r.text("name")?.to_owned(),
                })
            })
            .collect();
        let sites = match customer {
            Some(customer) => {
                listed(tx, Entity::Site, Some(&RecordScope::OfCustomers(vec![customer]))).await?
            }
            None => listed(tx, Entity::Site, None).await?,
        };
        let mut sites: Vec<DeskSite> = sites.into_iter().filter_map(desk_site).collect();
        // The default site is offered even when it is another customer's: the planner (and the
        // check of the mappings' targets) decide whether it may be used.
        if let Some(site) = self.default_site.filter(|s| !sites.iter().any(|d| d.id == *s)) {
            let extra = listed(tx, Entity::Site, Some(&RecordScope::Ids(vec![site]))).await?;
            sites.extend(extra.into_iter().filter_map(desk_site));
        }
        self.planner.begin_tenant(tenant_id, customer);
        self.open = Some(OpenTenant {
            customer,
            asset_types,
            sites,
        });
        Ok(())
    }

    /// Plans a page of devices against the desk records it can match.
    pub(crate) async fn page(
        &mut self,
        tx: &mut StoreTx,
        tenant_id: &str,
        devices: &[SourceDevice],
    ) -> Result<Plan, SyncError> {
        let Some(open) = &self.open else {
            return Err(SyncError::Internal(format!(
                "the source sent devices of tenant {tenant_id} before beginning it"
            )));
        };
        let lookups = self.planner.lookups(devices);
        let assets = load_assets(tx, self.connection, open.customer, &self.match_field, &lookups).await?;
        let users = load_users(tx, self.connection, tenant_id, &lookups).await?;
        let desk = AssetDesk {
            assets,
            users,
            asset_types: open.asset_types.clone(),
            sites: open.sites.clone(),
        };
        Ok(self.planner.plan_page(devices, &desk))
    }

    /// The tenant's end: deletion statuses for what a complete read did not find, held by the
    /// circuit breaker when there are too many.
    pub(crate) async fn end(
        &mut self,
        tx: &mut StoreTx,
        tenant_id: &str,
        completeness: Completeness,
    ) -> Result<Plan, SyncError> {
        self.open = None;
        let scope = RecordScope::ImportedFromTenant {
            connection: self.connection,
            tenant_id: tenant_id.to_owned(),
        };
        let imported: Vec<DeskAsset> = listed(tx, Entity::Asset, Some(&scope))
            .await?
            .into_iter()
            .map(desk_asset)
            .collect();
        let mut plan = self.planner.finish_tenant(completeness, &imported);
        if !self.approved.contains(tenant_id) {
            let live = imported
                .iter()
                .filter(|a| {
                    a.fields
                        .get("status")
                        .and_then(|s| s.as_str())
                        .is_none_or(|s| !s.eq_ignore_ascii_case(&self.deleted_status))
                })
                .count();
            hold_if_tripped(&mut plan, &self.breaker, tenant_id, live);
        }
        Ok(plan)
    }
}

/// Holds a tenant's deletion statuses beyond the breaker's share of its imported assets.
fn hold_if_tripped(plan: &mut Plan, breaker: &CircuitBreaker, tenant_id: &str, imported: usize) {
    crate::breaker::hold_removals(plan, breaker, tenant_id, imported, |deletions| {
        format!(
            "{deletions} of the tenant's {imported} assets would get the deletion status, more than {}% (and more \
             than {}): approve the run to apply them",
            breaker.max_deactivate_percent, breaker.floor
        )
    });
}

fn desk_site(s: Record) -> Option<DeskSite> {
    Some(DeskSite {
        id: s.id,
        customer_id: id_of(s.get("customer_id"))?,
        name: s.text("name")?.to_owned(),
        is_main: s.get("is_main").as_bool().unwrap_or(false),
        fields: s.fields.clone(),
    })
}

fn desk_asset(record: Record) -> DeskAsset {
    let customer_id = id_of(record.get("customer_id"));
    let tenant_id = record.text("tenant_id").map(str::to_owned);
    DeskAsset {
        id: record.id,
        source: record.source.map(|s| SourceIdentity {
            connection_id: s.connection_id,
            external_id: s.external_id,
        }),
        customer_id,
        tenant_id,
        fields: record.fields.into_iter().collect(),
    }
}

/// The desk assets a page's devices can match: the connection's own by device id, and the
/// customer's by the matching field's value (a custom matching field cannot be looked up by
/// index, so then every asset of the customer is read).
async fn load_assets(
    tx: &mut StoreTx,
    connection: ConnectionId,
    customer: Option<RecordId>,
    match_field: &str,
    lookups: &AssetLookups,
) -> Result<Vec<DeskAsset>, SyncError> {
    let indexed = matches!(match_field, "serial_number" | "name");
    let column = indexed.then(|| {
        (
            match_field.to_owned(),
            lookups.match_values.iter().cloned().collect(),
        )
    });
    let scope = RecordScope::AssetLookup {
        connection,
        customer,
        external_ids: lookups.source_ids.iter().cloned().collect(),
        column,
    };
    let mut assets: Vec<DeskAsset> = listed(tx, Entity::Asset, Some(&scope))
        .await?
        .into_iter()
        .map(desk_asset)
        .collect();
    if !indexed && !lookups.match_values.is_empty() {
        let every = match customer {
            Some(customer) => {
                listed(tx, Entity::Asset, Some(&RecordScope::OfCustomers(vec![customer]))).await?
            }
            None => listed(tx, Entity::Asset, None).await?,
        };
        let known: BTreeSet<RecordId> = assets.iter().map(|a| a.id).collect();
        assets.extend(
            every
                .into_iter()
                .filter(|r| !known.contains(&r.id))
                .map(desk_asset),
        );
    }
    Ok(assets)
}

/// The desk users a page's devices can be linked to, found by index within the connection's
/// reach for the tenant.
async fn load_users(
    tx: &mut StoreTx,
    connection: ConnectionId,
    tenant_id: &str,
    lookups: &AssetLookups,
) -> Result<Vec<DeskRecord>, SyncError> {
    let logins: Vec<String> = lookups.user_logins.iter().cloned().collect();
    let emails: Vec<String> = lookups
        .user_emails
        .iter()
        .chain(&lookups.user_logins)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let scope = RecordScope::Lookup {
        connection,
        tenant_id: tenant_id.to_owned(),
        external_ids: lookups.user_ids.iter().cloned().collect(),
        by_column: vec![("network_login".to_owned(), logins), ("email".to_owned(), emails)],
    };
    Ok(listed(tx, Entity::User, Some(&scope))
        .await?
        .into_iter()
        .map(|record| DeskRecord {
            id: record.id,
            source: record.source.map(|s| SourceIdentity {
                connection_id: s.connection_id,
                external_id: s.external_id,
            }),
            fields: record.fields.into_iter().collect(),
            locks: RecordLocks::default(),
        })
        .collect())
}
