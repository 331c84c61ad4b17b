//! Settings of the desk as a whole, not of one connection: one row per setting in
//! `desk_settings`, its value kept as JSON with who changed it last. Each setting has a typed
//! reader and writer here, so a value the code cannot read is an error, never a silent default.

use deskbridge_core::ConnectionId;
use serde::{Deserialize, Serialize};

use crate::db::{Sql, SqlType, StoreTx};
use crate::{Result, StoreError, format_timestamp};

const FOLLOWERS: &str = "ticket_followers";

/// Whether distribution groups may be added as ticket followers, desk-wide (each connection
/// allows it as well, in its mappings), and the connection a group is read through when none is
/// named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowerSettings {
    pub enabled: bool,
    pub default_connection: Option<ConnectionId>,
}

impl StoreTx {
    /// How distribution groups follow tickets; off, with no default connection, until set.
    pub async fn follower_settings(&mut self) -> Result<FollowerSettings> {
        let Some(text) = self.desk_setting(FOLLOWERS).await? else {
            return Ok(FollowerSettings::default());
        };
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt("desk_settings".into(), format!("{FOLLOWERS}: {e}")))
    }

    pub async fn set_follower_settings(
        &mut self,
        settings: &FollowerSettings,
        updated_by: &str,
    ) -> Result<()> {
        let value = serde_json::to_string(settings)
            .map_err(|e| StoreError::Corrupt("desk_settings".into(), format!("{FOLLOWERS}: {e}")))?;
        self.set_desk_setting(FOLLOWERS, &value, updated_by).await
    }

    async fn desk_setting(&mut self, key: &str) -> Result<Option<String>> {
        let row = self
            .row(
                "SELECT value FROM desk_settings WHERE key = $1",
                &[Sql::text(key)],
                &[SqlType::Text],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_text).map(str::to_owned)))
    }

    async fn set_desk_setting(&mut self, key: &str, value: &str, updated_by: &str) -> Result<()> {
        let now = Sql::Text(format_timestamp(self.at()));
        self.execute(
            "INSERT INTO desk_settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
            &[Sql::text(key), Sql::text(value), Sql::text(updated_by), now],
        )
        .await?;
        Ok(())
    }
}
