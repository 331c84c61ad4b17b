//! `deskbridge demo --entra-only`: the demo before CSP. One Entra connection per tenant of the
//! sample world, its helpdesk groups mapped to agents, a full import, a few changes in Entra and
//! a delta import, the devices as assets, and a summary that accounts for every user of every
//! tenant and lists the agents with their roles and teams. A second demo on the same data
//! directory points the connections at its new emulator and says what that changed.

use std::time::Instant;

use anyhow::Context as _;
use deskbridge_emulator::Emulator;
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_source::{NewConnection, SyncEntity};
use deskbridge_store::{Entity, Store};
use deskbridge_sync::{SyncOptions, SyncOutcome, sync};
use serde_json::{Value, json};

use super::reconcile::{count_tenant, skip_reasons};
use super::{Demo, Progress, helpdesk, import_devices_as_assets, line};
use crate::output::outln;

/// The demo before CSP: one Entra connection per tenant, a full import, a few changes in Entra
/// and a delta import, then the devices.
pub(super) async fn entra_demo(demo: &Demo<'_>) -> anyhow::Result<()> {
    let Demo {
        emu,
        summary,
        store,
        sources,
        clock,
        ..
    } = demo;
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .context("the sample world has no multi-tenant app")?;
    let secret = app
        .client_secret
        .clone()
        .context("the sample app has no secret")?;
    let mut names = Vec::new();
    let mut again = Vec::new();
    for tenant in &summary.tenants {
        let name = format!("demo-{}", tenant.domain.split('.').next().unwrap_or(&tenant.id));
        let existed = connect(
            store,
            sources,
            &name,
            tenant,
            app,
            &secret,
            (&summary.authority_host, &summary.graph_url),
        )
        .await?;
        demo.adopt(&name).await?;
        if let helpdesk::Mapped::NotYet(problem) = helpdesk::map_agents(store, sources, &name, clock).await? {
            anyhow::bail!("the demo cannot map the helpdesk groups of {name} to agents: {problem}");
        }
        if existed {
            again.push(name.clone());
        }
        names.push((name, tenant.clone()));
    }

    let full_started = Instant::now();
    let progress = Progress::new(names.len(), "full import");
    let mut full = Vec::new();
    for (name, _) in &names {
        let outcome = sync(
            store,
            sources,
            name,
            &SyncOptions {
                full: true,
                ..SyncOptions::default()
            },
            clock,
        )
        .await?;
        progress.step(line(name, &outcome));
        full.push(outcome);
    }
    progress.finish();
    let full_time = full_started.elapsed();

    let changed = change_the_world(emu, &names).await?;
    let delta_started = Instant::now();
    let progress = Progress::new(names.len(), "delta import");
    let mut delta = Vec::new();
    for (name, _) in &names {
        let outcome = sync(store, sources, name, &SyncOptions::default(), clock).await?;
        progress.step(line(name, &outcome));
        delta.push(outcome);
    }
    progress.finish();
    let delta_time = delta_started.elapsed();

    // Managed devices become assets: typed by operating system, linked to their users.
    let assets_started = Instant::now();
    let progress = Progress::new(names.len(), "device import");
    let mut assets = Vec::new();
    for (name, _) in &names {
        import_devices_as_assets(store, sources, name, clock).await?;
        let outcome = sync(
            store,
            sources,
            name,
            &SyncOptions {
                entity: SyncEntity::Assets,
                ..SyncOptions::default()
            },
            clock,
        )
        .await?;
        progress.step(line(name, &outcome));
        assets.push(outcome);
    }
    progress.finish();
    let assets_time = assets_started.elapsed();

    // Every user of every tenant accounted for, and the agents by name.
    let mut counts = Vec::new();
    let mut by_tenant = Vec::new();
    for ((name, tenant), outcome) in names.iter().zip(&delta) {
        let connection = deskbridge_sync::load_connection(store, name).await?;
        let reasons = skip_reasons(store, sources, name, clock).await?;
        let not_read = super::not_read(outcome, &tenant.id);
        counts.push(count_tenant(store, emu, connection.id, tenant, &reasons, not_read).await?);
        by_tenant.push((
            format!("{} ({name})", tenant.display_name),
            helpdesk::agents_of(store, connection.id, &tenant.id).await?,
        ));
    }

    let mut tx = store.read().await?;
    let users = tx.count(Entity::User).await?;
    let agents = tx.count(Entity::Agent).await?;
    let licences = tx.count(Entity::Licence).await?;
    let customers = tx.count(Entity::Customer).await?;
    let asset_count = tx.count(Entity::Asset).await?;
    tx.commit().await?;

    let total = |runs: &[SyncOutcome], f: fn(&SyncOutcome) -> i64| runs.iter().map(f).sum::<i64>();
    outln!("deskbridge demo summary (Entra only: one connection per tenant)");
    outln!("  tenants:            {}", summary.tenants.len());
    outln!(
        "  in the tenants:     {} users, {} groups",
        summary.tenants.iter().map(|t| t.users).sum::<usize>(),
        summary.tenants.iter().map(|t| t.groups).sum::<usize>()
    );
    outln!(
        "  in the tenants:     {} managed devices",
        summary.tenants.iter().map(|t| t.devices).sum::<usize>()
    );
    outln!(
        "  on the desk:        {customers} customers, {users} users, {agents} agents, {licences} licences, \
         {asset_count} assets"
    );
    outln!(
        "  full import:        created {}, updated {}, deactivated {}, errors {} in {:.1}s",
        total(&full, |o| o.counts.created),
        total(&full, |o| o.counts.updated),
        total(&full, |o| o.counts.deactivated),
        total(&full, |o| o.counts.errors),
        full_time.as_secs_f64()
    );
    outln!("  changed in Entra:   {changed}");
    outln!(
        "  delta import:       created {}, updated {}, deactivated {}, errors {} in {:.1}s",
        total(&delta, |o| o.counts.created),
        total(&delta, |o| o.counts.updated),
        total(&delta, |o| o.counts.deactivated),
        total(&delta, |o| o.counts.errors),
        delta_time.as_secs_f64()
    );
    outln!(
        "  device import:      created {}, updated {}, conflicts {}, errors {} in {:.1}s",
        total(&assets, |o| o.counts.created),
        total(&assets, |o| o.counts.updated),
        total(&assets, |o| o.counts.conflicts),
        total(&assets, |o| o.counts.errors),
        assets_time.as_secs_f64()
    );
    if !again.is_empty() {
        let changed: i64 = full
            .iter()
            .chain(&assets)
            .map(|o| o.counts.created + o.counts.updated + o.counts.deactivated)
            .sum();
        outln!(
            "  again:              {} set up by an earlier demo on this data directory: pointed at this run's \
             emulator, their mappings kept, everything read again: {}",
            again.join(", "),
            if changed == 0 {
                "nothing changed".to_owned()
            } else {
                format!(
                    "{changed} changes (every demo starts from the same sample world: the full import undoes the last \
                     demo's changes in Entra, and the delta import makes them again)"
                )
            }
        );
    }
    outln!("  per tenant (users in the tenant = imported + skipped, and why):");
    for count in &counts {
        outln!("    {}", count.line());
    }
    helpdesk::print_agents(&by_tenant, None);
    super::reconcile::check(&counts)
}

