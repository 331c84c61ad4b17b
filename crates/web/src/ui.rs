//! The admin UI: server-rendered pages built from a few generic parts (tables, forms, notices)
//! on two askama templates compiled into the binary, with the stylesheet and the one small
//! script (live run progress) embedded. Every form posts the session's CSRF token; access is
//! checked by [`crate::access`] before a handler runs.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use deskbridge_connector_entra::SyncMethod;
use deskbridge_core::RunId;
use deskbridge_mapping::{FieldMapping, MappingConfig, SiteMapping, SiteTarget};
use deskbridge_store::{Access, Entity, LogFilter, Role, RunStatus, WriteContext};
use serde_json::Value;

use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api::{self, DirectoryQuery, EditConnectionBody, LogQuery, NewConnectionBody};
use crate::auth::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_HOURS};
use crate::error::ApiError;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(static_file))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/tokens", post(create_token))
        .route("/", get(home))
        .route("/connections", get(connections).post(create_connection))
        .route("/connections/new", get(new_connection))
        .route("/connections/{id}", get(details).post(save_details))
        .route("/connections/{id}/delete", post(delete_connection))
        .route("/connections/{id}/test", post(test_connection))
        .route("/connections/{id}/authorize", post(authorize))
        .route("/auth/microsoft/callback", get(microsoft_callback))
        .route(
            "/connections/{id}/mappings/{section}",
            get(mappings).post(save_mapping_section),
        )
        .route("/connections/{id}/imports", get(imports))
        .route("/connections/{id}/preview", post(preview))
        .route("/connections/{id}/runs", get(run_history).post(start_run))
        .route("/connections/{id}/agent", get(agent).post(save_agent))
        .route("/connections/{id}/cursors/reset", post(reset_cursors))
        .route("/connections/{id}/cursors/latest", post(latest_cursors))
        .route("/connections/{id}/schedules", post(add_schedule))
        .route(
            "/connections/{id}/schedules/{schedule}/remove",
            post(remove_schedule),
        )
        .route("/connections/{id}/check", get(check))
        .route("/connections/{id}/logs", get(logs))
        .route("/connections/{id}/directory/{kind}", get(connection_directory))
        .route("/connections/{id}/access", post(set_access))
        .route("/runs/{run_id}", get(run_page))
        .route("/runs/{run_id}/cancel", post(cancel_run))
        .route("/runs/{run_id}/approve", post(approve_run))
        .route("/directory/{kind}", get(directory))
        .route("/admin/accounts", get(accounts).post(create_account))
}

// ---------------------------------------------------------------------- page parts

#[derive(Default)]
struct Nav {
    signed: bool,
    admin: bool,
    username: String,
    csrf: String,
}

impl Nav {
    fn of(caller: &Caller) -> Self {
        Self {
            signed: true,
            admin: caller.is_admin(),
            username: caller.account.username.clone(),
            csrf: caller.csrf.clone(),
        }
    }
}

struct Tab {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Default, Clone)]
struct Cell {
    text: String,
    href: String,
    class: &'static str,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        ..Cell::default()
    }
}

fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: href.into(),
        class: "",
    }
}

fn verdict(ok: bool) -> Cell {
    Cell {
        text: if ok {
            "✓ passed".into()
        } else {
            "✗ failed".into()
        },
        href: String::new(),
        class: if ok { "ok" } else { "bad" },
    }
}

struct Opt {
    value: String,
    label: String,
}

#[derive(Default)]
struct Field {
    kind: &'static str,
    name: &'static str,
    label: String,
    value: String,
    help: String,
    options: Vec<Opt>,
    required: bool,
    disabled: bool,
    rows: u32,
}

fn text_field(name: &'static str, label: &str, value: impl Into<String>) -> Field {
    Field {
        kind: "text",
        name,
        label: label.into(),
        value: value.into(),
        ..Field::default()
    }
}

fn password_field(name: &'static str, label: &str, help: &str) -> Field {
    Field {
        kind: "password",
        name,
        label: label.into(),
        help: help.into(),
        ..Field::default()
    }
}

fn checkbox(name: &'static str, label: &str, on: bool) -> Field {
    Field {
        kind: "checkbox",
        name,
        label: label.into(),
        value: if on { "on".into() } else { String::new() },
        ..Field::default()
    }
}

fn hidden(name: &'static str, value: impl Into<String>) -> Field {
    Field {
        kind: "hidden",
        name,
        value: value.into(),
        ..Field::default()
    }
}

fn select(name: &'static str, label: &str, value: &str, options: &[(&str, &str)]) -> Field {
    Field {
        kind: "select",
        name,
        label: label.into(),
        value: value.into(),
        options: options
            .iter()
            .map(|(v, l)| Opt {
                value: (*v).into(),
                label: (*l).into(),
            })
            .collect(),
        ..Field::default()
    }
}

fn textarea(name: &'static str, label: &str, value: impl Into<String>, rows: u32) -> Field {
    Field {
        kind: "textarea",
        name,
        label: label.into(),
        value: value.into(),
        rows,
        ..Field::default()
    }
}

#[derive(Default)]
struct Form {
    id: String,
    method: &'static str,
    action: String,
    submit: String,
    fields: Vec<Field>,
    class: &'static str,
    danger: bool,
}

fn form(id: &str, action: impl Into<String>, submit: &str, fields: Vec<Field>) -> Form {
    Form {
        id: id.into(),
        method: "post",
        action: action.into(),
        submit: submit.into(),
        fields,
        class: "",
        danger: false,
    }
}

struct Link {
    text: String,
    href: String,
}

#[derive(Default)]
struct Section {
    id: String,
    title: String,
    text: String,
    secret: String,
    pre: String,
    caption: String,
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
    forms: Vec<Form>,
    links: Vec<Link>,
}

impl Section {
    fn titled(title: &str) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    fn table(mut self, headers: &[&str], rows: Vec<Vec<Cell>>) -> Self {
        self.headers = headers.iter().map(|h| (*h).to_owned()).collect();
        self.rows = rows;
        self
    }

    fn form(mut self, f: Form) -> Self {
        self.forms.push(f);
        self
    }

    fn link(mut self, text: &str, href: impl Into<String>) -> Self {
        self.links.push(Link {
            text: text.into(),
            href: href.into(),
        });
        self
    }
}

#[derive(Template)]
#[template(path = "page.html")]
struct PageT {
    title: String,
    heading: String,
    nav: Nav,
    tabs: Vec<Tab>,
    flash: String,
    error: String,
    sections: Vec<Section>,
    run_id: String,
}

/// A page under construction.
struct Page {
    inner: PageT,
}

impl Page {
    fn new(caller: &Caller, title: impl Into<String>) -> Self {
        Self {
            inner: PageT {
                title: title.into(),
                heading: String::new(),
                nav: Nav::of(caller),
                tabs: Vec::new(),
                flash: String::new(),
                error: String::new(),
                sections: Vec::new(),
                run_id: String::new(),
            },
        }
    }

    fn connection(caller: &Caller, scope: &Scope, tab: &str) -> Self {
        let mut page = Self::new(caller, tab_label(tab));
        page.inner.heading = format!("Connection {}", scope.connection.name);
        page.inner.tabs = connection_tabs(scope.connection.id.0, tab);
        page
    }

    fn flash(mut self, text: impl Into<String>) -> Self {
        self.inner.flash = text.into();
        self
    }

    fn error(mut self, text: impl Into<String>) -> Self {
        self.inner.error = text.into();
        self
    }

    fn section(mut self, s: Section) -> Self {
        self.inner.sections.push(s);
        self
    }

    fn render(self) -> Response {
        match self.inner.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => ApiError::internal(format!("page rendering: {e}")).into_response(),
        }
    }
}

