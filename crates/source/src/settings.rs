//! A connector's settings described as data: what each setting is called, what it means, what
//! values it takes and when it is required. The web's connection forms, the API's validation,
//! the export file and the import of one are all built from this description, so a new
//! connector gets them by listing its settings rather than by code in the web or the CLI.
//!
//! Validation here is the part every kind shares (types, formats, required settings, unknown
//! names); what only one kind knows (which credential goes with which sign-in method, say) is
//! the connector's, in its `create` and `edit`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::SyncError;

/// Which part of a connection a setting belongs to; it decides where the UI shows it and what
/// an imported configuration file may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingPart {
    /// Who the connection reads (tenant, app) and where Microsoft is: the details form.
    Identity,
    /// How it signs in and the secrets it signs in with. Never exported; never changed by an
    /// imported file; secrets are write-only.
    Credential,
    /// What and how the sync agent reads: the sync agent tab.
    Sync,
}

/// One value a [`SettingKind::Choice`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SettingKind {
    /// Any non-empty text.
    Text,
    /// A GUID (an application's client id).
    Guid,
    /// A Microsoft tenant: its GUID or one of its verified domain names.
    Tenant,
    /// A Microsoft endpoint (identity platform host, Graph, …): an http(s) URL without query or
    /// fragment, stored without a trailing slash. Empty means `default`.
    Endpoint { default: &'static str },
    /// One of a fixed set of values.
    Choice { options: &'static [Choice] },
    /// Yes or no.
    Flag { default: bool },
    /// A secret value: sealed in the store, write-only.
    Secret,
    /// A certificate with its private key (PEM): sealed in the store, write-only.
    Certificate,
    /// A time, RFC 3339.
    Time,
}

/// When a setting must be given on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Required {
    Always,
    Optional,
    /// Required when the choice `key` has one of `values`.
    When {
        key: &'static str,
        values: &'static [&'static str],
    },
}

/// One setting of a connection kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The name in the API, the export file and the stored configuration.
    pub key: &'static str,
    /// The name people see (the form's label).
    pub label: &'static str,
    /// What it means and where to find it; empty when the label says it all.
    pub help: &'static str,
    pub kind: SettingKind,
    pub required: Required,
    pub part: SettingPart,
}

impl Setting {
    /// Whether the value is sealed and never shown.
    pub fn is_secret(&self) -> bool {
        matches!(self.kind, SettingKind::Secret | SettingKind::Certificate)
    }
}

/// A validated setting value.
#[derive(Clone, PartialEq)]
pub enum SettingValue {
    Text(String),
    Flag(bool),
    Time(jiff::Timestamp),
}

impl std::fmt::Debug for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(…)"),
            Self::Flag(b) => write!(f, "Flag({b})"),
            Self::Time(t) => write!(f, "Time({t})"),
        }
    }
}

/// Validated settings, as given: a key is present only when it was given (or, on a new
/// connection, has a default). Secrets are held here only on their way to being sealed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingValues(BTreeMap<&'static str, SettingValue>);

