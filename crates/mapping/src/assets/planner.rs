//! The asset planner. (Being written: signatures only.)

use deskbridge_core::{ConnectionId, RecordId};

use super::input::{AssetDesk, AssetLookups, DeskAsset, SourceDevice};
use crate::input::Completeness;
use crate::plan::Plan;
use crate::validate::ValidatedConfig;

/// Plans one asset run of one connection, a tenant and a page of devices at a time.
pub struct AssetPlanner<'c> {
    #[allow(dead_code)]
    config: &'c ValidatedConfig,
    #[allow(dead_code)]
    connection_id: ConnectionId,
    #[allow(dead_code)]
    now: jiff::Timestamp,
}

impl<'c> AssetPlanner<'c> {
    /// Fails when the configuration imports no assets.
    pub fn new(
        config: &'c ValidatedConfig,
        connection_id: ConnectionId,
        now: jiff::Timestamp,
    ) -> Result<Self, String> {
        Ok(Self {
            config,
            connection_id,
            now,
        })
    }

    pub fn begin_tenant(&mut self, _tenant_id: &str, _customer_id: Option<RecordId>) {
        todo!()
    }

    pub fn lookups(&self, _devices: &[SourceDevice]) -> AssetLookups {
        todo!()
    }

    pub fn plan_page(&mut self, _devices: &[SourceDevice], _desk: &AssetDesk) -> Plan {
        todo!()
    }

    pub fn finish_tenant(&mut self, _completeness: Completeness, _imported: &[DeskAsset]) -> Plan {
        todo!()
    }
}
