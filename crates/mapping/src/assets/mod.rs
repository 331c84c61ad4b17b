//! Assets: managed devices → desk assets, planned page by page like users but on their own
//! (an asset sync is its own run, entity `assets`).
//!
//! Per tenant: [`AssetPlanner::begin_tenant`], then for each page of devices
//! [`AssetPlanner::lookups`] (what to load) and [`AssetPlanner::plan_page`], then
//! [`AssetPlanner::finish_tenant`] with every asset the connection imported from the tenant,
//! which gives the deletion status to those a complete read did not find.

mod apply;
mod changes;
mod config;
mod input;
mod matching;
mod page;
mod planner;
mod users;
mod validate;

pub use apply::apply_assets;
pub use config::{
    AssetMappings, AssetRecordLock, AssetTypeRule, AssetTypes, AssetUserLink, DeviceUserField,
    UnmatchedDevice,
};
pub use input::{AssetDesk, AssetLookups, DeskAsset, SourceDevice, present};
pub use planner::AssetPlanner;
pub(crate) use planner::device_properties;
pub(crate) use validate::{CompiledAssets, check_assets};
