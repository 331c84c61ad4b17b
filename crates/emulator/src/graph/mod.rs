//! Microsoft Graph v1.0: request dispatch, authentication of bearer tokens, permission checks,
//! throttling, faults, and the response envelope (headers, errors with `innerError`).
//!
//! Requests are dispatched by path segments rather than by router so that `$batch` can run
//! its sub-requests through exactly the same code.
mod batch;
pub(crate) mod deliveries;
mod delta;
mod render;
mod resources;
pub(crate) mod subscriptions;

use std::sync::{Arc, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::limits::{Charge, Family, resource_units};
use crate::server::AppState;

pub(crate) use render::Selection;

/// One Graph request, from the wire or from a `$batch` item.
pub(crate) struct Req<'a> {
    pub method: Method,
    /// Path after `/v1.0`, e.g. `/users/{id}/manager`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Req<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn eventual(&self) -> bool {
        self.header("consistencylevel")
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
    }
}

pub(crate) enum Body {
    Json(Value),
    Text(String),
    /// Bytes sent as JSON content type although they are not valid JSON (the malformed-page fault).
    Malformed(String),
    /// Abort the connection mid-response.
    Drop,
}

pub(crate) struct Resp {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub resource_units: Option<u32>,
}

impl Resp {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: vec![],
            body: Body::Json(body),
            tenant: None,
            app: None,
            resource_units: None,
        }
    }
}

/// A Graph error: status, code, message, extra headers.
#[derive(Debug)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(String, String)>,
    /// Raised by Intune: its 429 keeps the plain `innerError` rather than Graph's throttling one.
    pub intune: bool,
}

pub(crate) type GResult<T> = Result<T, GraphError>;

pub(crate) fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
    GraphError {
        status,
        code,
        message: message.into(),
        headers: vec![],
        intune: false,
    }
}

/// Intune's throttling answer as Graph relays it: code `TooManyRequests`, and as the message
/// Intune's own error document serialised into a string (`_version` 3, the Intune front end's
/// URL, `RetryAfter` null), as captured from the real service.
fn intune_throttled(path: &str) -> GraphError {
    let url = format!(
        "https://fef.msub01.manage.microsoft.com/DeviceFE/StatelessDeviceFEService{path}?api-version=2023-07-04"
    );
    let message = format!(
        "An error has occurred - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 \
         - Activity ID: {} - Url: {url}",
        uuid::Uuid::new_v4()
    );
    let quoted = serde_json::to_string(&message).unwrap_or_default();
    let mut e = err(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        format!(
            "{{\r\n  \"_version\": 3,\r\n  \"Message\": {quoted},\r\n  \"CustomApiErrorPhrase\": \"\",\r\n  \
             \"RetryAfter\": null,\r\n  \"ErrorSourceService\": \"\",\r\n  \"HttpHeaders\": \"{{}}\"\r\n}}"
        ),
    );
    e.intune = true;
    e
}