const TABS: &[(&str, &str)] = &[
    ("details", "Details & authorisation"),
    ("mappings/fields", "Field mappings"),
    ("mappings/sites", "Site mappings"),
    ("mappings/advanced", "Advanced mappings"),
    ("imports", "Imports"),
    ("agent", "Sync agent"),
    ("check", "Configuration check"),
    ("logs", "Logs"),
    ("runs", "Runs"),
    ("directory/users", "Directory"),
];

fn tab_label(tab: &str) -> &'static str {
    TABS.iter()
        .find(|(t, _)| *t == tab)
        .map_or("Connection", |(_, l)| l)
}

fn connection_tabs(id: i64, current: &str) -> Vec<Tab> {
    TABS.iter()
        .map(|(tab, label)| Tab {
            label,
            href: if *tab == "details" {
                format!("/connections/{id}")
            } else {
                format!("/connections/{id}/{tab}")
            },
            current: *tab == current,
        })
        .collect()
}

/// An error as a page (no navigation: the caller may not be known).
pub fn error_page(error: &ApiError) -> Response {
    let page = PageT {
        title: match error.status {
            StatusCode::FORBIDDEN => "Not allowed".into(),
            StatusCode::NOT_FOUND => "Not found".into(),
            _ => "Something went wrong".into(),
        },
        heading: String::new(),
        nav: Nav::default(),
        tabs: Vec::new(),
        flash: String::new(),
        error: format!(
            "{} ({}){}",
            error.message,
            error.code,
            error
                .remedy
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ),
        sections: vec![Section::default().link("Back to the connections", "/connections")],
        run_id: String::new(),
    };
    let body = page.render().unwrap_or_else(|_| error.message.clone());
    (error.status, Html(body)).into_response()
}

/// Page handlers' error: shown as a page.
pub struct UiError(ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<deskbridge_store::StoreError> for UiError {
    fn from(e: deskbridge_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl From<deskbridge_sync::SyncError> for UiError {
    fn from(e: deskbridge_sync::SyncError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(&self.0)
    }
}

type UiResult = Result<Response, UiError>;

/// A submitted form's fields (the last value of a repeated name wins).
fn parse_form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map_or("", String::as_str)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------- static, sign-in

async fn static_file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "style.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response(),
        "app.js" => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response(),
        _ => error_page(&ApiError::not_found(format!("no static file {file:?}"))),
    }
}

fn login_page(next: &str, csrf: &str, error: &str, secure: bool) -> Response {
    let nav = Nav {
        csrf: csrf.to_owned(),
        ..Nav::default()
    };
    let mut sign_in = form(
        "login",
        "/login",
        "Sign in",
        vec![
            Field {
                required: true,
                ..text_field("username", "Username", "")
            },
            Field {
                required: true,
                ..password_field("password", "Password", "")
            },
            hidden("next", next),
        ],
    );
    sign_in.class = "narrow";
    let page = PageT {
        title: "Sign in".into(),
        heading: String::new(),
        nav,
        tabs: Vec::new(),
        flash: String::new(),
        error: error.into(),
        sections: vec![Section::default().form(sign_in)],
        run_id: String::new(),
    };
    let cookie = auth::set_cookie(LOGIN_CSRF_COOKIE, csrf, 3600, secure);
    match page.render() {
        Ok(html) => {
            let status = if error.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            (status, [(header::SET_COOKIE, cookie)], Html(html)).into_response()
        }
        Err(e) => ApiError::internal(format!("page rendering: {e}")).into_response(),
    }
}

/// Only paths on this site may be gone to after signing in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/connections"
    }
}

async fn login_form(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    login_page(
        safe_next(field(&q, "next")),
        &auth::random_token(24),
        "",
        state.secure_cookies,
    )
}

async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> UiResult {
    let form = parse_form(&body);
    let next = safe_next(field(&form, "next")).to_owned();
    // Double-submit: the form's token must equal the cookie set with the form.
    let cookie_token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, LOGIN_CSRF_COOKIE))
        .unwrap_or("");
    let fresh = auth::random_token(24);
    if cookie_token.is_empty() || !auth::same_secret(cookie_token, field(&form, "csrf")) {
        return Ok(login_page(
            &next,
            &fresh,
            "The sign-in form expired or did not come from this site. Please try again.",
            state.secure_cookies,
        ));
    }
    let mut tx = state.store.read().await?;
    let found = tx.account_for_sign_in(field(&form, "username").trim()).await?;
    tx.commit().await?;
    let account = match found {
        Some((account, hash))
            if !account.disabled && auth::verify_password(field(&form, "password"), &hash) =>
        {
            account
        }
        _ => {
            return Ok(login_page(
                &next,
                &fresh,
                "Wrong username or password.",
                state.secure_cookies,
            ));
        }
    };
    let token = auth::random_token(32);
    let csrf = auth::random_token(32);
    let expires = state.clock.now() + jiff::SignedDuration::from_hours(SESSION_HOURS);
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.delete_expired_sessions().await?;
    tx.create_session(account.id, &auth::token_hash(&token), &csrf, expires)
        .await?;
    tx.commit().await?;
    let to = if account.must_change_password {
        "/account".to_owned()
    } else {
        next
    };
    let mut response = see_other(&to);
    let headers = response.headers_mut();
    for value in [
        auth::set_cookie(SESSION_COOKIE, &token, SESSION_HOURS * 3600, state.secure_cookies),
        auth::set_cookie(LOGIN_CSRF_COOKIE, "", 0, state.secure_cookies),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> UiResult {
    if let Some(token) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, SESSION_COOKIE))
    {
        let mut tx = state.store.begin(WriteContext::manual()).await?;
        tx.delete_session(&auth::token_hash(token)).await?;
        tx.commit().await?;
    }
    let cookie = auth::set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

async fn account_view(state: &AppState, caller: &Caller, flash: &str, error: &str, token: &str) -> UiResult {
    let mut tx = state.store.read().await?;
    let tokens = tx.api_tokens(caller.account.id).await?;
    tx.commit().await?;
    let mut page = Page::new(caller, "Your account");
    if !error.is_empty() {
        page = page.error(error);
    } else if caller.account.must_change_password {
        page = page.error("You signed in with a one-time password: choose your own password to continue.");
    }
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let password = Section::titled("Password").form(form(
        "password",
        "/account/password",
        "Change password",
        vec![
            password_field("current", "Current password", ""),
            password_field(
                "new",
                "New password",
                &format!("At least {} characters.", auth::MIN_PASSWORD_LEN),
            ),
            password_field("confirm", "New password again", ""),
        ],
    ));
    let mut tokens_section = Section::titled("API tokens")
        .text("Scripts send a token as `Authorization: Bearer …`. A token acts as you.")
        .table(
            &["Name", "Created", "Last used", "Expires"],
            tokens
                .iter()
                .map(|t| {
                    vec![
                        cell(&t.name),
                        cell(&t.created_at),
                        cell(t.last_used_at.clone().unwrap_or_default()),
                        cell(t.expires_at.clone().unwrap_or_else(|| "never".into())),
                    ]
                })
                .collect(),
        )
        .form(form(
            "token",
            "/account/tokens",
            "Create token",
            vec![
                text_field("name", "Token name", ""),
                Field {
                    kind: "number",
                    help: "Leave empty for a token that does not expire.".into(),
                    ..text_field("days", "Expires after (days)", "")
                },
            ],
        ));
    tokens_section.secret = token.to_owned();
    Ok(page.section(password).section(tokens_section).render())
}

async fn account_page(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> UiResult {
    account_view(&state, &caller, "", "", "").await
}

async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let mut tx = state.store.read().await?;
    let found = tx.account_for_sign_in(&caller.account.username).await?;
    tx.commit().await?;
    let Some((_, hash)) = found else {
        return Err(ApiError::not_found("your account no longer exists").into());
    };
    if !auth::verify_password(field(&f, "current"), &hash) {
        return account_view(&state, &caller, "", "The current password is wrong.", "").await;
    }
    if field(&f, "new") != field(&f, "confirm") {
        return account_view(&state, &caller, "", "The two new passwords differ.", "").await;
    }
    if let Err(e) = auth::check_new_password(field(&f, "new")) {
        return account_view(&state, &caller, "", &e.message, "").await;
    }
    let new_hash = auth::hash_password(field(&f, "new"))?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.set_account_password(caller.account.id, &new_hash, false)
        .await?;
    // Other sessions (say, one opened with a leaked one-time password) end; this one stays.
    tx.delete_sessions_of(caller.account.id, caller.session_id)
        .await?;
    let mut keep = caller.clone();
    keep.account.must_change_password = false;
    tx.commit().await?;
    account_view(&state, &keep, "Your password was changed.", "", "").await
}

