//! Reading a tenant's Intune managed devices (`GET /deviceManagement/managedDevices`, Graph v1.0)
//! as the pipeline's asset input. Devices are passed on as Intune sends them (`""` for unknown
//! strings, placeholder dates): the mapping engine decides what counts as a value.
//!
//! Intune has no delta query for managed devices, so every asset run reads every device; that is
//! also what lets a complete read give the deletion status to assets whose device is gone.
//! `$count` is refused and `operatingSystem` cannot be filtered on the server, so neither is
//! asked for: the whole collection is paged with `$select`, following `@odata.nextLink` as is.
//!
//! With the user method (older), each user's own device list (`/users/{id}/managedDevices`)
//! says who owns which device; the devices themselves are still read from the collection.

use std::collections::BTreeMap;

use deskbridge_core::RecordId;
use deskbridge_graph::{GraphError, GraphErrorClass, GraphTenant};
use deskbridge_mapping::{AssetUserLink, Completeness, ReadMode, SourceDevice, ValidatedConfig};
use deskbridge_source::desk::SourceProperties;
use deskbridge_source::{Emitter, Page, PartitionEnd, PartitionStart, ReadEvent, SourceRecord, SyncError};
use deskbridge_store::IntegrationError;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Map, Value};

use super::FAN_OUT;
use crate::error::from_graph;

/// The managed-device properties an asset mapping may read (MICROSOFT-APIS.md B7).
pub fn device_properties() -> SourceProperties {
    deskbridge_mapping::Catalog::intune_device_properties()
}

/// The permission a device read needs, for remedies.
pub const DEVICE_PERMISSION: &str = "DeviceManagementManagedDevices.Read.All";

/// A device read's failure, with the permission it needs named when Graph refused access.
pub fn device_error(e: &GraphError) -> SyncError {
    let error = from_graph(e);
    match (e, error) {
        (
            GraphError::Api(api),
            SyncError::Upstream {
                error_code,
                code,
                message,
                ..
            },
        ) if api.class == GraphErrorClass::PermissionDenied => SyncError::Upstream {
            error_code,
            code,
            message,
            remedy: format!(
                "Give the app the {DEVICE_PERMISSION} application permission and grant admin consent \
                 (the tenant also needs an Intune licence)."
            ),
        },
        (_, error) => error,
    }
}

/// Reads the tenant's devices into `out` as one full partition. A failure before the first page
/// is returned (no partition was begun: the caller decides whether the run or only this tenant
/// fails); a failure after it ends the partition partial with a warning, so that what was read
/// is imported and nothing is given the deletion status.
pub async fn read_devices(
    tenant: &GraphTenant,
    customer: Option<RecordId>,
    config: &ValidatedConfig,
    link: AssetUserLink,
    out: &mut Emitter,
) -> Result<(), SyncError> {
    let tenant_id = tenant.tenant_id().to_owned();
    let mut requests = 0u64;
    let owners = match link {
        AssetUserLink::User => Some(owners(tenant, &mut requests).await?),
        AssetUserLink::Asset { .. } | AssetUserLink::None => None,
    };
    // Only what the asset mappings read (the id, mapped properties, type rules, the user link,
    // the Sense exclusion's managementAgent).
    let select: Vec<String> = config.device_properties().into_iter().collect();
    let mut pager = tenant.pager::<Map<String, Value>>(format!(
        "/deviceManagement/managedDevices?$select={}",
        select.join(",")
    ));
    let first = pager.next_page().await.map_err(|e| device_error(&e))?;
    out.emit(ReadEvent::Begin(PartitionStart {
        tenant_id: tenant_id.clone(),
        customer_id: customer,
        mode: ReadMode::Full,
        subscribed_skus: None,
        subscriptions: None,
        usage: None,
        groups: None,
    }))
    .await?;
    let mut next = first;
    let completeness = loop {
        let Some(page) = next else {
            break Completeness::Complete;
        };
        requests += 1;
        out.emit(ReadEvent::Page(Page {
            tenant_id: tenant_id.clone(),
            records: device_records(page.value, owners.as_ref()),
            removed: Vec::new(),
            cursors: Vec::new(),
        }))
        .await?;
        next = match pager.next_page().await {
            Ok(page) => page,
            Err(e) => {
                let error = device_error(&e);
                out.emit(ReadEvent::Warning(IntegrationError {
                    tenant_id: Some(tenant_id.clone()),
                    entity: Some("asset".into()),
                    external_id: None,
                    code: error.code(),
                    message: format!("the device list was read only in part: {error}"),
                    remedy: Some(error.remedy().unwrap_or_else(|| {
                        "The next asset run reads every device again; no asset got the deletion status this run."
                            .into()
                    })),
                }))
                .await?;
                break Completeness::Partial;
            }
        };
    };
    out.emit(ReadEvent::End(PartitionEnd {
        tenant_id,
        completeness,
        cursors: Vec::new(),
        requests,
    }))
    .await
}

/// A page of devices as source records.
fn device_records(
    page: Vec<Map<String, Value>>,
    owners: Option<&BTreeMap<String, String>>,
) -> Vec<SourceRecord> {
    page.into_iter()
        .filter_map(|properties| {
            // A device without an id cannot be told apart from the next: Graph never sends one,
            // and if it did, importing it would create a new asset every run.
            let external_id = properties.get("id")?.as_str()?.to_owned();
            let owner_id = owners.and_then(|o| o.get(&external_id.to_ascii_lowercase()).cloned());
            Some(SourceRecord::Device(SourceDevice {
                external_id,
                properties,
                owner_id,
            }))
        })
        .collect()
}

/// The user method: device id (lower-cased) → the user whose device list holds it.
async fn owners(tenant: &GraphTenant, requests: &mut u64) -> Result<BTreeMap<String, String>, SyncError> {
    let mut users = Vec::new();
    let mut pager = tenant.pager::<Map<String, Value>>("/users?$select=id&$top=999");
    while let Some(page) = pager.next_page().await.map_err(|e| from_graph(&e))? {
        *requests += 1;
        users.extend(
            page.value
                .iter()
                .filter_map(|u| u.get("id")?.as_str().map(str::to_owned)),
        );
    }
    let mut lists: Vec<(String, Vec<String>, u64)> = futures::stream::iter(users)
        .map(|user| async move {
            let mut devices = Vec::new();
            let mut pages = 0;
            let mut pager =
                tenant.pager::<Map<String, Value>>(format!("/users/{user}/managedDevices?$select=id"));
            while let Some(page) = pager.next_page().await? {
                pages += 1;
                devices.extend(
                    page.value
                        .iter()
                        .filter_map(|d| d.get("id")?.as_str().map(str::to_ascii_lowercase)),
                );
            }
            Ok::<_, GraphError>((user, devices, pages))
        })
        .buffer_unordered(FAN_OUT)
        .try_collect()
        .await
        .map_err(|e| device_error(&e))?;
    // In user order, so that a device two users list is owned by the same one every run.
    lists.sort_by(|a, b| a.0.cmp(&b.0));
    let mut owners = BTreeMap::new();
    for (user, devices, pages) in lists {
        *requests += pages;
        for device in devices {
            owners.insert(device, user.clone());
        }
    }
    Ok(owners)
}
