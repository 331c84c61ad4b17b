//! Pages of rows and of changes, parsed strictly: a body without the documented shape is
//! [`DataverseError::Malformed`].
use serde_json::{Map, Value};

use crate::error::DataverseError;
use crate::row::Row;

/// One page of a collection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    /// `@odata.nextLink`: the next page (request it verbatim, with the same `Prefer`).
    pub next_link: Option<String>,
    /// `@odata.deltaLink`: on the last page of a change-tracking read.
    pub delta_link: Option<String>,
    /// `@odata.count` (with `$count=true`; capped at 5,000 by Dataverse).
    pub count: Option<u64>,
    /// `@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded`.
    pub count_limit_exceeded: Option<bool>,
}

/// One entry of a delta read.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A row created or updated since the previous token (all selected columns).
    Upsert(Row),
    /// A row deleted since the previous token.
    Deleted { id: String },
}

/// One page of a delta read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

fn malformed(url: &str, message: impl Into<String>) -> DataverseError {
    DataverseError::Malformed {
        url: deskbridge_core::redact::url(url),
        message: message.into(),
    }
}

fn object(url: &str, body: &[u8]) -> Result<Map<String, Value>, DataverseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(malformed(url, "the body is not a JSON object")),
        Err(e) => Err(malformed(url, format!("the body is not JSON: {e}"))),
    }
}

fn link(url: &str, map: &Map<String, Value>, key: &str) -> Result<Option<String>, DataverseError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(malformed(url, format!("{key} is not a non-empty string"))),
    }
}

fn values<'a>(url: &str, map: &'a Map<String, Value>) -> Result<&'a Vec<Value>, DataverseError> {
    match map.get("value") {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(malformed(url, "`value` is not an array")),
        None => Err(malformed(url, "the collection has no `value`")),
    }
}

pub(crate) fn parse_page(url: &str, body: &[u8]) -> Result<Page, DataverseError> {
    let map = object(url, body)?;
    let mut rows = Vec::new();
    for (i, item) in values(url, &map)?.iter().enumerate() {
        match item {
            Value::Object(m) => rows.push(Row::new(m.clone())),
            _ => return Err(malformed(url, format!("value[{i}] is not an object"))),
        }
    }
    let count = match map.get("@odata.count") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| malformed(url, "@odata.count is not a count"))?,
        ),
    };
    Ok(Page {
        rows,
        next_link: link(url, &map, "@odata.nextLink")?,
        delta_link: link(url, &map, "@odata.deltaLink")?,
        count,
        count_limit_exceeded: map
            .get("@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded")
            .and_then(Value::as_bool),
    })
}

pub(crate) fn parse_changes(url: &str, body: &[u8]) -> Result<ChangePage, DataverseError> {
    let map = object(url, body)?;
    let mut changes = Vec::new();
    for (i, item) in values(url, &map)?.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(malformed(url, format!("value[{i}] is not an object")));
        };
        let deleted = m
            .get("@odata.context")
            .and_then(Value::as_str)
            .is_some_and(|c| c.ends_with("/$deletedEntity"))
            || m.get("reason").and_then(Value::as_str) == Some("deleted");
        if deleted {
            let id = m
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(url, format!("value[{i}] is a deleted entity without an id")))?;
            let id = uuid::Uuid::parse_str(id)
                .map_err(|_| malformed(url, format!("value[{i}]: deleted id {id:?} is not a GUID")))?;
            changes.push(Change::Deleted { id: id.to_string() });
        } else {
            changes.push(Change::Upsert(Row::new(m.clone())));
        }
    }
    Ok(ChangePage {
        changes,
        next_link: link(url, &map, "@odata.nextLink")?,
        delta_link: link(url, &map, "@odata.deltaLink")?,
    })
}

pub(crate) fn parse_object(url: &str, body: &[u8]) -> Result<Map<String, Value>, DataverseError> {
    object(url, body)
}
