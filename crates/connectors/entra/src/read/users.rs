//! A user as Graph sends it, checked before it is read (an id, Graph's types, no oversize text:
//! refused, never coerced), normalised into the engine's source user; and sign-in dates, read in
//! their own pass.

use super::*;

/// Why a tenant's sign-in dates could not be read: the run goes on without them.
#[derive(Debug, Clone)]
pub struct SignInUnavailable {
    pub code: String,
    pub message: String,
    pub remedy: String,
}

/// Every user's `signInActivity`, by user id, read in its own pass of 500-user pages before the
/// users are (so each page of users gets its dates as it is read). A tenant without the
/// permission or a premium licence yields [`SignInUnavailable`] and the users keep no sign-in
/// data (so nothing is overwritten).
pub async fn read_sign_ins(
    tenant: &GraphTenant,
    requests: &mut u64,
) -> Result<Result<SignIns, SignInUnavailable>, GraphError> {
    let mut activity = SignIns::new();
    let mut pager = tenant.pager::<Map<String, Value>>("/users?$select=id,signInActivity&$top=500");
    loop {
        let page = match pager.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => return Ok(Ok(activity)),
            Err(e)
                if matches!(
                    e.class(),
                    Some(
                        deskbridge_graph::GraphErrorClass::NonPremiumTenant
                            | deskbridge_graph::GraphErrorClass::PermissionDenied
                    )
                ) =>
            {
                let (code, remedy) = match e.api() {
                    Some(api) => (api.code.clone(), api.class.remedy().to_owned()),
                    None => (e.code().to_string(), String::new()),
                };
                return Ok(Err(SignInUnavailable {
                    code,
                    message: e.to_string(),
                    remedy,
                }));
            }
            Err(e) => return Err(e),
        };
        *requests += 1;
        for mut user in page.value {
            if let (Some(Value::String(id)), Some(sign_in)) =
                (user.remove("id"), user.remove("signInActivity"))
            {
                activity.insert(id, sign_in);
            }
        }
    }
}

/// Users' `signInActivity` by user id.
pub type SignIns = std::collections::HashMap<String, Value>;

/// Gives each user their sign-in activity, when it was read.
pub fn add_sign_ins(users: &mut [SourceUser], sign_ins: &SignIns) {
    for user in users {
        if let Some(sign_in) = sign_ins.get(&user.external_id) {
            user.properties.insert("signInActivity".into(), sign_in.clone());
        }
    }
}

/// Whether Entra properties describe a guest: `userType` Guest, or `#EXT#` in the user principal
/// name (guests invited from other tenants carry it).
fn looks_external(properties: &Map<String, Value>) -> bool {
    let guest = properties
        .get("userType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("guest"));
    let ext = properties
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .is_some_and(|upn| upn.to_ascii_uppercase().contains("#EXT#"));
    guest || ext
}

/// The longest text a property of a user may hold. Graph's own limits are far below it (a display
/// name holds 256 characters): a longer value is a corrupt response, never a person's data.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// A user Graph returned that cannot be imported as it is: what is wrong, said once, and which
/// user (when its id could be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedUser {
    pub id: Option<String>,
    pub message: String,
}

/// Checks a user's properties before anything is read from them: the id is text, the properties
/// the pipeline reads itself have Graph's types, and no text is longer than [`MAX_TEXT_BYTES`].
/// Nothing is coerced into a default: a wrong type would otherwise become, say, an enabled
/// account.
fn check_user(properties: &Map<String, Value>) -> Result<String, RejectedUser> {
    let id = match properties.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        other => {
            return Err(RejectedUser {
                id: None,
                message: format!("a user has no id (Graph sent {})", describe(other)),
            });
        }
    };
    let reject = |message: String| RejectedUser {
        id: Some(id.clone()),
        message,
    };
    let expect = |property: &str, ok: fn(&Value) -> bool, what: &str| -> Result<(), RejectedUser> {
        match properties.get(property) {
            Some(value) if !value.is_null() && !ok(value) => Err(reject(format!(
                "user {id}: {property} must be {what}, but Graph sent {}",
                describe(Some(value))
            ))),
            _ => Ok(()),
        }
    };
    expect("accountEnabled", Value::is_boolean, "true or false")?;
    for text in [
        "userPrincipalName",
        "displayName",
        "mail",
        "userType",
        "givenName",
        "surname",
    ] {
        expect(text, Value::is_string, "text")?;
    }
    expect("assignedLicenses", Value::is_array, "a list")?;
    for (property, value) in properties {
        if let Some(len) = longest_text(value).filter(|len| *len > MAX_TEXT_BYTES) {
            return Err(reject(format!(
                "user {id}: {property} holds a text of {len} bytes, more than the {MAX_TEXT_BYTES} a property may hold"
            )));
        }
    }
    Ok(id)
}

