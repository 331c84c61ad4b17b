//! `deskbridge demo`: the main job on a fresh machine. Starts the emulator with a sample MSP
//! world: a partner with Partner Center and its GDAP customer tenants. By default the demo
//! connects the way an MSP does, through CSP: one connection, the partner admin's sign-in
//! (approved by the emulator without a browser), a full import that assigns every GDAP customer
//! tenant to a desk customer and imports its users, licences and subscriptions, the tenants'
//! managed devices as assets, and a summary that accounts for every user of every tenant.
//! Then a Dynamics 365 organisation of the first customer tenant ([`dynamics`]): its accounts as
//! desk customers, its contacts as users on their account's customer, its contracts in a desk
//! custom table (`--no-dynamics` leaves it out).
//! `--entra-only` keeps the earlier demo: one Entra connection per tenant, a full import, a few
//! changes and a delta import, the devices as assets (and no Dynamics 365).

mod dynamics;
mod entra;
mod helpdesk;
mod reconcile;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_mapping::{AssetMappings, AssetTypeRule, AssetTypes, FieldMapping, UnmatchedDevice};
use deskbridge_source::settings::{Purpose, validate};
use deskbridge_source::{NewConnection, SyncEntity};
use deskbridge_store::{Entity, Store, WriteContext};
use deskbridge_sync::{SyncOptions, SyncOutcome, sync};
use serde_json::json;

use super::agent_common::{Listen, MetricsHere, listen_with, shutdown_signal};
use crate::error::CliError;
use crate::output::outln;
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
    /// Exit after the summary instead of serving the emulator and the admin UI until Ctrl-C.
    #[arg(long)]
    pub no_serve: bool,
    /// Where the admin UI listens while the demo serves (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Connect each tenant with its own Entra connection instead of one CSP connection through
    /// Partner Center (the demo before CSP: a full import, a few changes, a delta import; no
    /// Dynamics 365).
    #[arg(long)]
    pub entra_only: bool,
    /// Leave the Dynamics 365 organisation out (its accounts, contacts and contracts).
    #[arg(long)]
    pub no_dynamics: bool,
    /// Contacts in the Dynamics 365 organisation (it has a quarter as many accounts).
    #[arg(long, default_value_t = 100)]
    pub dynamics_contacts: usize,
}

/// The one connection of the CSP demo.
const CSP_NAME: &str = "demo-csp";
/// Where the emulator sends the partner admin's browser back to after the sign-in; the sample
/// Partner Center app has it registered, and nothing listens there: the demo reads the redirect
/// from the authorize endpoint's answer instead.
const REDIRECT: &str = "http://127.0.0.1:8765/callback";

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

/// What both demos work with.
struct Demo<'a> {
    emu: &'a Emulator,
    summary: &'a deskbridge_emulator::Summary,
    store: &'a Store,
    sources: &'a deskbridge_source::SourceRegistry,
    clock: SharedClock,
    /// The connections this demo set up or took up again: disabled when it ends.
    connected: std::sync::Mutex<Vec<String>>,
}

