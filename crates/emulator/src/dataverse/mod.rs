//! Dataverse Web API v9.2 (Dynamics 365), per organisation on a path prefix of the one
//! listener: the org URL is `{base}/org/{name}` and its API root `{base}/org/{name}/api/data/v9.2/`.
//!
//! - `model`: organisations, tables, columns, option sets, rows, versions (part of [`crate::World`]).
//! - `generate`: a synthetic org per customer tenant.
//! - `query`: `$select`/`$filter`/`$expand`/`$orderby`/`$top`/`$count` and `Prefer`.
//! - `render`: rows on the wire (ETags, formatted values, lookup annotations, expands).
//! - `entity`: entity-set reads (paging cookies, change tracking), single rows, writes.
//! - `metadata`: `EntityDefinitions`, `GlobalOptionSetDefinitions`, `$metadata`, `WhoAmI`.
//! - `protection`: the service protection limits (requests, execution time, concurrency).
//!
//! Every request is authenticated (token audience = the org URL, tenant = the org's tenant),
//! mapped to a system user (an application user for app tokens, the signed-in user for
//! delegated ones), checked against the limits, then served under the world lock.
mod batch;
mod entity;
pub(crate) mod generate;
mod metadata;
pub mod model;
mod protection;
mod query;
mod render;

use std::sync::{Arc, PoisonError};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{Value, json};

pub use model::Org;
pub(crate) use protection::Protection;
pub use protection::{DataverseLoad, ServiceLimits};

use crate::server::{AppState, LogInfo};
use crate::world::World;

/// The API version path every org serves.
pub const API_PATH: &str = "api/data/v9.2";

/// Dataverse error codes (hex strings of SDK error codes) the emulator answers with.
pub mod codes {
    /// A query Dataverse does not accept (bad `$filter`, unknown property, `$skip`, nested `$top`…).
    pub const BAD_QUERY: &str = "0x80060888";
    /// The requested resource (entity set, segment) does not exist.
    pub const NO_SEGMENT: &str = "0x8006088a";
    /// A row does not exist (not verified; commonly seen).
    pub const NOT_FOUND: &str = "0x80040217";
    /// The caller lacks a privilege on the table (not verified; commonly seen).
    pub const MISSING_PRIVILEGE: &str = "0x80040220";
    /// The caller is not a user of the organisation (not verified).
    pub const NOT_A_MEMBER: &str = "0x80072560";
    /// A value of a write is out of range or of the wrong type.
    pub const VALIDATION: &str = "0x80040203";
    /// The ETag of `If-Match` is not the row's.
    pub const CONCURRENCY: &str = "0x80060882";
    /// A change-tracking token has expired: a full sync is needed (not verified).
    pub const EXPIRED_VERSION_STAMP: &str = "0x80044352";
    /// Service protection: 6,000 requests per 300 s.
    pub const TOO_MANY_REQUESTS: &str = "0x80072322";
    /// Service protection: 1,200,000 ms execution time per 300 s.
    pub const EXECUTION_TIME: &str = "0x80072321";
    /// An injected 503 (`Faults::random_503_percent`; the code is the generic SDK error).
    pub const UNAVAILABLE: &str = "0x80040216";
    /// Service protection: 52 concurrent requests.
    pub const CONCURRENCY_LIMIT: &str = "0x80072326";
}

/// A Dataverse error: status and the `{"error": {"code", "message"}}` body.
#[derive(Debug, Clone)]
pub(crate) struct DvError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

pub(crate) type DvResult<T> = Result<T, DvError>;

pub(crate) fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> DvError {
    DvError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

pub(crate) fn bad_query(message: impl Into<String>) -> DvError {
    error(StatusCode::BAD_REQUEST, codes::BAD_QUERY, message)
}

pub(crate) fn no_segment(segment: &str) -> DvError {
    error(
        StatusCode::NOT_FOUND,
        codes::NO_SEGMENT,
        format!("Resource not found for the segment '{segment}'."),
    )
}

/// The authenticated caller, as the organisation sees it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `systemuserid`.
    pub user_id: String,
    pub client_id: String,
    /// Readable tables (logical names); `None` = all.
    pub read_tables: Option<Vec<String>>,
    pub write: bool,
}

impl Caller {
    pub fn require_read(&self, table: &model::Table) -> DvResult<()> {
        match &self.read_tables {
            Some(tables) if !tables.iter().any(|t| t.eq_ignore_ascii_case(&table.logical_name)) => {
                Err(missing_privilege(self, table, "Read"))
            }
            _ => Ok(()),
        }
    }

    pub fn require_write(&self, table: &model::Table, privilege: &str) -> DvResult<()> {
        self.require_read(table)?;
        if self.write {
            Ok(())
        } else {
            Err(missing_privilege(self, table, privilege))
        }
    }
}

