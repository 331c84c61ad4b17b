//! The identity platform v2: token endpoint (client credentials with secret or certificate
//! assertion, authorization code + PKCE, rotating refresh tokens), the authorize page,
//! OpenID configuration and JWKS. Errors follow Entra's JSON shape and AADSTS codes.
// Handlers return axum responses as errors; they are built once per failed request.
#![allow(clippy::result_large_err)]
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use crate::EmulatorError;
use crate::server::{AppState, LogInfo};
use crate::world::{App, Tenant, World};

const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
const PARTNER_CENTER_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
const PARTNER_API_RESOURCE: &str = "https://api.partner.microsoft.com";

/// The non-Graph resource a delegated scope names (Partner Center, the partner API), if any.
fn other_resource(scope: &str) -> Option<&'static str> {
    let s = scope.to_ascii_lowercase();
    if s.starts_with("https://api.partnercenter.microsoft.com/")
        || s.starts_with("fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd/")
    {
        Some(PARTNER_CENTER_RESOURCE)
    } else if s.starts_with("https://api.partner.microsoft.com/")
        || s.starts_with("4990cffe-04e8-4e8b-808a-1175604b879f/")
    {
        Some(PARTNER_API_RESOURCE)
    } else {
        None
    }
}

/// The audience of a delegated token and its `scp` values: the resource of the first API scope
/// (Graph unless it names Partner Center or the partner API), and the scopes of that resource.
fn audience_of(api_scopes: &[String]) -> (&'static str, Vec<String>) {
    let aud = api_scopes
        .first()
        .and_then(|s| other_resource(s))
        .unwrap_or(GRAPH_RESOURCE);
    let scp = api_scopes
        .iter()
        .filter(|s| other_resource(s).unwrap_or(GRAPH_RESOURCE) == aud)
        .map(|s| {
            if aud == GRAPH_RESOURCE {
                s.clone()
            } else {
                s.rsplit('/').next().unwrap_or(s).to_owned()
            }
        })
        .collect();
    (aud, scp)
}
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ACCESS_TOKEN_SECS: i64 = 3599;
const REFRESH_INACTIVITY: SignedDuration = SignedDuration::from_hours(24 * 90);
const CODE_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// Clock skew Entra tolerates on assertion times.
const SKEW_SECS: i64 = 300;

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    client_id: String,
    tenant_id: String,
    user_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
    challenge_method: Option<String>,
    nonce: Option<String>,
    expires: Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    client_id: String,
    tenant_id: String,
    user_id: String,
    scopes: Vec<String>,
    issued: Timestamp,
    last_used: Timestamp,
}

/// An identity-platform error (rendered as Entra's JSON error body).
struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

fn aad(status: StatusCode, error: &'static str, code: u32, message: impl Into<String>) -> AadError {
    AadError {
        status,
        error,
        code,
        message: message.into(),
    }
}

fn missing(param: &str) -> AadError {
    aad(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{param}'."),
    )
}

