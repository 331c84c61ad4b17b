//! `deskbridge demo`: the main job on a fresh machine. Starts the emulator with a sample MSP
//! world, connects every customer tenant, runs a full import, changes a few users in the emulator,
//! runs a delta import, imports the tenants' managed devices as assets, and prints a summary.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_mapping::{AssetMappings, AssetTypeRule, AssetTypes, FieldMapping, UnmatchedDevice};
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_source::{NewConnection, SyncEntity};
use deskbridge_store::{Entity, Store};
use deskbridge_sync::{SyncOptions, SyncOutcome, sync};
use serde_json::{Value, json};

use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Customer tenants in the sample world.
    #[arg(long, default_value_t = 3)]
    pub tenants: usize,
    /// Users in each tenant.
    #[arg(long, default_value_t = 60)]
    pub users_per_tenant: usize,
    /// Seed of the sample world.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Exit after the summary instead of serving the emulator until Ctrl-C.
    #[arg(long)]
    pub no_serve: bool,
}

/// Progress as a bar on a terminal and as plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(len: usize, what: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(what.to_owned());
            Self { bar: Some(bar) }
        } else {
            Self { bar: None }
        }
    }

    fn step(&self, line: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(line);
                bar.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let world = World::generate(&GenerateOptions {
        seed: args.seed,
        tenants: args.tenants,
        users_per_tenant: Some(args.users_per_tenant),
        ..GenerateOptions::default()
    })?;
    let emu = Emulator::start(EmulatorConfig::new(world)).await?;
    let summary = emu.summary();
    eprintln!(
        "emulator serving the sample world at {} ({} tenants)",
        summary.base_url,
        summary.tenants.len()
    );
    let store = global.open_store().await?;
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .context("the sample world has no multi-tenant app")?;
    let secret = app
        .client_secret
        .clone()
        .context("the sample app has no secret")?;

    // The emulator is this run's own: its host is allowed as an endpoint (besides Microsoft's and
    // any the instance allows), for this process only.
    let emulator_host = url::Url::parse(&summary.base_url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .context("the emulator's address has no host")?;
    let mut allowed = global.allowed_endpoint_hosts.clone();
    allowed.push(emulator_host);
    let sources = deskbridge_connectors::registry()
        .with_endpoint_policy(deskbridge_source::settings::EndpointPolicy::allowing(allowed));
    let mut names = Vec::new();
    for tenant in &summary.tenants {
        let name = format!("demo-{}", tenant.domain.split('.').next().unwrap_or(&tenant.id));
        connect(
            &store,
            &sources,
            &name,
            tenant,
            app,
            &secret,
            (&summary.authority_host, &summary.graph_url),
        )
        .await?;
        names.push((name, tenant.clone()));
    }

    let clock: SharedClock = Arc::new(SystemClock);
    let full_started = Instant::now();
    let progress = Progress::new(names.len(), "full import");
    let mut full = Vec::new();
    for (name, _) in &names {
        let outcome = sync(
            &store,
            &sources,
            name,
            &SyncOptions {
                full: true,
                ..SyncOptions::default()
            },
            &clock,
        )
        .await?;
        progress.step(line(name, &outcome));
        full.push(outcome);
    }
    progress.finish();
    let full_time = full_started.elapsed();

    let changed = change_the_world(&emu, &names).await?;
    let delta_started = Instant::now();
    let progress = Progress::new(names.len(), "delta import");
    let mut delta = Vec::new();
    for (name, _) in &names {
        let outcome = sync(&store, &sources, name, &SyncOptions::default(), &clock).await?;
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
        import_devices_as_assets(&store, &sources, name, &clock).await?;
        let outcome = sync(
            &store,
            &sources,
            name,
            &SyncOptions {
                entity: SyncEntity::Assets,
                ..SyncOptions::default()
            },
            &clock,
        )
        .await?;
        progress.step(line(name, &outcome));
        assets.push(outcome);
    }
    progress.finish();
    let assets_time = assets_started.elapsed();

    let mut tx = store.read().await?;
    let users = tx.count(Entity::User).await?;
    let agents = tx.count(Entity::Agent).await?;
    let licences = tx.count(Entity::Licence).await?;
    let customers = tx.count(Entity::Customer).await?;
    let asset_count = tx.count(Entity::Asset).await?;
    tx.commit().await?;
    store.close().await;

    let total = |runs: &[SyncOutcome], f: fn(&SyncOutcome) -> i64| runs.iter().map(f).sum::<i64>();
    crate::output::outln!("deskbridge demo summary");
    crate::output::outln!("  tenants:            {}", summary.tenants.len());
    crate::output::outln!(
        "  in the tenants:     {} users, {} groups",
        summary.tenants.iter().map(|t| t.users).sum::<usize>(),
        summary.tenants.iter().map(|t| t.groups).sum::<usize>()
    );
    crate::output::outln!(
        "  in the tenants:     {} managed devices",
        summary.tenants.iter().map(|t| t.devices).sum::<usize>()
    );
    crate::output::outln!(
        "  on the desk:        {customers} customers, {users} users, {agents} agents, {licences} licences, \
         {asset_count} assets"
    );
    crate::output::outln!(
        "  full import:        created {}, updated {}, deactivated {}, errors {} in {:.1}s",
        total(&full, |o| o.counts.created),
        total(&full, |o| o.counts.updated),
        total(&full, |o| o.counts.deactivated),
        total(&full, |o| o.counts.errors),
        full_time.as_secs_f64()
    );
    crate::output::outln!("  changed in Entra:   {changed}");
    crate::output::outln!(
        "  delta import:       created {}, updated {}, deactivated {}, errors {} in {:.1}s",
        total(&delta, |o| o.counts.created),
        total(&delta, |o| o.counts.updated),
        total(&delta, |o| o.counts.deactivated),
        total(&delta, |o| o.counts.errors),
        delta_time.as_secs_f64()
    );
    crate::output::outln!(
        "  device import:      created {}, updated {}, conflicts {}, errors {} in {:.1}s",
        total(&assets, |o| o.counts.created),
        total(&assets, |o| o.counts.updated),
        total(&assets, |o| o.counts.conflicts),
        total(&assets, |o| o.counts.errors),
        assets_time.as_secs_f64()
    );
    crate::output::outln!("  total time:         {:.1}s", started.elapsed().as_secs_f64());
    crate::output::outln!("  database:           {}", global.database_label());
    crate::output::outln!("  see it:             deskbridge directory users; deskbridge directory assets");
    if args.no_serve {
        emu.shutdown().await;
        return Ok(());
    }
    crate::output::outln!(
        "the emulator keeps serving at {} (admin API {}); Ctrl-C to stop",
        summary.base_url,
        summary.admin_url
    );
    crate::output::outln!(
        "other commands reach it once it is allowed as an endpoint: DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS={}",
        sources.endpoint_policy().extra_hosts().join(",")
    );
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    emu.shutdown().await;
    Ok(())
}

fn line(name: &str, o: &SyncOutcome) -> String {
    format!(
        "{name}: {} {}: created {}, updated {}, deactivated {}, unchanged {}, errors {}",
        o.mode,
        o.status,
        o.counts.created,
        o.counts.updated,
        o.counts.deactivated,
        o.counts.unchanged,
        o.counts.errors
    )
}

/// Turns on asset import for a demo connection (once; a later demo keeps what was set): a type
/// per operating system family, users matched by user principal name, serial numbers matched.
async fn import_devices_as_assets(
    store: &Store,
    sources: &deskbridge_source::SourceRegistry,
    name: &str,
    clock: &SharedClock,
) -> anyhow::Result<()> {
    let mut mapping = deskbridge_sync::open_connection(store, sources, name)
        .await?
        .mapping()
        .clone();
    if mapping.assets.is_some() {
        return Ok(());
    }
    let rule = |filter: &str, asset_type: &str| AssetTypeRule {
        filter: filter.into(),
        asset_type: asset_type.into(),
    };
    mapping.assets = Some(AssetMappings {
        types: AssetTypes::Rules {
            rules: vec![
                rule(
                    "operatingSystem eq 'Windows' or operatingSystem eq 'macOS'",
                    "Computer",
                ),
                rule(
                    "operatingSystem eq 'iOS' or operatingSystem eq 'Android'",
                    "Mobile phone",
                ),
            ],
            unmatched: UnmatchedDevice::Fallback {
                asset_type: "Other device".into(),
            },
        },
        fields: vec![
            FieldMapping::property("deviceName", "name"),
            FieldMapping::property("serialNumber", "serial_number"),
        ],
        ..AssetMappings::default()
    });
    deskbridge_sync::save_mappings(store, sources, name, mapping, clock).await?;
    Ok(())
}

/// Adds the demo connection, or points an existing one at this run's emulator.
async fn connect(
    store: &Store,
    sources: &deskbridge_source::SourceRegistry,
    name: &str,
    tenant: &deskbridge_emulator::TenantSummary,
    app: &deskbridge_emulator::AppSummary,
    secret: &str,
    (authority, graph): (&str, &str),
) -> anyhow::Result<()> {
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
        return Ok(());
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
    Ok(())
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
