//! Reading the organisation's contacts as people: a change-tracking round of `contacts`, in
//! pages of up to 5,000 (`Prefer: odata.maxpagesize`), whose `@odata.deltaLink` is the cursor
//! of the next run's delta read (creates, updates and deletes only).
//!
//! Why the parent account's name comes from the lookup's formatted value rather than an
//! `$expand`: Dataverse refuses `$expand` (and `$filter`, `$orderby`, `$top`) on a change-tracking
//! read, and the formatted value of `_parentcustomerid_value` is the parent's primary name. It
//! is kept as `parentcustomerid_account/name` (the `$expand` shape) when the parent is an
//! account, so a mapping reads the same path either way.

use std::time::Instant;

use deskbridge_dataverse::{
    Annotations, AttributeMetadata, Change, ChangePage, DataverseClient, DataverseError, Query, Row,
};
use deskbridge_mapping::{Completeness, ReadMode, Removal, RemovalReason, SourceType, SourceUser};
use deskbridge_source::desk::SourceProperties;
use deskbridge_source::{
    Emitter, Page, PartitionEnd, PartitionStart, ReadEvent, RequestRecord, RequestSink, SourceRecord,
    SyncError,
};
use deskbridge_store::IntegrationError;
use serde_json::{Map, Value, json};

use crate::error::from_dataverse;

/// The cursor stream of the contacts' delta link.
pub const CONTACTS_DELTA: &str = "contacts/delta";

/// The largest page Dataverse serves.
pub const MAX_PAGE_SIZE: u32 = 5_000;

/// Text columns' most: a single line of text holds at most 4,000 characters in Dataverse, so a
/// longer value is not a contact's.
const MAX_TEXT: usize = 4_000;

/// The contact's text columns read (all `$select`ed).
const TEXT_COLUMNS: &[&str] = &[
    "fullname",
    "firstname",
    "lastname",
    "emailaddress1",
    "telephone1",
    "mobilephone",
    "jobtitle",
];

/// The navigation property of a contact's parent account, whose `name` is kept.
const PARENT_ACCOUNT: &str = "parentcustomerid_account";

/// A contact column a mapping reads beyond the usual ones, typed from the organisation's
/// metadata: its value is handed over as Dataverse sends it (a choice as its option value, a
/// multi-select choice as `"1,9"`), and a value of another type refuses the contact.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraColumn {
    pub name: String,
    pub ty: SourceType,
}

/// The source type of a contact column, from its metadata; `None` for columns a mapping cannot
/// read as they are (lookups are read through their own properties, images and files not at all).
pub fn column_type(attribute: &AttributeMetadata) -> Option<SourceType> {
    if attribute.is_multi_select() {
        return Some(SourceType::MultiOptionSet);
    }
    Some(match attribute.attribute_type.as_str() {
        "String" | "Memo" | "Uniqueidentifier" | "EntityName" => SourceType::String,
        "Picklist" | "State" | "Status" => SourceType::OptionSet,
        "Integer" | "BigInt" | "Decimal" | "Double" | "Money" => SourceType::Integer,
        "Boolean" => SourceType::Boolean,
        "DateTime" => SourceType::DateTime,
        _ => return None,
    })
}

/// The columns a read selects: the text columns, the key, the parent, the state and the
/// extra columns the mappings read.
pub(crate) fn select(extra: &[ExtraColumn]) -> Vec<&str> {
    let mut columns = vec!["contactid"];
    columns.extend_from_slice(TEXT_COLUMNS);
    columns.extend(["_parentcustomerid_value", "statecode"]);
    columns.extend(extra.iter().map(|c| c.name.as_str()));
    columns
}

/// Whether `name` is one of the properties every contact carries.
pub fn is_contact_property(name: &str) -> bool {
    contact_properties().keys().any(|p| p.eq_ignore_ascii_case(name))
}

/// The properties a contact carries, for validating field mappings.
pub fn contact_properties() -> SourceProperties {
    let mut properties: SourceProperties = TEXT_COLUMNS
        .iter()
        .map(|c| ((*c).to_owned(), SourceType::String))
        .collect();
    properties.insert("contactid".into(), SourceType::String);
    properties.insert("_parentcustomerid_value".into(), SourceType::String);
    properties.insert(PARENT_ACCOUNT.into(), SourceType::Object);
    properties.insert(format!("{PARENT_ACCOUNT}/name"), SourceType::String);
    properties.insert("statecode".into(), SourceType::Integer);
    properties
}