impl AadError {
    fn render(self, state: &AppState, tenant: Option<String>, app: Option<String>) -> Response {
        let trace = uuid::Uuid::new_v4().to_string();
        let correlation = uuid::Uuid::new_v4().to_string();
        let ts = state.clock.now().strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut resp = json_response(self.status, &body, &trace);
        resp.extensions_mut().insert(LogInfo {
            tenant,
            app,
            resource_units: None,
        });
        resp
    }
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response {
    let mut resp = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(http::header::EXPIRES, HeaderValue::from_static("-1"));
    h.insert(
        "x-ms-ests-server",
        HeaderValue::from_static("2.1.emulated - NEULR1 ProdSlices"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-ms-request-id", v);
    }
    resp
}

fn opaque_token(prefix: &str) -> String {
    let mut bytes = Vec::with_capacity(48);
    for _ in 0..3 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn is_tenant_independent(tenant: &str) -> bool {
    matches!(
        tenant.to_ascii_lowercase().as_str(),
        "common" | "organizations" | "consumers"
    )
}

fn tenant_not_found(tenant: &str) -> AadError {
    aad(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into \
             the correct cloud. Check with your subscription administrator, this may happen if there are no \
             active subscriptions for the tenant."
        ),
    )
}

fn app_not_found(client_id: &str, tenant: &str) -> AadError {
    aad(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen \
             if the application has not been installed by the administrator of the tenant or consented to by any \
             user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

/// Whether an app is registered or provisioned in the tenant, and whether it has a service principal.
fn app_in_tenant(world: &World, app: &App, tenant: &Tenant) -> Result<(), AadError> {
    if !app.multi_tenant && !app.home_tenant_id.eq_ignore_ascii_case(&tenant.id) {
        return Err(app_not_found(&app.client_id, &tenant.display_name));
    }
    // DAP pre-consent: the partner's AdminAgents app needs no service principal in a DAP customer.
    if !app
        .consented_tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&tenant.id))
        && !crate::partner::dap_preconsented(world, app, &tenant.id)
    {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000229,
            format!(
                "The client application {} is missing service principal in the tenant {}. See instructions here: \
                 https://go.microsoft.com/fwlink/?linkid=2225119",
                app.client_id, tenant.id
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct AssertionClaims {
    aud: Option<Value>,
    iss: Option<String>,
    sub: Option<String>,
    /// Seconds; msal sends them with a fraction.
    nbf: Option<f64>,
    exp: Option<f64>,
}

/// Checks the client credential; returns `appidacr` ("1" secret, "2" certificate).
fn authenticate_client(
    state: &AppState,
    app: &App,
    tenant: &Tenant,
    form: &HashMap<String, String>,
    basic_secret: Option<&str>,
) -> Result<&'static str, AadError> {
    let now = state.clock.now();
    let secret = form.get("client_secret").map(String::as_str).or(basic_secret);
    if let Some(secret) = secret {
        let Some(found) = app.secrets.iter().find(|s| s.value == secret) else {
            return Err(aad(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client \
                     secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        };
        let forced = state
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expired_secret_apps
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&app.client_id));
        if found.end_date_time <= now || forced {
            return Err(aad(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new \
                     keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials \
                     for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ));
        }
        return Ok("1");
    }
    let Some(assertion) = form.get("client_assertion") else {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            7000216,
            "'client_assertion_type' is missing or invalid. The value must be \
             'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
        ));
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )
    })?;
    // Clients differ in base64 flavour (msal pads with '='); compare the canonical base64url form.
    let canonical = |t: &str| t.trim_end_matches('=').replace('+', "-").replace('/', "_");
    let wanted_s256 = header.x5t_s256.as_deref().map(canonical);
    let wanted_sha1 = header.x5t.as_deref().map(canonical);
    let cert = app
        .certificates
        .iter()
        .find(|c| wanted_s256.as_deref() == Some(c.x5t_s256.as_str()))
        .or_else(|| {
            app.certificates
                .iter()
                .find(|c| wanted_sha1.as_deref() == Some(c.x5t.as_str()))
        });
    let Some(cert) = cert else {
        let thumb = header.x5t_s256.or(header.x5t).unwrap_or_default();
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on \
                 application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}', \
                 Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for \
                 app Id '{}'.]",
                app.client_id
            ),
        ));
    };
    if !matches!(
        header.alg,
        jsonwebtoken::Algorithm::PS256 | jsonwebtoken::Algorithm::RS256
    ) {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. The signing algorithm must be PS256 or RS256.",
        ));
    }
    let der = crate::crypto::cert_der_from_pem(&cert.certificate_pem)
        .map_err(|e| aad(StatusCode::UNAUTHORIZED, "invalid_client", 700027, e.to_string()))?;
    let (n, e) = crate::crypto::rsa_components_of_cert(&der)
        .map_err(|e| aad(StatusCode::UNAUTHORIZED, "invalid_client", 700027, e.to_string()))?;
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|_| {
            aad(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            )
        })?
        .claims;
    let expected: Vec<String> = [tenant.id.as_str(), tenant.domain.as_str()]
        .iter()
        .flat_map(|t| {
            [
                format!("{}/{t}/oauth2/v2.0/token", state.base_url),
                format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"),
            ]
        })
        .collect();
    let auds: Vec<String> = match claims.aud {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    };
    if !auds
        .iter()
        .any(|a| expected.iter().any(|e| e.eq_ignore_ascii_case(a)))
    {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at \
             https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let iss_ok = claims
        .iss
        .as_deref()
        .is_some_and(|i| i.eq_ignore_ascii_case(&app.client_id));
    let sub_ok = claims
        .sub
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case(&app.client_id));
    if !iss_ok || !sub_ok {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50012,
            "Client assertion contains an invalid issuer or subject: both must be the application's client id.",
        ));
    }
    let now_s = now.as_second();
    let exp = claims.exp.unwrap_or(0.0) as i64;
    let nbf = claims.nbf.map(|n| n as i64);
    if exp.saturating_add(SKEW_SECS) < now_s || nbf.is_some_and(|nbf| nbf.saturating_sub(SKEW_SECS) > now_s) {
        let fmt = |s: i64| {
            Timestamp::from_second(s)
                .map(|t| t.strftime("%m/%d/%Y %H:%M:%S").to_string())
                .unwrap_or_default()
        };
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            500133,
            format!(
                "Assertion is not within its valid time range. Ensure that the access token is not expired before \
                 using it for user assertion, or request a new token. Current time: {}, expiry time of assertion \
                 {}.",
                fmt(now_s),
                fmt(exp)
            ),
        ));
    }
    Ok("2")
}

