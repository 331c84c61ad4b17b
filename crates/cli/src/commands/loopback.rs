//! A loopback listener for one browser redirect, the way native apps sign in with Microsoft
//! (RFC 8252): the CLI prints a URL, the browser comes back to `http://127.0.0.1:PORT/callback`,
//! and the connector finishes from the whole redirect. Shared by `connection authorize` (the
//! delegated sign-in) and `tenants consent` (a tenant's admin consent), so both refuse
//! non-loopback addresses and time out the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::extract::{OriginalUri, State};
use axum::response::{Html, IntoResponse, Response};
use deskbridge_core::ErrorCode;
use deskbridge_source::SyncError;
use tokio::sync::{Mutex, oneshot};

use crate::error::CliError;

/// What finishes the flow from the whole redirect: `Ok` with the page's heading and text.
pub type Finish = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(String, String), SyncError>> + Send>> + Send + Sync,
>;

struct Callback {
    finish: Finish,
    done: Mutex<Option<oneshot::Sender<Result<String, String>>>>,
}

/// A bound loopback listener and the redirect URI it answers at.
pub struct Loopback {
    listener: tokio::net::TcpListener,
    pub redirect_uri: String,
    /// The path the redirect comes back to.
    path: String,
}

impl Loopback {
    /// Binds `listen` (a loopback address; port 0: any free port) and names it with
    /// `redirect_host` (`127.0.0.1` or `localhost`, as registered on the app).
    pub async fn bind(listen: SocketAddr, redirect_host: &str) -> anyhow::Result<Self> {
        if !matches!(redirect_host, "localhost" | "127.0.0.1") {
            bail!(CliError::new(
                ErrorCode::InvalidInput,
                "--redirect-host must be localhost or 127.0.0.1 (a loopback redirect)"
            ));
        }
        if !listen.ip().is_loopback() {
            bail!(CliError::new(
                ErrorCode::InvalidInput,
                "--listen must be a loopback address; the redirect carries what completes the flow"
            ));
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            redirect_uri: format!("http://{redirect_host}:{port}/callback"),
            path: "/callback".into(),
        })
    }

    /// Binds the port of `redirect_uri`, a loopback URI registered on the app as it is
    /// (`http://localhost:33333`), and answers at its path; the URI is sent to Microsoft verbatim.
    pub async fn bind_uri(redirect_uri: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(redirect_uri).with_context(|| format!("{redirect_uri:?} is not a URL"))?;
        let (Some("localhost" | "127.0.0.1"), Some(port), "http") =
            (url.host_str(), url.port(), url.scheme())
        else {
            bail!(CliError::new(
                ErrorCode::InvalidInput,
                format!("{redirect_uri:?} is not a loopback redirect with a port (http://localhost:PORT/…)")
            ));
        };
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
            format!(
                "cannot listen on {listen} for the connection's callback URL {redirect_uri}: free the port, or pass \
                 --listen 127.0.0.1:0 to come back to http://127.0.0.1:PORT/callback (register that too)"
            )
        })?;
        Ok(Self {
            listener,
            redirect_uri: redirect_uri.to_owned(),
            path: url.path().to_owned(),
        })
    }

    /// Waits up to `timeout` seconds for the redirect and finishes with it: the success page's
    /// text, or the error with its code and remedy. `what` names the flow in messages.
    pub async fn wait(self, timeout: u64, what: &str, finish: Finish) -> anyhow::Result<String> {
        let (tx, rx) = oneshot::channel();
        let state = Arc::new(Callback {
            finish,
            done: Mutex::new(Some(tx)),
        });
        let app = axum::Router::new()
            .route(&self.path, axum::routing::get(callback))
            .with_state(state);
        let listener = self.listener;
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let outcome = tokio::time::timeout(Duration::from_secs(timeout), rx).await;
        server.abort();
        match outcome {
            Ok(Ok(Ok(text))) => Ok(text),
            Ok(Ok(Err(message))) => bail!("{message}"),
            Ok(Err(_)) => bail!("the loopback listener stopped before the {what} came back"),
            Err(_) => {
                bail!("no {what} came back within {timeout}s; run the command again to start a new one")
            }
        }
    }
}

async fn callback(State(state): State<Arc<Callback>>, OriginalUri(uri): OriginalUri) -> Response {
    let result = (state.finish)(uri.to_string()).await;
    let page = match &result {
        Ok((heading, text)) => format!(
            "<!doctype html><title>deskbridge</title><h1>{}</h1><p>{} You can close this window.</p>",
            escape(heading),
            escape(text)
        ),
        Err(e) => format!(
            "<!doctype html><title>deskbridge</title><h1>Not done</h1><p>{}</p>{}",
            escape(&e.to_string()),
            e.remedy()
                .map(|r| format!("<p>{}</p>", escape(&r)))
                .unwrap_or_default()
        ),
    };
    let message = result.map(|(_, text)| text).map_err(|e| match e.remedy() {
        Some(remedy) => format!("{e} ({}) — {remedy}", e.code()),
        None => format!("{e} ({})", e.code()),
    });
    if let Some(done) = state.done.lock().await.take() {
        let _ = done.send(message);
    }
    Html(page).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
