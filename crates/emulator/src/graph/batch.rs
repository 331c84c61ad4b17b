//! JSON batching: `POST /v1.0/$batch` with up to 20 requests, `dependsOn` and per-item status.
use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

#[derive(Deserialize)]
struct BatchBody {
    requests: Vec<BatchItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    id: String,
    method: String,
    url: String,
    /// Values are strings; some SDKs send lists of strings.
    #[serde(default)]
    headers: HashMap<String, Value>,
    body: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

pub(crate) fn handle(state: &AppState, req: &Req<'_>) -> Outcome {
    match run(state, req) {
        Ok(resp) => Outcome {
            resp,
            body_error: None,
        },
        Err(e) => Outcome::error(e),
    }
}

fn run(state: &AppState, req: &Req<'_>) -> GResult<Resp> {
    if req.method != Method::POST {
        return Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "Only POST is allowed on $batch.",
        ));
    }
    let body: BatchBody = serde_json::from_slice(req.body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid batch payload format: {e}"),
        )
    })?;
    if body.requests.is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid batch payload format.",
        ));
    }
    if body.requests.len() > 20 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Number of batch requests exceeds the limit of 20.",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for item in &body.requests {
        if !seen.insert(item.id.to_lowercase()) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Batch request contains duplicate request id '{}'.", item.id),
            ));
        }
        if item.body.is_some()
            && !item
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "Content-Type header is required for request '{}' with a body.",
                    item.id
                ),
            ));
        }
        for dep in &item.depends_on {
            if !body.requests.iter().any(|r| r.id.eq_ignore_ascii_case(dep)) {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("Request '{}' depends on unknown request '{dep}'.", item.id),
                ));
            }
        }
    }
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(body.requests.len());
    // Dependencies must come earlier in the list (Graph requires an order it can execute).
    for item in &body.requests {
        let failed_dep = item
            .depends_on
            .iter()
            .any(|d| statuses.get(&d.to_lowercase()).is_none_or(|s| *s >= 400));
        if failed_dep {
            statuses.insert(item.id.to_lowercase(), 424);
            responses.push(json!({
                "id": item.id, "status": 424,
                "headers": {"Content-Type": "application/json"},
                "body": {"error": {"code": "FailedDependency", "message": "A dependent request failed.",
                         "innerError": {"date": state.clock.now().strftime("%Y-%m-%dT%H:%M:%S").to_string()}}},
            }));
            continue;
        }
        let mut headers = HeaderMap::new();
        if let Some(auth) = req.headers.get("authorization") {
            headers.insert("authorization", auth.clone());
        }
        for (k, v) in &item.headers {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                headers.insert(name, value);
            }
        }
        // Relative URLs are documented; the Python SDK sends absolute ones, which Graph accepts.
        let url = item.url.trim();
        let url = match url.find("://") {
            Some(scheme_end) => url[scheme_end + 3..]
                .find('/')
                .map_or("/", |p| &url[scheme_end + 3 + p..]),
            None => url,
        };
        let url = url.strip_prefix("/v1.0").unwrap_or(url);
        let url = if url.starts_with('/') {
            url.to_owned()
        } else {
            format!("/{url}")
        };
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let body_bytes = item
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        let method = Method::from_bytes(item.method.to_uppercase().as_bytes()).unwrap_or(Method::GET);
        let sub = Req {
            method,
            path: path.to_owned(),
            query: url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers: &headers,
            body: &body_bytes,
        };
        let resp = dispatch(state, sub, false);
        statuses.insert(item.id.to_lowercase(), resp.status.as_u16());
        let mut out_headers = serde_json::Map::new();
        for (k, v) in &resp.headers {
            if matches!(
                k.to_ascii_lowercase().as_str(),
                "retry-after" | "location" | "x-ms-throttle-scope" | "x-ms-throttle-information"
            ) {
                out_headers.insert(k.clone(), json!(v));
            }
        }
        let body = match resp.body {
            Body::Json(v) => {
                out_headers.insert(
                    "Content-Type".into(),
                    json!("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"),
                );
                v
            }
            Body::Text(t) => {
                out_headers.insert("Content-Type".into(), json!("text/plain"));
                Value::String(t)
            }
            _ => Value::Null,
        };
        let mut entry = json!({"id": item.id, "status": resp.status.as_u16(), "headers": out_headers});
        if !body.is_null()
            && let Value::Object(m) = &mut entry
        {
            m.insert("body".into(), body);
        }
        responses.push(entry);
    }
    Ok(Resp::json(StatusCode::OK, json!({"responses": responses})))
}
