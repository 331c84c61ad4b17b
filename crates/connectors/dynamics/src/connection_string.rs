//! Importing a connection string (`Key=Value;…`) as data platforms and the Dataverse SDK write
//! them, into the same settings the form gives, so the same validation applies.
//!
//! The grammar is the usual one: pairs separated by `;`, keys case-insensitive and trimmed,
//! values trimmed unless quoted with `'` or `"` (a quote inside is doubled), empty pairs
//! ignored. Every key is known or refused: a key that is silently dropped is a setting someone
//! believes is in force.
//!
//! A certificate in a connection string is a file (`OAuthJWTCert`, `OAuthJWTCertType=PEMKEY_FILE`);
//! its name is handed back, not read: only a caller on the administrator's own machine (the CLI)
//! may read a file it names.

use serde_json::{Map, Value};

use deskbridge_source::SyncError;

/// A parsed connection string: the settings it gives (keys of the kind's settings) and the
/// certificate file it names, if any.
#[derive(Clone, Default, PartialEq)]
pub struct ConnectionString {
    pub settings: Map<String, Value>,
    pub certificate_file: Option<String>,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings may hold a client secret: keys only.
        f.debug_struct("ConnectionString")
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .field("certificate_file", &self.certificate_file)
            .finish()
    }
}

impl std::fmt::Debug for Pair<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A value may be a secret.
        f.debug_struct("Pair")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

struct Pair<'a> {
    key: &'a str,
    value: String,
}

fn refused(what: impl Into<String>) -> SyncError {
    SyncError::InvalidSettings(format!("connection string: {}", what.into()))
}

/// The pairs of `text`, in order.
fn pairs(text: &str) -> Result<Vec<Pair<'_>>, SyncError> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n', ';']);
        if rest.is_empty() {
            return Ok(out);
        }
        let Some(eq) = rest.find('=') else {
            let fragment: String = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect();
            return Err(refused(format!(
                "{:?} is not Key=Value (pairs are separated by ';')",
                fragment.trim()
            )));
        };
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains(';') {
            return Err(refused("a pair has no key before its '='"));
        }
        let after = rest[eq + 1..].trim_start_matches([' ', '\t']);
        let (value, remainder) = match after.chars().next() {
            Some(quote @ ('\'' | '"')) => quoted(&after[1..], quote)
                .ok_or_else(|| refused(format!("the value of {key} has no closing {quote}")))?,
            _ => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        let remainder = remainder.trim_start_matches([' ', '\t']);
        if !remainder.is_empty() && !remainder.starts_with(';') {
            return Err(refused(format!(
                "the quoted value of {key} is followed by text before the next ';'"
            )));
        }
        out.push(Pair { key, value });
        rest = remainder;
    }
}

/// A quoted value (after its opening quote): the value and what follows its closing quote.
fn quoted(text: &str, quote: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if chars.peek().is_some_and(|(_, next)| *next == quote) {
                value.push(quote);
                chars.next();
                continue;
            }
            return Some((value, &text[i + c.len_utf8()..]));
        }
        value.push(c);
    }
    None
}

/// Keys as data platforms and the SDK spell them (lower-cased, spaces removed) → setting key.
const KEYS: &[(&str, &str)] = &[
    ("url", "url"),
    ("serviceuri", "url"),
    ("server", "url"),
    ("crmversion", "crm_version"),
    ("azuretenant", "tenant_id"),
    ("tenantid", "tenant_id"),
    ("tenant", "tenant_id"),
    ("oauthclientid", "client_id"),
    ("clientid", "client_id"),
    ("appid", "client_id"),
    ("oauthclientsecret", "client_secret"),
    ("clientsecret", "client_secret"),
    ("secret", "client_secret"),
    ("callbackurl", "callback_url"),
    ("redirecturi", "callback_url"),
    ("replyurl", "callback_url"),
    ("authorityhost", "authority_host"),
];

/// Keys the SDK's strings carry that change nothing here (how its own client behaves).
const IGNORED: &[&str] = &[
    "loginprompt",
    "requirenewinstance",
    "skipdiscovery",
    "tokencachestorepath",
];

fn known_keys() -> String {
    [
        "URL",
        "CRMVersion",
        "AuthScheme",
        "AuthType",
        "AzureTenant/TenantId",
        "OAuthClientId/ClientId/AppId",
        "OAuthClientSecret/ClientSecret",
        "OAuthJWTCert",
        "OAuthJWTCertType",
        "CallbackURL/RedirectUri",
        "AuthorityHost",
        "InitiateOAuth",
    ]
    .join(", ")
}

