//! What webhook receivers remember: the keys of deliveries already accepted, so the same delivery
//! (replayed by anyone who saw it, or retried after an answer was lost) is acted on once.

use jiff::SignedDuration;

use crate::db::{Sql, SqlType, StoreTx};
use crate::{Result, format_timestamp};

impl StoreTx {
    /// Records a delivery under every one of `keys`, first forgetting those received more than
    /// `memory` ago (older events are refused as stale before they get here). `false` when any
    /// key was already recorded: the delivery is a replay, and the caller must not commit.
    pub async fn record_webhook_delivery(&mut self, keys: &[String], memory: SignedDuration) -> Result<bool> {
        // Measured on the transaction's clock, the one `received_at` is written with.
        let forget_before = self.at.saturating_sub(memory).unwrap_or(self.at);
        self.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < $1",
            &[Sql::Text(format_timestamp(forget_before))],
        )
        .await?;
        let at = Sql::Text(format_timestamp(self.at));
        for key in keys {
            let inserted = self
                .row(
                    "INSERT INTO webhook_deliveries (key, received_at) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING RETURNING key",
                    &[Sql::text(key.clone()), at.clone()],
                    &[SqlType::Text],
                )
                .await?;
            if inserted.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