async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let days = match field(&f, "days").trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => return account_view(&state, &caller, "", "Days must be a whole number.", "").await,
        },
    };
    match api::mint_token(&state, &caller, field(&f, "name"), days).await {
        Ok(minted) => {
            let token = minted["token"].as_str().unwrap_or_default().to_owned();
            account_view(&state, &caller, "Token created.", "", &token).await
        }
        Err(e) => account_view(&state, &caller, "", &e.message, "").await,
    }
}

// ---------------------------------------------------------------------- connections

async fn home() -> Response {
    see_other("/connections")
}

async fn connections(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> UiResult {
    let rows = api::visible_connections(&state, &caller)
        .await?
        .into_iter()
        .map(|(c, access)| {
            vec![
                link(&c.name, format!("/connections/{}", c.id)),
                cell(&c.kind),
                cell(show(&c.config["tenant_id"])),
                cell(&c.enabled_instances),
                cell(if access == Access::Modify {
                    "read and modify"
                } else {
                    "read"
                }),
                link("runs", format!("/connections/{}/runs", c.id)),
            ]
        })
        .collect();
    let mut list =
        Section::default().table(&["Name", "Kind", "Tenant", "Instances", "Your access", ""], rows);
    if caller.can_create_connections() {
        list = list.link("Add an Entra connection", "/connections/new");
    }
    Ok(Page::new(&caller, "Connections").section(list).render())
}

fn connection_form_fields() -> Vec<Field> {
    vec![
        Field {
            required: true,
            ..text_field("name", "Connection name", "")
        },
        Field {
            required: true,
            help: "Directory (tenant) id from the app registration's overview.".into(),
            ..text_field("tenant_id", "Tenant id", "")
        },
        Field {
            required: true,
            help: "Application (client) id.".into(),
            ..text_field("client_id", "Client id", "")
        },
        password_field(
            "client_secret",
            "Client secret value",
            "Write-only: it is sealed in the database and never shown again.",
        ),
        text_field("secret_expires_at", "Secret expires (RFC 3339, optional)", ""),
        textarea("certificate_pem", "Or: certificate and private key (PEM)", "", 4),
        checkbox(
            "delegated",
            "Delegated permissions: an administrator signs in with Microsoft after adding it (the secret, if any, is the app's)",
            false,
        ),
        text_field("customer", "Desk customer (default: the connection's name)", ""),
        Field {
            help: "Leave empty for Microsoft's public cloud.".into(),
            ..text_field("authority_host", "Identity platform host", "")
        },
        Field {
            help: "Leave empty for Microsoft's public cloud.".into(),
            ..text_field("graph_url", "Graph URL", "")
        },
        checkbox(
            "last_sign_in",
            "Import last sign-in dates (needs AuditLog.Read.All and a P1/P2 tenant)",
            false,
        ),
    ]
}

async fn new_connection(Extension(caller): Extension<Caller>) -> UiResult {
    Ok(Page::new(&caller, "Add an Entra connection")
        .section(
            Section::default()
                .text("Register an app in the tenant with User.Read.All, Group.Read.All and Directory.Read.All application permissions, grant admin consent, then enter its ids and a credential.")
                .form(form("new-connection", "/connections", "Add connection", connection_form_fields())),
        )
        .render())
}

async fn create_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let opt = |name: &str| Some(field(&f, name).to_owned()).filter(|v| !v.trim().is_empty());
    let body = NewConnectionBody {
        name: field(&f, "name").to_owned(),
        tenant_id: field(&f, "tenant_id").to_owned(),
        client_id: field(&f, "client_id").to_owned(),
        client_secret: opt("client_secret"),
        certificate_pem: opt("certificate_pem"),
        secret_expires_at: opt("secret_expires_at"),
        authority_host: opt("authority_host"),
        graph_url: opt("graph_url"),
        customer: opt("customer"),
        delegated: field(&f, "delegated") == "on",
        enabled_instances: None,
        last_sign_in: field(&f, "last_sign_in") == "on",
    };
    match api::create(&state, &caller, body).await {
        Ok(c) => Ok(see_other(&format!("/connections/{}?created=1", c.id))),
        Err(e) => {
            // Everything but the secrets goes back into the form.
            let mut fields = connection_form_fields();
            for fl in &mut fields {
                if !matches!(fl.name, "client_secret" | "certificate_pem") {
                    fl.value = field(&f, fl.name).to_owned();
                    if fl.kind == "checkbox" && fl.value != "on" {
                        fl.value.clear();
                    }
                }
            }
            Ok(Page::new(&caller, "Add an Entra connection")
                .error(e.message)
                .section(Section::default().form(form(
                    "new-connection",
                    "/connections",
                    "Add connection",
                    fields,
                )))
                .render())
        }
    }
}

async fn details_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    flash: &str,
    error: &str,
) -> UiResult {
    let view = api::connection_view(state, &scope.connection, scope.access).await?;
    let s = &view["settings"];
    let modify = scope.access == Access::Modify;
    let id = scope.connection.id.0;
    let mut page = Page::connection(caller, scope, "details");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let mut details = Section::titled("Details").table(
        &["Setting", "Value"],
        vec![
            vec![cell("Name"), cell(&scope.connection.name)],
            vec![cell("Tenant id"), cell(show(&s["tenant_id"]))],
            vec![cell("Client id"), cell(show(&s["client_id"]))],
            vec![cell("Identity platform"), cell(show(&s["authority_host"]))],
            vec![cell("Graph"), cell(show(&s["graph_url"]))],
            vec![cell("Desk customer id"), cell(show(&s["customer_id"]))],
            vec![cell("Instances"), cell(&scope.connection.enabled_instances)],
        ],
    );
    if modify {
        let mut fields = vec![
            text_field("tenant_id", "Tenant id", show(&s["tenant_id"])),
            text_field("client_id", "Client id", show(&s["client_id"])),
            text_field(
                "authority_host",
                "Identity platform host",
                show(&s["authority_host"]),
            ),
            text_field("graph_url", "Graph URL", show(&s["graph_url"])),
        ];
        fields.push(password_field(
            "client_secret",
            "New client secret value",
            "Leave empty to keep the stored secret. Write-only: never shown.",
        ));
        fields.push(text_field(
            "secret_expires_at",
            "New secret expires (RFC 3339, optional)",
            "",
        ));
        details = details.form(form(
            "details",
            format!("/connections/{id}"),
            "Save details",
            fields,
        ));
    }
    let credential = &view["credential"];
    if show(&credential["kind"]) == "delegated" {
        let mut delegated = Section::titled("Sign in with Microsoft").text(
            "Delegated permissions: an administrator of the tenant signs in with Microsoft; deskbridge keeps the \
             refresh token sealed and never shows it.",
        );
        if modify {
            delegated = delegated.form(form(
                "authorize",
                format!("/connections/{id}/authorize"),
                "Sign in with Microsoft",
                Vec::new(),
            ));
        }
        page = page.section(delegated);
    }
    let mut authorisation = Section::titled("Authorisation")
        .text(format!(
            "Application permissions with a {}; {}. The secret itself is stored sealed and is never shown.",
            if show(&credential["kind"]) == "certificate" {
                "certificate"
            } else {
                "client secret"
            },
            match credential["expires_at"].as_str() {
                Some(at) => format!("it expires {at}"),
                None => "no expiry date is recorded".into(),
            }
        ))
        .form(form(
            "test",
            format!("/connections/{id}/test"),
            "Test connection",
            Vec::new(),
        ));
    authorisation = authorisation.link("Export configuration", format!("/api/v1/connections/{id}/export"));
    page = page.section(details).section(authorisation);
    if caller.is_admin() {
        let mut tx = state.store.read().await?;
        let grants = tx.grants_of_connection(scope.connection.id).await?;
        let accounts = tx.accounts().await?;
        tx.commit().await?;
        let name_of = |aid: i64| {
            accounts
                .iter()
                .find(|a| a.id == aid)
                .map_or_else(|| aid.to_string(), |a| a.username.clone())
        };
        let agents: Vec<(String, String)> = accounts
            .iter()
            .filter(|a| a.role == Role::Agent)
            .map(|a| (a.id.to_string(), a.username.clone()))
            .collect();
        let mut account_field = select("account_id", "Agent", "", &[]);
        account_field.options = agents
            .into_iter()
            .map(|(value, label)| Opt { value, label })
            .collect();
        page = page.section(
            Section::titled("Access")
                .text("Administrators see every connection; agents see only those granted here.")
                .table(
                    &["Agent", "Access"],
                    grants
                        .iter()
                        .map(|g| vec![cell(name_of(g.account_id)), cell(g.access.as_str())])
                        .collect(),
                )
                .form(form(
                    "access",
                    format!("/connections/{id}/access"),
                    "Set access",
                    vec![
                        account_field,
                        select(
                            "access",
                            "Access",
                            "read",
                            &[
                                ("read", "Read"),
                                ("modify", "Read and modify"),
                                ("none", "No access"),
                            ],
                        ),
                    ],
                )),
        );
    }
    if modify {
        let mut delete = form(
            "delete",
            format!("/connections/{id}/delete"),
            "Delete connection",
            Vec::new(),
        );
        delete.danger = true;
        delete.fields.push(checkbox(
            "confirm",
            "Yes, delete this connection (imported records stay)",
            false,
        ));
        page = page.section(Section::titled("Danger zone").form(delete));
    }
    Ok(page.render())
}