#[derive(Serialize)]
struct AccessClaims<'a> {
    aud: &'a str,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    app_displayname: &'a str,
    appid: &'a str,
    azp: &'a str,
    appidacr: &'a str,
    idp: String,
    idtyp: &'a str,
    oid: String,
    sub: String,
    tid: &'a str,
    uti: String,
    ver: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

fn sign(state: &AppState, claims: &impl Serialize) -> Result<String, EmulatorError> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(state.signing.kid.clone());
    header.x5t = Some(state.signing.kid.clone());
    jsonwebtoken::encode(&header, claims, &state.signing.encoding)
        .map_err(|e| EmulatorError::Crypto(format!("signing a token: {e}")))
}

/// Service principal object id of an app in a tenant: stable, derived from both ids.
fn service_principal_id(app: &str, tenant: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{app}|{tenant}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn access_token(
    state: &AppState,
    app: &App,
    tenant: &Tenant,
    aud: &str,
    appidacr: &str,
    user: Option<(&str, &str, Option<&str>)>,
    scopes: &[String],
) -> Result<String, EmulatorError> {
    let now = state.clock.now().as_second();
    let sp = service_principal_id(&app.client_id, &tenant.id);
    let (oid, idtyp) = match user {
        Some((id, _, _)) => (id.to_owned(), "user"),
        None => (sp, "app"),
    };
    let claims = AccessClaims {
        aud,
        iss: format!("https://sts.windows.net/{}/", tenant.id),
        iat: now,
        nbf: now,
        exp: now + ACCESS_TOKEN_SECS + 1,
        app_displayname: &app.display_name,
        appid: &app.client_id,
        azp: &app.client_id,
        appidacr,
        idp: format!("https://sts.windows.net/{}/", tenant.id),
        idtyp,
        sub: oid.clone(),
        oid,
        tid: &tenant.id,
        uti: URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()),
        ver: "1.0",
        roles: user.is_none().then(|| app.application_permissions.clone()),
        scp: user.is_some().then(|| scopes.join(" ")),
        upn: user.map(|(_, upn, _)| upn.to_owned()),
        name: user.and_then(|(_, _, name)| name.map(str::to_owned)),
    };
    sign(state, &claims)
}

/// App-only Graph token without the HTTP round trip (in-process tests and benchmarks).
pub(crate) fn issue_app_token(
    state: &AppState,
    client_id: &str,
    tenant: &str,
) -> Result<String, EmulatorError> {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let t = world
        .tenant(tenant)
        .ok_or_else(|| EmulatorError::NotFound(format!("tenant {tenant}")))?;
    let app = world
        .app(client_id)
        .ok_or_else(|| EmulatorError::NotFound(format!("app {client_id}")))?;
    app_in_tenant(&world, app, t)
        .map_err(|e| EmulatorError::BadRequest(format!("AADSTS{}: {}", e.code, e.message)))?;
    access_token(state, app, t, GRAPH_RESOURCE, "1", None, &[])
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// Delegated scopes as Graph permission names (resource prefix removed); OIDC scopes kept.
fn normalise_scopes(raw: &str) -> Vec<String> {
    raw.split_whitespace()
        .map(|s| {
            s.strip_prefix("https://graph.microsoft.com/")
                .or_else(|| s.strip_prefix("00000003-0000-0000-c000-000000000000/"))
                .unwrap_or(s)
                .to_owned()
        })
        .collect()
}

fn resolve_delegated(app: &App, requested: &[String]) -> Result<Vec<String>, AadError> {
    let mut granted = Vec::new();
    for s in requested {
        if s == ".default" {
            for d in &app.delegated_scopes {
                if !OIDC_SCOPES.contains(&d.as_str()) && other_resource(d).is_none() && !granted.contains(d) {
                    granted.push(d.clone());
                }
            }
        } else if let Some(resource) = other_resource(s).filter(|_| s.ends_with("/.default")) {
            let before = granted.len();
            for d in &app.delegated_scopes {
                if other_resource(d) == Some(resource) && !granted.contains(d) {
                    granted.push(d.clone());
                }
            }
            if granted.len() == before {
                return Err(aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    70011,
                    format!(
                        "The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."
                    ),
                ));
            }
        } else if OIDC_SCOPES.contains(&s.as_str()) {
            continue;
        } else if crate::dataverse::delegated_resource(s).is_some() && !app.delegated_scopes.is_empty() {
            // Dataverse's `{org}/user_impersonation` (or `{org}/.default`): any app that signs users in.
            if !granted.contains(s) {
                granted.push(s.clone());
            }
        } else if app.delegated_scopes.iter().any(|d| d.eq_ignore_ascii_case(s)) {
            if !granted.contains(s) {
                granted.push(s.clone());
            }
        } else {
            return Err(aad(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."
                ),
            ));
        }
    }
    Ok(granted)
}

pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    Path(tenant_param): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = basic_auth(&headers);
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let result = token_inner(
        &state,
        &tenant_param,
        &form,
        client_id.as_deref(),
        basic.as_ref().map(|b| b.1.as_str()),
    );
    let tenant = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        world.tenant(&tenant_param).map(|t| t.id.clone())
    };
    match result {
        Ok(body) => {
            let mut resp = json_response(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string());
            resp.extensions_mut().insert(LogInfo {
                tenant,
                app: client_id,
                resource_units: None,
            });
            resp
        }
        Err(e) => e.render(&state, tenant, client_id),
    }
}

fn token_inner(
    state: &AppState,
    tenant_param: &str,
    form: &HashMap<String, String>,
    client_id: Option<&str>,
    basic_secret: Option<&str>,
) -> Result<Value, AadError> {
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| missing("grant_type"))?
        .clone();
    let client_id = client_id.ok_or_else(|| missing("client_id"))?;
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    match grant_type.as_str() {
        "client_credentials" => {
            client_credentials(state, &world, tenant_param, form, client_id, basic_secret)
        }
        "authorization_code" => {
            let code = form.get("code").ok_or_else(|| missing("code"))?;
            let grant = state
                .codes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(code);
            let expired = || {
                aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new \
                     interactive authorization request for this user and resource.",
                )
            };
            let grant = grant.ok_or_else(expired)?;
            if grant.expires <= state.clock.now() {
                return Err(expired());
            }
            if !grant.client_id.eq_ignore_ascii_case(client_id) {
                return Err(aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed.",
                ));
            }
            let redirect = form.get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
            if *redirect != grant.redirect_uri {
                return Err(aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed. The redirect_uri does not match the one used in the \
                     authorization request.",
                ));
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = form.get("code_verifier").map(String::as_str).unwrap_or_default();
                let computed = if grant.challenge_method.as_deref() == Some("plain") {
                    verifier.to_owned()
                } else {
                    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
                };
                if verifier.is_empty() || computed != *challenge {
                    return Err(aad(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        501481,
                        "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                    ));
                }
            }
            delegated_tokens(
                state,
                &world,
                &grant.tenant_id,
                client_id,
                &grant.user_id,
                grant.scopes,
                grant.nonce,
                form,
                basic_secret,
            )
        }
        "refresh_token" => {
            let rt = form
                .get("refresh_token")
                .ok_or_else(|| missing("refresh_token"))?;
            let now = state.clock.now();
            let grant = {
                let mut store = state
                    .refresh_tokens
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let grant = store.get_mut(rt).ok_or_else(|| {
                    aad(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        9002313,
                        "Invalid request. Request is malformed or invalid.",
                    )
                })?;
                if now.duration_since(grant.last_used) > REFRESH_INACTIVITY {
                    return Err(aad(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        700082,
                        format!(
                            "The refresh token has expired due to inactivity. The token was issued on {} and was \
                             inactive for 90.00:00:00.",
                            grant.issued.strftime("%Y-%m-%dT%H:%M:%S%.7fZ")
                        ),
                    ));
                }
                grant.last_used = now;
                grant.clone()
            };
            if !grant.client_id.eq_ignore_ascii_case(client_id) {
                return Err(aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed. The refresh token was issued to a different client.",
                ));
            }
            let scopes = match form.get("scope") {
                Some(s) => {
                    let requested = normalise_scopes(s);
                    // Refresh tokens are multi-resource: another resource the app is consented
                    // for (Partner Center, the partner API) may be asked for with the same token.
                    let other: Option<Vec<String>> = requested
                        .iter()
                        .find(|r| other_resource(r).is_some())
                        .and_then(|_| world.app(client_id))
                        .and_then(|app| {
                            resolve_delegated(
                                app,
                                &requested
                                    .iter()
                                    .filter(|r| other_resource(r).is_some())
                                    .cloned()
                                    .collect::<Vec<_>>(),
                            )
                            .ok()
                        });
                    if let Some(mut granted) = other {
                        granted.extend(
                            requested
                                .iter()
                                .filter(|r| OIDC_SCOPES.contains(&r.as_str()))
                                .cloned(),
                        );
                        return delegated_tokens(
                            state,
                            &world,
                            &grant.tenant_id,
                            client_id,
                            &grant.user_id,
                            granted,
                            None,
                            form,
                            basic_secret,
                        );
                    }
                    for r in &requested {
                        let known = OIDC_SCOPES.contains(&r.as_str())
                            || crate::dataverse::delegated_resource(r).is_some()
                            || r == ".default"
                            || grant.scopes.iter().any(|g| g.eq_ignore_ascii_case(r));
                        if !known {
                            return Err(aad(
                                StatusCode::BAD_REQUEST,
                                "invalid_grant",
                                65001,
                                format!(
                                    "The user or administrator has not consented to use the application with ID \
                                     '{client_id}'. Send an interactive authorization request for this user and \
                                     resource. Scope: {r}."
                                ),
                            ));
                        }
                    }
                    if requested.iter().any(|r| r == ".default") {
                        grant
                            .scopes
                            .iter()
                            .filter(|g| {
                                other_resource(g).is_none()
                                    && crate::dataverse::delegated_resource(g).is_none()
                            })
                            .cloned()
                            .collect()
                    } else if requested
                        .iter()
                        .any(|r| crate::dataverse::delegated_resource(r).is_some())
                    {
                        // A multi-resource refresh token: keep offline_access so it rotates.
                        let mut scopes = requested;
                        scopes.extend(grant.scopes.iter().filter(|g| *g == "offline_access").cloned());
                        scopes
                    } else {
                        requested
                    }
                }
                None => grant.scopes.clone(),
            };
            delegated_tokens(
                state,
                &world,
                &grant.tenant_id,
                client_id,
                &grant.user_id,
                scopes,
                None,
                form,
                basic_secret,
            )
        }
        other => Err(aad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn client_credentials(
    state: &AppState,
    world: &World,
    tenant_param: &str,
    form: &HashMap<String, String>,
    client_id: &str,
    basic_secret: Option<&str>,
) -> Result<Value, AadError> {
    let tenant = world
        .tenant(tenant_param)
        .ok_or_else(|| tenant_not_found(tenant_param))?;
    let app = world
        .app(client_id)
        .ok_or_else(|| app_not_found(client_id, tenant_param))?;
    app_in_tenant(world, app, tenant)?;
    let scope = form.get("scope").ok_or_else(|| missing("scope"))?;
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let invalid = || {
        aad(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    };
    let [single] = scopes.as_slice() else {
        return Err(invalid());
    };
    let resource = single.strip_suffix("/.default").ok_or_else(invalid)?;
    let dataverse_aud = crate::dataverse::org_for_resource(world, &state.base_url, resource)
        .map(|o| crate::dataverse::org_url(&state.base_url, &o.name));
    let aud = match resource.trim_end_matches('/') {
        "https://graph.microsoft.com" | "00000003-0000-0000-c000-000000000000" => GRAPH_RESOURCE,
        "https://api.partnercenter.microsoft.com" | "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd" => {
            PARTNER_CENTER_RESOURCE
        }
        "https://api.partner.microsoft.com" | "4990cffe-04e8-4e8b-808a-1175604b879f" => PARTNER_API_RESOURCE,
        _ if dataverse_aud.is_some() => dataverse_aud.as_deref().unwrap_or_default(),
        other => {
            return Err(aad(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {other} was not found in the tenant named {}. This can happen if \
                     the application has not been installed by the administrator of the tenant or consented to by \
                     any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                    tenant.display_name
                ),
            ));
        }
    };
    let acr = authenticate_client(state, app, tenant, form, basic_secret)?;
    let token = access_token(state, app, tenant, aud, acr, None, &[]).map_err(|e| {
        aad(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90000,
            e.to_string(),
        )
    })?;
    Ok(
        json!({"token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECS, "ext_expires_in": ACCESS_TOKEN_SECS,
              "access_token": token}),
    )
}

#[allow(clippy::too_many_arguments)]
fn delegated_tokens(
    state: &AppState,
    world: &World,
    tenant_id: &str,
    client_id: &str,
    user_id: &str,
    scopes: Vec<String>,
    nonce: Option<String>,
    form: &HashMap<String, String>,
    basic_secret: Option<&str>,
) -> Result<Value, AadError> {
    let tenant = world
        .tenant(tenant_id)
        .ok_or_else(|| tenant_not_found(tenant_id))?;
    let app = world
        .app(client_id)
        .ok_or_else(|| app_not_found(client_id, tenant_id))?;
    if !app.multi_tenant && !app.home_tenant_id.eq_ignore_ascii_case(&tenant.id) {
        return Err(app_not_found(client_id, &tenant.display_name));
    }
    let acr = authenticate_client(state, app, tenant, form, basic_secret)?;
    let user = tenant.user(user_id).ok_or_else(|| {
        aad(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50034,
            "The user account does not exist in the directory.",
        )
    })?;
    if !user.account_enabled {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50057,
            "The user account is disabled.",
        ));
    }
    let api_scopes: Vec<String> = scopes
        .iter()
        .filter(|s| !OIDC_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect();
    let server_err = |e: EmulatorError| {
        aad(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90000,
            e.to_string(),
        )
    };
    let dataverse = api_scopes
        .iter()
        .find_map(|s| crate::dataverse::delegated_resource(s))
        .and_then(|r| crate::dataverse::org_for_resource(world, &state.base_url, r))
        .map(|o| crate::dataverse::org_url(&state.base_url, &o.name));
    let (aud, scp): (&str, Vec<String>) = match &dataverse {
        Some(org) => (org.as_str(), vec!["user_impersonation".to_owned()]),
        None => audience_of(&api_scopes),
    };
    let token = access_token(
        state,
        app,
        tenant,
        aud,
        acr,
        Some((&user.id, &user.user_principal_name, user.display_name.as_deref())),
        &scp,
    )
    .map_err(server_err)?;
    let mut scope_out: Vec<String> = scp.iter().map(|s| format!("{aud}/{s}")).collect();
    for oidc in OIDC_SCOPES {
        if scopes.iter().any(|s| s == oidc) {
            scope_out.push((*oidc).to_owned());
        }
    }
    let mut body = json!({"token_type": "Bearer", "scope": scope_out.join(" "), "expires_in": ACCESS_TOKEN_SECS,
                          "ext_expires_in": ACCESS_TOKEN_SECS, "access_token": token});
    let now = state.clock.now();
    if scopes.iter().any(|s| s == "offline_access") {
        let rt = opaque_token("1.A");
        state
            .refresh_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                rt.clone(),
                RefreshGrant {
                    client_id: app.client_id.clone(),
                    tenant_id: tenant.id.clone(),
                    user_id: user.id.clone(),
                    scopes: scopes.clone(),
                    issued: now,
                    last_used: now,
                },
            );
        body["refresh_token"] = json!(rt);
    }
    if scopes.iter().any(|s| s == "openid") {
        let id_claims = json!({
            "aud": app.client_id, "iss": format!("{}/{}/v2.0", state.base_url, tenant.id),
            "iat": now.as_second(), "nbf": now.as_second(), "exp": now.as_second() + ACCESS_TOKEN_SECS,
            "name": user.display_name, "oid": user.id, "preferred_username": user.user_principal_name,
            "sub": service_principal_id(&user.id, &app.client_id), "tid": tenant.id, "ver": "2.0",
            "nonce": nonce,
        });
        // Microsoft adds `email` when the `email` scope is asked and the account has an address.
        let mut id_claims = id_claims;
        if scopes.iter().any(|s| s == "email")
            && let Some(mail) = &user.mail
        {
            id_claims["email"] = json!(mail);
        }
        body["id_token"] = json!(sign(state, &id_claims).map_err(server_err)?);
        body["client_info"] =
            json!(URL_SAFE_NO_PAD.encode(json!({"uid": user.id, "utid": tenant.id}).to_string().as_bytes()));
    }
    Ok(body)
}