impl Demo<'_> {
    /// Takes the connection `name` up as one of this demo's: enabled again if an earlier demo
    /// left it disabled, and disabled when this one ends (its emulator goes with it).
    async fn adopt(&self, name: &str) -> anyhow::Result<()> {
        let connection = deskbridge_sync::load_connection(self.store, name).await?;
        let mut tx = self.store.begin(WriteContext::manual()).await?;
        tx.enable_connection(connection.id).await?;
        tx.commit().await?;
        if let Ok(mut names) = self.connected.lock()
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
        Ok(())
    }

    fn connections(&self) -> Vec<String> {
        self.connected.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

/// What a demo connection says once its emulator has stopped (a sync of it is refused with it).
pub const STOPPED: &str =
    "demo connection: its emulator has stopped; run `deskbridge demo` again to bring it back";

/// Disables the demo's connections, whose emulator is stopping, with [`STOPPED`] as the reason.
async fn disable(store: &Store, names: &[String]) -> anyhow::Result<()> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    for name in names {
        if let Some(connection) = tx.connection_by_name(name).await? {
            tx.disable_connection(connection.id, STOPPED).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut world = World::generate(&GenerateOptions {
        seed: args.seed,
        tenants: args.tenants,
        users_per_tenant: Some(args.users_per_tenant),
        dataverse_orgs: 1,
        dataverse_contacts: Some(args.dynamics_contacts),
        ..GenerateOptions::default()
    })?;
    dynamics::activate(&mut world);
    helpdesk::add_groups(&mut world);
    let mut config = EmulatorConfig::new(world);
    // The partner admin's sign-in completes without a browser: the emulator approves it at once.
    config.auto_approve = !args.entra_only;
    let emu = Emulator::start(config).await?;
    let summary = emu.summary();
    eprintln!(
        "emulator serving the sample world at {} ({} customer tenants)",
        summary.base_url,
        summary.tenants.len()
    );
    let store = match global.open_store().await {
        Ok(store) => store,
        Err(e) => {
            emu.shutdown().await;
            return Err(e);
        }
    };

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
    let demo = Demo {
        emu: &emu,
        summary: &summary,
        store: &store,
        sources: &sources,
        clock: Arc::new(SystemClock),
        connected: std::sync::Mutex::new(Vec::new()),
    };
    let mut result = if args.entra_only {
        entra::entra_demo(&demo).await
    } else {
        csp_demo(&demo, !args.no_dynamics).await
    };
    if result.is_ok() {
        outln!("  total time:         {:.1}s", started.elapsed().as_secs_f64());
        outln!("  database:           {}", global.database_label());
        if args.entra_only || args.no_dynamics {
            outln!("  see it:             deskbridge directory users; deskbridge directory assets");
        } else {
            outln!(
                "  see it:             deskbridge directory customers; deskbridge directory users --customer NAME; \
                 deskbridge directory assets; deskbridge directory custom-rows --table {}",
                dynamics::DESK_TABLE
            );
        }
        if !args.no_serve {
            result = serve(&demo, global, args.listen).await;
        }
    }
    // Whatever happened, the demo's connections do not outlive its emulator enabled.
    let names = demo.connections();
    let disabled = disable(&store, &names).await;
    emu.shutdown().await;
    store.close().await;
    result?;
    disabled?;
    if !names.is_empty() {
        outln!(
            "the emulator has stopped: the demo's connections ({}) are disabled (a sync of one says so); run \
             `deskbridge demo` again to bring them back",
            names.join(", ")
        );
    }
    Ok(())
}

/// Serves the admin UI on `listen` beside the emulator until Ctrl-C (or SIGTERM): the first
/// administrator made as `deskbridge serve` makes it (or the existing accounts kept), the
/// connections reaching the emulator, syncs run in the request (no worker).
async fn serve(demo: &Demo<'_>, global: &GlobalArgs, listen: SocketAddr) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let first = deskbridge_web::auth::ensure_first_administrator(demo.store, "admin")
        .await
        .map_err(|e| {
            CliError::new(
                e.code,
                format!("cannot create the first administrator: {}", e.message),
            )
        })?;
    let web = deskbridge_web::AppState::new(demo.store.clone(), demo.sources.clone(), demo.clock.clone());
    let (http, url) = listen_with(
        Listen {
            addr: listen,
            process: "demo".into(),
            metrics: MetricsHere::No(
                "the demo serves no metrics: `deskbridge serve --metrics-listen ADDR` does",
            ),
            extra: Some(deskbridge_web::router(web)),
            ready: None,
        },
        demo.store.clone(),
        Arc::new(deskbridge_agent::Metrics::default()),
        shutdown,
    )
    .await?;
    outln!(
        "the emulator keeps serving at {} (admin API {})",
        demo.summary.base_url,
        demo.summary.admin_url
    );
    outln!(
        "other commands reach the emulator once it is allowed as an endpoint: DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS={}",
        demo.sources.endpoint_policy().extra_hosts().join(",")
    );
    outln!("serving the admin UI and API on {url}");
    match first {
        Some(created) => outln!(
            "sign in as {:?} with the one-time password {} (shown once: you choose a new one at the first \
             sign-in)",
            created.account.username,
            created.one_time_password
        ),
        None => outln!(
            "sign in with an administrator account of this data directory (a password lost: deskbridge admin \
             reset-password --username NAME)"
        ),
    }
    outln!(
        "Ctrl-C stops both, and the demo's connections are disabled; the desk stays: deskbridge --data-dir {} serve{}",
        global.data_dir.display(),
        match &global.database {
            Some(_) => " --database URL (the same database)",
            None => "",
        }
    );
    http.await.context("the admin UI stopped unexpectedly")?;
    Ok(())
}

/// The CSP demo: one connection through Partner Center for every GDAP customer tenant; then,
/// with `dynamics`, the Dynamics 365 organisation.
async fn csp_demo(demo: &Demo<'_>, dynamics: bool) -> anyhow::Result<()> {
    let Demo {
        emu,
        summary,
        store,
        sources,
        clock,
        ..
    } = demo;
    let again = connect_csp(store, sources, summary, clock).await?;
    demo.adopt(CSP_NAME).await?;
    let mapped = helpdesk::map_agents(store, sources, CSP_NAME, clock).await?;

    // The sign-in already assigned the customer tenants it could list; a tenant first found by
    // the sync is assigned and imported by that same sync.
    let full_started = Instant::now();
    let progress = Progress::new(1, "full import");
    let outcome = sync(
        store,
        sources,
        CSP_NAME,
        &SyncOptions {
            full: true,
            ..SyncOptions::default()
        },
        clock,
    )
    .await?;
    progress.step(line(CSP_NAME, &outcome));
    let mut full = vec![outcome];
    progress.finish();
    // Agents mapped once the sync has read the tenants it found (their groups known), and then
    // imported by a second full sync.
    let mut unmapped = None;
    if let helpdesk::Mapped::NotYet(_) = mapped {
        match helpdesk::map_agents(store, sources, CSP_NAME, clock).await? {
            helpdesk::Mapped::Yes => {
                let options = SyncOptions {
                    full: true,
                    ..SyncOptions::default()
                };
                let outcome = sync(store, sources, CSP_NAME, &options, clock).await?;
                eprintln!("{}", line(CSP_NAME, &outcome));
                full.push(outcome);
            }
            helpdesk::Mapped::NotYet(problem) => unmapped = Some(problem),
        }
    }
    let full_time = full_started.elapsed();

    let assets_started = Instant::now();
    import_devices_as_assets(store, sources, CSP_NAME, clock).await?;
    let assets = sync(
        store,
        sources,
        CSP_NAME,
        &SyncOptions {
            entity: SyncEntity::Assets,
            ..SyncOptions::default()
        },
        clock,
    )
    .await?;
    eprintln!("{}", line(CSP_NAME, &assets));
    let assets_time = assets_started.elapsed();

    // After CSP, whose sign-in assigned the organisation's tenant to its desk customer (when its
    // GDAP relationship is active); before the counts, so that the desk's totals are the same
    // on every run.
    let dynamics = if dynamics {
        dynamics::import(demo).await?
    } else {
        None
    };

    let connection = deskbridge_sync::load_connection(store, CSP_NAME).await?;
    let mut tx = store.read().await?;
    let users = tx.count(Entity::User).await?;
    let agents = tx.count(Entity::Agent).await?;
    let licences = tx.count(Entity::Licence).await?;
    let subscriptions = tx.count(Entity::Subscription).await?;
    let customers = tx.count(Entity::Customer).await?;
    let asset_count = tx.count(Entity::Asset).await?;
    tx.commit().await?;
    // Every user of every tenant accounted for, and the agents by name.
    let reasons = reconcile::skip_reasons(store, sources, CSP_NAME, clock).await?;
    let mut counts = Vec::new();
    let mut by_tenant = Vec::new();
    for tenant in &summary.tenants {
        let why = full.last().and_then(|o| not_read(o, &tenant.id));
        counts.push(reconcile::count_tenant(store, emu, connection.id, tenant, &reasons, why).await?);
        by_tenant.push((
            tenant.display_name.clone(),
            helpdesk::agents_of(store, connection.id, &tenant.id).await?,
        ));
    }

    let total = |runs: &[SyncOutcome], f: fn(&SyncOutcome) -> i64| runs.iter().map(f).sum::<i64>();
    crate::output::outln!("deskbridge demo summary (CSP: Partner Center with GDAP)");
    crate::output::outln!(
        "  partner:            {} with {} customer tenants, one connection ({CSP_NAME})",
        summary
            .partner_tenant
            .as_ref()
            .map_or("the sample partner", |p| p.display_name.as_str()),
        summary.tenants.len()
    );
    crate::output::outln!(
        "  in the tenants:     {} users, {} managed devices",
        summary.tenants.iter().map(|t| t.users).sum::<usize>(),
        summary.tenants.iter().map(|t| t.devices).sum::<usize>()
    );
    crate::output::outln!(
        "  on the desk:        {customers} customers, {users} users, {agents} agents, {licences} licences, \
         {subscriptions} subscriptions, {asset_count} assets"
    );
    crate::output::outln!(
        "  full import:        {} sync(s): created {}, updated {}, deactivated {}, errors {} in {:.1}s",
        full.len(),
        total(&full, |o| o.counts.created),
        total(&full, |o| o.counts.updated),
        total(&full, |o| o.counts.deactivated),
        total(&full, |o| o.counts.errors),
        full_time.as_secs_f64()
    );
    crate::output::outln!(
        "  device import:      created {}, updated {}, conflicts {}, errors {} in {:.1}s",
        assets.counts.created,
        assets.counts.updated,
        assets.counts.conflicts,
        assets.counts.errors,
        assets_time.as_secs_f64()
    );
    if again {
        let changed: i64 = full
            .iter()
            .chain([&assets])
            .map(|o| o.counts.created + o.counts.updated + o.counts.deactivated)
            .sum();
        outln!(
            "  again:              {CSP_NAME} was set up by an earlier demo on this data directory: pointed at this \
             run's emulator and signed in again, its mappings kept, everything read again: {}",
            if changed == 0 {
                "nothing changed".to_owned()
            } else {
                format!("{changed} changes (the sample world differs from the last demo's)")
            }
        );
    }
    outln!("  per tenant (users in the tenant = imported + skipped, and why):");
    for count in &counts {
        outln!("    {}", count.line());
    }
    helpdesk::print_agents(&by_tenant, unmapped.as_deref());
    if let Some(imported) = &dynamics {
        dynamics::print_summary(imported);
    }
    reconcile::check(&counts)
}

/// Most records one tenant's scope is counted up to (the demo's tenants are far smaller).
const SCOPE_LIMIT: u32 = 1_000_000;

/// Guests, as the Entra read and the default mappings see them (`userType` Guest or `#EXT#` in
/// the user principal name): the default mappings leave them out.
fn is_guest(user: &deskbridge_emulator::world::User) -> bool {
    user.user_type.eq_ignore_ascii_case("guest") || user.user_principal_name.contains("#EXT#")
}

/// Why the last full sync did not read a tenant, if it did not: its error (with the remedy) or
/// its note.
fn not_read(outcome: &SyncOutcome, tenant: &str) -> Option<String> {
    let error = outcome.errors.iter().find(|e| {
        e.tenant_id
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(tenant))
            && e.external_id.is_none()
    });
    if let Some(e) = error {
        return Some(match &e.remedy {
            Some(remedy) => format!("{} ({remedy})", e.message),
            None => e.message.clone(),
        });
    }
    // A tenant never assigned has no error, only the sync's note; the demo adds what to do.
    outcome
        .notes
        .iter()
        .find(|n| n.contains(tenant) && n.contains("not read"))
        .map(|note| {
            if note.contains("GDAP") {
                format!("{note} (approve or renew the GDAP relationship in Partner Center)")
            } else {
                note.clone()
            }
        })
}

/// Adds the demo's CSP connection as `deskbridge connection add csp` does (or points an existing
/// one at this run's emulator, which drops its sign-in), then signs the Partner Center app in as
/// `deskbridge connection authorize` does, the emulator approving at once. Whether it existed.
async fn connect_csp(
    store: &Store,
    sources: &deskbridge_source::SourceRegistry,
    summary: &deskbridge_emulator::Summary,
    clock: &SharedClock,
) -> anyhow::Result<bool> {
    let source = sources
        .get("csp")
        .context("this deskbridge has no CSP connector")?;
    let app = |kind: &str| {
        summary
            .apps
            .iter()
            .find(|a| a.kind == kind)
            .with_context(|| format!("the sample world has no {kind} app"))
    };
    let (partner, gdap) = (app("partner_center")?, app("gdap_multi_tenant")?);
    let mut settings = serde_json::Map::new();
    settings.insert("partner_client_id".into(), json!(partner.client_id));
    if let Some(secret) = &partner.client_secret {
        settings.insert("partner_client_secret".into(), json!(secret));
    }
    settings.insert("gdap_client_id".into(), json!(gdap.client_id));
    let gdap_secret = gdap
        .client_secret
        .clone()
        .context("the sample GDAP app has no secret")?;
    settings.insert("gdap_client_secret".into(), json!(gdap_secret));
    settings.insert("authority_host".into(), json!(summary.authority_host));
    settings.insert("graph_url".into(), json!(summary.graph_url));
    settings.insert("partner_center_url".into(), json!(summary.partner_center_url));
    settings.insert("partner_api_url".into(), json!(summary.partner_api_url));
    settings.insert("licence_import".into(), json!("subscriptions_and_skus"));
    settings.insert("subscription_pricing".into(), json!("GB"));
    let mut tx = store.read().await?;
    let existing = tx.connection_by_name(CSP_NAME).await?;
    tx.commit().await?;
    let again = existing.is_some();
    let connection = match existing {
        Some(existing) => {
            let values = validate(
                source.settings(),
                &settings,
                Purpose::Edit,
                sources.endpoint_policy(),
            )?;
            source.edit(store, &existing, values).await?;
            deskbridge_sync::load_connection(store, CSP_NAME).await?
        }
        None => {
            let partner_tenant = summary
                .partner_tenant_id
                .clone()
                .context("the sample world has no partner tenant")?;
            settings.insert("partner_tenant_id".into(), json!(partner_tenant));
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
                        name: CSP_NAME.into(),
                        customer: None,
                        enabled_instances: "production".into(),
                        settings: values,
                    },
                )
                .await?
        }
    };
    let sign_in = source
        .sign_in()
        .context("this deskbridge's CSP connector has no Partner Center sign-in")?;
    let url = sign_in.begin(store, &connection, REDIRECT, clock).await?;
    // What the browser does: the emulator signs the partner admin in at once (auto-approve) and
    // answers with the redirect back.
    let redirect = deskbridge_emulator::follow_approved_sign_in(&url).await?;
    sign_in.complete(store, &connection, &redirect, clock).await?;
    Ok(again)
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
