//! JSON batching: up to 20 requests in one `POST /$batch`; per-item 429s are retried alone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::budget::resource_unit_cost;
use crate::client::{GraphRequest, GraphTenant};
use crate::page::parse_object;
use crate::{GraphError, Page};

/// Graph's limit on requests per batch.
pub const MAX_BATCH_REQUESTS: usize = 20;

/// One request inside a batch. `url` is relative to the version root, e.g. `/users/{id}/licenseDetails`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub id: String,
    pub method: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
}

impl BatchRequest {
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> Self {
        BatchRequest {
            id: id.into(),
            method: "GET".into(),
            url: url.into(),
            headers: None,
            body: None,
            depends_on: None,
        }
    }
}

/// The answer to one batched request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
}

impl BatchResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn retry_after(&self) -> Option<Duration> {
        let seconds: f64 = self.header("retry-after")?.trim().parse().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
    }

    /// Reads a collection body of a successful item as a page.
    pub fn page<T: serde::de::DeserializeOwned>(&self) -> Result<Page<T>, GraphError> {
        let body = serde_json::to_vec(self.body.as_ref().unwrap_or(&Value::Null)).unwrap_or_default();
        crate::page::parse_page(&format!("$batch item {}", self.id), &body)
    }
}

#[derive(Deserialize)]
struct BatchEnvelope {
    responses: Vec<BatchResponse>,
}

impl GraphTenant {
    /// Sends up to 20 requests as one batch. Items answered 429 (or 503) are retried alone once their
    /// own Retry-After has passed (items that failed 424 because of them go along); the others keep
    /// their first answer. Responses come back in the order of `requests`.
    pub async fn batch(&self, requests: Vec<BatchRequest>) -> Result<Vec<BatchResponse>, GraphError> {
        validate(&requests)?;
        let config = self.client().config().clone();
        let mut pending = requests.clone();
        let mut answered: HashMap<String, BatchResponse> = HashMap::new();
        let mut round: u32 = 0;
        while !pending.is_empty() {
            round += 1;
            // Each batched request is charged separately by Microsoft.
            let cost: u32 = pending.iter().map(|r| resource_unit_cost(&r.url)).sum();
            let body = serde_json::json!({ "requests": pending });
            let mut request = GraphRequest::post("/$batch", body);
            // A batch of reads can be resent whole after a 5xx or a dropped connection.
            if pending.iter().all(|r| r.method.eq_ignore_ascii_case("GET")) {
                request = request.idempotent();
            }
            let response = self.send_with_cost(request, Some(cost)).await?;
            let envelope: BatchEnvelope = parse_object(&response.url, &response.body)?;
            let mut retry: HashSet<String> = HashSet::new();
            let mut wait = Duration::ZERO;
            let last_round = round >= config.max_attempts;
            for item in &envelope.responses {
                if !last_round && matches!(item.status, 429 | 503) {
                    wait = wait.max(item.retry_after().unwrap_or_else(|| self.backoff(round)));
                    retry.insert(item.id.to_ascii_lowercase());
                }
            }
            for item in envelope.responses {
                let key = item.id.to_ascii_lowercase();
                let failed_dependency = item.status == 424 && !retry.is_empty();
                if retry.contains(&key) || (failed_dependency && !last_round) {
                    retry.insert(key);
                } else {
                    answered.insert(key, item);
                }
            }
            if retry.is_empty() {
                break;
            }
            if wait > config.max_retry_after {
                return Err(GraphError::InvalidRequest(format!(
                    "batch items throttled for {}s, longer than the configured maximum wait",
                    wait.as_secs()
                )));
            }
            // The tenant waits as a whole: no call to it (batched or not) before Retry-After.
            self.pause_tenant(wait);
            pending.retain(|r| retry.contains(&r.id.to_ascii_lowercase()));
        }
        requests
            .iter()
            .map(|r| {
                answered
                    .remove(&r.id.to_ascii_lowercase())
                    .ok_or_else(|| GraphError::Malformed {
                        url: "$batch".into(),
                        json_path: "$.responses".into(),
                        message: format!("no response for request id {:?}", r.id),
                    })
            })
            .collect()
    }
}

fn validate(requests: &[BatchRequest]) -> Result<(), GraphError> {
    if requests.is_empty() || requests.len() > MAX_BATCH_REQUESTS {
        return Err(GraphError::InvalidRequest(format!(
            "a batch holds 1 to {MAX_BATCH_REQUESTS} requests, not {}",
            requests.len()
        )));
    }
    let mut ids = HashSet::new();
    for request in requests {
        // Graph compares batch ids case-insensitively.
        if !ids.insert(request.id.to_ascii_lowercase()) {
            return Err(GraphError::InvalidRequest(format!(
                "duplicate batch request id {:?}",
                request.id
            )));
        }
        if request.url.starts_with("http") || request.url.to_ascii_lowercase().starts_with("/v1.0") {
            return Err(GraphError::InvalidRequest(format!(
                "batch url {:?} must be relative to the version root",
                request.url
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rules() {
        let many: Vec<BatchRequest> = (0..21)
            .map(|i| BatchRequest::get(i.to_string(), "/users"))
            .collect();
        assert!(validate(&many).is_err());
        assert!(validate(&[]).is_err());
        assert!(
            validate(&[
                BatchRequest::get("a", "/users"),
                BatchRequest::get("A", "/groups")
            ])
            .is_err()
        );
        assert!(validate(&[BatchRequest::get("a", "/v1.0/users")]).is_err());
        assert!(validate(&many[..20]).is_ok());
    }

    #[test]
    fn item_headers_are_case_insensitive() {
        let item: BatchResponse = serde_json::from_value(
            serde_json::json!({"id": "1", "status": 429, "headers": {"Retry-After": "3"}}),
        )
        .unwrap();
        assert_eq!(item.retry_after(), Some(Duration::from_secs(3)));
        assert!(!item.is_success());
    }
}
