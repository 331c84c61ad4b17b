//! The OpenAPI 3 document, generated from the route table so it lists exactly the routes that
//! exist, each with what it requires of the caller.

use serde_json::{Map, Value, json};

use deskbridge_source::SourceRegistry;
use deskbridge_source::settings::{Purpose, Required, Setting, SettingKind};

use crate::access::{ENDPOINTS, Need, Surface};

fn need_text(need: Need) -> &'static str {
    match need {
        Need::Public => "No sign-in needed.",
        Need::Signed => "Any signed-in account.",
        Need::Admin => "Administrators only.",
        Need::CreateConnection => "Administrators, and agents allowed to configure connections.",
        Need::Connection(deskbridge_store::Access::Read) => "Read access to the connection.",
        Need::Connection(deskbridge_store::Access::Modify) => "Read and modify access to the connection.",
        Need::Run(deskbridge_store::Access::Read) => "Read access to the run's connection.",
        Need::Run(deskbridge_store::Access::Modify) => "Read and modify access to the run's connection.",
        Need::User(deskbridge_store::Access::Read) => "Read access to the connection that imported the user.",
        Need::User(deskbridge_store::Access::Modify) => {
            "Read and modify access to the connection that imported the user."
        }
    }
}

/// The JSON schema of one connector setting.
fn setting_schema(setting: &Setting) -> Value {
    let mut schema = match setting.kind {
        SettingKind::Flag { default } => json!({"type": "boolean", "default": default}),
        SettingKind::Choice { options } => {
            json!({"type": "string", "enum": options.iter().map(|o| o.value).collect::<Vec<_>>()})
        }
        SettingKind::Secret | SettingKind::Certificate => json!({"type": "string", "writeOnly": true}),
        SettingKind::Time => json!({"type": "string", "format": "date-time"}),
        SettingKind::Guid => json!({"type": "string", "format": "uuid"}),
        SettingKind::Endpoint { default } => json!({"type": "string", "format": "uri", "default": default}),
        SettingKind::Text | SettingKind::Tenant => json!({"type": "string"}),
    };
    let description = if setting.help.is_empty() {
        setting.label.to_owned()
    } else {
        format!("{}. {}", setting.label, setting.help)
    };
    schema["description"] = Value::String(description);
    schema
}

/// The body of a new connection, or of a change to one: one schema per connector kind, from the
/// settings it describes.
fn connection_body(sources: &SourceRegistry, purpose: Purpose) -> Value {
    let kinds: Vec<Value> = sources
        .iter()
        .map(|source| {
            let mut props: Map<String, Value> = source
                .settings()
                .iter()
                .map(|s| (s.key.to_owned(), setting_schema(s)))
                .collect();
            let mut required = Vec::new();
            if purpose == Purpose::Create {
                props.insert("kind".into(), json!({"type": "string", "enum": [source.kind()], "description": "The connector kind (default: entra)"}));
                props.insert("name".into(), json!({"type": "string"}));
                props.insert("customer".into(), json!({"type": "string", "description": "The desk customer to import into (default: the connection's name)"}));
                props.insert("enabled_instances".into(), json!({"type": "string", "description": "production, test, or both comma separated"}));
                props.insert("check".into(), json!({"type": "boolean", "description": "Check the connection (its configuration check's points) before saving it: when a required point fails nothing is saved, and the answer is check_failed with the points under \"check\""}));
                required.push(Value::from("name"));
                required.extend(
                    source
                        .settings()
                        .iter()
                        .filter(|s| s.required == Required::Always)
                        .map(|s| Value::from(s.key)),
                );
            }
            json!({"type": "object", "title": source.label(), "properties": props, "required": required, "additionalProperties": false})
        })
        .collect();
    json!({"oneOf": kinds})
}

/// What a run or a preview imports; each connection kind imports some of these.
/// Only one tenant of the connection (a CSP customer tenant's id); absent: all of them.
fn tenant_schema() -> Value {
    json!({"type": "string", "description": "Import only this tenant of the connection (one of its customer tenants' ids)"})
}

fn entity_schema(sources: &SourceRegistry) -> Value {
    let names: Vec<&str> = deskbridge_source::SyncEntity::ALL
        .iter()
        .map(|e| e.as_str())
        .collect();
    let by_kind: Vec<String> = sources
        .kinds()
        .filter_map(|k| sources.get(k))
        .map(|s| format!("{}: {}", s.kind(), s.entities().join(", ")))
        .collect();
    json!({
        "enum": names,
        "default": "directory",
        "description": format!(
            "What to import: the directory (users and agents) or managed devices as assets (needs an \"assets\" mapping section). By connection kind: {}",
            by_kind.join("; ")
        ),
    })
}