/// Parses a connection string into settings. Secrets stay in the returned settings only; no
/// error message repeats a value.
pub fn parse(text: &str) -> Result<ConnectionString, SyncError> {
    let mut out = ConnectionString::default();
    let mut scheme: Option<(&'static str, String)> = None;
    let mut cert_type: Option<String> = None;
    let mut seen: Vec<String> = Vec::new();
    for Pair { key, value } in pairs(text)? {
        let normal: String = key
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if seen.contains(&normal) {
            return Err(refused(format!("{key} is given twice")));
        }
        seen.push(normal.clone());
        if let Some((_, setting)) = KEYS.iter().find(|(k, _)| *k == normal) {
            if out.settings.contains_key(*setting) {
                return Err(refused(format!(
                    "{key} gives the same setting as an earlier key (one of {})",
                    KEYS.iter()
                        .filter(|(_, s)| s == setting)
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            out.settings.insert((*setting).to_owned(), Value::String(value));
            continue;
        }
        match normal.as_str() {
            "authscheme" => {
                let parsed = match value.to_ascii_lowercase().as_str() {
                    "azureserviceprincipal" => "AzureServicePrincipal",
                    "azuread" => "AzureAD",
                    _ => {
                        return Err(refused(format!(
                            "AuthScheme {value:?} is not supported: AzureServicePrincipal (client credentials) or \
                             AzureAD (a user signs in)"
                        )));
                    }
                };
                agree(&mut scheme, parsed, key)?;
            }
            "authtype" => {
                let parsed = match value.to_ascii_lowercase().as_str() {
                    "clientsecret" | "certificate" => "AzureServicePrincipal",
                    "oauth" => "AzureAD",
                    _ => {
                        return Err(refused(format!(
                            "AuthType {value:?} is not supported: ClientSecret or Certificate (a service \
                             principal) or OAuth (a user signs in); Office365, AD and IFD sign-ins are not"
                        )));
                    }
                };
                agree(&mut scheme, parsed, key)?;
            }
            "oauthjwtcert" | "certificatefile" => out.certificate_file = Some(value),
            "oauthjwtcerttype" => cert_type = Some(value),
            "initiateoauth" => match value.to_ascii_uppercase().as_str() {
                // We always get a token and refresh it.
                "GETANDREFRESH" | "REFRESH" => {}
                _ => {
                    return Err(refused(format!(
                        "InitiateOAuth {value:?} is not supported: deskbridge gets and refreshes tokens itself \
                         (GETANDREFRESH)"
                    )));
                }
            },
            "thumbprint"
            | "certthumbprint"
            | "certificatethumbprint"
            | "storename"
            | "certificatestorename" => {
                return Err(refused(format!(
                    "{key}: certificate stores are not supported; give OAuthJWTCert=<a PEM file with the \
                     certificate and its private key> and OAuthJWTCertType=PEMKEY_FILE"
                )));
            }
            "username" | "user" | "password" | "domain" | "homerealmuri" => {
                return Err(refused(format!(
                    "{key}: user name and password sign-in is not supported; use AuthScheme=AzureAD (a user \
                     signs in in a browser) or AzureServicePrincipal"
                )));
            }
            ignored if IGNORED.contains(&ignored) => {}
            _ => {
                return Err(refused(format!(
                    "unknown key {key:?} (the keys are: {})",
                    known_keys()
                )));
            }
        }
    }
    if let Some(kind) = cert_type {
        if out.certificate_file.is_none() {
            return Err(refused("OAuthJWTCertType is given without OAuthJWTCert"));
        }
        if !kind.eq_ignore_ascii_case("PEMKEY_FILE") {
            return Err(refused(format!(
                "OAuthJWTCertType {kind:?} is not supported: PEMKEY_FILE (a PEM file with the certificate and its \
                 private key)"
            )));
        }
    }
    if let Some((scheme, _)) = scheme {
        out.settings
            .insert("auth_scheme".into(), Value::String(scheme.to_owned()));
    }
    Ok(out)
}

/// `AuthScheme` and `AuthType` may both be given; they must say the same.
fn agree(
    scheme: &mut Option<(&'static str, String)>,
    parsed: &'static str,
    key: &str,
) -> Result<(), SyncError> {
    match scheme {
        Some((earlier, earlier_key)) if *earlier != parsed => Err(refused(format!(
            "{key} says {parsed} but {earlier_key} says {earlier}"
        ))),
        _ => {
            *scheme = Some((parsed, key.to_owned()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(parsed: &ConnectionString, key: &str) -> Option<String> {
        parsed
            .settings
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    #[test]
    fn a_data_platform_string() {
        let parsed = parse(
            "URL=https://contoso.crm.dynamics.com/;CRMVersion=CRMOnline;InitiateOAuth=GETANDREFRESH;\
             AzureTenant=11111111-1111-1111-1111-111111111111;OAuthClientId=22222222-2222-2222-2222-222222222222;\
             OAuthClientSecret='s3cr;et=''x''';CallbackURL=http://localhost:33333;AuthScheme=AzureAD;",
        )
        .unwrap();
        assert_eq!(
            text(&parsed, "url").as_deref(),
            Some("https://contoso.crm.dynamics.com/")
        );
        assert_eq!(text(&parsed, "crm_version").as_deref(), Some("CRMOnline"));
        assert_eq!(
            text(&parsed, "tenant_id").as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        assert_eq!(text(&parsed, "client_secret").as_deref(), Some("s3cr;et='x'"));
        assert_eq!(
            text(&parsed, "callback_url").as_deref(),
            Some("http://localhost:33333")
        );
        assert_eq!(text(&parsed, "auth_scheme").as_deref(), Some("AzureAD"));
        assert_eq!(parsed.certificate_file, None);
    }

    #[test]
    fn an_sdk_string_with_case_insensitive_keys() {
        let parsed = parse(
            " authtype = ClientSecret ; url = https://contoso.crm4.dynamics.com ; appid = \"22222222-2222-2222-2222-222222222222\" ; \
             ClientSecret=abc ; TENANTID=contoso.onmicrosoft.com; LoginPrompt=Never ; RedirectUri=https://desk.example.com/cb",
        )
        .unwrap();
        assert_eq!(
            text(&parsed, "auth_scheme").as_deref(),
            Some("AzureServicePrincipal")
        );
        assert_eq!(
            text(&parsed, "client_id").as_deref(),
            Some("22222222-2222-2222-2222-222222222222")
        );
        assert_eq!(
            text(&parsed, "tenant_id").as_deref(),
            Some("contoso.onmicrosoft.com")
        );
        assert_eq!(
            text(&parsed, "callback_url").as_deref(),
            Some("https://desk.example.com/cb")
        );
        let cert =
            parse("AuthType=Certificate;OAuthJWTCert=/etc/dyn.pem;OAuthJWTCertType=PEMKEY_FILE").unwrap();
        assert_eq!(cert.certificate_file.as_deref(), Some("/etc/dyn.pem"));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        for (string, expected) in [
            (
                "Url=https://x.crm.dynamics.com;Colour=blue",
                "unknown key \"Colour\"",
            ),
            ("Url=a;url=b", "url is given twice"),
            ("ClientId=a;AppId=b", "AppId gives the same setting"),
            ("AuthType=Office365", "AuthType \"Office365\" is not supported"),
            ("AuthScheme=AzureMSI", "AuthScheme \"AzureMSI\" is not supported"),
            (
                "AuthType=OAuth;AuthScheme=AzureServicePrincipal",
                "AuthScheme says AzureServicePrincipal but AuthType says AzureAD",
            ),
            (
                "Username=ada;Password=x",
                "user name and password sign-in is not supported",
            ),
            ("Thumbprint=ABC", "certificate stores are not supported"),
            (
                "OAuthJWTCert=x;OAuthJWTCertType=PFXFILE",
                "OAuthJWTCertType \"PFXFILE\" is not supported",
            ),
            ("InitiateOAuth=OFF", "InitiateOAuth \"OFF\" is not supported"),
            ("ClientSecret='open", "the value of ClientSecret has no closing '"),
            (
                "Url=https://x.crm.dynamics.com;justtext",
                "\"justtext\" is not Key=Value",
            ),
        ] {
            let err = parse(string).unwrap_err().to_string();
            assert!(err.contains(expected), "{string}: {err}");
        }
        let secret = parse("ClientSecret=hunter2;Nope=1").unwrap_err().to_string();
        assert!(!secret.contains("hunter2"), "{secret}");
    }
}
