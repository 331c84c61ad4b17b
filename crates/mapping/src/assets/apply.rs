//! Applying an asset plan to an in-memory [`AssetDesk`]: what the store does, without a
//! database, so that tests (and previews of several pages) can check that applying a plan and
//! planning again changes nothing.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::{Map, Value};

use super::input::{AssetDesk, DeskAsset};
use crate::apply::ApplyError;
use crate::catalog::NamedRecord;
use crate::input::SourceIdentity;
use crate::plan::{Action, Change, Entity, Plan, Reference};

/// Applies the asset type and asset changes of `plan` (other entities are
/// [`crate::apply_to_snapshot`]'s) to a copy of `desk`. Created records get the next free ids;
/// `{"asset_type": name}` references resolve, once every change is applied, to the desk's type
/// of that name (ignoring case), so the order of changes does not matter.
pub fn apply_assets(
    plan: &Plan,
    desk: &AssetDesk,
    connection_id: ConnectionId,
) -> Result<AssetDesk, ApplyError> {
    let mut desk = desk.clone();
    let next = |ids: &mut dyn Iterator<Item = RecordId>| ids.map(|id| id.0).max().unwrap_or(0) + 1;
    let mut next_type = next(&mut desk.asset_types.iter().map(|t| t.id));
    let mut next_asset = next(&mut desk.assets.iter().map(|a| a.id));
    for change in plan.changes.iter().filter(|c| c.action.writes()) {
        let incomplete = |field: &'static str| ApplyError::Incomplete {
            entity: change.entity.as_str(),
            external_id: change.external_id.clone(),
            field,
        };
        match (change.entity, change.action) {
            (Entity::AssetType, Action::Create) => {
                let name = change
                    .fields
                    .get("name")
                    .and_then(|f| f.after.as_str())
                    .ok_or_else(|| incomplete("name"))?;
                desk.asset_types.push(NamedRecord {
                    id: RecordId(next_type),
                    name: name.to_owned(),
                });
                next_type += 1;
            }
            (Entity::Asset, Action::Create) => {
                let mut asset = DeskAsset {
                    id: RecordId(next_asset),
                    source: Some(SourceIdentity {
                        connection_id,
                        external_id: change.external_id.clone(),
                    }),
                    customer_id: None,
                    tenant_id: None,
                    fields: Map::new(),
                };
                write_fields(&mut asset, change);
                desk.assets.push(asset);
                next_asset += 1;
            }
            (Entity::Asset, action) => {
                let id = target(plan, change, &desk, connection_id)?;
                let asset = desk
                    .assets
                    .iter_mut()
                    .find(|a| a.id == id)
                    .ok_or(ApplyError::UnknownRecord { entity: "asset", id })?;
                write_fields(asset, change);
                if action == Action::Link || asset.source.is_none() {
                    asset.source = Some(SourceIdentity {
                        connection_id,
                        external_id: change.external_id.clone(),
                    });
                }
            }
            // Users, agents, sites, licences and tickets live in a DeskSnapshot.
            _ => {}
        }
    }
    resolve_types(&mut desk)?;
    Ok(desk)
}

/// The asset a non-create change updates: the plan's target, else the asset this connection
/// created for the device earlier in the run.
fn target(
    plan: &Plan,
    change: &Change,
    desk: &AssetDesk,
    connection_id: ConnectionId,
) -> Result<RecordId, ApplyError> {
    if let Some(id) = plan.target_of(change) {
        return Ok(id);
    }
    let mut carrying = desk.assets.iter().filter(|asset| {
        asset.source.as_ref().is_some_and(|s| {
            s.connection_id == connection_id && s.external_id.eq_ignore_ascii_case(&change.external_id)
        })
    });
    match (carrying.next(), carrying.next()) {
        (Some(only), None) => Ok(only.id),
        _ => Err(ApplyError::MissingTarget {
            entity: "asset",
            external_id: change.external_id.clone(),
        }),
    }
}

fn write_fields(asset: &mut DeskAsset, change: &Change) {
    for (name, field) in &change.fields {
        let after = &field.after;
        match name.as_str() {
            "customer_id" => asset.customer_id = after.as_i64().map(RecordId),
            "tenant_id" => asset.tenant_id = after.as_str().map(str::to_owned),
            _ if after.is_null() => {
                asset.fields.remove(name);
            }
            _ => {
                asset.fields.insert(name.clone(), after.clone());
            }
        }
    }
}

fn resolve_types(desk: &mut AssetDesk) -> Result<(), ApplyError> {
    let mut by_name: BTreeMap<String, RecordId> = BTreeMap::new();
    for asset_type in &desk.asset_types {
        // The lowest id wins, as the planner picks it.
        let entry = by_name
            .entry(asset_type.name.trim().to_lowercase())
            .or_insert(asset_type.id);
        *entry = (*entry).min(asset_type.id);
    }
    for asset in &mut desk.assets {
        let Some(value) = asset.fields.get_mut("asset_type_id") else {
            continue;
        };
        if let Some(Reference::NewAssetType(name)) = Reference::from_value(value) {
            let id =
                by_name
                    .get(&name.trim().to_lowercase())
                    .ok_or_else(|| ApplyError::UnresolvedReference {
                        entity: "asset",
                        external_id: asset
                            .source
                            .as_ref()
                            .map(|s| s.external_id.clone())
                            .unwrap_or_default(),
                        field: "asset_type_id".into(),
                        reference: value.to_string(),
                    })?;
            *value = Value::from(id.0);
        }
    }
    Ok(())
}