impl SettingValues {
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(SettingValue::Text(t)) => Some(t),
            _ => None,
        }
    }

    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.0.get(key) {
            Some(SettingValue::Flag(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn time(&self, key: &str) -> Option<jiff::Timestamp> {
        match self.0.get(key) {
            Some(SettingValue::Time(t)) => Some(*t),
            _ => None,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a value the connector decided (a choice it inferred, say).
    pub fn set(&mut self, key: &'static str, value: SettingValue) {
        self.0.insert(key, value);
    }

    /// Drops the settings of `part`: an imported file changes no credential.
    #[must_use]
    pub fn without(mut self, schema: &[Setting], part: SettingPart) -> Self {
        self.0
            .retain(|key, _| schema.iter().any(|s| s.key == *key && s.part != part));
        self
    }
}

/// Whether settings are for a new connection (required settings and defaults apply) or change
/// an existing one (only what is given changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Edit,
}

/// Microsoft's documented hosts: the identity platform, Graph and Partner Center in the public
/// cloud, US Government (L4, L5) and China (21Vianet).
const MICROSOFT_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
    "api.partnercenter.microsoft.com",
    "api.partner.microsoft.com",
    "partner.partnercenterapi.microsoftonline.cn",
];

/// Dataverse organisations live under these (`{org}.crm.dynamics.com`, `{org}.crm4.dynamics.com`,
/// `{org}.crm.microsoftdynamics.us`, `{org}.crm.appsplatform.us`, `{org}.crm.dynamics.cn`).
const MICROSOFT_SUFFIXES: &[&str] = &[
    ".dynamics.com",
    ".microsoftdynamics.us",
    ".appsplatform.us",
    ".dynamics.cn",
];

/// Which hosts a connection's endpoints may name. A connection's credential is sent to its
/// endpoints, so an endpoint is part of the credential: by default only Microsoft's clouds (over
/// https), plus the hosts an administrator allows in the instance's configuration (the emulator,
/// a test double, a proxy). Anything else is refused wherever an endpoint is given or used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Hosts allowed besides Microsoft's, lower-cased: `host` (any port) or `host:port`.
    allowed: Vec<String>,
}

impl EndpointPolicy {
    /// Microsoft's clouds and `hosts` (each `host` or `host:port`; blanks are skipped).
    pub fn allowing<S: AsRef<str>>(hosts: impl IntoIterator<Item = S>) -> Self {
        Self {
            allowed: hosts
                .into_iter()
                .map(|h| h.as_ref().trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// The hosts allowed besides Microsoft's.
    pub fn extra_hosts(&self) -> &[String] {
        &self.allowed
    }

    /// Whether `url` may be a connection's endpoint; if not, why and what to do.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let microsoft = MICROSOFT_HOSTS.contains(&host.as_str())
            || MICROSOFT_SUFFIXES.iter().any(|suffix| host.ends_with(suffix));
        if microsoft {
            return if parsed.scheme() == "https" {
                Ok(())
            } else {
                Err(format!("{url:?}: Microsoft's endpoints are reached over https"))
            };
        }
        let with_port = parsed.port().map(|p| format!("{host}:{p}"));
        if self
            .allowed
            .iter()
            .any(|a| *a == host || Some(a) == with_port.as_ref())
        {
            return Ok(());
        }
        Err(format!(
            "{host} is not one of Microsoft's cloud endpoints; a connection's credential is only sent to \
             Microsoft, or to a host an administrator allows in the instance's configuration \
             (--allow-endpoint-host {host}, or DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS)"
        ))
    }

    /// Checks the endpoints a stored connection names (its configuration, or the defaults), before
    /// anything is sent to them.
    pub fn check_stored(&self, name: &str, schema: &[Setting], config: &Value) -> Result<(), SyncError> {
        for setting in schema {
            if let SettingKind::Endpoint { default } = setting.kind {
                let url = config.get(setting.key).and_then(Value::as_str).unwrap_or(default);
                self.check(url).map_err(|e| {
                    SyncError::BadSettings(name.to_owned(), format!("{}: {e}", setting.label))
                })?;
            }
        }
        Ok(())
    }
}

/// Whether `values` change any of the stored endpoints of a connection (see [`EndpointPolicy`]):
/// such a change drops the stored credentials, and only an administrator may make it.
pub fn endpoints_changed(schema: &[Setting], config: &Value, values: &SettingValues) -> bool {
    schema.iter().any(|s| match s.kind {
        SettingKind::Endpoint { default } => values.text(s.key).is_some_and(|new| {
            let stored = config.get(s.key).and_then(Value::as_str).unwrap_or(default);
            !new.eq_ignore_ascii_case(stored.trim_end_matches('/'))
        }),
        _ => false,
    })
}

/// The first setting in `values` that moves a connection's credential: an endpoint it is sent to
/// ([`endpoints_changed`]) or the tenant it signs in to (a [`SettingKind::Tenant`] setting), given
/// with another value than the stored one. The tenant decides whose data the credential reads and
/// which desk customer owns it, so it is treated as an endpoint: only an administrator may change
/// it, and the connector then drops the stored credentials.
pub fn credential_moved<'a>(
    schema: &'a [Setting],
    config: &Value,
    values: &SettingValues,
) -> Option<&'a Setting> {
    schema.iter().find(|s| {
        let Some(new) = values.text(s.key) else {
            return false;
        };
        match s.kind {
            SettingKind::Endpoint { default } => {
                let stored = config.get(s.key).and_then(Value::as_str).unwrap_or(default);
                !new.eq_ignore_ascii_case(stored.trim_end_matches('/'))
            }
            SettingKind::Tenant => {
                let stored = config.get(s.key).and_then(Value::as_str).unwrap_or_default();
                !new.eq_ignore_ascii_case(stored.trim())
            }
            _ => false,
        }
    })
}

/// Checks settings given as a JSON object against `schema`. Every problem is reported at once,
/// each naming the setting by its label. Empty strings and `null` count as not given. Endpoints
/// must pass `policy`.
pub fn validate(
    schema: &[Setting],
    input: &Map<String, Value>,
    purpose: Purpose,
    policy: &EndpointPolicy,
) -> Result<SettingValues, SyncError> {
    let mut values = SettingValues::default();
    let mut problems = Vec::new();
    // Settings already reported (a bad value) are not reported again as missing.
    let mut refused: Vec<&str> = Vec::new();
    for (key, value) in input {
        let Some(setting) = schema.iter().find(|s| s.key == key) else {
            let known: Vec<&str> = schema.iter().map(|s| s.key).collect();
            problems.push(format!(
                "unknown setting {key:?} (the settings are: {})",
                known.join(", ")
            ));
            continue;
        };
        match parse(setting, value, policy) {
            Ok(Some(v)) => {
                values.0.insert(setting.key, v);
            }
            Ok(None) => {}
            Err(problem) => {
                refused.push(setting.key);
                problems.push(format!("{}: {problem}", setting.label));
            }
        }
    }
    if purpose == Purpose::Create {
        for setting in schema {
            if values.contains(setting.key) {
                continue;
            }
            match setting.kind {
                SettingKind::Endpoint { default } => {
                    values
                        .0
                        .insert(setting.key, SettingValue::Text(default.to_owned()));
                }
                SettingKind::Flag { default } => {
                    values.0.insert(setting.key, SettingValue::Flag(default));
                }
                _ => {}
            }
        }
        for setting in schema {
            let required = match setting.required {
                Required::Always => true,
                Required::Optional => false,
                Required::When { key, values: when } => values.text(key).is_some_and(|v| when.contains(&v)),
            };
            if required && !values.contains(setting.key) && !refused.contains(&setting.key) {
                problems.push(format!("{}: required", setting.label));
            }
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(SyncError::InvalidSettings(problems.join("; ")))
    }
}

/// One value, or `None` when it is empty (not given).
fn parse(setting: &Setting, value: &Value, policy: &EndpointPolicy) -> Result<Option<SettingValue>, String> {
    if let SettingKind::Flag { .. } = setting.kind {
        return match value {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(SettingValue::Flag(*b))),
            other => Err(format!("expected true or false, not {other}")),
        };
    }
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        other => return Err(format!("expected text, not {other}")),
    };
    // Secrets and certificates are kept as given (a PEM's line breaks matter); everything else
    // is trimmed, since a pasted id with a trailing space is the same id.
    if setting.is_secret() {
        return Ok((!text.trim().is_empty()).then(|| SettingValue::Text(text.clone())));
    }
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value = match setting.kind {
        SettingKind::Text => text.to_owned(),
        SettingKind::Guid => {
            if !is_guid(text) {
                return Err(format!(
                    "{text:?} is not a GUID (like 00000000-0000-0000-0000-000000000000)"
                ));
            }
            text.to_ascii_lowercase()
        }
        SettingKind::Tenant => {
            if !is_guid(text) && !is_domain(text) {
                return Err(format!(
                    "{text:?} is neither a tenant id (a GUID) nor a domain name (like contoso.onmicrosoft.com)"
                ));
            }
            text.to_ascii_lowercase()
        }
        SettingKind::Endpoint { .. } => {
            let url = endpoint(text)?;
            policy.check(&url)?;
            url
        }
        SettingKind::Choice { options } => {
            if !options.iter().any(|c| c.value == text) {
                let allowed: Vec<&str> = options.iter().map(|c| c.value).collect();
                return Err(format!("{text:?} is not one of {}", allowed.join(", ")));
            }
            text.to_owned()
        }
        SettingKind::Time => {
            let at = text
                .parse::<jiff::Timestamp>()
                .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
            return Ok(Some(SettingValue::Time(at)));
        }
        // Handled above; kept as text if that ever changes.
        SettingKind::Flag { .. } | SettingKind::Secret | SettingKind::Certificate => text.to_owned(),
    };
    Ok(Some(SettingValue::Text(value)))
}

