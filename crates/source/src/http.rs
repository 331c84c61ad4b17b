//! The one HTTP client deskbridge talks to Microsoft with.

use crate::SyncError;

/// The HTTP client every connector uses (its user agent names deskbridge); `connection` labels
/// the error.
///
/// One client serves the whole process (clones share its connection pool): building one loads
/// the system's root certificates, milliseconds of CPU that a worker or a sync of hundreds of
/// tenants would otherwise spend per sync.
pub fn http_client(connection: &str) -> Result<reqwest::Client, SyncError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SyncError::BadSettings(connection.to_owned(), e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}
