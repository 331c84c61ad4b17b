//! Microsoft's failures as the pipeline reports them: Microsoft's own code (`AADSTS7000215`,
//! `Authorization_RequestDenied`, …) carried as data, with the remedy for it. The catalogue code
//! beside it is the one msauth and graph classified the failure as.

use deskbridge_core::HasErrorCode;
use deskbridge_graph::{GraphError, GraphErrorClass};
use deskbridge_msauth::AuthError;
use deskbridge_source::SyncError;

/// Turns a Graph failure into an upstream error with Microsoft's own code and a remedy.
pub fn from_graph(e: &GraphError) -> SyncError {
    let (code, remedy) = match e {
        GraphError::Auth {
            source: AuthError::Microsoft(ms),
            ..
        } => (
            ms.aadsts()
                .map_or_else(|| ms.error.clone(), |n| format!("AADSTS{n}")),
            ms.remedy().to_owned(),
        ),
        // The token could not be had: said as the token failure is, with its remedy.
        GraphError::Auth { source, .. } if source.microsoft().is_none() => match from_auth(source) {
            SyncError::Upstream { code, remedy, .. } => (code, remedy),
            other => (
                e.error_code().as_str().to_owned(),
                other.remedy().unwrap_or_default(),
            ),
        },
        GraphError::Api(api) => {
            let remedy = match crate::check::permission_for_request(&api.request) {
                Some((permission, feature)) if api.class == GraphErrorClass::PermissionDenied => format!(
                    "The app lacks the {permission} permission ({feature}). Add it as an application permission \
                     and grant admin consent in the tenant; `deskbridge check` confirms it."
                ),
                _ => api.class.remedy().to_owned(),
            };
            (api.code.clone(), remedy)
        }
        // Microsoft sent no code (the connection failed, say): ours stands in its place.
        other => (other.error_code().as_str().to_owned(), String::new()),
    };
    SyncError::Upstream {
        error_code: e.error_code(),
        code,
        message: e.to_string(),
        remedy,
    }
}

/// Turns a token failure into an upstream error with Microsoft's code and remedy.
pub fn from_auth(e: &AuthError) -> SyncError {
    match e.microsoft() {
        Some(ms) => SyncError::Upstream {
            error_code: e.error_code(),
            code: ms
                .aadsts()
                .map_or_else(|| ms.error.clone(), |n| format!("AADSTS{n}")),
            message: e.to_string(),
            remedy: ms.remedy().to_owned(),
        },
        None => match e {
            // The credential is not at fault: the identity platform did not answer, or answered
            // with something that is not its own error. Said as what it is, with its remedy.
            AuthError::Transport { .. }
            | AuthError::Metadata { .. }
            | AuthError::UnexpectedResponse { .. }
            | AuthError::MalformedResponse { .. } => SyncError::Upstream {
                error_code: e.error_code(),
                code: e.error_code().as_str().to_owned(),
                message: e.to_string(),
                remedy: if e.is_transient() || matches!(e, AuthError::Transport { .. }) {
                    "Check that this machine reaches the connection's identity platform host \
                     (its address, a proxy, a firewall); the next run tries again."
                        .to_owned()
                } else {
                    "The identity platform's answer was not one it sends; check the connection's \
                     identity platform host setting."
                        .to_owned()
                },
            },
            _ => SyncError::Credential(e.to_string()),
        },
    }
}
