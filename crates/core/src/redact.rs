//! Redaction of credentials from anything that is logged or stored as a request log, or shown in
//! an error: headers, URL query strings, form bodies, JSON bodies and free text that names URLs.
//! Whatever the transport, a key that names a credential — or a paging or delta cursor, which
//! reads the tenant's data as a token would (`$skiptoken`, `$deltatoken`) — has its value
//! replaced by [`REDACTED`]. Every client (Graph, Partner Center, Dataverse, the identity
//! platform) redacts its URLs here, so an error, a log line and the outbound log say the same.

use serde_json::Value;

pub const REDACTED: &str = "REDACTED";

/// Names (compared without case) whose values are credentials.
const SECRET_KEYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "client_secret",
    "client_assertion",
    "assertion",
    "refresh_token",
    "access_token",
    "id_token",
    "code",
    "code_verifier",
    "password",
    "secret",
    "token",
    "x-ms-continuationtoken",
    "$skiptoken",
    "$deltatoken",
    "skiptoken",
    "deltatoken",
];

pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim();
    SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(key))
}

/// Headers with credential values replaced.
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_owned(),
                if is_secret_key(k) {
                    REDACTED.to_owned()
                } else {
                    v.to_owned()
                },
            )
        })
        .collect()
}

/// An `a=b&c=d` string (a form body or a URL query) with credential values replaced.
pub fn form(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(&percent_decode_key(k)) => format!("{k}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL with credential values in its query replaced.
pub fn url(text: &str) -> String {
    match text.split_once('?') {
        Some((base, query)) => format!("{base}?{}", form(query)),
        None => text.to_owned(),
    }
}

/// Free text — an error message, a transport error that quotes its URL — with the query values
/// of every URL in it redacted ([`url`]'s rules).
pub fn text(text: &str) -> String {
    if !text.contains('?') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('?') {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        out.push('?');
        let after = &after[1..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(after.len());
        let (query, tail) = after.split_at(end);
        out.push_str(&form(query));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A JSON value with credential values replaced, at any depth.
pub fn json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(REDACTED.to_owned())
                    } else {
                        json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        other => other.clone(),
    }
}

/// [`json`] as text. Most values carry no credential: those are written out as they are, without
/// the copy redaction makes (the inbound log writes one per imported record).
pub fn json_text(value: &Value) -> String {
    if has_secret(value) {
        json(value).to_string()
    } else {
        value.to_string()
    }
}

/// Whether [`json`] would replace anything in `value`.
fn has_secret(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (is_secret_key(k) && !v.is_null()) || has_secret(v)),
        Value::Array(items) => items.iter().any(has_secret),
        _ => false,
    }
}

/// A request or response body: JSON and form bodies are redacted by key; anything else is kept
/// only if it does not look like it carries a credential.
pub fn body(text: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return json(&value).to_string();
    }
    if text.contains('=') && !text.contains(char::is_whitespace) {
        return form(text);
    }
    text.to_owned()
}

fn percent_decode_key(k: &str) -> String {
    k.replace("%5F", "_")
        .replace("%5f", "_")
        .replace("%24", "$")
        .replace('+', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_credentials_everywhere() {
        let h = headers([("Authorization", "Bearer abc"), ("Accept", "application/json")]);
        assert_eq!(h[0].1, REDACTED);
        assert_eq!(h[1].1, "application/json");
        assert_eq!(
            form("grant_type=client_credentials&client_secret=s3cr3t&scope=x"),
            "grant_type=client_credentials&client_secret=REDACTED&scope=x"
        );
        assert_eq!(
            url("https://h/t?code=abc&state=1"),
            "https://h/t?code=REDACTED&state=1"
        );
        let j = json(&serde_json::json!({"access_token": "t", "nested": [{"refresh_token": "r", "ok": 1}]}));
        assert_eq!(
            j.to_string(),
            r#"{"access_token":"REDACTED","nested":[{"refresh_token":"REDACTED","ok":1}]}"#
        );
        assert!(!body("client_id=1&client_assertion=eyJ").contains("eyJ"));
    }

    #[test]
    fn cursors_are_redacted_in_urls_and_in_text() {
        assert_eq!(
            url("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc"),
            "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=REDACTED"
        );
        assert_eq!(
            url("/v1.0/users?$select=id&%24skiptoken=RFNwdAoAAQ&$top=999"),
            "/v1.0/users?$select=id&%24skiptoken=REDACTED&$top=999"
        );
        assert_eq!(url("/v1.0/organization"), "/v1.0/organization");
        let message = "error sending request for url (https://h/v1.0/users?$skiptoken=s3cr3t&$top=2): \
                       connection reset; token endpoint https://login/t?code=c0de&refresh_token=r3fr3sh failed?";
        let redacted = text(message);
        for secret in ["s3cr3t", "c0de", "r3fr3sh"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert!(redacted.contains("$top=2): connection reset"), "{redacted}");
        assert!(redacted.ends_with("failed?"), "{redacted}");
        assert_eq!(text("no URL here"), "no URL here");
    }

    #[test]
    fn json_text_redacts_at_any_depth_and_copies_nothing_else() {
        let secret =
            serde_json::json!({"fields": {"name": {"after": "A"}}, "deep": [{"client_secret": "s"}]});
        assert_eq!(json_text(&secret), json(&secret).to_string());
        assert!(!json_text(&secret).contains("\"s\""));
        let plain = serde_json::json!({"fields": {"name": {"before": null, "after": "A"}}, "password": null});
        assert_eq!(json_text(&plain), plain.to_string());
    }
}