// ---- authorize page ----

#[derive(Debug, Deserialize, Serialize, Default)]
pub(crate) struct AuthorizeParams {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    nonce: Option<String>,
    prompt: Option<String>,
    // Submitted by the sign-in form.
    username: Option<String>,
    password: Option<String>,
    decision: Option<String>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error_page(status: StatusCode, code: u32, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><title>Sign in error</title></head><body><h1>Sorry, but we're having trouble \
         signing you in.</h1><p id=\"error\">AADSTS{code}: {}</p></body></html>",
        html_escape(message)
    );
    (status, Html(body)).into_response()
}

fn redirect_matches(registered: &[String], given: &str) -> bool {
    let strip_port = |u: &str| -> String {
        match url::Url::parse(u) {
            Ok(mut parsed) if matches!(parsed.host_str(), Some("localhost" | "127.0.0.1")) => {
                let _ = parsed.set_port(None);
                parsed.to_string()
            }
            _ => u.to_owned(),
        }
    };
    registered
        .iter()
        .any(|r| r == given || strip_port(r) == strip_port(given))
}

fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{uri}{sep}{query}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Validates the request; returns (app client id, redirect uri, requested scopes).
fn check_authorize(
    state: &AppState,
    tenant: &str,
    p: &AuthorizeParams,
) -> Result<(String, String, Vec<String>), Response> {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    if !is_tenant_independent(tenant) && world.tenant(tenant).is_none() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            90002,
            &format!("Tenant '{tenant}' not found."),
        ));
    }
    let client_id = p.client_id.clone().unwrap_or_default();
    let Some(app) = world.app(&client_id) else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        ));
    };
    let redirect = p.redirect_uri.clone().unwrap_or_default();
    if !redirect_matches(&app.redirect_uris, &redirect) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            50011,
            &format!(
                "The redirect URI '{redirect}' specified in the request does not match the redirect URIs configured \
                 for the application '{client_id}'."
            ),
        ));
    }
    if p.response_type.as_deref() != Some("code") {
        return Err(redirect_with(
            &redirect,
            &[
                ("error", "unsupported_response_type"),
                (
                    "error_description",
                    "AADSTS700054: response_type 'code' is required.",
                ),
                ("state", p.state.as_deref().unwrap_or_default()),
            ],
        ));
    }
    let scopes = normalise_scopes(p.scope.as_deref().unwrap_or("openid"));
    if let Err(e) = resolve_delegated(app, &scopes) {
        return Err(redirect_with(
            &redirect,
            &[
                ("error", "invalid_scope"),
                ("error_description", &format!("AADSTS{}: {}", e.code, e.message)),
                ("state", p.state.as_deref().unwrap_or_default()),
            ],
        ));
    }
    Ok((app.client_id.clone(), redirect, scopes))
}