fn missing_privilege(caller: &Caller, table: &model::Table, privilege: &str) -> DvError {
    error(
        StatusCode::FORBIDDEN,
        codes::MISSING_PRIVILEGE,
        format!(
            "Principal user (Id={}, type=8, roleCount=1, privilegeCount=12, accessMode=4, MetadataCache Privileges Count = 4178, \
             businessUnitId={}), is missing prv{privilege}{} privilege on OTC={} for entity '{}'. Consider assigning a role \
             with the privilege to the user.",
            caller.user_id, caller.client_id, table.logical_name, table.object_type_code, table.logical_name
        ),
    )
}

/// One request as the handlers see it.
pub(crate) struct Ctx<'a> {
    pub org: &'a Org,
    /// `{base}/org/{name}/api/data/v9.2`.
    pub api: String,
    pub caller: Caller,
    pub now: jiff::Timestamp,
    /// Segments after the API root, percent-decoded.
    pub path: String,
    pub params: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    /// The page (1 for the first) of the `contacts` listing answered with truncated JSON:
    /// `Faults::malformed_users_page`, since contacts are the people a Dataverse reader lists.
    pub malformed_page: Option<usize>,
}

impl Ctx<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers: a status, extra headers and a body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: AnswerBody,
}

pub(crate) enum AnswerBody {
    Json(Value),
    Xml(String),
    /// `multipart/mixed` with this boundary.
    Multipart(String, String),
    Text(String),
    Empty,
}

impl Answer {
    pub fn json(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            headers: vec![],
            body: AnswerBody::Json(body),
        }
    }
}

/// The org URL (token audience) of an org named `name`.
pub(crate) fn org_url(base_url: &str, name: &str) -> String {
    format!("{base_url}/org/{name}")
}

/// The org whose URL is `resource` (with or without a trailing slash), if any: lets the
/// identity platform issue tokens for `{org}/.default` and `{org}/user_impersonation`.
pub(crate) fn org_for_resource<'w>(world: &'w World, base_url: &str, resource: &str) -> Option<&'w Org> {
    let resource = resource.trim_end_matches('/');
    let name = resource.strip_prefix(&format!("{base_url}/org/"))?;
    world
        .dataverse_orgs
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case(name))
}

/// A delegated scope for a Dataverse org: `{org}/user_impersonation` or `{org}/.default`.
/// Returns the org URL.
pub(crate) fn delegated_resource(scope: &str) -> Option<&str> {
    let resource = scope
        .strip_suffix("/user_impersonation")
        .or_else(|| scope.strip_suffix("/.default"))?;
    resource.contains("/org/").then_some(resource)
}

#[derive(serde::Deserialize)]
struct Claims {
    aud: Option<String>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    oid: Option<String>,
    idtyp: Option<String>,
    scp: Option<String>,
}

fn unauthorized(state: &AppState, org: &Org) -> DvError {
    let _ = state;
    let mut e = error(StatusCode::UNAUTHORIZED, "", "");
    e.message = format!(
        "Bearer authorization_uri={}/{}/oauth2/authorize, resource_id={}",
        state.base_url,
        org.tenant_id,
        org_url(&state.base_url, &org.name)
    );
    e
}

fn authenticate(state: &AppState, world: &World, org: &Org, headers: &HeaderMap) -> DvResult<Caller> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token.is_empty() {
        return Err(unauthorized(state, org));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, &state.signing.decoding, &validation)
        .map_err(|_| unauthorized(state, org))?
        .claims;
    let expected = org_url(&state.base_url, &org.name);
    let aud = claims.aud.unwrap_or_default();
    if !aud.trim_end_matches('/').eq_ignore_ascii_case(&expected) {
        return Err(unauthorized(state, org));
    }
    let now = state.clock.now().as_second();
    if claims.exp.is_none_or(|exp| exp <= now) || claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(300))
    {
        return Err(unauthorized(state, org));
    }
    if !claims
        .tid
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(&org.tenant_id))
    {
        return Err(unauthorized(state, org));
    }
    let client_id = claims.appid.or(claims.azp).unwrap_or_default();
    if world.app(&client_id).is_none() {
        return Err(unauthorized(state, org));
    }
    let not_member = |who: &str| {
        error(
            StatusCode::FORBIDDEN,
            codes::NOT_A_MEMBER,
            format!(
                "The user with id {who} is not a member of the organization {}.",
                org.organization_id
            ),
        )
    };
    let delegated = claims.idtyp.as_deref() == Some("user") || claims.scp.is_some();
    if delegated {
        let oid = claims.oid.unwrap_or_default();
        let tenant = world
            .tenant(&org.tenant_id)
            .ok_or_else(|| unauthorized(state, org))?;
        let user = tenant
            .user(&oid)
            .filter(|u| u.account_enabled && u.deleted_date_time.is_none())
            .ok_or_else(|| not_member(&oid))?;
        if org
            .excluded_users
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&user.id))
        {
            return Err(not_member(&user.id));
        }
        Ok(Caller {
            user_id: user.id.clone(),
            client_id,
            read_tables: None,
            write: true,
        })
    } else {
        let app_user = org
            .application_user(&client_id)
            .ok_or_else(|| not_member(&client_id))?;
        Ok(Caller {
            user_id: app_user.user_id.clone(),
            client_id,
            read_tables: app_user.read_tables.clone(),
            write: app_user.write,
        })
    }
}