/// A contact that could not be read as a person: its id (when it had one) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: Option<String>,
    pub message: String,
}

/// One contact row as a person. `statecode` 0 (Active) is an enabled account; the properties are
/// the columns as received, plus the parent account's name and the `extra` columns.
pub fn contact(row: &Row, extra: &[ExtraColumn]) -> Result<SourceUser, Rejected> {
    let id = row.guid("contactid").ok().flatten().ok_or_else(|| Rejected {
        id: row.get("contactid").and_then(Value::as_str).map(str::to_owned),
        message: "a contact without a contactid".into(),
    })?;
    let reject = |message: String| Rejected {
        id: Some(id.clone()),
        message,
    };
    let mut properties = Map::new();
    properties.insert("contactid".into(), json!(id));
    for column in TEXT_COLUMNS {
        match row.str(column) {
            Ok(Some(text)) => {
                let length = text.chars().count();
                if length > MAX_TEXT {
                    return Err(reject(format!(
                        "{column} is {length} characters long; Dataverse's text columns hold at most {MAX_TEXT}"
                    )));
                }
                properties.insert((*column).to_owned(), json!(text));
            }
            Ok(None) => {}
            Err(e) => return Err(reject(e.to_string())),
        }
    }
    for column in extra {
        let value = row.get(&column.name).cloned().unwrap_or(Value::Null);
        let fits = match (&value, column.ty) {
            (Value::Null, _) => true,
            (Value::String(_), SourceType::String | SourceType::MultiOptionSet | SourceType::DateTime) => {
                true
            }
            (Value::Number(n), SourceType::OptionSet) => n.is_i64(),
            (Value::Number(_), SourceType::Integer) => true,
            (Value::Bool(_), SourceType::Boolean) => true,
            _ => false,
        };
        if !fits {
            return Err(reject(format!(
                "{} is {value}, not a {} as the organisation's metadata says",
                column.name,
                column.ty.describe()
            )));
        }
        if !value.is_null() {
            properties.insert(column.name.clone(), value);
        }
    }
    let state = row.i64("statecode").map_err(|e| reject(e.to_string()))?;
    if let Some(state) = state {
        properties.insert("statecode".into(), json!(state));
    }
    let parent = row
        .lookup("parentcustomerid")
        .map_err(|e| reject(e.to_string()))?;
    if let Some(parent) = parent {
        properties.insert("_parentcustomerid_value".into(), json!(parent.id));
        if parent.logical_name.as_deref() == Some("account") {
            properties.insert(PARENT_ACCOUNT.into(), json!({ "name": parent.name }));
        }
    }
    Ok(SourceUser {
        external_id: id,
        properties,
        manager_id: None,
        groups: Default::default(),
        transitive_groups: Default::default(),
        sku_ids: Default::default(),
        // Active (0) or Inactive (1); a contact whose state is not given is taken as active, as
        // Dataverse creates them.
        account_enabled: state.is_none_or(|s| s == 0),
        external: false,
    })
}

/// A refused contact as an error against the run: nothing changes for it, and the read is not
/// complete (nobody is deactivated for being absent from it).
pub fn rejected_error(tenant: &str, rejected: Rejected) -> IntegrationError {
    IntegrationError {
        tenant_id: Some(tenant.to_owned()),
        entity: Some("user".into()),
        external_id: rejected.id,
        code: deskbridge_core::ErrorCode::UpstreamMalformedResponse.to_string(),
        message: format!("{}; the contact was not imported", rejected.message),
        remedy: Some(
            "Nothing was changed for this contact, and nobody is deactivated for being absent from this read. \
             Correct the contact in Dynamics 365; the next sync reads it again."
                .into(),
        ),
    }
}

/// What one read of the contacts needs.
pub(crate) struct ContactsRead<'a> {
    pub client: &'a DataverseClient,
    /// The partition (the organisation's tenant).
    pub tenant: &'a str,
    pub customer: deskbridge_core::RecordId,
    pub page_size: u32,
    pub requests: &'a dyn RequestSink,
    /// The columns the mappings read beyond the usual ones.
    pub extra: &'a [ExtraColumn],
}