async fn details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let flash = if query.as_deref().is_some_and(|q| q.contains("created=1")) {
        "Connection added. Test it, then check the mappings."
    } else {
        ""
    };
    details_view(&state, &caller, &scope, flash, "").await
}

async fn save_details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let opt = |name: &str| Some(field(&f, name).to_owned()).filter(|v| !v.trim().is_empty());
    let edit = EditConnectionBody {
        tenant_id: opt("tenant_id"),
        client_id: opt("client_id"),
        client_secret: opt("client_secret"),
        secret_expires_at: opt("secret_expires_at"),
        authority_host: opt("authority_host"),
        graph_url: opt("graph_url"),
        ..EditConnectionBody::default()
    };
    let result = api::edit(&state, &scope.connection, edit).await;
    let scope = reload(&state, &scope).await?;
    match result {
        Ok(()) => details_view(&state, &caller, &scope, "Saved.", "").await,
        Err(e) => details_view(&state, &caller, &scope, "", &e.message).await,
    }
}

async fn reload(state: &AppState, scope: &Scope) -> Result<Scope, UiError> {
    let mut tx = state.store.read().await?;
    let connection = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Scope {
        connection,
        access: scope.access,
    })
}

async fn delete_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    if field(&f, "confirm") != "on" {
        return details_view(
            &state,
            &caller,
            &scope,
            "",
            "Tick the box to confirm the deletion.",
        )
        .await;
    }
    api::delete(&state, scope.connection.id).await?;
    Ok(see_other("/connections"))
}

async fn test_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let result = api::test(&state, &scope.connection).await;
    if result["ok"] == Value::Bool(true) {
        details_view(
            &state,
            &caller,
            &scope,
            &format!("Test passed: {}", show(&result["detail"])),
            "",
        )
        .await
    } else {
        let e = &result["error"];
        let text = format!(
            "Test failed: {} ({}){}",
            show(&e["message"]),
            show(&e["code"]),
            e["remedy"]
                .as_str()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        details_view(&state, &caller, &scope, "", &text).await
    }
}

async fn authorize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
) -> UiResult {
    let redirect = api::callback_uri(&state, &headers)?;
    match deskbridge_connector_entra::begin_delegated_authorization(
        &state.store,
        &scope.connection.name,
        &redirect,
        &state.clock,
    )
    .await
    {
        Ok(pending) => Ok(see_other(&pending.url)),
        Err(e) => {
            let e = ApiError::from(e);
            details_view(
                &state,
                &caller,
                &scope,
                "",
                &format!("The sign-in could not start: {}", e.message),
            )
            .await
        }
    }
}

async fn microsoft_callback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    if !field(&q, "error").is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            field(&q, "error"),
            format!(
                "Microsoft's sign-in did not complete: {}",
                field(&q, "error_description")
            ),
        )
        .into());
    }
    let name = deskbridge_connector_entra::complete_delegated_authorization(
        &state.store,
        field(&q, "state"),
        field(&q, "code"),
        &state.clock,
    )
    .await
    .map_err(|e| match e {
        // A state that is not pending here: the browser's doing, not Microsoft's.
        deskbridge_sync::SyncError::Credential(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_sign_in", message)
        }
        other => ApiError::from(other),
    })?;
    let mut tx = state.store.read().await?;
    let connection = tx
        .connection_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connection named {name:?}")))?;
    tx.commit().await?;
    let scope = crate::access::scope_for(&state, &caller, connection.id, Access::Read).await?;
    details_view(
        &state,
        &caller,
        &scope,
        "Signed in with Microsoft: the connection is authorised.",
        "",
    )
    .await
}

async fn set_access(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let account = field(&f, "account_id")
        .parse::<i64>()
        .map_err(|_| ApiError::invalid("choose an agent"))?;
    let access = match field(&f, "access") {
        "read" => Some(Access::Read),
        "modify" => Some(Access::Modify),
        _ => None,
    };
    match api::grant(&state, scope.connection.id, account, access).await {
        Ok(()) => details_view(&state, &caller, &scope, "Access saved.", "").await,
        Err(e) => details_view(&state, &caller, &scope, "", &e.message).await,
    }
}

// ---------------------------------------------------------------------- mappings

fn settings(scope: &Scope) -> Result<deskbridge_connector_entra::EntraSettings, UiError> {
    Ok(api::settings_of(&scope.connection)?)
}

fn section_json(mapping: &MappingConfig, section: &str) -> Result<String, UiError> {
    let value = serde_json::to_value(mapping).map_err(ApiError::internal)?;
    let pick = |keys: &[&str]| {
        let obj: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), value[*k].clone()))
            .collect();
        pretty(&obj)
    };
    Ok(match section {
        "fields" => pick(&["user_fields", "agent_fields"]),
        "sites" => pick(&["site_mappings"]),
        "imports" => pick(&["imports"]),
        _ => pick(&[
            "advanced",
            "licence_management",
            "service_accounts",
            "followers",
            "circuit_breaker",
            "field_locks",
            "record_locks",
        ]),
    })
}