fn issue_code(
    state: &AppState,
    tenant: &str,
    p: &AuthorizeParams,
    client_id: String,
    redirect: &str,
    scopes: Vec<String>,
    login: &str,
) -> Result<Response, String> {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let app = world.app(&client_id).ok_or("unknown application")?;
    let candidates: Vec<&Tenant> = if is_tenant_independent(tenant) {
        world.tenants.iter().collect()
    } else {
        world.tenant(tenant).into_iter().collect()
    };
    let found = candidates.iter().find_map(|t| {
        let user = if login.is_empty() {
            t.live_users()
                .find(|u| u.account_enabled && u.user_type == "Member")
        } else {
            t.user(login)
                .filter(|u| u.user_principal_name.eq_ignore_ascii_case(login) || u.id == login)
        };
        user.map(|u| (t, u))
    });
    let (t, user) = found.ok_or("AADSTS50034: The user account does not exist in this directory.")?;
    if !user.account_enabled {
        return Err("AADSTS50057: The user account is disabled.".into());
    }
    let no_service_principal = app.kind == crate::world::AppKind::Gdap
        && !app
            .consented_tenants
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&t.id));
    if (!app.multi_tenant && !app.home_tenant_id.eq_ignore_ascii_case(&t.id)) || no_service_principal {
        return Err(format!(
            "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
        ));
    }
    let granted = resolve_delegated(app, &scopes).map_err(|e| e.message)?;
    let mut all = granted;
    for s in &scopes {
        if OIDC_SCOPES.contains(&s.as_str()) {
            all.push(s.clone());
        }
    }
    let code = opaque_token("0.A");
    state.codes.lock().unwrap_or_else(PoisonError::into_inner).insert(
        code.clone(),
        AuthCode {
            client_id,
            tenant_id: t.id.clone(),
            user_id: user.id.clone(),
            redirect_uri: redirect.to_owned(),
            scopes: all,
            challenge: p.code_challenge.clone(),
            challenge_method: p.code_challenge_method.clone(),
            nonce: p.nonce.clone(),
            expires: state
                .clock
                .now()
                .checked_add(CODE_LIFETIME)
                .unwrap_or(Timestamp::MAX),
        },
    );
    let session = uuid::Uuid::new_v4().to_string();
    Ok(redirect_with(
        redirect,
        &[
            ("code", code.as_str()),
            ("state", p.state.as_deref().unwrap_or_default()),
            ("session_state", &session),
        ],
    ))
}

