//! Partner Center collections: `{totalCount, items, links: {next: {uri, headers}},
//! continuationToken}`, and the pager that follows `links.next` with its `MS-ContinuationToken`.
use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::PartnerClient;
use crate::error::PartnerError;

pub(crate) fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(body)
}

/// The request for the next page: a URI (relative to the Partner Center root) and the
/// continuation token to send as `MS-ContinuationToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextPage {
    pub uri: String,
    pub continuation_token: Option<String>,
}

/// One page of a collection.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_count: Option<u64>,
    pub next: Option<NextPage>,
}

pub(crate) fn malformed(url: &str, detail: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        url: deskbridge_core::redact::url(url),
        detail: detail.into(),
    }
}

/// Parses an item, keeping its raw JSON where the type has a place for it.
pub(crate) fn parse_item<T: DeserializeOwned>(
    url: &str,
    index: usize,
    value: Value,
) -> Result<T, PartnerError> {
    serde_json::from_value(value).map_err(|e| malformed(url, format!("items[{index}]: {e}")))
}

pub(crate) fn parse_page<T: DeserializeOwned>(
    url: &str,
    body: &[u8],
    with_raw: impl Fn(&mut T, Value),
) -> Result<Page<T>, PartnerError> {
    let value: Value =
        serde_json::from_slice(strip_bom(body)).map_err(|e| malformed(url, format!("not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(malformed(url, "a collection must be a JSON object"));
    };
    let items = match map.get("items") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(malformed(url, "items is not an array")),
    };
    let mut parsed = Vec::with_capacity(items.len());
    for (i, raw) in items.into_iter().enumerate() {
        let mut item: T = parse_item(url, i, raw.clone())?;
        with_raw(&mut item, raw);
        parsed.push(item);
    }
    let total_count = match map.get("totalCount") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::Null) | None => None,
        Some(_) => return Err(malformed(url, "totalCount is not a number")),
    };
    let token_field = map
        .get("continuationToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let next = match map.get("links").and_then(|l| l.get("next")) {
        Some(Value::Object(next)) => {
            let uri = next
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(url, "links.next has no uri"))?
                .to_owned();
            let header_token = next.get("headers").and_then(Value::as_array).and_then(|headers| {
                headers.iter().find_map(|h| {
                    let key = h.get("key").and_then(Value::as_str)?;
                    key.eq_ignore_ascii_case("MS-ContinuationToken")
                        .then(|| h.get("value").and_then(Value::as_str).map(str::to_owned))
                        .flatten()
                })
            });
            Some(NextPage {
                uri,
                continuation_token: header_token.or(token_field),
            })
        }
        Some(Value::Null) | None => None,
        Some(_) => return Err(malformed(url, "links.next is not an object")),
    };
    Ok(Page {
        items: parsed,
        total_count,
        next,
    })
}

/// Pages of a collection. `next_page` returns `Ok(None)` after the last page; after an error the
/// same page is asked for again on the next call.
pub struct Pager<T> {
    pub(crate) client: PartnerClient,
    pub(crate) next: Option<NextPage>,
    pub(crate) with_raw: fn(&mut T, Value),
    pub(crate) buffered: VecDeque<T>,
}

impl<T: DeserializeOwned> Pager<T> {
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, PartnerError> {
        let Some(next) = self.next.take() else {
            return Ok(None);
        };
        match self.client.get_page::<T>(&next, self.with_raw).await {
            Ok(page) => {
                self.next = page.next.clone();
                Ok(Some(page))
            }
            Err(e) => {
                self.next = Some(next);
                Err(e)
            }
        }
    }

    /// The next item, fetching pages as needed.
    pub async fn next_item(&mut self) -> Result<Option<T>, PartnerError> {
        loop {
            if let Some(item) = self.buffered.pop_front() {
                return Ok(Some(item));
            }
            match self.next_page().await? {
                Some(page) => self.buffered.extend(page.items),
                None => return Ok(None),
            }
        }
    }

    /// Every remaining item.
    pub async fn collect_all(mut self) -> Result<Vec<T>, PartnerError> {
        let mut all: Vec<T> = self.buffered.drain(..).collect();
        while let Some(page) = self.next_page().await? {
            all.extend(page.items);
        }
        Ok(all)
    }
}