fn source_text(m: &FieldMapping) -> String {
    match serde_json::to_value(&m.source) {
        Ok(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Ok(other) => show(&other),
        Err(_) => String::new(),
    }
}

async fn mappings_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    section: &str,
    flash: &str,
    error: &str,
    draft: Option<&str>,
) -> UiResult {
    if !matches!(section, "fields" | "sites" | "advanced") {
        return Err(ApiError::not_found(format!("no mapping section {section:?}")).into());
    }
    let settings = settings(scope)?;
    let mapping = &settings.mapping;
    let id = scope.connection.id.0;
    let modify = scope.access == Access::Modify;
    let mut page = Page::connection(caller, scope, &format!("mappings/{section}"));
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let action = format!("/connections/{id}/mappings/{section}");
    match section {
        "fields" => {
            let rows = |list: &[FieldMapping]| -> Vec<Vec<Cell>> {
                list.iter()
                    .map(|m| vec![cell(source_text(m)), cell(&m.target)])
                    .collect()
            };
            page = page
                .section(Section::titled("User fields").table(
                    &["Microsoft Entra source", "Desk field"],
                    rows(&mapping.user_fields),
                ))
                .section(Section::titled("Agent fields").table(
                    &["Microsoft Entra source", "Desk field"],
                    rows(&mapping.agent_fields),
                ));
            if modify {
                page = page.section(Section::titled("Add a field mapping").form(form(
                    "add-field",
                    &action,
                    "Add field mapping",
                    vec![
                        hidden("op", "add"),
                        select("for", "Applies to", "user", &[("user", "Users"), ("agent", "Agents")]),
                        Field {
                            help: "A Graph user property, e.g. officeLocation or onPremisesExtensionAttributes/extensionAttribute1.".into(),
                            required: true,
                            ..text_field("source", "Microsoft Entra property", "")
                        },
                        Field {
                            help: "A desk field name, e.g. site_name, job_title, or custom:<name>.".into(),
                            required: true,
                            ..text_field("target", "Desk field", "")
                        },
                    ],
                )));
            }
        }
        "sites" => {
            let rows = mapping
                .site_mappings
                .iter()
                .map(|m| {
                    vec![
                        cell(m.id.to_string()),
                        cell(m.sequence.to_string()),
                        cell(&m.name),
                        cell(serde_json::to_string(&m.target).unwrap_or_default()),
                        cell(
                            m.group
                                .as_ref()
                                .map(|g| serde_json::to_string(g).unwrap_or_default())
                                .unwrap_or_default(),
                        ),
                        cell(m.filter.clone().unwrap_or_default()),
                    ]
                })
                .collect();
            page = page.section(Section::titled("Site mappings").text("Evaluated by sequence, lowest first; the first that matches a user decides their site.").table(&["Id", "Sequence", "Name", "Target", "Group", "Filter"], rows));
            if modify {
                let mut tx = state.store.read().await?;
                let sites = tx
                    .directory_page(
                        Entity::Site,
                        &deskbridge_store::DirectoryFilter {
                            limit: 500,
                            ..Default::default()
                        },
                    )
                    .await?;
                tx.commit().await?;
                let mut site_field = select("site_id", "Desk site", "", &[]);
                site_field.options = sites
                    .iter()
                    .map(|s| Opt {
                        value: s.id.0.to_string(),
                        label: format!(
                            "{} (customer {})",
                            s.text("name").unwrap_or_default(),
                            show(s.get("customer_id"))
                        ),
                    })
                    .collect();
                page = page.section(Section::titled("Add a site mapping").form(form(
                    "add-site",
                    &action,
                    "Add site mapping",
                    vec![
                        hidden("op", "add"),
                        Field { required: true, ..text_field("name", "Name", "") },
                        Field { kind: "number", ..text_field("sequence", "Sequence", "10") },
                        site_field,
                        Field {
                            help: "Optional OData filter over the user's properties, e.g. officeLocation eq 'London'.".into(),
                            ..text_field("filter", "Filter", "")
                        },
                    ],
                )));
            }
        }
        _ => {}
    }
    let mut editor = Section::titled(if section == "advanced" {
        "Advanced mappings (as code)"
    } else {
        "As code"
    })
    .text("The same mappings as JSON; saving validates them against the desk and the tenant's groups first.");
    let json = match draft {
        Some(d) => d.to_owned(),
        None => section_json(mapping, section)?,
    };
    let mut f = form(
        "code",
        &action,
        "Save",
        vec![
            hidden("op", "replace"),
            textarea("json", "Mappings (JSON)", json, 18),
        ],
    );
    if !modify {
        f.fields[1].disabled = true;
        editor.pre = f.fields[1].value.clone();
    } else {
        editor = editor.form(f);
    }
    page = page.section(editor);
    Ok(page.render())
}

async fn mappings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, section)): Path<(String, String)>,
) -> UiResult {
    mappings_view(&state, &caller, &scope, &section, "", "", None).await
}

/// Applies a submitted section to a copy of the whole configuration.
fn apply_section(
    mapping: &mut MappingConfig,
    section: &str,
    f: &HashMap<String, String>,
) -> Result<(), ApiError> {
    match (section, field(f, "op")) {
        ("fields", "add") => {
            let m = FieldMapping::property(field(f, "source").trim(), field(f, "target").trim());
            if field(f, "for") == "agent" {
                mapping.agent_fields.push(m);
            } else {
                mapping.user_fields.push(m);
            }
        }
        ("sites", "add") => {
            let site_id = field(f, "site_id")
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("choose a desk site"))?;
            let sequence = field(f, "sequence").trim().parse::<i32>().unwrap_or(50);
            let id = mapping.site_mappings.iter().map(|m| m.id).max().unwrap_or(0) + 1;
            let filter = Some(field(f, "filter").trim().to_owned()).filter(|s| !s.is_empty());
            mapping.site_mappings.push(SiteMapping {
                id,
                name: field(f, "name").trim().to_owned(),
                sequence,
                target: SiteTarget::ExistingSite {
                    site_id: deskbridge_core::RecordId(site_id),
                },
                filter,
                ..SiteMapping::default()
            });
        }
        (_, "replace") => {
            let patch: serde_json::Map<String, Value> = serde_json::from_str(field(f, "json"))
                .map_err(|e| ApiError::invalid(format!("the JSON is not valid: {e}")))?;
            let mut whole = serde_json::to_value(&*mapping).map_err(ApiError::internal)?;
            for (k, v) in patch {
                whole[k] = v;
            }
            *mapping = serde_json::from_value(whole)
                .map_err(|e| ApiError::invalid(format!("the mappings do not fit the configuration: {e}")))?;
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}

async fn save_mapping_section(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, section)): Path<(String, String)>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let mut mapping = settings(&scope)?.mapping;
    let draft = (field(&f, "op") == "replace").then(|| field(&f, "json").to_owned());
    let result = match apply_section(&mut mapping, &section, &f) {
        Ok(()) => api::save_mappings(&state, &scope.connection, mapping).await,
        Err(e) => Err(e),
    };
    let scope = reload(&state, &scope).await?;
    match result {
        Ok(()) => mappings_view(&state, &caller, &scope, &section, "Mappings saved.", "", None).await,
        Err(e) => {
            let text = format!("Not saved: {}", e.message);
            mappings_view(&state, &caller, &scope, &section, "", &text, draft.as_deref()).await
        }
    }
}

// ---------------------------------------------------------------------- imports, preview, runs

async fn imports_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    flash: &str,
    error: &str,
) -> UiResult {
    let _ = state;
    let settings = settings(scope)?;
    let id = scope.connection.id.0;
    let opts = &settings.mapping.imports;
    let mut page = Page::connection(caller, scope, "imports");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let matching = Section::titled("Matching and options").table(
        &["Option", "Value"],
        vec![
            vec![
                cell("Match unlinked records by"),
                cell(
                    opts.match_order
                        .iter()
                        .map(|m| m.desk_field())
                        .collect::<Vec<_>>()
                        .join(", then "),
                ),
            ],
            vec![
                cell("Deactivate users not found"),
                cell(if opts.deactivate_not_found { "yes" } else { "no" }),
            ],
            vec![
                cell("Active follows account enabled"),
                cell(if opts.sync_account_enabled { "yes" } else { "no" }),
            ],
            vec![
                cell("Unassign tickets of deactivated agents"),
                cell(if opts.reassign_tickets_of_inactive_agents {
                    "yes"
                } else {
                    "no"
                }),
            ],
        ],
    );
    let mut editor = Section::titled("Import options (as code)");
    if scope.access == Access::Modify {
        editor = editor.form(form(
            "imports-code",
            format!("/connections/{id}/mappings/advanced"),
            "Save import options",
            vec![
                hidden("op", "replace"),
                textarea(
                    "json",
                    "Import options (JSON)",
                    section_json(&settings.mapping, "imports")?,
                    8,
                ),
            ],
        ));
    } else {
        editor.pre = section_json(&settings.mapping, "imports")?;
    }
    let mut run = Section::titled("Import")
        .text(
            "Preview lists every user with the mapping that decided it; nothing is written until you import.",
        )
        .form(form(
            "preview",
            format!("/connections/{id}/preview"),
            "Preview import",
            Vec::new(),
        ));
    if scope.access == Access::Modify {
        run = run.form(form(
            "run",
            format!("/connections/{id}/runs"),
            "Import now",
            vec![checkbox("full", "Full import (ignore delta cursors)", false)],
        ));
    }
    Ok(page.section(run).section(matching).section(editor).render())
}

