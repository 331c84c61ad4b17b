//! Dataverse's failures as the pipeline records them: Dataverse's own hex code (or the identity
//! platform's AADSTS code) kept, with a remedy for the administrator.

use deskbridge_core::HasErrorCode as _;
use deskbridge_dataverse::{DataverseError, DataverseErrorClass};
use deskbridge_source::SyncError;

/// A Dataverse failure as a [`SyncError`].
pub fn from_dataverse(e: &DataverseError) -> SyncError {
    if let DataverseError::Auth { source, .. } = e {
        return deskbridge_connector_entra::from_auth(source);
    }
    let error_code = e.error_code();
    let code = e
        .api()
        .map(|api| api.code.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| error_code.as_str().to_owned());
    SyncError::Upstream {
        error_code,
        code,
        message: e.to_string(),
        remedy: remedy(e),
    }
}

/// What to do, in a sentence that starts with a capital and ends with a full stop.
fn remedy(e: &DataverseError) -> String {
    let text = match e.class() {
        Some(DataverseErrorClass::NotAMember) => {
            "Register the app as an application user of the environment (Power Platform admin center > \
             Environments > the environment > Settings > Users + permissions > Application users > New app user) \
             with a security role, or sign in with a user of the organisation"
        }
        Some(DataverseErrorClass::MissingPrivilege) => {
            "Give the application user (or the signed-in user) a security role with Read privilege on the table \
             named in the message (Power Platform admin center > Application users > Edit security roles)"
        }
        _ => e.remedy(),
    };
    let mut text = text.to_owned();
    if let Some(first) = text.get(..1) {
        text = first.to_ascii_uppercase() + &text[1..];
    }
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}