fn sign_in_page(p: &AuthorizeParams, error: Option<&str>) -> Response {
    let hidden: String = [
        ("client_id", &p.client_id),
        ("response_type", &p.response_type),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
        ("nonce", &p.nonce),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_ref().map(|v| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                html_escape(v)
            )
        })
    })
    .collect();
    let error = error
        .map(|e| format!("<p id=\"error\" role=\"alert\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head><body>\
         <h1>Sign in</h1>{error}<form method=\"post\">{hidden}\
         <label>Email or username <input name=\"username\" value=\"{}\"></label>\
         <label>Password <input name=\"password\" type=\"password\"></label>\
         <p>The app requests: {}</p>\
         <button name=\"decision\" value=\"accept\">Accept</button>\
         <button name=\"decision\" value=\"cancel\">Cancel</button></form></body></html>",
        html_escape(p.login_hint.as_deref().unwrap_or_default()),
        html_escape(p.scope.as_deref().unwrap_or_default()),
    );
    Html(body).into_response()
}

pub(crate) async fn authorize(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    let (client_id, redirect, scopes) = match check_authorize(&state, &tenant, &p) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if state.auto_approve.load(std::sync::atomic::Ordering::Relaxed) {
        let login = p.login_hint.clone().unwrap_or_default();
        return match issue_code(&state, &tenant, &p, client_id, &redirect, scopes, &login) {
            Ok(resp) => resp,
            Err(message) => error_page(StatusCode::BAD_REQUEST, 50034, &message),
        };
    }
    sign_in_page(&p, None)
}

