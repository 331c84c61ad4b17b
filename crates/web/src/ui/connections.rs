//! The list of connections the caller may read, and adding a new Entra connection.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use deskbridge_store::Access;

use super::html::{Field, Page, Section, cell, checkbox, form, link, password_field, text_field, textarea};
use super::{UiResult, field, parse_form, see_other, show};
use crate::AppState;
use crate::access::Caller;
use crate::api::{self, NewConnectionBody};

pub(super) async fn home() -> Response {
    see_other("/connections")
}

pub(super) async fn connections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> UiResult {
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

pub(super) async fn new_connection(Extension(caller): Extension<Caller>) -> UiResult {
    Ok(Page::new(&caller, "Add an Entra connection")
        .section(
            Section::default()
                .text("Register an app in the tenant with User.Read.All, Group.Read.All and Directory.Read.All application permissions, grant admin consent, then enter its ids and a credential.")
                .form(form("new-connection", "/connections", "Add connection", connection_form_fields())),
        )
        .render())
}

pub(super) async fn create_connection(
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
