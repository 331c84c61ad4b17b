//! `deskbridge connection authorize`: the CLI's side of a delegated sign-in. It starts the
//! sign-in, prints the URL to open, and listens on a loopback address for the redirect, the way
//! native apps sign in with Microsoft (RFC 8252); the connection's connector redeems the code and
//! seals the refresh token.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::extract::{OriginalUri, State};
use axum::response::{Html, IntoResponse, Response};
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_source::{SourceRegistry, SyncError};
use deskbridge_store::{Connection, Store};
use tokio::sync::{Mutex, oneshot};

use super::connection::AuthorizeArgs;
use crate::error::CliError;
use crate::output::say;

struct Callback {
    store: Store,
    clock: SharedClock,
    connection: Connection,
    sources: SourceRegistry,
    done: Mutex<Option<oneshot::Sender<Result<String, String>>>>,
}

pub async fn run(store: &Store, sources: &SourceRegistry, args: AuthorizeArgs) -> anyhow::Result<()> {
    if !matches!(args.redirect_host.as_str(), "localhost" | "127.0.0.1") {
        bail!(CliError::new(
            ErrorCode::InvalidInput,
            "--redirect-host must be localhost or 127.0.0.1 (a loopback redirect)"
        ));
    }
    if !args.listen.ip().is_loopback() {
        bail!(CliError::new(
            ErrorCode::InvalidInput,
            "--listen must be a loopback address; the redirect carries an authorization code"
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://{}:{port}/callback", args.redirect_host);
    let clock: SharedClock = Arc::new(SystemClock);
    let connection = super::connection::connection_named(store, &args.name).await?;
    let sign_in = sources.source_of(&connection)?.sign_in().ok_or_else(|| {
        CliError::new(
            ErrorCode::InvalidInput,
            format!("a {} connection is not authorised by signing in", connection.kind),
        )
    })?;
    let url = sign_in.begin(store, &connection, &redirect_uri, &clock).await?;
    let (tx, rx) = oneshot::channel();
    let state = Arc::new(Callback {
        store: store.clone(),
        clock,
        connection,
        sources: sources.clone(),
        done: Mutex::new(Some(tx)),
    });
    let app = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .with_state(state);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    say(&format!(
        "Open this address in a browser and sign in with an account that may read the directory:\n{}\n\
         Waiting for the sign-in to come back to {redirect_uri} …",
        url
    ));
    let outcome = tokio::time::timeout(Duration::from_secs(args.timeout), rx).await;
    server.abort();
    match outcome {
        Ok(Ok(Ok(name))) => {
            say(&format!(
                "connection {name:?} is authorised; its refresh token is sealed in the store"
            ));
            Ok(())
        }
        Ok(Ok(Err(message))) => bail!("{message}"),
        Ok(Err(_)) => bail!("the loopback listener stopped before the sign-in came back"),
        Err(_) => bail!(
            "no sign-in came back within {}s; run the command again to start a new one",
            args.timeout
        ),
    }
}

async fn callback(State(state): State<Arc<Callback>>, OriginalUri(uri): OriginalUri) -> Response {
    let result = match state.sources.source_of(&state.connection) {
        Ok(source) => match source.sign_in() {
            Some(sign_in) => sign_in
                .complete(&state.store, &state.connection, &uri.to_string(), &state.clock)
                .await
                .map(|()| state.connection.name.clone()),
            None => Err(SyncError::Internal("the connector no longer signs in".into())),
        },
        Err(e) => Err(e),
    };
    let page = match &result {
        Ok(name) => format!(
            "<!doctype html><title>deskbridge</title><h1>Signed in</h1><p>Connection {} is authorised. \
             You can close this window.</p>",
            escape(name)
        ),
        Err(e) => format!(
            "<!doctype html><title>deskbridge</title><h1>Sign-in failed</h1><p>{}</p>{}",
            escape(&e.to_string()),
            e.remedy()
                .map(|r| format!("<p>{}</p>", escape(&r)))
                .unwrap_or_default()
        ),
    };
    let message = result.map_err(|e| match e.remedy() {
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