/// How a delta read ended before it began: its token expired (read in full instead), or it failed.
pub(crate) enum DeltaStart {
    Expired(DataverseError),
    Failed(SyncError),
}

/// The contacts query of a read: its columns, page size and annotations.
fn contacts_query(extra: &[ExtraColumn], page_size: u32) -> Query {
    Query::new("contacts")
        .select(select(extra))
        .page_size(page_size.clamp(1, MAX_PAGE_SIZE))
        .annotations(Annotations::FormattedValuesAndLookups)
}

/// The `Prefer` header a contacts read sends (change tracking, `page_size` rows a page, the
/// annotations it reads): what a benchmark replaying the read must send too.
pub fn contacts_prefer(page_size: u32) -> String {
    contacts_query(&[], page_size)
        .track_changes()
        .prefer()
        .unwrap_or_default()
}

impl ContactsRead<'_> {
    fn query(&self) -> Query {
        contacts_query(self.extra, self.page_size)
    }

    fn record(&self, path: &str, started: Instant, outcome: &Result<Option<ChangePage>, DataverseError>) {
        let (status, error) = match outcome {
            Ok(_) => (Some(200), None),
            Err(e) => (e.api().map(|a| a.status), Some(e.to_string())),
        };
        self.requests.record(RequestRecord {
            source: crate::DYNAMICS_KIND,
            tenant: self.tenant.to_owned(),
            method: "GET".into(),
            // Never the paging cookie or the delta token.
            path: path.to_owned(),
            status,
            duration: started.elapsed(),
            request_id: None,
            retry_after: e_retry_after(outcome),
            error,
        });
    }

    /// Emits one page of changes; returns how many contacts it refused.
    async fn emit_page(&self, page: ChangePage, out: &mut Emitter) -> Result<usize, SyncError> {
        let mut records = Vec::new();
        let mut removed = Vec::new();
        let mut refused = 0;
        for change in page.changes {
            match change {
                Change::Upsert(row) => match contact(&row, self.extra) {
                    Ok(user) => records.push(SourceRecord::User(user)),
                    Err(rejected) => {
                        refused += 1;
                        out.emit(ReadEvent::Warning(rejected_error(self.tenant, rejected)))
                            .await?;
                    }
                },
                Change::Deleted { id } => removed.push(Removal {
                    external_id: id,
                    reason: RemovalReason::Deleted,
                }),
            }
        }
        out.emit(ReadEvent::Page(Page {
            tenant_id: self.tenant.to_owned(),
            records,
            removed,
            cursors: Vec::new(),
        }))
        .await?;
        Ok(refused)
    }

    /// Reads pages from `pager` (its first page already read) to the end, then closes the
    /// partition with the new delta link.
    async fn finish(
        &self,
        mode: ReadMode,
        first: ChangePage,
        mut pager: deskbridge_dataverse::ChangePager,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        out.emit(ReadEvent::Begin(PartitionStart {
            tenant_id: self.tenant.to_owned(),
            customer_id: Some(self.customer),
            mode,
            subscribed_skus: None,
            subscriptions: None,
            usage: None,
            groups: None,
        }))
        .await?;
        let mut requests = 1;
        let mut delta_link = first.delta_link.clone();
        let mut refused = self.emit_page(first, out).await?;
        loop {
            let started = Instant::now();
            let next = pager.next_page().await;
            self.record("contacts?$skiptoken=(paging cookie)", started, &next);
            let Some(page) = next.map_err(|e| from_dataverse(&e))? else {
                break;
            };
            requests += 1;
            delta_link = page.delta_link.clone().or(delta_link);
            refused += self.emit_page(page, out).await?;
        }
        let Some(link) = delta_link else {
            return Err(SyncError::Upstream {
                error_code: deskbridge_core::ErrorCode::UpstreamMalformedResponse,
                code: deskbridge_core::ErrorCode::UpstreamMalformedResponse.as_str().to_owned(),
                message: "the change-tracking read of contacts ended without an @odata.deltaLink".into(),
                remedy: "Check that change tracking is enabled for the Contact table (Power Apps > Tables > Contact \
                         > Properties > Track changes), then run the sync again."
                    .into(),
            });
        };
        out.emit(ReadEvent::End(PartitionEnd {
            tenant_id: self.tenant.to_owned(),
            completeness: if refused == 0 {
                Completeness::Complete
            } else {
                Completeness::Partial
            },
            cursors: vec![(CONTACTS_DELTA.to_owned(), link)],
            requests,
        }))
        .await
    }

    /// A full read: every contact, starting change tracking.
    pub async fn full(&self, out: &mut Emitter) -> Result<(), SyncError> {
        let mut pager = self.client.changes(&self.query());
        let started = Instant::now();
        let first = pager.next_page().await;
        self.record("contacts", started, &first);
        let first = first.map_err(|e| from_dataverse(&e))?.unwrap_or_default();
        self.finish(ReadMode::Full, first, pager, out).await
    }

    /// A delta read from the stored link: only what changed. An expired token is handed back
    /// before anything is emitted, so the caller can read in full instead.
    pub async fn delta(&self, link: &str, out: &mut Emitter) -> Result<(), DeltaStart> {
        let mut pager = self.client.changes_since(
            link,
            Some(self.page_size.clamp(1, MAX_PAGE_SIZE)),
            Annotations::FormattedValuesAndLookups,
        );
        let started = Instant::now();
        let first = pager.next_page().await;
        self.record("contacts?$deltatoken=(delta token)", started, &first);
        let first = match first {
            Ok(page) => page.unwrap_or_default(),
            Err(e) if e.is_change_token_expired() => return Err(DeltaStart::Expired(e)),
            Err(e) => return Err(DeltaStart::Failed(from_dataverse(&e))),
        };
        self.finish(ReadMode::Delta, first, pager, out)
            .await
            .map_err(DeltaStart::Failed)
    }
}

