//! Write-back of licence assignments: each licence the desk asks a source to assign to or remove
//! from a user, as its journal and its idempotency key. A change is asked for once and may be sent
//! several times (a retry after a lost answer or a failure); assigning a licence a user already
//! has, or removing one they no longer have, changes nothing at the source, so a re-send is safe.

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};

use crate::db::{Sql, SqlType, StoreTx};
use crate::subscription_changes::ChangeStatus;
use crate::{Result, StoreError, format_timestamp};

/// What a change does to the user's licences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceAction {
    Assign,
    Remove,
}

impl LicenceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::Remove => "remove",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Assign, Self::Remove].into_iter().find(|v| v.as_str() == s)
    }
}

/// One licence change asked of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenceChange {
    pub id: i64,
    /// The desk user.
    pub user_id: RecordId,
    /// The desk licence.
    pub licence_id: RecordId,
    pub connection_id: ConnectionId,
    pub tenant_id: String,
    /// The user's id at the source (Entra's object id).
    pub user_external_id: String,
    /// The licence's SKU id at the source.
    pub sku_id: String,
    pub action: LicenceAction,
    pub status: ChangeStatus,
    /// What the source answered, or why the change was refused or failed.
    pub message: Option<String>,
    /// Who asked for it (an account's username, `cli:…`).
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A licence change to ask for.
#[derive(Debug, Clone)]
pub struct NewLicenceChange {
    pub user_id: RecordId,
    pub licence_id: RecordId,
    pub connection_id: ConnectionId,
    pub tenant_id: String,
    pub user_external_id: String,
    pub sku_id: String,
    pub action: LicenceAction,
    pub requested_by: String,
}

const COLUMNS: &str = "id, user_id, licence_id, connection_id, tenant_id, user_external_id, sku_id, action, status, \
                       message, requested_by, created_at, updated_at";
const TYPES: [SqlType; 13] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn from_row(row: &[Sql]) -> Result<LicenceChange> {
    let corrupt = || StoreError::Corrupt("licence_changes".into(), "unexpected row shape".into());
    let int = |i: usize| row.get(i).and_then(Sql::as_int);
    let text = |i: usize| row.get(i).and_then(Sql::as_text).map(str::to_owned);
    Ok(LicenceChange {
        id: int(0).ok_or_else(corrupt)?,
        user_id: RecordId(int(1).ok_or_else(corrupt)?),
        licence_id: RecordId(int(2).ok_or_else(corrupt)?),
        connection_id: ConnectionId(int(3).ok_or_else(corrupt)?),
        tenant_id: text(4).ok_or_else(corrupt)?,
        user_external_id: text(5).ok_or_else(corrupt)?,
        sku_id: text(6).ok_or_else(corrupt)?,
        action: text(7)
            .and_then(|s| LicenceAction::parse(&s))
            .ok_or_else(corrupt)?,
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
    /// Records a licence change asked for (pending).
    pub async fn add_licence_change(&mut self, new: &NewLicenceChange) -> Result<LicenceChange> {
        let now = Sql::Text(format_timestamp(self.at()));
        let args = [
            Sql::Int(new.user_id.0),
            Sql::Int(new.licence_id.0),
            Sql::Int(new.connection_id.0),
            Sql::text(new.tenant_id.clone()),
            Sql::text(new.user_external_id.clone()),
            Sql::text(new.sku_id.clone()),
            Sql::text(new.action.as_str()),
            Sql::text(new.requested_by.clone()),
            now,
        ];
        let sql = "INSERT INTO licence_changes (user_id, licence_id, connection_id, tenant_id, user_external_id, \
                   sku_id, action, status, requested_by, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9) RETURNING id";
        let id = self.insert_returning_id(sql, &args, "licence_changes").await?;
        self.licence_change(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("licence_changes".into(), "the new row is gone".into()))
    }

    pub async fn licence_change(&mut self, id: i64) -> Result<Option<LicenceChange>> {
        let sql = format!("SELECT {COLUMNS} FROM licence_changes WHERE id = $1");
        self.row(&sql, &[Sql::Int(id)], &TYPES)
            .await?
            .as_deref()
            .map(from_row)
            .transpose()
    }

    /// The licence changes asked for a user, newest first.
    pub async fn licence_changes(&mut self, user: RecordId, limit: u32) -> Result<Vec<LicenceChange>> {
        let sql =
            format!("SELECT {COLUMNS} FROM licence_changes WHERE user_id = $1 ORDER BY id DESC LIMIT $2");
        self.rows(&sql, &[Sql::Int(user.0), Sql::Int(i64::from(limit))], &TYPES)
            .await?
            .iter()
            .map(|r| from_row(r))
            .collect()
    }

    /// Ends (or re-opens) a licence change with what the source answered.
    pub async fn finish_licence_change(
        &mut self,
        id: i64,
        status: ChangeStatus,
        message: Option<&str>,
    ) -> Result<()> {
        self.finish_change("licence_changes", id, status, message).await
    }
}