async fn imports(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    imports_view(&state, &caller, &scope, "", "").await
}

async fn preview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let outcome = match api::run_preview(&state, &scope.connection).await {
        Ok(o) => o,
        Err(e) => {
            let text = format!(
                "Preview failed: {} ({}){}",
                e.message,
                e.code,
                e.remedy.map(|r| format!(" — {r}")).unwrap_or_default()
            );
            return imports_view(&state, &caller, &scope, "", &text).await;
        }
    };
    let id = scope.connection.id.0;
    let c = outcome.counts;
    let changes =
        serde_json::to_value(outcome.changes.clone().unwrap_or_default()).map_err(ApiError::internal)?;
    let rows: Vec<Vec<Cell>> = changes
        .as_array()
        .map(|list| {
            list.iter()
                .map(|ch| {
                    let name = ch["fields"]["name"]["after"]
                        .as_str()
                        .or(ch["fields"]["name"]["before"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    vec![
                        cell(show(&ch["entity"])),
                        cell(name),
                        cell(show(&ch["external_id"])),
                        cell(show(&ch["action"])),
                        cell(show(&ch["rule"])),
                        cell(show(&ch["reason"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut page = Page::connection(&caller, &scope, "imports");
    page.inner.title = "Import preview".into();
    let mut summary = Section::titled("What an import would do").text(format!(
        "{} to create, {} to update, {} to deactivate, {} unchanged, {} conflicts, {} errors ({} mode).",
        c.created, c.updated, c.deactivated, c.unchanged, c.conflicts, c.errors, outcome.mode
    ));
    summary.id = "preview-summary".into();
    if let Some(held) = &outcome.held {
        page = page.error(format!("This import would be held for approval: {held}"));
    }
    if scope.access == Access::Modify {
        summary = summary.form(form(
            "run",
            format!("/connections/{id}/runs"),
            "Import",
            Vec::new(),
        ));
    }
    let mut table = Section::titled("Users and records").table(
        &["Kind", "Name", "External id", "Action", "Decided by", "Why"],
        rows,
    );
    table.id = "preview".into();
    let errors: Vec<Vec<Cell>> = outcome
        .errors
        .iter()
        .map(|e| {
            vec![
                cell(&e.code),
                cell(e.external_id.clone().unwrap_or_default()),
                cell(&e.message),
                cell(e.remedy.clone().unwrap_or_default()),
            ]
        })
        .collect();
    let mut page = page.section(summary).section(table);
    if !errors.is_empty() {
        page =
            page.section(Section::titled("Problems").table(&["Code", "Record", "Message", "Remedy"], errors));
    }
    Ok(page.render())
}

async fn start_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    match state
        .runs
        .start(&state, &scope.connection, field(&f, "full") == "on", false)
        .await
    {
        Ok(started) => match started.run_id {
            Some(run) => Ok(see_other(&format!("/runs/{run}"))),
            None => {
                imports_view(
                    &state,
                    &caller,
                    &scope,
                    "The sync started; it shows in the run history once it has signed in.",
                    "",
                )
                .await
            }
        },
        Err(e) => {
            let text = format!(
                "The sync could not start: {} ({}){}",
                e.message,
                e.code,
                e.remedy.map(|r| format!(" — {r}")).unwrap_or_default()
            );
            imports_view(&state, &caller, &scope, "", &text).await
        }
    }
}

fn run_row(r: &deskbridge_store::Run) -> Vec<Cell> {
    vec![
        link(r.id.to_string(), format!("/runs/{}", r.id)),
        cell(&r.kind),
        cell(r.status.as_str()),
        cell(r.counts.created.to_string()),
        cell(r.counts.updated.to_string()),
        cell(r.counts.deactivated.to_string()),
        cell(r.counts.errors.to_string()),
        cell(r.started_at.clone().unwrap_or_default()),
        cell(r.ended_at.clone().unwrap_or_default()),
    ]
}

const RUN_HEADERS: &[&str] = &[
    "Run",
    "Kind",
    "Status",
    "Created",
    "Updated",
    "Deactivated",
    "Errors",
    "Started",
    "Ended",
];

async fn run_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let mut tx = state.store.read().await?;
    let runs = tx.runs(Some(scope.connection.id), 100).await?;
    tx.commit().await?;
    let mut section = Section::default().table(RUN_HEADERS, runs.iter().map(run_row).collect());
    section.id = "runs".into();
    Ok(Page::connection(&caller, &scope, "runs")
        .section(section)
        .render())
}

async fn run_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    scope: Option<Extension<Scope>>,
    Path(run_id): Path<String>,
) -> UiResult {
    let run = RunId(
        run_id
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("not a run id"))?,
    );
    let view = api::run_view(&state, run).await?;
    let row: &Value = &view["run"];
    let finished = view["finished"] == Value::Bool(true);
    let mut page = match &scope {
        Some(Extension(s)) => Page::connection(&caller, s, "runs"),
        None => Page::new(&caller, "Run"),
    };
    page.inner.title = format!("Run {run}");
    let c = &row["counts"];
    let mut status = Section::titled("Status").table(
        &["", ""],
        vec![
            vec![cell("Status"), cell(show(&row["status"]))],
            vec![cell("Kind"), cell(show(&row["kind"]))],
            vec![cell("Created"), cell(show(&c["created"]))],
            vec![cell("Updated"), cell(show(&c["updated"]))],
            vec![cell("Deactivated"), cell(show(&c["deactivated"]))],
            vec![cell("Unchanged"), cell(show(&c["unchanged"]))],
            vec![cell("Conflicts"), cell(show(&c["conflicts"]))],
            vec![cell("Errors"), cell(show(&c["errors"]))],
            vec![cell("Message"), cell(show(&row["message"]))],
            vec![cell("Started"), cell(show(&row["started_at"]))],
            vec![cell("Ended"), cell(show(&row["ended_at"]))],
        ],
    );
    status.id = if finished {
        "run-finished".into()
    } else {
        "run-status".into()
    };
    let modify = scope
        .as_ref()
        .map_or(caller.is_admin(), |s| s.access == Access::Modify);
    if modify && !finished {
        status = status.form(form(
            "cancel",
            format!("/runs/{run}/cancel"),
            "Cancel run",
            Vec::new(),
        ));
    }
    if modify && show(&row["status"]) == RunStatus::Held.as_str() {
        status = status.form(form(
            "approve",
            format!("/runs/{run}/approve"),
            "Approve and apply",
            Vec::new(),
        ));
    }
    if let Some(Extension(s)) = &scope {
        status = status
            .link(
                "Imported users",
                format!("/connections/{}/directory/users", s.connection.id),
            )
            .link(
                "Logs of this run",
                format!("/connections/{}/logs?run={run}", s.connection.id),
            );
    }
    let errors: Vec<Vec<Cell>> = view["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    vec![
                        cell(show(&e["code"])),
                        cell(show(&e["external_id"])),
                        cell(show(&e["message"])),
                        cell(show(&e["remedy"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !finished {
        page.inner.run_id = run.to_string();
    }
    Ok(page
        .section(status)
        .section(Section::titled("Errors").table(&["Code", "Record", "Message", "Remedy"], errors))
        .render())
}

async fn cancel_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(run_id): Path<String>,
) -> UiResult {
    let run = RunId(
        run_id
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("not a run id"))?,
    );
    state.runs.cancel(&state, run, &caller.account.username).await?;
    Ok(see_other(&format!("/runs/{run}")))
}

async fn approve_run(
    State(state): State<AppState>,
    scope: Option<Extension<Scope>>,
    Path(run_id): Path<String>,
) -> UiResult {
    let run = RunId(
        run_id
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("not a run id"))?,
    );
    let started = api::approve(&state, scope.as_ref().map(|s| &s.0), run).await?;
    Ok(see_other(&started.run_id.map_or_else(
        || format!("/runs/{run}"),
        |r| format!("/runs/{r}"),
    )))
}

// ---------------------------------------------------------------------- sync agent, check

async fn agent_view(state: &AppState, caller: &Caller, scope: &Scope, flash: &str) -> UiResult {
    let settings = settings(scope)?;
    let id = scope.connection.id.0;
    let mut tx = state.store.read().await?;
    let last = tx.runs(Some(scope.connection.id), 1).await?;
    tx.commit().await?;
    let mut page = Page::connection(caller, scope, "agent");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let mut delta = Section::titled("Delta settings").table(
        &["Setting", "Value"],
        vec![
            vec![
                cell("Use delta queries after the first full import"),
                cell(if settings.delta { "yes" } else { "no" }),
            ],
            vec![
                cell("Sync method"),
                cell(match settings.sync_method {
                    SyncMethod::AllChanges => "listen to all changes",
                    SyncMethod::MappedFieldsOnly => "only mapped fields",
                }),
            ],
            vec![
                cell("Last run"),
                cell(
                    last.first()
                        .map(|r| format!("{} ({})", r.id, r.status.as_str()))
                        .unwrap_or_else(|| "never".into()),
                ),
            ],
        ],
    );
    if scope.access == Access::Modify {
        delta = delta.form(form(
            "agent",
            format!("/connections/{id}/agent"),
            "Save sync settings",
            vec![
                checkbox("delta", "Use delta queries", settings.delta),
                select(
                    "sync_method",
                    "Sync method",
                    match settings.sync_method {
                        SyncMethod::AllChanges => "all_changes",
                        SyncMethod::MappedFieldsOnly => "mapped_fields_only",
                    },
                    &[
                        ("all_changes", "Listen to all changes"),
                        ("mapped_fields_only", "Only changes to mapped fields"),
                    ],
                ),
            ],
        ));
        delta = delta.form(form(
            "reset",
            format!("/connections/{id}/cursors/reset"),
            "Reset delta (next sync reads everything)",
            Vec::new(),
        ));
        delta = delta.form(form(
            "latest",
            format!("/connections/{id}/cursors/latest"),
            "Get latest delta (next sync sees only changes from now)",
            Vec::new(),
        ));
    }
    let schedules = api::schedules_of(state, &scope.connection).await?;
    let rows = schedules
        .iter()
        .map(|s| {
            vec![
                cell(s.id.0.to_string()),
                cell(if s.kind == "interval" {
                    format!("every {} s", s.spec)
                } else {
                    format!("cron {}", s.spec)
                }),
                cell(s.time_zone.clone()),
                cell(match (&s.window_start, &s.window_end) {
                    (Some(a), Some(b)) => format!("{a}–{b}"),
                    _ => "any time".into(),
                }),
                cell(if s.enabled { "yes" } else { "no" }),
                cell(s.next_due.clone()),
                cell(s.last_fired_at.clone().unwrap_or_else(|| "never".into())),
            ]
        })
        .collect();
    let mut timetable = Section::titled("Schedules").table(
        &[
            "Id",
            "When",
            "Time zone",
            "Window",
            "Enabled",
            "Next due",
            "Last fired",
        ],
        rows,
    );
    timetable.id = "schedules".into();
    if scope.access == Access::Modify {
        timetable = timetable.form(form(
            "schedule",
            format!("/connections/{id}/schedules"),
            "Add schedule",
            vec![
                text_field(
                    "every",
                    "Every (e.g. 15m, 1h; or leave empty and give a cron expression)",
                    "",
                ),
                text_field("cron", "Cron expression (e.g. 0 */2 * * *)", ""),
                text_field("time_zone", "Time zone", "UTC"),
                text_field("window", "Only between (HH:MM-HH:MM, optional)", ""),
            ],
        ));
        for s in &schedules {
            timetable = timetable.form(form(
                &format!("remove-schedule-{}", s.id.0),
                format!("/connections/{id}/schedules/{}/remove", s.id.0),
                &format!("Remove schedule {}", s.id.0),
                Vec::new(),
            ));
        }
    }
    Ok(page.section(delta).section(timetable).render())
}

async fn add_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let text = |name: &str| Some(field(&f, name).to_owned()).filter(|v| !v.trim().is_empty());
    let added = api::add_schedule(
        &state,
        &scope.connection,
        api::ScheduleBody {
            every: text("every"),
            cron: text("cron"),
            time_zone: text("time_zone"),
            window: text("window"),
            entity: None,
        },
    )
    .await;
    let flash = match added {
        Ok(id) => format!("Schedule {id} added."),
        Err(e) => format!("The schedule was not added: {}", e.message),
    };
    agent_view(&state, &caller, &scope, &flash).await
}

async fn remove_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, schedule)): Path<(String, String)>,
) -> UiResult {
    let id: i64 = schedule
        .parse()
        .map_err(|_| ApiError::invalid(format!("{schedule:?} is not a schedule id")))?;
    api::remove_schedule(&state, &scope.connection, id).await?;
    agent_view(&state, &caller, &scope, &format!("Schedule {id} removed.")).await
}

async fn agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    agent_view(&state, &caller, &scope, "").await
}

async fn save_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let sync_method = match field(&f, "sync_method") {
        "mapped_fields_only" => SyncMethod::MappedFieldsOnly,
        _ => SyncMethod::AllChanges,
    };
    api::edit(
        &state,
        &scope.connection,
        EditConnectionBody {
            delta: Some(field(&f, "delta") == "on"),
            sync_method: Some(sync_method),
            ..EditConnectionBody::default()
        },
    )
    .await?;
    let scope = reload(&state, &scope).await?;
    agent_view(&state, &caller, &scope, "Sync settings saved.").await
}