/// Adds the demo connection, or points an existing one at this run's emulator; whether it
/// existed.
async fn connect(
    store: &Store,
    sources: &deskbridge_source::SourceRegistry,
    name: &str,
    tenant: &deskbridge_emulator::TenantSummary,
    app: &deskbridge_emulator::AppSummary,
    secret: &str,
    (authority, graph): (&str, &str),
) -> anyhow::Result<bool> {
    let source = sources
        .get("entra")
        .context("this deskbridge has no Entra connector")?;
    let mut settings = serde_json::Map::new();
    settings.insert("client_id".into(), json!(app.client_id));
    settings.insert("client_secret".into(), json!(secret));
    settings.insert("authority_host".into(), json!(authority));
    settings.insert("graph_url".into(), json!(graph));
    let mut tx = store.read().await?;
    let existing = tx.connection_by_name(name).await?;
    tx.commit().await?;
    if let Some(existing) = existing {
        let values = validate(
            source.settings(),
            &settings,
            Purpose::Edit,
            sources.endpoint_policy(),
        )?;
        source.edit(store, &existing, values).await?;
        return Ok(true);
    }
    settings.insert("tenant_id".into(), json!(tenant.id));
    let values = validate(
        source.settings(),
        &settings,
        Purpose::Create,
        sources.endpoint_policy(),
    )?;
    source
        .create(
            store,
            NewConnection {
                name: name.into(),
                customer: Some(tenant.display_name.clone()),
                enabled_instances: "production".into(),
                settings: values,
            },
        )
        .await?;
    Ok(false)
}

/// A few changes in every tenant, through the emulator's admin API: a rename, a leaver (soft
/// delete) and a new starter.
async fn change_the_world(
    emu: &Emulator,
    tenants: &[(String, deskbridge_emulator::TenantSummary)],
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .context("no app")?;
    let (mut renamed, mut left, mut joined) = (0, 0, 0);
    for (_, tenant) in tenants {
        let token = emu.issue_app_token(&app.client_id, &tenant.id)?;
        let users: Value = http
            .get(format!(
                "{}/users?$select=id,userType,accountEnabled,displayName&$top=10",
                summary.graph_url
            ))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let members: Vec<&Value> = users["value"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|u| u["userType"] == json!("Member") && u["accountEnabled"] == json!(true))
                    .collect()
            })
            .unwrap_or_default();
        let admin = |path: String| format!("{}/tenants/{}/{path}", summary.admin_url, tenant.id);
        if let Some(user) = members.first().and_then(|u| u["id"].as_str()) {
            let name = format!(
                "{} (renamed)",
                members[0]["displayName"].as_str().unwrap_or("user")
            );
            http.patch(admin(format!("users/{user}")))
                .json(&json!({"displayName": name}))
                .send()
                .await?
                .error_for_status()?;
            renamed += 1;
        }
        if let Some(user) = members.get(1).and_then(|u| u["id"].as_str()) {
            http.delete(admin(format!("users/{user}")))
                .send()
                .await?
                .error_for_status()?;
            left += 1;
        }
        let upn = format!("new.starter@{}", tenant.domain);
        http.post(admin("users".into()))
            .json(&json!({"displayName": "New Starter", "userPrincipalName": upn, "mail": upn, "accountEnabled": true,
                          "userType": "Member", "givenName": "New", "surname": "Starter"}))
            .send()
            .await?
            .error_for_status()?;
        joined += 1;
    }
    Ok(format!(
        "{renamed} renamed, {left} left (soft-deleted), {joined} joined"
    ))
}