/// `{base}/org/{org}/api/data/v9.2/{*rest}` (and the API root itself).
pub(crate) async fn handler(
    State(state): State<Arc<AppState>>,
    Path(params): Path<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let org_name = params
        .iter()
        .find(|(k, _)| k == "org")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let prefix = format!("/org/{org_name}/{API_PATH}");
    let raw_path = uri
        .path()
        .get(prefix.len()..)
        .unwrap_or("")
        .trim_start_matches('/');
    let path = percent_decode(raw_path);
    let query: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let request_id = uuid::Uuid::new_v4().to_string();
    let annotate_errors =
        query::Prefer::parse(&headers).wants("Microsoft.PowerApps.CDS.ErrorDetails.OperationStatus");

    // Authenticate and admit under a short read lock.
    let admitted = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        match world
            .dataverse_orgs
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&org_name))
        {
            None => Err((no_segment(&org_name), None)),
            Some(org) => match authenticate(&state, &world, org, &headers) {
                Err(e) => Err((e, Some(org.tenant_id.clone()))),
                Ok(caller) => {
                    let faults = state
                        .faults
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    let mut dice = state.dice.lock().unwrap_or_else(PoisonError::into_inner);
                    let injected = faults.random_429_percent > 0.0
                        && (dice.next_u64() % 10_000) as f64 / 100.0 < faults.random_429_percent;
                    let unavailable = faults.random_503_percent > 0.0
                        && (dice.next_u64() % 10_000) as f64 / 100.0 < faults.random_503_percent;
                    drop(dice);
                    let admission = if injected {
                        Err(protection::too_many(faults.retry_after_secs.max(1)))
                    } else if unavailable {
                        let mut e = error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            codes::UNAVAILABLE,
                            "The service is temporarily unavailable. Please retry.",
                        );
                        e.retry_after = Some(faults.retry_after_secs.max(1));
                        Err(e)
                    } else {
                        state.dataverse.admit(
                            &org.name,
                            &caller.user_id,
                            faults.throttling,
                            state.clock.now(),
                        )
                    };
                    let execution_ms = state
                        .dataverse
                        .limits
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .execution_ms;
                    match admission {
                        Ok(slot) => Ok((caller, slot, execution_ms, org.tenant_id.clone())),
                        Err(e) => Err((e, Some(org.tenant_id.clone()))),
                    }
                }
            },
        }
    };
    let (caller, slot, execution_ms, tenant) = match admitted {
        Ok(a) => a,
        Err((e, tenant)) => return finish(annotate_errors, Err(e), &request_id, tenant, None, vec![]),
    };
    if execution_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(execution_ms)).await;
    }
    let app = caller.client_id.clone();
    let remaining = slot.remaining.clone();
    let outcome = {
        let now = state.clock.now();
        let write = method != Method::GET;
        let api = format!("{}/{API_PATH}", org_url(&state.base_url, &org_name));
        if method == Method::POST && path.trim_end_matches('/') == "$batch" {
            let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
            let content_type = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            batch::run(&mut world, &org_name, &api, &caller, now, content_type, &body)
        } else if write {
            let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
            entity::write(
                &mut world, &org_name, api, caller, now, &method, &path, &headers, &body,
            )
        } else {
            let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
            match world
                .dataverse_orgs
                .iter()
                .find(|o| o.name.eq_ignore_ascii_case(&org_name))
            {
                None => Err(no_segment(&org_name)),
                Some(org) => {
                    let ctx = Ctx {
                        org,
                        api,
                        caller,
                        now,
                        path: path.clone(),
                        params: query,
                        headers: &headers,
                        malformed_page: state
                            .faults
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .malformed_users_page,
                    };
                    read(&ctx)
                }
            }
        }
    };
    drop(slot);
    finish(
        annotate_errors,
        outcome,
        &request_id,
        Some(tenant),
        Some(app),
        remaining,
    )
}

