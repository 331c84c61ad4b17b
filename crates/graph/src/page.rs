use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::GraphError;
use crate::models::{DirectoryObjectRef, Group, RemovedReason};

/// One page of a collection or delta response.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items present (created or updated); entries carrying `@removed` are in `removed` instead.
    pub value: Vec<T>,
    pub removed: Vec<Removed>,
    /// Follow verbatim to get the next page.
    pub next_link: Option<String>,
    /// Only on the last page of a delta round: store it for the next round.
    pub delta_link: Option<String>,
    pub context: Option<String>,
    pub count: Option<u64>,
}

impl<T> Page<T> {
    pub fn is_last(&self) -> bool {
        self.next_link.is_none()
    }
}

/// A delta entry for an object that was removed (`"@removed": {"reason": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub id: String,
    pub reason: RemovedReason,
    pub odata_type: Option<String>,
    /// Position in the page's `value` array, so order relative to other entries can be recovered.
    pub position: usize,
}

#[derive(Deserialize)]
struct Envelope {
    value: Vec<Map<String, Value>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
    #[serde(rename = "@odata.context", default)]
    context: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

fn json_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    let rendered = path.to_string();
    if rendered == "." || rendered.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{rendered}")
    }
}

/// Parses a collection body. Errors name the URL and the JSON path (e.g. `$.value[3].accountEnabled`).
pub(crate) fn parse_page<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<Page<T>, GraphError> {
    let malformed = |json_path: String, message: String| GraphError::Malformed {
        url: deskbridge_core::redact::url(url),
        json_path,
        message,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let envelope: Envelope = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| malformed(json_path("$", e.path()), e.inner().to_string()))?;
    if envelope.next_link.is_some() && envelope.delta_link.is_some() {
        return Err(malformed(
            "$".into(),
            "a page carries both @odata.nextLink and @odata.deltaLink".into(),
        ));
    }
    let mut value = Vec::with_capacity(envelope.value.len());
    let mut removed = Vec::new();
    for (position, item) in envelope.value.into_iter().enumerate() {
        let at = format!("$.value[{position}]");
        if let Some(marker) = item.get("@removed") {
            let reason = marker
                .get("reason")
                .cloned()
                .map(serde_json::from_value::<RemovedReason>)
                .and_then(Result::ok)
                .ok_or_else(|| malformed(format!("{at}.@removed"), "expected {\"reason\": ...}".into()))?;
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("{at}.id"), "a removed entry has no id".into()))?
                .to_string();
            let odata_type = item
                .get("@odata.type")
                .and_then(Value::as_str)
                .map(str::to_string);
            removed.push(Removed {
                id,
                reason,
                odata_type,
                position,
            });
            continue;
        }
        let parsed: T = serde_path_to_error::deserialize(Value::Object(item))
            .map_err(|e| malformed(json_path(&at, e.path()), e.inner().to_string()))?;
        value.push(parsed);
    }
    Ok(Page {
        value,
        removed,
        next_link: envelope.next_link,
        delta_link: envelope.delta_link,
        context: envelope.context,
        count: envelope.count,
    })
}

/// Parses a single-object body with the same error reporting as pages.
pub(crate) fn parse_object<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, GraphError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| GraphError::Malformed {
        url: deskbridge_core::redact::url(url),
        json_path: json_path("$", e.path()),
        message: e.inner().to_string(),
    })
}

/// Membership changes gathered over a groups delta round. Graph may split one group's
/// `members@delta` over several pages and may replay entries; merging here is idempotent and the
/// last word about a member wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChanges {
    /// group id → member id → added (true) or removed (false).
    groups: BTreeMap<String, BTreeMap<String, bool>>,
    member_types: BTreeMap<String, String>,
}

impl MembershipChanges {
    pub fn merge_group(&mut self, group: &Group) {
        if let Some(members) = &group.members_delta {
            self.merge(&group.id, members);
        }
    }

    pub fn merge(&mut self, group_id: &str, members: &[DirectoryObjectRef]) {
        let changes = self.groups.entry(group_id.to_string()).or_default();
        for member in members {
            changes.insert(member.id.clone(), !member.is_removed());
            if let Some(kind) = member.type_name() {
                self.member_types.insert(member.id.clone(), kind.to_string());
            }
        }
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    pub fn added(&self, group_id: &str) -> BTreeSet<&str> {
        self.select(group_id, true)
    }

    pub fn removed(&self, group_id: &str) -> BTreeSet<&str> {
        self.select(group_id, false)
    }

    /// `microsoft.graph.user`, `microsoft.graph.group`, ... when Graph said so.
    pub fn member_type(&self, member_id: &str) -> Option<&str> {
        self.member_types.get(member_id).map(String::as_str)
    }

    fn select(&self, group_id: &str, present: bool) -> BTreeSet<&str> {
        self.groups
            .get(group_id)
            .map(|m| {
                m.iter()
                    .filter(|(_, p)| **p == present)
                    .map(|(id, _)| id.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::User;

    #[test]
    fn removed_entries_are_separated() {
        let body = br#"{"value":[
            {"id":"u1","displayName":"A"},
            {"id":"u2","@removed":{"reason":"changed"}},
            {"id":"u3","@removed":{"reason":"deleted"}}
        ],"@odata.deltaLink":"https://g/v1.0/users/delta?$deltatoken=x"}"#;
        let page: Page<User> = parse_page("u", body).unwrap();
        assert_eq!(page.value.len(), 1);
        assert_eq!(
            page.removed[0],
            Removed {
                id: "u2".into(),
                reason: RemovedReason::Changed,
                odata_type: None,
                position: 1
            }
        );
        assert_eq!(page.removed[1].reason, RemovedReason::Deleted);
        assert!(page.is_last());
    }

    #[test]
    fn malformed_bodies_name_the_path() {
        let err = parse_page::<User>(
            "https://g/v1.0/users",
            br#"{"value":[{"id":"u1"},{"id":"u2","accountEnabled":"yes"}]}"#,
        )
        .unwrap_err();
        let GraphError::Malformed { url, json_path, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(url, "https://g/v1.0/users");
        assert_eq!(json_path, "$.value[1].accountEnabled");

        let err = parse_page::<User>("u", br#"{"value": 5}"#).unwrap_err();
        assert!(
            matches!(&err, GraphError::Malformed { json_path, .. } if json_path == "$.value"),
            "{err:?}"
        );
        let err = parse_page::<User>("u", br#"{"items": []}"#).unwrap_err();
        assert!(
            matches!(&err, GraphError::Malformed { json_path, .. } if json_path == "$"),
            "{err:?}"
        );
        assert!(parse_page::<User>("u", b"<html>").is_err());
        let err = parse_page::<User>("u", br#"{"value":[{"displayName":"no id"}]}"#).unwrap_err();
        assert!(
            matches!(&err, GraphError::Malformed { json_path, .. } if json_path == "$.value[0]"),
            "{err:?}"
        );
    }
}