pub(crate) async fn authorize_submit(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (client_id, redirect, scopes) = match check_authorize(&state, &tenant, &p) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if p.decision.as_deref() == Some("cancel") {
        return redirect_with(
            &redirect,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "AADSTS65004: User declined to consent to access the app.",
                ),
                ("state", p.state.as_deref().unwrap_or_default()),
            ],
        );
    }
    let password_ok = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        p.password.as_deref() == Some(world.sign_in_password.as_str())
    };
    if !password_ok {
        return sign_in_page(
            &p,
            Some("AADSTS50126: Error validating credentials due to invalid username or password."),
        );
    }
    let login = p.username.clone().unwrap_or_default();
    if login.is_empty() {
        return sign_in_page(
            &p,
            Some("Enter a valid email address, phone number, or Skype name."),
        );
    }
    match issue_code(&state, &tenant, &p, client_id, &redirect, scopes, &login) {
        Ok(resp) => resp,
        Err(message) => sign_in_page(&p, Some(&message)),
    }
}

pub(crate) async fn openid_configuration(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Response {
    let tid = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        match world.tenant(&tenant) {
            Some(t) => t.id.clone(),
            None if is_tenant_independent(&tenant) => "{tenantid}".to_owned(),
            None => return tenant_not_found(&tenant).render(&state, None, None),
        }
    };
    let base = &state.base_url;
    let body = json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
            "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    json_response(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string())
}

pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let k = &state.signing;
    let body = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": k.kid, "x5t": k.kid, "n": k.n, "e": k.e,
                                "x5c": [k.x5c], "alg": "RS256"}]});
    json_response(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string())
}