/// The longest text anywhere in a value.
fn longest_text(value: &Value) -> Option<usize> {
    match value {
        Value::String(s) => Some(s.len()),
        Value::Array(items) => items.iter().filter_map(longest_text).max(),
        Value::Object(map) => map.values().filter_map(longest_text).max(),
        _ => None,
    }
}

/// A value's type for messages (never the value itself: it may be huge or personal).
fn describe(value: Option<&Value>) -> &'static str {
    value.map_or("nothing", deskbridge_core::json_kind)
}

pub(super) fn source_user(mut properties: Map<String, Value>) -> Result<SourceUser, RejectedUser> {
    let external_id = check_user(&properties)?;
    let manager_id = properties
        .remove("manager")
        .and_then(|m| m.get("id").and_then(Value::as_str).map(str::to_owned));
    properties.retain(|k, _| !k.starts_with('@') && !k.contains("@odata"));
    let sku_ids = properties
        .get("assignedLicenses")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|a| a.get("skuId")?.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    // Checked above: a boolean, or absent (Graph leaves out what was not selected).
    let account_enabled = properties
        .get("accountEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(SourceUser {
        external_id,
        manager_id,
        groups: BTreeSet::new(),
        transitive_groups: BTreeSet::new(),
        sku_ids,
        account_enabled,
        external: looks_external(&properties),
        properties,
    })
}

/// A rejected user as the error recorded against the run.
pub fn rejected_error(tenant: &str, rejected: RejectedUser) -> IntegrationError {
    IntegrationError {
        tenant_id: Some(tenant.to_owned()),
        entity: Some("user".into()),
        external_id: rejected.id,
        code: deskbridge_core::ErrorCode::UpstreamMalformedResponse.to_string(),
        message: format!("{}; the user was not imported", rejected.message),
        remedy: Some(
            "Nothing was changed for this user, and nobody is deactivated for being absent from this read. \
             If the value is right in Entra ID, report the response to Microsoft; the next sync reads it again."
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_keep_their_properties_manager_and_licences() {
        let raw = serde_json::json!({
            "id": "u1", "displayName": "Ada", "accountEnabled": false,
            "assignedLicenses": [{"skuId": "6FD2C87F-B296-42F0-B197-1E91E994B900", "disabledPlans": []}],
            "manager": {"@odata.type": "#microsoft.graph.user", "id": "m1"},
            "manager@odata.context": "x"
        });
        let user = source_user(raw.as_object().unwrap().clone()).unwrap();
        assert!(!user.is_external());
        assert_eq!(user.manager_id.as_deref(), Some("m1"));
        assert!(!user.account_enabled);
        assert!(user.sku_ids.contains("6fd2c87f-b296-42f0-b197-1e91e994b900"));
        assert!(!user.properties.contains_key("manager"));
        assert!(!user.properties.contains_key("manager@odata.context"));
    }

    fn user(raw: serde_json::Value) -> Result<SourceUser, RejectedUser> {
        source_user(raw.as_object().unwrap().clone())
    }

    #[test]
    fn guests_are_external_by_type_or_principal_name() {
        let guest = user(serde_json::json!({"id": "g1", "userType": "Guest"})).unwrap();
        assert!(guest.is_external());
        let invited =
            user(serde_json::json!({"id": "g2", "userPrincipalName": "ada_x.com#EXT#@t.onmicrosoft.com"}))
                .unwrap();
        assert!(invited.is_external());
    }

    #[test]
    fn users_graph_could_not_have_sent_are_rejected_not_coerced() {
        let no_id = user(serde_json::json!({"displayName": "Ada"})).unwrap_err();
        assert_eq!(no_id.id, None);
        assert!(no_id.message.contains("no id"), "{}", no_id.message);
        let wrong = user(serde_json::json!({"id": "u1", "accountEnabled": "yes"})).unwrap_err();
        assert_eq!(wrong.id.as_deref(), Some("u1"));
        assert!(
            wrong.message.contains("accountEnabled must be true or false"),
            "{}",
            wrong.message
        );
        assert!(wrong.message.contains("sent text"), "{}", wrong.message);
        let licences = user(serde_json::json!({"id": "u1", "assignedLicenses": {"skuId": "x"}})).unwrap_err();
        assert!(
            licences.message.contains("assignedLicenses must be a list"),
            "{}",
            licences.message
        );
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        let oversize = user(serde_json::json!({"id": "u1", "department": long})).unwrap_err();
        assert!(
            oversize.message.contains("department holds a text of"),
            "{}",
            oversize.message
        );
        // A null is "no value", as Graph sends for empty properties.
        assert!(user(serde_json::json!({"id": "u1", "accountEnabled": null, "mail": null})).is_ok());
    }
}