fn read(ctx: &Ctx<'_>) -> DvResult<Answer> {
    let path = ctx.path.trim_end_matches('/');
    let first = path.split('/').next().unwrap_or("");
    match first {
        "" => Ok(Answer::json(json!({
            "@odata.context": format!("{}/$metadata", ctx.api),
            "value": ctx.org.tables.iter().map(|t| json!({"name": t.entity_set_name, "kind": "EntitySet",
                                                         "url": t.entity_set_name})).collect::<Vec<_>>(),
        }))),
        "$metadata" => Ok(metadata::csdl(ctx)),
        "WhoAmI" | "WhoAmI()" => Ok(Answer::json(json!({
            "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", ctx.api),
            "BusinessUnitId": ctx.org.business_unit_id,
            "UserId": ctx.caller.user_id,
            "OrganizationId": ctx.org.organization_id,
        }))),
        f if f.starts_with("EntityDefinitions") || f.starts_with("GlobalOptionSetDefinitions") => {
            metadata::definitions(ctx, path)
        }
        _ => entity::read(ctx, path),
    }
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn finish(
    annotate_errors: bool,
    outcome: DvResult<Answer>,
    request_id: &str,
    tenant: Option<String>,
    app: Option<String>,
    remaining: Vec<(String, String)>,
) -> Response {
    let answer = match outcome {
        Ok(a) => a,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Answer {
            status: e.status,
            headers: vec![("WWW-Authenticate".into(), e.message)],
            body: AnswerBody::Empty,
        },
        Err(e) => {
            let mut headers = vec![];
            if let Some(secs) = e.retry_after {
                headers.push(("Retry-After".into(), secs.to_string()));
            }
            let mut body = json!({"error": {"code": e.code, "message": e.message}});
            if annotate_errors {
                // The error details Dataverse adds when all annotations are asked for.
                body["error"]["@Microsoft.PowerApps.CDS.ErrorDetails.OperationStatus"] = json!("0");
                body["error"]["@Microsoft.PowerApps.CDS.ErrorDetails.SubErrorCode"] = json!("-2146233088");
                body["error"]["@Microsoft.PowerApps.CDS.HelpLink"] = json!(format!(
                    "http://go.microsoft.com/fwlink/?LinkID=398563&error=Microsoft.Crm.CrmException%3a{}&client=platform",
                    e.code.trim_start_matches("0x")
                ));
                body["error"]["@Microsoft.PowerApps.CDS.TraceText"] =
                    json!(format!("[Emulator] {}", e.message));
                body["error"]["@Microsoft.PowerApps.CDS.InnerError.Message"] = json!(e.message);
            }
            Answer {
                status: e.status,
                headers,
                body: AnswerBody::Json(body),
            }
        }
    };
    let (body, content_type) = match answer.body {
        AnswerBody::Json(v) => (
            Body::from(serde_json::to_vec(&v).unwrap_or_default()),
            Some("application/json; odata.metadata=minimal".to_owned()),
        ),
        AnswerBody::Xml(x) => (Body::from(x), Some("application/xml".to_owned())),
        AnswerBody::Text(t) => (Body::from(t), Some("text/plain".to_owned())),
        AnswerBody::Multipart(boundary, x) => (
            Body::from(x),
            Some(format!("multipart/mixed; boundary={boundary}")),
        ),
        AnswerBody::Empty => (Body::empty(), None),
    };
    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    let h = response.headers_mut();
    if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
        h.insert(http::header::CONTENT_TYPE, ct);
    }
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("REQ_ID", v.clone());
        h.insert("x-ms-service-request-id", v);
    }
    for (k, v) in remaining.into_iter().chain(answer.headers) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(name, value);
        }
    }
    response.extensions_mut().insert(LogInfo {
        tenant,
        app,
        resource_units: None,
    });
    response
}

/// A tenant's orgs, for the start-up summary: `{url, tenant, tables}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgSummary {
    pub url: String,
    pub tenant: String,
    pub name: String,
    /// Logical names of the tables (`account`, `contact`, `systemuser`, `cr7a1_contract`…).
    pub tables: Vec<String>,
    /// Rows per table (logical name → count).
    pub rows: std::collections::BTreeMap<String, usize>,
}

pub(crate) fn summaries(world: &World, base_url: &str) -> Vec<OrgSummary> {
    world
        .dataverse_orgs
        .iter()
        .map(|o| OrgSummary {
            url: org_url(base_url, &o.name),
            tenant: o.tenant_id.clone(),
            name: o.name.clone(),
            tables: o.tables.iter().map(|t| t.logical_name.clone()).collect(),
            rows: o
                .tables
                .iter()
                .map(|t| (t.logical_name.clone(), t.rows.len()))
                .collect(),
        })
        .collect()
}