pub(crate) fn not_found(what: &str) -> GraphError {
    err(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

pub(crate) fn bad_request(message: impl Into<String>) -> GraphError {
    err(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

pub(crate) fn unsupported(message: impl Into<String>) -> GraphError {
    err(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
}

fn denied() -> GraphError {
    err(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn unauthenticated(message: &str) -> GraphError {
    let mut e = err(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
    e.headers.push((
        "WWW-Authenticate".into(),
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", \
         client_id=\"00000003-0000-0000-c000-000000000000\""
            .into(),
    ));
    e
}

/// Opaque, self-contained paging and delta tokens.
pub(crate) fn encode_token<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

pub(crate) fn decode_token<T: DeserializeOwned>(token: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One path segment percent-decoded, once (`%40` → `@`, `%23EXT%23` → `#EXT#`), as Graph reads
/// ids and user principal names in paths; `+` stays `+` (that rule is the query string's). A `%`
/// not followed by two hex digits is kept as it is, and bytes that do not form UTF-8 become U+FFFD.
pub(crate) fn decode_segment(segment: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    if !segment.contains('%') {
        return segment.to_owned();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A cast or bound-function segment without its namespace: Graph takes both the full
/// `microsoft.graph.user` and the alias `graph.user` (the form Microsoft's SDKs send).
pub(crate) fn strip_namespace(segment: &str) -> &str {
    segment
        .strip_prefix("microsoft.graph.")
        .or_else(|| segment.strip_prefix("graph."))
        .unwrap_or(segment)
}

/// Query string as Graph echoes it: keys verbatim, values form-encoded (spaces as `+`).
pub(crate) fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The authenticated caller of a Graph request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub tenant_id: String,
    pub app_id: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub user_oid: Option<String>,
}

impl Caller {
    fn has_any(&self, permissions: &[&str]) -> bool {
        permissions.iter().any(|p| {
            self.roles.iter().any(|r| r.eq_ignore_ascii_case(p))
                || self.scopes.iter().any(|s| s.eq_ignore_ascii_case(p))
        })
    }

    pub fn require(&self, permissions: &[&str]) -> GResult<()> {
        if self.has_any(permissions) {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

pub(crate) const READ_USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "User.ReadBasic.All",
];
pub(crate) const READ_GROUPS: &[&str] = &[
    "Group.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
pub(crate) const READ_ORG: &[&str] = &[
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
pub(crate) const WRITE_LICENSES: &[&str] = &[
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
    "LicenseAssignment.ReadWrite.All",
];

#[derive(serde::Deserialize)]
struct TokenClaims {
    aud: Option<String>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    #[serde(default)]
    roles: Vec<String>,
    scp: Option<String>,
    oid: Option<String>,
    idtyp: Option<String>,
}

fn authenticate(state: &AppState, req: &Req<'_>) -> GResult<Caller> {
    let header = req.header("authorization").unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token.is_empty() {
        return Err(unauthenticated("Access token is empty."));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<TokenClaims>(token, &state.signing.decoding, &validation)
        .map_err(|_| unauthenticated("Access token validation failure."))?
        .claims;
    let aud = claims.aud.unwrap_or_default();
    if !matches!(
        aud.as_str(),
        "https://graph.microsoft.com"
            | "https://graph.microsoft.com/"
            | "00000003-0000-0000-c000-000000000000"
    ) {
        return Err(unauthenticated(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let now = state.clock.now().as_second();
    if claims.exp.is_none_or(|exp| exp <= now) || claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(300))
    {
        return Err(unauthenticated("Access token has expired or is not yet valid."));
    }
    let tid = claims.tid.unwrap_or_default();
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let tenant = world
        .tenant(&tid)
        .ok_or_else(|| unauthenticated("Access token validation failure. Invalid tenant."))?;
    let app_id = claims.appid.or(claims.azp).unwrap_or_default();
    if world.app(&app_id).is_none() {
        return Err(unauthenticated("Access token validation failure."));
    }
    crate::partner::graph_gate(&world, &app_id, &tenant.id)
        .map_err(|(status, code, message)| err(status, code, message))?;
    let delegated = claims.idtyp.as_deref() == Some("user") || claims.scp.is_some();
    Ok(Caller {
        tenant_id: tenant.id.clone(),
        app_id,
        roles: claims.roles,
        scopes: claims
            .scp
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default(),
        user_oid: if delegated { claims.oid } else { None },
    })
}

/// The RU cost and bucket family of a request, from its path.
fn cost_of(req: &Req<'_>) -> (Family, u32, bool) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let write = req.method != Method::GET;
    let base = match segs.as_slice() {
        ["users"] | ["users", _] => 2,
        [
            "users",
            _,
            "memberOf" | "transitiveMemberOf" | "licenseDetails",
            ..,
        ] => 2,
        ["groups", _, "members", ..] => 3,
        ["groups", _, "transitiveMembers", ..] => 5,
        ["subscribedSkus"] => 3,
        ["deviceManagement", ..] | ["users", _, "managedDevices", ..] => return (Family::Intune, 1, write),
        ["tenantRelationships", ..] => return (Family::Other, 1, write),
        _ => 1,
    };
    let delta = segs.last().is_some_and(|s| s.contains("delta"));
    let base = if delta { 1 } else { base };
    let top = req.param("$top").and_then(|t| t.parse().ok());
    let units = resource_units(
        base,
        req.param("$select").is_some(),
        req.param("$expand").is_some(),
        top,
    );
    (Family::Directory, units, write)
}

/// The subscriptions API (`/subscriptions…`): asynchronous, since creating one first runs the
/// validation handshake with the caller's endpoints. Not reachable through `$batch`.
pub(crate) async fn dispatch_subscriptions(state: &Arc<AppState>, req: Req<'_>) -> Resp {
    let caller = match authenticate(state, &req) {
        Ok(c) => c,
        // The same refusal every Graph request gets.
        Err(_) => return dispatch(state, req, true),
    };
    let mut resp = subscriptions::handle(state, &req, &caller).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .header("client-request-id")
        .map_or_else(|| request_id.clone(), str::to_owned);
    resp.headers.push(("request-id".into(), request_id));
    resp.headers.push(("client-request-id".into(), client_request_id));
    resp.headers.push(("Cache-Control".into(), "no-cache".into()));
    resp
}

/// Runs one Graph request (top level or a batch item) and returns the response with Graph's headers.
pub(crate) fn dispatch(state: &AppState, req: Req<'_>, top_level: bool) -> Resp {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .header("client-request-id")
        .map_or_else(|| request_id.clone(), str::to_owned);
    let mut resp = if req.path == "/$batch" && top_level {
        batch::handle(state, &req)
    } else {
        run(state, &req, top_level)
    };
    let now = state.clock.now();
    if let Some(e) = resp.body_error.take() {
        let mut inner = json!({
            "date": now.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": request_id,
            "client-request-id": client_request_id,
        });
        if e.status == StatusCode::TOO_MANY_REQUESTS && !e.intune {
            inner = json!({"code": "429", "date": inner["date"], "message": "Please retry after",
                           "request-id": request_id, "status": "429"});
        }
        resp.resp.status = e.status;
        resp.resp.headers.extend(e.headers);
        resp.resp.body =
            Body::Json(json!({"error": {"code": e.code, "message": e.message, "innerError": inner}}));
    }
    let mut out = resp.resp;
    out.headers.push(("request-id".into(), request_id.clone()));
    out.headers.push(("client-request-id".into(), client_request_id));
    out.headers.push((
        "x-ms-ags-diagnostic".into(),
        r#"{"ServerInfo":{"DataCenter":"North Europe","Slice":"E","Ring":"4","ScaleUnit":"001","RoleInstance":"DB1PEPF0000EMU"}}"#
            .into(),
    ));
    out.headers.push(("OData-Version".into(), "4.0".into()));
    out.headers
        .push(("Strict-Transport-Security".into(), "max-age=31536000".into()));
    out.headers.push(("Cache-Control".into(), "no-cache".into()));
    if let Some(units) = out.resource_units {
        out.headers.push(("x-ms-resource-unit".into(), units.to_string()));
    }
    out
}

pub(crate) struct Outcome {
    resp: Resp,
    body_error: Option<GraphError>,
}

impl Outcome {
    fn error(e: GraphError) -> Self {
        Self {
            resp: Resp::json(e.status, Value::Null),
            body_error: Some(e),
        }
    }
}

fn run(state: &AppState, req: &Req<'_>, top_level: bool) -> Outcome {
    let caller = match authenticate(state, req) {
        Ok(c) => c,
        Err(e) => return Outcome::error(e),
    };
    let faults = state
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (family, units, write) = cost_of(req);
    let mut extra_headers = Vec::new();
    if top_level {
        let mut dice = state.dice.lock().unwrap_or_else(PoisonError::into_inner);
        let mut roll = |percent: f64| percent > 0.0 && (dice.next_u64() % 10_000) as f64 / 100.0 < percent;
        let injected = if roll(faults.dropped_connection_percent) {
            Some(Outcome {
                resp: Resp {
                    body: Body::Drop,
                    ..Resp::json(StatusCode::OK, Value::Null)
                },
                body_error: None,
            })
        } else if roll(faults.random_429_percent) {
            let mut e = err(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please retry again later.",
            );
            e.headers
                .push(("Retry-After".into(), faults.retry_after_secs.to_string()));
            Some(Outcome::error(e))
        } else if roll(faults.random_503_percent) {
            let mut e = err(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "Service unavailable.",
            );
            e.headers
                .push(("Retry-After".into(), faults.retry_after_secs.to_string()));
            Some(Outcome::error(e))
        } else if roll(faults.random_504_percent) {
            Some(Outcome::error(err(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "Gateway timeout.",
            )))
        } else {
            None
        };
        if let Some(mut o) = injected {
            o.resp.tenant = Some(caller.tenant_id.clone());
            o.resp.app = Some(caller.app_id.clone());
            return o;
        }
        let malformed = roll(faults.malformed_page_percent);
        drop(dice);
        if malformed && req.method == Method::GET {
            return Outcome {
                resp: Resp {
                    body: Body::Malformed(r#"{"@odata.context":"…","value":[{"id":"#.into()),
                    tenant: Some(caller.tenant_id.clone()),
                    app: Some(caller.app_id.clone()),
                    ..Resp::json(StatusCode::OK, Value::Null)
                },
                body_error: None,
            };
        }
    }
    if faults.throttling {
        let users = {
            let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
            world.tenant(&caller.tenant_id).map_or(0, |t| t.users.len())
        };
        let now = state.clock.now();
        let charge = state
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .charge(
                family,
                &caller.app_id,
                &caller.tenant_id,
                users,
                units,
                write,
                now,
            );
        match charge {
            Charge::Allowed { used_fraction } => {
                // The percentage header belongs to identity and access's resource units.
                if family == Family::Directory && used_fraction >= 0.8 {
                    extra_headers.push((
                        "x-ms-throttle-limit-percentage".into(),
                        format!("{:.1}", used_fraction),
                    ));
                }
            }
            Charge::Throttled {
                retry_after,
                intune: true,
                ..
            } => {
                let mut e = intune_throttled(&req.path);
                if !faults.intune_429_without_retry_after {
                    e.headers.push(("Retry-After".into(), retry_after.to_string()));
                }
                let mut o = Outcome::error(e);
                o.resp.tenant = Some(caller.tenant_id.clone());
                o.resp.app = Some(caller.app_id.clone());
                return o;
            }
            Charge::Throttled {
                retry_after,
                scope,
                information,
                intune: false,
            } => {
                let mut e = err(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Please retry again later.",
                );
                e.headers.push(("Retry-After".into(), retry_after.to_string()));
                e.headers.push(("x-ms-throttle-scope".into(), scope));
                e.headers
                    .push(("x-ms-throttle-information".into(), information.into()));
                let mut o = Outcome::error(e);
                o.resp.tenant = Some(caller.tenant_id.clone());
                o.resp.app = Some(caller.app_id.clone());
                if family == Family::Directory {
                    o.resp.resource_units = Some(units);
                }
                return o;
            }
        }
    }
    let result = resources::route(state, req, &caller, &faults);
    let mut outcome = match result {
        Ok(resp) => Outcome {
            resp,
            body_error: None,
        },
        Err(e) => Outcome::error(e),
    };
    outcome.resp.headers.extend(extra_headers);
    outcome.resp.tenant = Some(caller.tenant_id);
    outcome.resp.app = Some(caller.app_id);
    // Resource units are identity and access's measure; Intune counts requests.
    if family == Family::Directory {
        outcome.resp.resource_units = Some(units);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded_once_and_plus_stays() {
        assert_eq!(decode_segment("adele%40contoso.com"), "adele@contoso.com");
        assert_eq!(
            decode_segment("jane_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com"),
            "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"
        );
        assert_eq!(decode_segment("a+b%2bc%2Bd"), "a+b+c+d");
        assert_eq!(decode_segment("%2540"), "%40", "decoded once");
        assert_eq!(decode_segment("100%"), "100%");
        assert_eq!(decode_segment("%zz%4"), "%zz%4");
        assert_eq!(decode_segment("%C3%A9l%C3%A8ve"), "élève");
        assert_eq!(decode_segment("%FF"), "\u{fffd}");
        assert_eq!(decode_segment("plain"), "plain");
    }

    #[test]
    fn casts_take_the_namespace_or_its_alias() {
        assert_eq!(strip_namespace("microsoft.graph.user"), "user");
        assert_eq!(strip_namespace("graph.user"), "user");
        assert_eq!(strip_namespace("delta()"), "delta()");
    }
}