async fn reset_cursors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let n = deskbridge_connector_entra::clear_deltas(&state.store, scope.connection.id).await?;
    agent_view(
        &state,
        &caller,
        &scope,
        &format!("Delta reset ({n} cursors cleared): the next sync is a full read."),
    )
    .await
}

async fn latest_cursors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let flash = match api::take_latest_cursors(&state, &scope.connection).await {
        Ok(_) => "Delta links taken from now: the next sync sees only changes made from here on.".to_owned(),
        Err(e) => format!("The latest delta links could not be taken: {}", e.message),
    };
    agent_view(&state, &caller, &scope, &flash).await
}

async fn check(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let report = api::run_check(&state, &scope.connection).await;
    let rows = report
        .points
        .iter()
        .map(|p| {
            vec![
                cell(p.name.clone()),
                verdict(p.ok),
                cell(p.detail.clone()),
                cell(p.remedy.clone()),
            ]
        })
        .collect();
    let mut section = Section::default().table(&["Check", "Result", "Detail", "Remedy"], rows);
    section.id = "checks".into();
    Ok(Page::connection(&caller, &scope, "check")
        .section(section)
        .render())
}

// ---------------------------------------------------------------------- logs and directory

fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    if q.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{q}")
    }
}

async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let raw = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let log = match field(&raw, "log") {
        "" => "inbound",
        l => l,
    }
    .to_owned();
    let kind = api::log_kind(&log)?;
    let q = LogQuery {
        run: field(&raw, "run").parse().ok(),
        q: Some(field(&raw, "q").to_owned()).filter(|s| !s.is_empty()),
        before: field(&raw, "before").parse().ok(),
        limit: Some(50),
        connection: None,
    };
    let id = scope.connection.id.0;
    let filter = LogFilter {
        connection: Some(scope.connection.id),
        run: q.run.map(RunId),
        search: q.q.clone(),
        before: q.before,
        limit: 50,
    };
    let page_data = api::log_page(&state, kind, &filter).await?;
    let entries = page_data["entries"].as_array().cloned().unwrap_or_default();
    // Each log's columns: heading and the entry's key.
    let columns: &[(&str, &str)] = match log.as_str() {
        "outbound" => &[
            ("At", "at"),
            ("Run", "run_id"),
            ("Method", "method"),
            ("URL", "url"),
            ("Status", "status"),
            ("ms", "duration_ms"),
        ],
        "errors" => &[
            ("At", "at"),
            ("Run", "run_id"),
            ("Code", "code"),
            ("Record", "external_id"),
            ("Message", "message"),
            ("Remedy", "remedy"),
        ],
        _ => &[
            ("At", "at"),
            ("Run", "run_id"),
            ("Kind", "entity"),
            ("External id", "external_id"),
            ("Rule", "rule"),
            ("Action", "action"),
            ("Result", "result"),
        ],
    };
    let headers: Vec<&str> = columns.iter().map(|(heading, _)| *heading).collect();
    let rows: Vec<Vec<Cell>> = entries
        .iter()
        .map(|e| columns.iter().map(|(_, key)| cell(show(&e[*key]))).collect())
        .collect();
    let base = format!("/connections/{id}/logs");
    let run_text = q.run.map(|r| r.to_string()).unwrap_or_default();
    let mut section = Section::titled(match log.as_str() {
        "outbound" => "Outbound requests",
        "errors" => "Errors",
        _ => "Inbound changes",
    })
    .table(&headers, rows);
    section.id = "log".into();
    let mut search = form(
        "log-search",
        &base,
        "Filter",
        vec![
            select(
                "log",
                "Log",
                &log,
                &[
                    ("inbound", "Inbound"),
                    ("outbound", "Outbound"),
                    ("errors", "Errors"),
                ],
            ),
            text_field("q", "Contains", q.q.clone().unwrap_or_default()),
            Field {
                kind: "number",
                ..text_field("run", "Run", run_text.clone())
            },
        ],
    );
    search.method = "get";
    let mut top = Section::default().form(search);
    for (l, label) in [
        ("inbound", "Inbound"),
        ("outbound", "Outbound"),
        ("errors", "Errors"),
    ] {
        top = top.link(
            label,
            with_query(&base, &[("log", l.to_owned()), ("run", run_text.clone())]),
        );
    }
    if let Some(next) = page_data["next_before"].as_i64() {
        section = section.link(
            "Older entries",
            with_query(
                &base,
                &[
                    ("log", log.clone()),
                    ("q", q.q.clone().unwrap_or_default()),
                    ("run", run_text),
                    ("before", next.to_string()),
                ],
            ),
        );
    }
    Ok(Page::connection(&caller, &scope, "logs")
        .section(top)
        .section(section)
        .render())
}