fn e_retry_after(outcome: &Result<Option<ChangePage>, DataverseError>) -> Option<std::time::Duration> {
    outcome
        .as_ref()
        .err()
        .and_then(|e| e.api())
        .and_then(|a| a.retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: Value) -> Row {
        Row::new(value.as_object().cloned().unwrap_or_default())
    }

    fn contact_of(row: &Row) -> Result<SourceUser, Rejected> {
        contact(row, &[])
    }

    #[test]
    fn a_contact_is_a_person_with_its_parent_account() {
        let user = contact_of(&row(json!({
            "contactid": "6F1B2C3D-0000-4000-8000-000000000001",
            "fullname": "Ada Lovelace", "emailaddress1": "ada@example.com", "statecode": 0,
            "_parentcustomerid_value": "11111111-0000-4000-8000-000000000001",
            "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "Analytical Engines",
            "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
        })))
        .unwrap();
        assert_eq!(user.external_id, "6f1b2c3d-0000-4000-8000-000000000001");
        assert!(user.account_enabled);
        assert_eq!(user.properties["fullname"], "Ada Lovelace");
        assert_eq!(
            user.properties["parentcustomerid_account"]["name"],
            "Analytical Engines"
        );
        assert_eq!(
            user.properties["_parentcustomerid_value"],
            "11111111-0000-4000-8000-000000000001"
        );
        let inactive = contact_of(&row(json!({
            "contactid": "6f1b2c3d-0000-4000-8000-000000000002", "statecode": 1,
            "_parentcustomerid_value": "6f1b2c3d-0000-4000-8000-000000000001",
            "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
        })))
        .unwrap();
        assert!(!inactive.account_enabled);
        assert!(!inactive.properties.contains_key("parentcustomerid_account"));
    }

    #[test]
    fn a_contact_of_the_wrong_shape_is_refused_by_name() {
        let wrong = contact_of(&row(json!({
            "contactid": "6f1b2c3d-0000-4000-8000-000000000003", "statecode": "yes",
        })))
        .unwrap_err();
        assert_eq!(wrong.id.as_deref(), Some("6f1b2c3d-0000-4000-8000-000000000003"));
        assert!(wrong.message.contains("statecode"), "{}", wrong.message);
        let long = contact_of(&row(json!({
            "contactid": "6f1b2c3d-0000-4000-8000-000000000004", "fullname": "x".repeat(5_000),
        })))
        .unwrap_err();
        assert!(
            long.message.contains("fullname is 5000 characters"),
            "{}",
            long.message
        );
        assert!(contact_of(&row(json!({ "fullname": "nobody" }))).is_err());
    }
}
