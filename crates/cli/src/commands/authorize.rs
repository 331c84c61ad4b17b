//! `deskbridge connection authorize`: the CLI's side of a delegated sign-in. It starts the
//! sign-in, prints the URL to open, and listens on a loopback address for the redirect
//! ([`super::loopback`]); the connection's connector redeems the code and seals the refresh token.

use std::sync::Arc;

use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_source::{SourceRegistry, SyncError};
use deskbridge_store::Store;

use super::connection::AuthorizeArgs;
use super::loopback::{Finish, Loopback};
use crate::error::CliError;
use crate::output::say;

pub async fn run(store: &Store, sources: &SourceRegistry, args: AuthorizeArgs) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let connection = super::connection::connection_named(store, &args.name).await?;
    let sign_in = sources.source_of(&connection)?.sign_in().ok_or_else(|| {
        CliError::new(
            ErrorCode::InvalidInput,
            format!("a {} connection is not authorised by signing in", connection.kind),
        )
    })?;
    // The connection's own loopback callback URL, registered on its app as it is, unless the
    // command says where to listen.
    let loopback = match (
        args.listen,
        &args.redirect_host,
        sign_in.native_redirect(&connection),
    ) {
        (None, None, Some(uri)) => Loopback::bind_uri(&uri).await?,
        (listen, host, _) => {
            let listen = listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            Loopback::bind(listen, host.as_deref().unwrap_or("127.0.0.1")).await?
        }
    };
    let redirect_uri = loopback.redirect_uri.clone();
    let url = sign_in.begin(store, &connection, &redirect_uri, &clock).await?;
    let finish: Finish = {
        let (store, sources, connection) = (store.clone(), sources.clone(), connection.clone());
        Arc::new(move |redirect| {
            let (store, sources, connection, clock) =
                (store.clone(), sources.clone(), connection.clone(), clock.clone());
            Box::pin(async move {
                let source = sources.source_of(&connection)?;
                let sign_in = source
                    .sign_in()
                    .ok_or_else(|| SyncError::Internal("the connector no longer signs in".into()))?;
                sign_in.complete(&store, &connection, &redirect, &clock).await?;
                Ok((
                    "Signed in".to_owned(),
                    format!("Connection {} is authorised.", connection.name),
                ))
            })
        })
    };
    say(&format!(
        "Open this address in a browser and sign in with an account that may read the directory:\n{url}\n\
         Waiting for the sign-in to come back to {redirect_uri} …"
    ));
    loopback.wait(args.timeout, "sign-in", finish).await?;
    say(&format!(
        "connection {:?} is authorised; its refresh token is sealed in the store",
        connection.name
    ));
    Ok(())
}
