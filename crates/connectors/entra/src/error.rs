//! Microsoft's failures as the pipeline reports them: Microsoft's own code (`AADSTS7000215`,
//! `Authorization_RequestDenied`, …) carried as data, with the remedy for it. The catalogue code
//! beside it is the one msauth and graph classified the failure as.

use deskbridge_core::HasErrorCode;
use deskbridge_graph::GraphError;
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
        GraphError::Api(api) => (api.code.clone(), api.class.remedy().to_owned()),
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
        None => SyncError::Credential(e.to_string()),
    }
}
