//! Graph change notification subscriptions, one per connection, tenant and resource: what the
//! subscriber keeps between passes (Graph's id, the hash of the clientState, the expiry), what
//! the notification receiver marks (a lifecycle action, a delta round to run once the running one
//! ends, refusals) and the last error in people's words.

use deskbridge_core::ConnectionId;
use jiff::Timestamp;
use serde::Serialize;

use crate::db::{Sql, SqlType, StoreTx};
use crate::{Result, StoreError, format_timestamp, parse_timestamp};

/// What a lifecycle notification asked the subscriber to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionAction {
    /// `reauthorizationRequired`: reauthorize (renewing does too).
    Reauthorize,
    /// `subscriptionRemoved` (or an expiry missed): create it again.
    Resubscribe,
}

impl SubscriptionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reauthorize => "reauthorize",
            Self::Resubscribe => "resubscribe",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "reauthorize" => Some(Self::Reauthorize),
            "resubscribe" => Some(Self::Resubscribe),
            _ => None,
        }
    }
}

/// One subscription's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphSubscriptionRow {
    pub connection_id: ConnectionId,
    pub tenant_id: String,
    /// `users` or `groups`.
    pub resource: String,
    /// Graph's id; `None` while none exists (never created, or creation failed).
    pub subscription_id: Option<String>,
    /// Hex SHA-256 of the clientState (never the state itself).
    #[serde(skip)]
    pub client_state_hash: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub action: Option<SubscriptionAction>,
    /// A notification arrived while a delta round of the tenant was running: run another.
    pub pending_round: bool,
    /// Notifications naming this subscription that were refused (wrong clientState or tenant).
    pub refused: i64,
    pub notified_at: Option<Timestamp>,
    pub error: Option<String>,
    pub remedy: Option<String>,
}

const COLUMNS: &str = "connection_id, tenant_id, resource, subscription_id, client_state_hash, expires_at, \
                       action, pending_round, refused, notified_at, error, remedy";
