//! Measures how fast the Graph client reads users from the in-process emulator (no latency, no
//! throttling): end to end (token, HTTP, paging, typed parsing) and parsing alone.
//!
//! `cargo run -p deskbridge-graph --example read_users -- [users] [tenants]`

use std::sync::Arc;
use std::time::Instant;

use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_graph::{GraphClient, GraphConfig, Query, USER_SELECT, User};
use deskbridge_msauth::{AppCredentials, AppTokenProvider, Authority, ClientCredential, TokenClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let users_per_tenant: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let tenants: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);

    let world = World::generate(&GenerateOptions {
        seed: 3,
        tenants,
        users_per_tenant: Some(users_per_tenant),
        ..GenerateOptions::default()
    })?;
    let clock: SharedClock = Arc::new(SystemClock);
    let mut config = EmulatorConfig::new(world);
    config.clock = clock.clone();
    let emulator = Emulator::start(config).await?;
    let summary = emulator.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .ok_or("no secret app")?;
    let credentials = AppCredentials {
        client_id: app.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            app.client_secret.clone().ok_or("no secret")?.into(),
        )),
    };
    let tokens = Arc::new(AppTokenProvider::new(
        TokenClient::new(
            reqwest::Client::new(),
            Authority::new(&summary.authority_host)?,
            clock.clone(),
        ),
        credentials,
    ));
    let graph = GraphClient::new(
        reqwest::Client::new(),
        GraphConfig::default().with_base_url(summary.graph_url.clone()),
        clock,
    )?;

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for tenant in &summary.tenants {
        let handle = graph.tenant(&tenant.id, tokens.clone());
        tasks.spawn(async move {
            let mut pager = handle.pager::<User>(Query::new("/users").select(USER_SELECT).top(999).build());
            let (mut users, mut pages) = (0usize, 0usize);
            while let Some(page) = pager.next_page().await? {
                users += page.value.len();
                pages += 1;
            }
            Ok::<_, deskbridge_graph::GraphError>((users, pages))
        });
    }
    let (mut users, mut pages) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (u, p) = result??;
        users += u;
        pages += p;
    }
    let elapsed = started.elapsed();
    println!(
        "end to end: {users} users in {pages} pages from {} tenant(s) in {:.2}s = {:.0} users/s",
        summary.tenants.len(),
        elapsed.as_secs_f64(),
        users as f64 / elapsed.as_secs_f64()
    );

    // Parsing alone: one 999-user page body, fetched raw and parsed repeatedly.
    let first_tenant = summary.tenants.first().ok_or("no tenant")?;
    let handle = graph.tenant(&first_tenant.id, tokens);
    let raw = handle
        .send(deskbridge_graph::GraphRequest::get(
            Query::new("/users").select(USER_SELECT).top(999).build(),
        ))
        .await?;
    let rounds = 20;
    let started = Instant::now();
    let mut parsed = 0;
    for _ in 0..rounds {
        let page: serde_json::Value = serde_json::from_slice(&raw.body)?;
        let users: Vec<User> = serde_json::from_value(page["value"].clone())?;
        parsed += users.len();
    }
    let elapsed = started.elapsed();
    println!(
        "parsing: {parsed} users ({} KiB per page) in {:.2}s = {:.0} users/s",
        raw.body.len() / 1024,
        elapsed.as_secs_f64(),
        parsed as f64 / elapsed.as_secs_f64()
    );
    emulator.shutdown().await;
    Ok(())
}
