use deskbridge_core::ErrorCode;

/// Why a sync could not run or finish. Each carries a stable code and, where there is one, what
/// the administrator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no connection named {0:?}")]
    UnknownConnection(String),
    #[error("connection {name:?} is a {kind} connection, not an Entra connection")]
    WrongKind { name: String, kind: String },
    #[error("connection {0:?} has invalid settings: {1}")]
    BadSettings(String, String),
    #[error("the mapping configuration is invalid: {0}")]
    InvalidMappings(String),
    #[error("store: {0}")]
    Store(#[from] deskbridge_store::StoreError),
    #[error("{message}")]
    Upstream {
        code: String,
        message: String,
        remedy: String,
    },
    #[error("{0}")]
    Credential(String),
}

impl SyncError {
    pub fn code(&self) -> String {
        match self {
            Self::UnknownConnection(_) => ErrorCode::NotFound.to_string(),
            Self::WrongKind { .. } | Self::BadSettings(..) | Self::InvalidMappings(_) => {
                ErrorCode::InvalidConfiguration.to_string()
            }
            Self::Store(e) => e.code().to_string(),
            Self::Upstream { code, .. } => code.clone(),
            Self::Credential(_) => ErrorCode::UpstreamAuthentication.to_string(),
        }
    }

    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::Upstream { remedy, .. } if !remedy.is_empty() => Some(remedy.clone()),
            Self::Credential(_) => {
                Some("Check the connection's credentials (secret value or certificate).".into())
            }
            _ => None,
        }
    }
}

/// Turns a Graph failure into an upstream error with Microsoft's own code (`AADSTS7000215`,
/// `Authorization_RequestDenied`, …) and a remedy.
pub(crate) fn from_graph(e: &deskbridge_graph::GraphError) -> SyncError {
    use deskbridge_graph::GraphError;
    let (code, remedy) = match e {
        GraphError::Auth {
            source: deskbridge_msauth::AuthError::Microsoft(ms),
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