fn body_schema(sources: &SourceRegistry, method: &str, path: &str) -> Option<Value> {
    let props = match (method, path) {
        ("POST", "/api/v1/connections") => return Some(connection_body(sources, Purpose::Create)),
        ("PATCH", "/api/v1/connections/{id}") => return Some(connection_body(sources, Purpose::Edit)),
        ("PUT", "/api/v1/connections/{id}/mappings") => {
            return Some(
                json!({"type": "object", "description": "The whole mapping configuration, as GET returns it"}),
            );
        }
        ("POST", "/api/v1/connections/{id}/import") => {
            return Some(json!({"type": "object", "description": "A file from GET …/export"}));
        }
        ("POST", "/api/v1/connections/{id}/runs") => json!({
            "full": {"type": "boolean", "description": "Ignore delta cursors and read everything"},
            "entity": entity_schema(sources),
            "tenant": tenant_schema(),
        }),
        ("POST", "/api/v1/connections/{id}/preview") => json!({
            "entity": entity_schema(sources),
            "tenant": tenant_schema(),
            "full": {"type": "boolean", "description": "A full preview: read everything, as without delta cursors (no cursor moves either way); the query's action=create,update shows only those actions"},
        }),
        ("PUT", "/api/v1/connections/{id}/grants/{account_id}") => {
            json!({"access": {"enum": ["read", "modify", null]}})
        }
        ("POST", "/api/v1/accounts") => json!({
            "username": {"type": "string"}, "role": {"enum": ["administrator", "agent"]},
            "can_configure_connections": {"type": "boolean"}
        }),
        ("PATCH", "/api/v1/accounts/{account_id}") => json!({
            "role": {"enum": ["administrator", "agent"]}, "can_configure_connections": {"type": "boolean"},
            "disabled": {"type": "boolean"}
        }),
        ("POST", "/api/v1/tokens") => json!({
            "name": {"type": "string"}, "expires_in_days": {"type": "integer"}
        }),
        ("PATCH", "/api/v1/sso") => json!({
            "enabled": {"type": "boolean"},
            "client_id": {"type": "string", "format": "uuid"},
            "client_secret": {"type": "string", "writeOnly": true},
            "authority": {"type": "string", "format": "uri"}
        }),
        ("POST", "/api/v1/sso/tenants") => json!({
            "tenant_id": {"type": "string", "format": "uuid"}, "note": {"type": "string"}
        }),
        ("PUT", "/api/v1/accounts/{account_id}/microsoft-identity") => json!({
            "tenant_id": {"type": "string", "format": "uuid"}, "object_id": {"type": "string", "format": "uuid"}
        }),
        _ => return None,
    };
    Some(json!({"type": "object", "properties": props}))
}

fn query_parameters(path: &str) -> Vec<Value> {
    let q = |name: &str, ty: &str, what: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}, "description": what});
    if path.contains("/logs/") {
        vec![
            q("run", "integer", "Only this run's entries"),
            q(
                "q",
                "string",
                "Text the external id, URL, code or message contains",
            ),
            q(
                "before",
                "integer",
                "Entries with a smaller id (the previous page's next_before)",
            ),
            q("limit", "integer", "Page size, at most 1000"),
        ]
    } else if path.contains("/directory/") {
        vec![
            q("q", "string", "Text the name or email contains"),
            q(
                "after",
                "integer",
                "Records with a larger id (the previous page's next_after)",
            ),
            q("limit", "integer", "Page size, at most 500"),
            q(
                "customer",
                "integer",
                "Only records of this desk customer (a customer the connection imports into, for a connection's listing)",
            ),
        ]
    } else if path == "/api/v1/runs" {
        vec![
            q("connection", "string", "Only this connection's runs (by name)"),
            q(
                "status",
                "string",
                "Only runs in this status (running, succeeded, partial, failed, held, cancelled, interrupted)",
            ),
            q("limit", "integer", "How many runs, newest first (at most 1000)"),
        ]
    } else if path == "/api/v1/connections" {
        vec![
            q(
                "sort",
                "string",
                "name (default), status (worst first), last-run (newest first) or errors (most first)",
            ),
            q(
                "failing",
                "boolean",
                "Only connections whose last run failed, or with open errors or held runs",
            ),
        ]
    } else if path.ends_with("/runs") {
        vec![q("limit", "integer", "How many runs, newest first")]
    } else {
        Vec::new()
    }
}

/// The document served at `/api/v1/openapi.json`.
pub fn document(sources: &SourceRegistry) -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS.iter().filter(|e| e.surface == Surface::Api) {
        let mut parameters: Vec<Value> = ep
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let schema = if matches!(name, "log" | "kind") {
                    json!({"type": "string"})
                } else {
                    json!({"type": "integer"})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        if ep.method == "GET" {
            parameters.extend(query_parameters(ep.path));
        }
        let mut op = json!({
            "tags": [ep.tag],
            "summary": ep.summary,
            "description": need_text(ep.need),
            "operationId": format!("{}_{}", ep.method.to_lowercase(), ep.path.trim_start_matches("/api/v1/").replace(['/', '{', '}', '.'], "_")),
            "parameters": parameters,
            "responses": {
                "200": {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if ep.need == Need::Public {
            op["security"] = json!([]);
        }
        if let Some(schema) = body_schema(sources, ep.method, ep.path) {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        let entry = paths
            .entry(ep.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[ep.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "deskbridge API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Configure connections, mappings and runs; read logs and the directory. Secrets are write-only. \
                Scripts send an API token as `Authorization: Bearer dbt_…`; a browser session must send its CSRF token \
                in `X-CSRF-Token` on every request that changes something."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "description": format!(
                                "Stable: one of the catalogue's codes ({}), or, when Microsoft reported the failure, Microsoft's own code (AADSTS…, Authorization_RequestDenied, access_denied, …)",
                                catalogue_codes()
                            )},
                            "message": {"type": "string"},
                            "remedy": {"type": "string"},
                            "catalogue_code": {"type": "string", "description": "Present when `code` is Microsoft's: the catalogue's code for the failure (upstream_…, invalid_sign_in)"}
                        }
                    }}
                }
            }
        }
    })
}

/// The catalogue's codes, from the catalogue itself so the description never falls behind.
fn catalogue_codes() -> String {
    deskbridge_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
