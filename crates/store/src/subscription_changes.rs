//! Write-back of subscriptions: each change the desk asks a source to make (a new quantity), as
//! its journal and its idempotency key. A change is asked for once and may be sent several times
//! (a retry after a lost answer, a retry after a failure): every send carries the row's request
//! id, which the source applies once.

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};

use crate::db::{Sql, SqlType, StoreTx};
use crate::{Result, StoreError, format_timestamp};

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Asked for; not (yet) confirmed by the source. Sending it again is safe.
    Pending,
    /// The source made it.
    Applied,
    /// The source's rules refuse it (e.g. a seat reduction outside the cancellation window).
    Refused,
    /// It could not be made (the source failed or could not be reached); it may be retried.
    Failed,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Applied, Self::Refused, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Not finished: sending it (again) may still make it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Failed)
    }
}

/// One change asked of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionChange {
    pub id: i64,
    /// The desk subscription.
    pub subscription_id: RecordId,
    pub connection_id: ConnectionId,
    pub tenant_id: String,
    /// The subscription's id at the source.
    pub external_id: String,
    pub quantity_before: Option<i64>,
    pub quantity_after: i64,
    /// Sent with every attempt (Partner Center's `MS-RequestId`).
    pub request_id: String,
    pub status: ChangeStatus,
    /// What the source answered, or why the change was refused or failed.
    pub message: Option<String>,
    /// Who asked for it (an account's username, `cli`).
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A change to ask for.
#[derive(Debug, Clone)]
pub struct NewSubscriptionChange {
    pub subscription_id: RecordId,
    pub connection_id: ConnectionId,
    pub tenant_id: String,
    pub external_id: String,
    pub quantity_before: Option<i64>,
    pub quantity_after: i64,
    pub request_id: String,
    pub requested_by: String,
}

const COLUMNS: &str = "id, subscription_id, connection_id, tenant_id, external_id, quantity_before, quantity_after, \
                       request_id, status, message, requested_by, created_at, updated_at";
const TYPES: [SqlType; 13] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn from_row(row: &[Sql]) -> Result<SubscriptionChange> {
    let corrupt = || StoreError::Corrupt("subscription_changes".into(), "unexpected row shape".into());
    let int = |i: usize| row.get(i).and_then(Sql::as_int);
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    Ok(SubscriptionChange {
        id: int(0).ok_or_else(corrupt)?,
        subscription_id: RecordId(int(1).ok_or_else(corrupt)?),
        connection_id: ConnectionId(int(2).ok_or_else(corrupt)?),
        tenant_id: text(3).ok_or_else(corrupt)?,
        external_id: text(4).ok_or_else(corrupt)?,
        quantity_before: int(5),
        quantity_after: int(6).ok_or_else(corrupt)?,
        request_id: text(7).ok_or_else(corrupt)?,
        status: text(8)
            .and_then(|s| ChangeStatus::parse(&s))
            .ok_or_else(corrupt)?,
        message: text(9),
        requested_by: text(10).ok_or_else(corrupt)?,
        created_at: text(11).ok_or_else(corrupt)?,
        updated_at: text(12).ok_or_else(corrupt)?,
    })
}

impl StoreTx {
    /// Records a change asked for (pending).
    pub async fn add_subscription_change(
        &mut self,
        new: &NewSubscriptionChange,
    ) -> Result<SubscriptionChange> {
        let now = Sql::Text(format_timestamp(self.at()));
        let args = [
            Sql::Int(new.subscription_id.0),
            Sql::Int(new.connection_id.0),
            Sql::text(new.tenant_id.clone()),
            Sql::text(new.external_id.clone()),
            Sql::opt_int(new.quantity_before),
            Sql::Int(new.quantity_after),
            Sql::text(new.request_id.clone()),
            Sql::text(new.requested_by.clone()),
            now,
        ];
        let sql = "INSERT INTO subscription_changes (subscription_id, connection_id, tenant_id, external_id, \
                   quantity_before, quantity_after, request_id, status, requested_by, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9) RETURNING id";
        let id = self
            .insert_returning_id(sql, &args, "subscription_changes")
            .await?;
        self.subscription_change(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("subscription_changes".into(), "the new row is gone".into()))
    }

    pub async fn subscription_change(&mut self, id: i64) -> Result<Option<SubscriptionChange>> {
        let sql = format!("SELECT {COLUMNS} FROM subscription_changes WHERE id = $1");
        self.row(&sql, &[Sql::Int(id)], &TYPES)
            .await?
            .as_deref()
            .map(from_row)
            .transpose()
    }

    /// The changes asked of a subscription, newest first.
    pub async fn subscription_changes(
        &mut self,
        subscription: RecordId,
        limit: u32,
    ) -> Result<Vec<SubscriptionChange>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subscription_changes WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2"
        );
        self.rows(
            &sql,
            &[Sql::Int(subscription.0), Sql::Int(i64::from(limit))],
            &TYPES,
        )
        .await?
        .iter()
        .map(|r| from_row(r))
        .collect()
    }

    /// Ends (or re-opens) a change with what the source answered.
    pub async fn finish_subscription_change(
        &mut self,
        id: i64,
        status: ChangeStatus,
        message: Option<&str>,
    ) -> Result<()> {
        self.finish_change("subscription_changes", id, status, message)
            .await
    }

    /// Ends (or re-opens) row `id` of a write-back journal (`subscription_changes`,
    /// `licence_changes`: the same status, message and time columns).
    pub(crate) async fn finish_change(
        &mut self,
        table: &'static str,
        id: i64,
        status: ChangeStatus,
        message: Option<&str>,
    ) -> Result<()> {
        let now = Sql::Text(format_timestamp(self.at()));
        self.execute(
            &format!("UPDATE {table} SET status = $1, message = $2, updated_at = $3 WHERE id = $4"),
            &[
                Sql::text(status.as_str()),
                Sql::opt_text(message),
                now,
                Sql::Int(id),
            ],
        )
        .await?;
        Ok(())
    }
}