fn endpoint(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!("{text:?} must be an http(s) URL with a host"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!("{text:?} must have no query, fragment or user name"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// `8-4-4-4-12` hexadecimal digits, as Microsoft writes ids.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A DNS name with at least two labels (`contoso.com`, `contoso.onmicrosoft.com`).
fn is_domain(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').collect();
    text.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// A stored connection's settings as people may see them: every setting of `schema` that is
/// not a secret, from the stored configuration.
pub fn visible_values(schema: &[Setting], config: &Value) -> Map<String, Value> {
    schema
        .iter()
        .filter(|s| !s.is_secret())
        .filter_map(|s| Some((s.key.to_owned(), config.get(s.key)?.clone())))
        .collect()
}

/// The instances a connection runs on: `production`, `test` or both, comma separated (default
/// `production`), normalised.
pub fn enabled_instances(text: Option<&str>) -> Result<String, SyncError> {
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("production");
    let mut out: Vec<&str> = Vec::new();
    for instance in text.split(',').map(str::trim) {
        if !matches!(instance, "production" | "test") {
            return Err(SyncError::InvalidSettings(format!(
                "Instances: unknown instance kind {instance:?} (production, test, or both comma separated)"
            )));
        }
        if !out.contains(&instance) {
            out.push(instance);
        }
    }
    Ok(out.join(","))
}

/// A connection's name: not empty, at most 100 characters, no control characters.
pub fn connection_name(text: &str) -> Result<String, SyncError> {
    let name = text.trim();
    if name.is_empty() {
        return Err(SyncError::InvalidSettings("Connection name: required".into()));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(SyncError::InvalidSettings(
            "Connection name: at most 100 characters, no control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const AUTH: &[Choice] = &[
        Choice {
            value: "secret",
            label: "Secret",
        },
        Choice {
            value: "certificate",
            label: "Certificate",
        },
    ];
    const SCHEMA: &[Setting] = &[
        Setting {
            key: "tenant_id",
            label: "Tenant id",
            help: "",
            kind: SettingKind::Tenant,
            required: Required::Always,
            part: SettingPart::Identity,
        },
        Setting {
            key: "client_id",
            label: "Client id",
            help: "",
            kind: SettingKind::Guid,
            required: Required::Always,
            part: SettingPart::Identity,
        },
        Setting {
            key: "auth",
            label: "Sign-in",
            help: "",
            kind: SettingKind::Choice { options: AUTH },
            required: Required::Optional,
            part: SettingPart::Credential,
        },
        Setting {
            key: "certificate_pem",
            label: "Certificate",
            help: "",
            kind: SettingKind::Certificate,
            required: Required::When {
                key: "auth",
                values: &["certificate"],
            },
            part: SettingPart::Credential,
        },
        Setting {
            key: "graph_url",
            label: "Graph URL",
            help: "",
            kind: SettingKind::Endpoint {
                default: "https://graph.microsoft.com/v1.0",
            },
            required: Required::Optional,
            part: SettingPart::Identity,
        },
        Setting {
            key: "delta",
            label: "Delta",
            help: "",
            kind: SettingKind::Flag { default: false },
            required: Required::Optional,
            part: SettingPart::Sync,
        },
    ];

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_new_connection_gets_defaults_and_normalised_values() {
        let values = validate(
            SCHEMA,
            &object(json!({
                "tenant_id": " Contoso.OnMicrosoft.com ",
                "client_id": "0A1B2C3D-0000-4000-8000-000000000001",
                "graph_url": "https://graph.microsoft.us/v1.0/",
            })),
            Purpose::Create,
            &EndpointPolicy::default(),
        )
        .expect("valid");
        assert_eq!(values.text("tenant_id"), Some("contoso.onmicrosoft.com"));
        assert_eq!(
            values.text("client_id"),
            Some("0a1b2c3d-0000-4000-8000-000000000001")
        );
        assert_eq!(values.text("graph_url"), Some("https://graph.microsoft.us/v1.0"));
        assert_eq!(values.flag("delta"), Some(false));
        assert!(!values.contains("auth"));
    }

    #[test]
    fn every_problem_is_named_once_by_its_label() {
        let err = validate(
            SCHEMA,
            &object(json!({
                "tenant_id": "not a tenant",
                "client_id": 7,
                "auth": "certificate",
                "graph_url": "ftp://graph",
                "delta": "yes",
                "colour": "blue",
            })),
            Purpose::Create,
            &EndpointPolicy::default(),
        )
        .expect_err("invalid");
        let text = err.to_string();
        for expected in [
            "Tenant id: \"not a tenant\" is neither",
            "Client id: expected text, not 7",
            "Graph URL: \"ftp://graph\" must be an http(s) URL",
            "Delta: expected true or false",
            "unknown setting \"colour\"",
            "Certificate: required",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
        assert!(!text.contains("Client id: required"), "said twice: {text}");
    }

    #[test]
    fn an_edit_changes_only_what_is_given() {
        let values = validate(
            SCHEMA,
            &object(json!({ "delta": true, "tenant_id": "" })),
            Purpose::Edit,
            &EndpointPolicy::default(),
        )
        .expect("valid");
        assert_eq!(values.flag("delta"), Some(true));
        assert!(!values.contains("tenant_id"));
        assert!(!values.contains("graph_url"));
    }

    #[test]
    fn secrets_are_never_visible_and_credentials_never_imported() {
        let config = json!({ "tenant_id": "t", "certificate_pem": "x", "auth": "secret" });
        let visible = visible_values(SCHEMA, &config);
        assert!(visible.contains_key("tenant_id"));
        assert!(!visible.contains_key("certificate_pem"));
        let values = validate(
            SCHEMA,
            &object(json!({ "auth": "secret", "delta": true })),
            Purpose::Edit,
            &EndpointPolicy::default(),
        )
        .expect("valid")
        .without(SCHEMA, SettingPart::Credential);
        assert!(!values.contains("auth"));
        assert!(values.contains("delta"));
    }

    #[test]
    fn endpoints_are_microsofts_unless_an_administrator_allows_a_host() {
        let microsoft = EndpointPolicy::default();
        for ok in [
            "https://login.microsoftonline.com",
            "https://graph.microsoft.us/v1.0",
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
            "https://contoso.crm4.dynamics.com",
        ] {
            assert!(microsoft.check(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://graph.microsoft.com/v1.0",
            "https://graph.microsoft.com.evil.example/v1.0",
            "https://evil.example",
            "http://127.0.0.1:8080",
            "https://dynamics.com.evil.example",
        ] {
            assert!(microsoft.check(refused).is_err(), "{refused}");
        }
        let lab = EndpointPolicy::allowing(["127.0.0.1", "emulator.lan:8443", " "]);
        assert!(lab.check("http://127.0.0.1:41234/v1.0").is_ok());
        assert!(lab.check("https://emulator.lan:8443").is_ok());
        assert!(lab.check("https://emulator.lan:9999").is_err());
        let err = validate(
            SCHEMA,
            &object(
                json!({ "tenant_id": "contoso.com", "client_id": "00000000-0000-0000-0000-000000000000",
                            "graph_url": "https://evil.example/v1.0" }),
            ),
            Purpose::Create,
            &microsoft,
        )
        .expect_err("refused");
        assert!(
            err.to_string()
                .contains("Graph URL: evil.example is not one of Microsoft's"),
            "{err}"
        );
        let stored = json!({ "graph_url": "https://evil.example/v1.0" });
        assert!(microsoft.check_stored("x", SCHEMA, &stored).is_err());
        assert!(
            microsoft.check_stored("x", SCHEMA, &json!({})).is_ok(),
            "the defaults are Microsoft's"
        );
    }

    #[test]
    fn an_endpoint_given_again_unchanged_is_no_change() {
        let config = json!({ "graph_url": "https://graph.microsoft.com/v1.0" });
        let same = validate(
            SCHEMA,
            &object(json!({ "graph_url": "https://graph.microsoft.com/v1.0/" })),
            Purpose::Edit,
            &EndpointPolicy::default(),
        )
        .expect("valid");
        assert!(!endpoints_changed(SCHEMA, &config, &same));
        let other = validate(
            SCHEMA,
            &object(json!({ "graph_url": "https://graph.microsoft.us/v1.0" })),
            Purpose::Edit,
            &EndpointPolicy::default(),
        )
        .expect("valid");
        assert!(endpoints_changed(SCHEMA, &config, &other));
        assert!(!endpoints_changed(
            SCHEMA,
            &json!({}),
            &validate(
                SCHEMA,
                &object(json!({ "graph_url": "https://graph.microsoft.com/v1.0" })),
                Purpose::Edit,
                &EndpointPolicy::default()
            )
            .expect("valid")
        ));
    }

    #[test]
    fn a_new_tenant_moves_the_credential_as_a_new_endpoint_does() {
        let config = json!({ "tenant_id": "contoso.onmicrosoft.com" });
        let edit = |v: Value| {
            validate(SCHEMA, &object(v), Purpose::Edit, &EndpointPolicy::default()).expect("valid")
        };
        let same = edit(json!({ "tenant_id": " Contoso.OnMicrosoft.com ", "delta": true }));
        assert!(credential_moved(SCHEMA, &config, &same).is_none());
        let other = edit(json!({ "tenant_id": "fabrikam.onmicrosoft.com" }));
        assert_eq!(
            credential_moved(SCHEMA, &config, &other).map(|s| s.key),
            Some("tenant_id")
        );
        assert!(
            !endpoints_changed(SCHEMA, &config, &other),
            "a tenant is not an endpoint"
        );
        let graph = edit(json!({ "graph_url": "https://graph.microsoft.us/v1.0" }));
        assert_eq!(
            credential_moved(SCHEMA, &config, &graph).map(|s| s.key),
            Some("graph_url")
        );
    }

    #[test]
    fn guids_and_domains() {
        assert!(is_guid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_guid("00000000-0000-0000-0000-00000000000"));
        assert!(!is_guid("0000000g-0000-0000-0000-000000000000"));
        assert!(is_domain("contoso.onmicrosoft.com"));
        assert!(!is_domain("contoso"));
        assert!(!is_domain("-bad.com"));
        assert!(!is_domain("1.2.3.4"));
    }
}