const TYPES: [SqlType; 12] = [
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn time(value: &Sql) -> Result<Option<Timestamp>> {
    value
        .as_text()
        .map(|t| parse_timestamp(t).map_err(|e| StoreError::Corrupt("graph_subscriptions".into(), e)))
        .transpose()
}

fn from_row(row: &[Sql]) -> Result<GraphSubscriptionRow> {
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    let int = |i: usize| row.get(i).and_then(Sql::as_int).unwrap_or_default();
    let null = Sql::Null(SqlType::Text);
    Ok(GraphSubscriptionRow {
        connection_id: ConnectionId(int(0)),
        tenant_id: text(1).unwrap_or_default(),
        resource: text(2).unwrap_or_default(),
        subscription_id: text(3),
        client_state_hash: text(4),
        expires_at: time(row.get(5).unwrap_or(&null))?,
        action: text(6).as_deref().and_then(SubscriptionAction::parse),
        pending_round: int(7) != 0,
        refused: int(8),
        notified_at: time(row.get(9).unwrap_or(&null))?,
        error: text(10),
        remedy: text(11),
    })
}

impl StoreTx {
    /// Every subscription row, or a connection's.
    pub async fn graph_subscriptions(
        &mut self,
        connection: Option<ConnectionId>,
    ) -> Result<Vec<GraphSubscriptionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM graph_subscriptions WHERE ($1 IS NULL OR connection_id = $1) \
             ORDER BY connection_id, tenant_id, resource"
        );
        let rows = self
            .rows(&sql, &[Sql::opt_int(connection.map(|c| c.0))], &TYPES)
            .await?;
        rows.iter().map(|r| from_row(r)).collect()
    }

    /// The row of Graph's subscription `id`.
    pub async fn graph_subscription(&mut self, id: &str) -> Result<Option<GraphSubscriptionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM graph_subscriptions WHERE subscription_id = $1");
        self.row(&sql, &[Sql::text(id.to_owned())], &TYPES)
            .await?
            .as_deref()
            .map(from_row)
            .transpose()
    }

    /// Records a subscription Graph created (or re-created): its id, the hash of its clientState
    /// and its expiry; clears the action and the error.
    pub async fn save_graph_subscription(
        &mut self,
        connection: ConnectionId,
        tenant_id: &str,
        resource: &str,
        subscription_id: &str,
        client_state_hash: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        let at = Sql::Text(format_timestamp(self.at));
        self.execute(
            "INSERT INTO graph_subscriptions (connection_id, tenant_id, resource, subscription_id, client_state_hash, \
             expires_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (connection_id, tenant_id, resource) DO UPDATE SET subscription_id = $4, \
             client_state_hash = $5, expires_at = $6, action = NULL, error = NULL, remedy = NULL, updated_at = $7",
            &[
                Sql::Int(connection.0),
                Sql::text(tenant_id.to_owned()),
                Sql::text(resource.to_owned()),
                Sql::text(subscription_id.to_owned()),
                Sql::text(client_state_hash.to_owned()),
                Sql::Text(format_timestamp(expires_at)),
                at,
            ],
        )
        .await?;
        Ok(())
    }

    /// A renewal or reauthorization succeeded: the new expiry; the action and error are cleared.
    pub async fn renewed_graph_subscription(
        &mut self,
        subscription_id: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        let at = Sql::Text(format_timestamp(self.at));
        self.execute(
            "UPDATE graph_subscriptions SET expires_at = $2, action = NULL, error = NULL, remedy = NULL, \
             updated_at = $3 WHERE subscription_id = $1",
            &[
                Sql::text(subscription_id.to_owned()),
                Sql::Text(format_timestamp(expires_at)),
                at,
            ],
        )
        .await?;
        Ok(())
    }

    /// Forgets Graph's subscription (deleted, removed or expired there); the row stays, so the
    /// subscriber creates it again.
    pub async fn forget_graph_subscription(
        &mut self,
        connection: ConnectionId,
        tenant_id: &str,
        resource: &str,
    ) -> Result<()> {
        let at = Sql::Text(format_timestamp(self.at));
        self.execute(
            "UPDATE graph_subscriptions SET subscription_id = NULL, client_state_hash = NULL, expires_at = NULL, \
             action = NULL, updated_at = $4 WHERE connection_id = $1 AND tenant_id = $2 AND resource = $3",
            &[
                Sql::Int(connection.0),
                Sql::text(tenant_id.to_owned()),
                Sql::text(resource.to_owned()),
                at,
            ],
        )
        .await?;
        Ok(())
    }

    /// Removes every row of a connection that is no longer subscribed (notifications off).
    pub async fn delete_graph_subscription(
        &mut self,
        connection: ConnectionId,
        tenant_id: &str,
        resource: &str,
    ) -> Result<()> {
        self.execute(
            "DELETE FROM graph_subscriptions WHERE connection_id = $1 AND tenant_id = $2 AND resource = $3",
            &[
                Sql::Int(connection.0),
                Sql::text(tenant_id.to_owned()),
                Sql::text(resource.to_owned()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Records why the subscription could not be made or kept, in people's words, with what to do.
    pub async fn graph_subscription_failed(
        &mut self,
        connection: ConnectionId,
        tenant_id: &str,
        resource: &str,
        error: &str,
        remedy: &str,
    ) -> Result<()> {
        let at = Sql::Text(format_timestamp(self.at));
        self.execute(
            "INSERT INTO graph_subscriptions (connection_id, tenant_id, resource, error, remedy, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connection_id, tenant_id, resource) DO UPDATE SET \
             error = $4, remedy = $5, updated_at = $6",
            &[
                Sql::Int(connection.0),
                Sql::text(tenant_id.to_owned()),
                Sql::text(resource.to_owned()),
                Sql::text(error.to_owned()),
                Sql::text(remedy.to_owned()),
                at,
            ],
        )
        .await?;
        Ok(())
    }

    /// A lifecycle notification asked for `action` on Graph's subscription `id`.
    pub async fn mark_graph_subscription(&mut self, id: &str, action: SubscriptionAction) -> Result<()> {
        // A re-subscription outranks a reauthorization: the subscription is gone.
        self.execute(
            "UPDATE graph_subscriptions SET action = CASE WHEN action = 'resubscribe' THEN action ELSE $2 END \
             WHERE subscription_id = $1",
            &[Sql::text(id.to_owned()), Sql::text(action.as_str())],
        )
        .await?;
        Ok(())
    }

    /// A verified notification arrived for `id`; `pending`: its delta round could not be queued
    /// (one is running) and must be once it ends.
    pub async fn graph_notified(&mut self, id: &str, pending: bool) -> Result<()> {
        let at = Sql::Text(format_timestamp(self.at));
        self.execute(
            "UPDATE graph_subscriptions SET notified_at = $2, \
             pending_round = CASE WHEN $3 = 1 THEN 1 ELSE pending_round END WHERE subscription_id = $1",
            &[Sql::text(id.to_owned()), at, Sql::Int(i64::from(pending))],
        )
        .await?;
        Ok(())
    }

    /// Clears the pending delta round of a connection's tenant (its round was queued).
    pub async fn graph_round_queued(&mut self, connection: ConnectionId, tenant_id: &str) -> Result<()> {
        self.execute(
            "UPDATE graph_subscriptions SET pending_round = 0 WHERE connection_id = $1 AND tenant_id = $2",
            &[Sql::Int(connection.0), Sql::text(tenant_id.to_owned())],
        )
        .await?;
        Ok(())
    }

    /// Counts a refused notification naming Graph's subscription `id`.
    pub async fn graph_notification_refused(&mut self, id: &str) -> Result<()> {
        self.execute(
            "UPDATE graph_subscriptions SET refused = refused + 1 WHERE subscription_id = $1",
            &[Sql::text(id.to_owned())],
        )
        .await?;
        Ok(())
    }
}
