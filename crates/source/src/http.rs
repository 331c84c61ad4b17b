//! The one HTTP client deskbridge talks to Microsoft with.

use crate::SyncError;

/// The HTTP client every connector uses (its user agent names deskbridge; it follows no
/// redirect); `connection` labels the error.
///
/// One client serves the whole process (clones share its connection pool): building one loads
/// the system's root certificates, milliseconds of CPU that a worker or a sync of hundreds of
/// tenants would otherwise spend per sync.
pub fn http_client(connection: &str) -> Result<reqwest::Client, SyncError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    // Redirects are never followed: a token request carries a client secret or assertion in its
    // body, which a 307 or 308 would send on to wherever the answer points.
    let client = reqwest::Client::builder()
        .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SyncError::BadSettings(connection.to_owned(), e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Answers every request on `listener` with `response`, until the test ends.
    fn serve(listener: tokio::net::TcpListener, response: String) {
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
    }

    #[tokio::test]
    async fn a_redirect_is_never_followed_with_a_credential() {
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let elsewhere_port = elsewhere.local_addr().expect("addr").port();
        serve(
            elsewhere,
            "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nfollowed".into(),
        );
        let token = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let token_port = token.local_addr().expect("addr").port();
        serve(
            token,
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{elsewhere_port}/token\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        let response = super::http_client("test")
            .expect("client")
            .post(format!("http://127.0.0.1:{token_port}/tenant/oauth2/v2.0/token"))
            .form(&[("client_secret", "s3cret"), ("grant_type", "client_credentials")])
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 307, "the redirect was followed");
    }
}
