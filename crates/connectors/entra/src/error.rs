//! Microsoft's failures as the pipeline reports them: Microsoft's own code (`AADSTS7000215`,
//! `Authorization_RequestDenied`, …) carried as data, with the remedy for it.

use deskbridge_graph::GraphError;
use deskbridge_msauth::AuthError;
use deskbridge_source::SyncError;

/// Turns a Graph failure into an upstream error with Microsoft's own code and a remedy.
pub(crate) fn from_graph(e: &GraphError) -> SyncError {
    let (code, remedy) = match e {
        GraphError::Auth {
            source: AuthError::Microsoft(ms),
            ..
        } => (
            ms.aadsts()
                .map_or_else(|| ms.error.clone(), |n| format!("AADSTS{n}")),
            ms.remedy().to_owned(),
        ),
        GraphError::Api(api) => (api.code.clone(), api.class.remedy().to_owned()),
        other => (other.code().to_string(), String::new()),
    };
    SyncError::Upstream {
        code,
        message: e.to_string(),
        remedy,
    }
}

/// Turns a token failure into an upstream error with Microsoft's code and remedy.
pub(crate) fn from_auth(e: &AuthError) -> SyncError {
    match e.microsoft() {
        Some(ms) => SyncError::Upstream {
            code: ms
                .aadsts()
                .map_or_else(|| ms.error.clone(), |n| format!("AADSTS{n}")),
            message: e.to_string(),
            remedy: ms.remedy().to_owned(),
        },
        None => SyncError::Credential(e.to_string()),
    }
}