fn directory_columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "customers" => &["id", "name", "tenant_ids", "active"],
        "sites" => &["id", "customer_id", "name", "is_main", "active"],
        "agents" => &["id", "name", "email", "licence_type", "active", "roles"],
        "teams" => &["id", "name"],
        "licences" => &[
            "id",
            "customer_id",
            "part_number",
            "friendly_name",
            "consumed_units",
            "total_units",
        ],
        "assets" => &["id", "name", "serial_number", "status", "user_id"],
        _ => &["id", "name", "email", "site_id", "active", "is_service_account"],
    }
}

async fn directory_view(
    state: &AppState,
    caller: &Caller,
    scope: Option<&Scope>,
    kind: &str,
    query: Option<String>,
) -> UiResult {
    let entity = api::directory_entity(kind)?;
    let raw = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let q = DirectoryQuery {
        q: Some(field(&raw, "q").to_owned()).filter(|s| !s.is_empty()),
        after: field(&raw, "after").parse().ok(),
        limit: Some(50),
    };
    let search_text = q.q.clone().unwrap_or_default();
    let data = api::directory_page(state, entity, q, scope.map(|s| &s.connection)).await?;
    let columns = directory_columns(kind);
    let rows: Vec<Vec<Cell>> = data["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|it| columns.iter().map(|c| cell(show(&it[*c]))).collect())
                .collect()
        })
        .unwrap_or_default();
    let (base, mut page) = match scope {
        Some(s) => (
            format!("/connections/{}/directory/{kind}", s.connection.id),
            Page::connection(caller, s, "directory/users"),
        ),
        None => (format!("/directory/{kind}"), Page::new(caller, "Directory")),
    };
    page.inner.title = format!("Directory: {kind}");
    let mut search = form(
        "directory-search",
        &base,
        "Search",
        vec![text_field("q", "Name or email contains", search_text.clone())],
    );
    search.method = "get";
    let mut top = Section::default().form(search);
    for (k, _) in api::DIRECTORY_KINDS {
        let href = match scope {
            Some(s) => format!("/connections/{}/directory/{k}", s.connection.id),
            None => format!("/directory/{k}"),
        };
        top = top.link(k, href);
    }
    let mut table = Section::default().table(columns, rows);
    table.id = "directory".into();
    if let Some(next) = data["next_after"].as_i64() {
        table = table.link(
            "Next page",
            with_query(&base, &[("q", search_text), ("after", next.to_string())]),
        );
    }
    Ok(page.section(top).section(table).render())
}

async fn connection_directory(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, kind)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> UiResult {
    directory_view(&state, &caller, Some(&scope), &kind, query).await
}

async fn directory(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> UiResult {
    directory_view(&state, &caller, None, &kind, query).await
}

// ---------------------------------------------------------------------- accounts

async fn accounts_view(
    state: &AppState,
    caller: &Caller,
    flash: &str,
    error: &str,
    secret: &str,
) -> UiResult {
    let mut tx = state.store.read().await?;
    let accounts = tx.accounts().await?;
    tx.commit().await?;
    let mut page = Page::new(caller, "Accounts");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let rows = accounts
        .iter()
        .map(|a| {
            vec![
                cell(&a.username),
                cell(a.role.as_str()),
                cell(if a.can_configure_connections { "yes" } else { "no" }),
                cell(if a.disabled {
                    "disabled"
                } else if a.must_change_password {
                    "must set a password"
                } else {
                    "active"
                }),
                cell(&a.created_at),
            ]
        })
        .collect();
    let mut create = Section::titled("Add an account")
        .text("The new account gets a one-time password; it chooses its own at first sign-in. Give agents access per connection on the connection's page.")
        .form(form(
            "new-account",
            "/admin/accounts",
            "Add account",
            vec![
                Field { required: true, ..text_field("username", "Username", "") },
                select("role", "Role", "agent", &[("agent", "Agent"), ("administrator", "Administrator")]),
                checkbox("can_configure", "Can configure Entra connections (create connections)", false),
            ],
        ));
    create.secret = secret.to_owned();
    Ok(page
        .section(Section::default().table(
            &[
                "Username",
                "Role",
                "Can configure connections",
                "State",
                "Created",
            ],
            rows,
        ))
        .section(create)
        .render())
}

async fn accounts(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> UiResult {
    accounts_view(&state, &caller, "", "", "").await
}

async fn create_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let role = Role::parse(field(&f, "role")).unwrap_or(Role::Agent);
    match auth::create_account(
        &state.store,
        field(&f, "username").trim(),
        role,
        field(&f, "can_configure") == "on",
    )
    .await
    {
        Ok(created) => {
            let flash = format!(
                "Account {} created with a one-time password.",
                created.account.username
            );
            accounts_view(&state, &caller, &flash, "", &created.one_time_password).await
        }
        Err(e) => accounts_view(&state, &caller, "", &e.message, "").await,
    }
}
