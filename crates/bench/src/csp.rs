//! Scenario 7, `bench csp-latency`: a latency-bound full sync through CSP. One CSP connection
//! (added through the registry as `deskbridge connection add csp` adds it, the Partner Center app
//! signed in against the emulator, which approves at once) reads Partner Center's customers and
//! the partner's GDAP relationships, then every customer tenant's users through Graph with the
//! GDAP app. The sync is the child `deskbridge sync --all --full` process, as in the other
//! scenarios; the requests are counted per kind from the emulator's log (Partner Center, Graph in
//! the partner tenant, Graph in the customer tenants, tokens) and the time is reported as a ratio
//! to [`floor::csp_full_sync`] and to the least time of reading the tenants one after another,
//! which is how the CSP connector reads them today.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::world::AppKind;
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::NewConnection;
use deskbridge_source::settings::{EndpointPolicy, Purpose, validate};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::BenchArgs;
use crate::floor::{self, TenantShape};
use crate::harness::{Db, RunReport, Served, run_sync};
use crate::scenarios::{Report, Target, faults, floor_settings};

/// The benchmark's one connection.
const NAME: &str = "bench-csp";
/// A loopback redirect the sample Partner Center app accepts; nothing listens there: the
/// emulator's answer to the authorize request carries it.
const REDIRECT: &str = "http://127.0.0.1:8765/callback";

/// The emulator's requests during the CSP sync, by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CspTraffic {
    /// Partner Center (`/pc…`): customers and, when imported, subscriptions and prices.
    pub partner_center: u64,
    /// Graph in the partner tenant: the GDAP relationships.
    pub graph_partner: u64,
    /// Graph in the customer tenants, through GDAP.
    pub graph_customers: u64,
    pub tokens: u64,
    pub throttled: u64,
    pub resource_units: u64,
    /// Requests per path, query left out (ids as `{id}`; tokens under `token`): where the
    /// requests above the floor's go.
    pub by_path: BTreeMap<String, u64>,
}

/// What the CSP scenario adds to the report.
#[derive(Debug, Clone, Serialize)]
pub struct CspReport {
    pub tenants: u64,
    /// Customer tenants the connection assigned to a desk customer (and so read).
    pub tenants_read: u64,
    pub traffic: CspTraffic,
    /// The least time with the tenants read one after another (see [`floor::CspFloor`]).
    pub one_after_another_seconds: f64,
    /// measured / one after another.
    pub ratio_to_one_after_another: f64,
}

impl CspReport {
    pub fn line(&self) -> String {
        let t = &self.traffic;
        format!(
            "CSP: {} of {} customer tenants read; requests: Partner Center {}, Graph partner tenant {}, Graph customer \
             tenants {}, tokens {}, 429s {}; tenants one after another at best {:.2} s → {:.2}× that",
            self.tenants_read,
            self.tenants,
            t.partner_center,
            t.graph_partner,
            t.graph_customers,
            t.tokens,
            t.throttled,
            self.one_after_another_seconds,
            self.ratio_to_one_after_another
        ) + &format!(
            "; by path: {}",
            t.by_path
                .iter()
                .map(|(path, n)| format!("{path} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A world whose every customer tenant the partner may read: each GDAP relationship active and
/// the GDAP app consented in every customer tenant (the generated world has some expired or
/// pending, which the demo shows; here they would only shrink the dataset).
fn readable_world(args: &BenchArgs) -> anyhow::Result<World> {
    let (tenants, users) = args.size();
    let mut world = World::generate(&GenerateOptions {
        seed: args.seed,
        tenants,
        users_per_tenant: Some(users),
        ..GenerateOptions::default()
    })?;
    let partner = world
        .partner_tenant_id
        .clone()
        .context("the generated world has no partner tenant")?;
    let customers: Vec<String> = world.customer_tenants().map(|t| t.id.clone()).collect();
    for tenant in &mut world.tenants {
        if tenant.id == partner {
            for r in &mut tenant.gdap_relationships {
                r.status = "active".into();
            }
        }
    }
    for app in &mut world.apps {
        if app.kind == AppKind::Gdap {
            for t in &customers {
                if !app.consented_tenants.contains(t) {
                    app.consented_tenants.push(t.clone());
                }
            }
        }
    }
    Ok(world)
}

pub async fn csp_latency(
    args: &BenchArgs,
    exe: &Path,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (tenants, users) = args.size();
    let latency_ms = args.latency_ms();
    report.settings = json!({"tenants": tenants, "users_per_tenant": users, "latency_ms": latency_ms,
        "throttling": !args.no_throttle, "seed": args.seed, "connections": 1,
        "licence_import": "subscribed_skus"});
    let world = readable_world(args)?;
    let customers = world.partner_center.customers.len() as u64;
    let relationships = world
        .partner_tenant_id
        .as_deref()
        .and_then(|p| world.tenant(p))
        .map_or(0, |p| p.gdap_relationships.len() as u64);
    let mut by_id = floor::shapes(&world);
    let mut config = EmulatorConfig::new(world);
    config.request_log_capacity = 4_000_000;
    config.faults = faults(!args.no_throttle, latency_ms);
    // The partner admin's sign-in completes without a browser.
    config.auto_approve = true;
    let emu = Emulator::start(config).await?;
    let summary = emu.summary();
    let shapes = summary
        .tenants
        .iter()
        .map(|t| {
            by_id
                .remove(&t.id)
                .context("a tenant of the summary is not in the world")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let served = Served { emu, summary, shapes };
    report.datasets.insert("world".into(), served.dataset());
    let result = async {
        let db = Db::sqlite(work.join("csp-latency"))?;
        connect(&db, &served).await?;
        let log_from = served.log_len();
        let mut run = run_sync(exe, &db, &served, args.concurrency, true).await?;
        let read = tenants_read(&db).await?;
        let traffic = traffic_since(&served, log_from);
        // The harness counts `/v1.0/` paths as Graph and the rest as tokens; here Partner
        // Center's requests are requests too.
        run.traffic.requests = traffic.partner_center + traffic.graph_partner + traffic.graph_customers;
        run.traffic.token_requests = traffic.tokens;
        let read_shapes: Vec<&TenantShape> = served
            .summary
            .tenants
            .iter()
            .zip(&served.shapes)
            .filter(|(t, _)| read.contains(&t.id.to_ascii_lowercase()))
            .map(|(_, s)| s)
            .collect();
        let csp = floor::csp_full_sync(
            customers,
            relationships,
            read_shapes.iter().copied(),
            floor_settings(latency_ms),
        );
        let users = read_shapes.iter().map(|s| s.users).sum();
        let run = RunReport::new("CSP latency-bound full sync", &db, users, csp.floor.clone(), run);
        let seconds = run.run.seconds;
        report.targets.push(Target {
            what: "CSP latency-bound full sync".into(),
            target: "≤ 1.25× the floor".into(),
            measured: format!("{:.2}×", run.ratio),
            met: run.ratio <= 1.25,
        });
        report.csp = Some(CspReport {
            tenants: served.shapes.len() as u64,
            tenants_read: read_shapes.len() as u64,
            traffic,
            one_after_another_seconds: csp.one_after_another_seconds,
            ratio_to_one_after_another: seconds / csp.one_after_another_seconds.max(1e-9),
        });
        report.runs.push(run);
        anyhow::Ok(())
    }
    .await;
    served.shutdown().await;
    result
}

/// Adds the CSP connection through the registry (as `deskbridge connection add csp` does) and
/// signs the Partner Center app in (as `deskbridge connection authorize` does); the sign-in
/// discovers the customer tenants, so the timed sync reads them all.
async fn connect(db: &Db, served: &Served) -> anyhow::Result<()> {
    let store = db.open().await?;
    let result = async {
        let sources =
            deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]));
        let source = sources.get("csp").context("this build has no CSP connector")?;
        let summary = &served.summary;
        let app = |kind: &str| {
            summary
                .apps
                .iter()
                .find(|a| a.kind == kind)
                .with_context(|| format!("the generated world has no {kind} app"))
        };
        let (partner, gdap) = (app("partner_center")?, app("gdap_multi_tenant")?);
        let mut settings = serde_json::Map::new();
        settings.insert(
            "partner_tenant_id".into(),
            json!(
                summary
                    .partner_tenant_id
                    .clone()
                    .context("the generated world has no partner")?
            ),
        );
        settings.insert("partner_client_id".into(), json!(partner.client_id));
        if let Some(secret) = &partner.client_secret {
            settings.insert("partner_client_secret".into(), json!(secret));
        }
        settings.insert("gdap_client_id".into(), json!(gdap.client_id));
        settings.insert("gdap_client_secret".into(), json!(gdap.client_secret));
        settings.insert("authority_host".into(), json!(summary.authority_host));
        settings.insert("graph_url".into(), json!(summary.graph_url));
        settings.insert("partner_center_url".into(), json!(summary.partner_center_url));
        settings.insert("partner_api_url".into(), json!(summary.partner_api_url));
        let values = validate(
            source.settings(),
            &settings,
            Purpose::Create,
            sources.endpoint_policy(),
        )?;
        let connection = source
            .create(
                &store,
                NewConnection {
                    name: NAME.into(),
                    customer: None,
                    enabled_instances: "production".into(),
                    settings: values,
                },
            )
            .await?;
        let clock: SharedClock = std::sync::Arc::new(SystemClock);
        let sign_in = source.sign_in().context("the CSP connector has no sign-in")?;
        let url = sign_in.begin(&store, &connection, REDIRECT, &clock).await?;
        let redirect = deskbridge_emulator::follow_approved_sign_in(&url).await?;
        sign_in.complete(&store, &connection, &redirect, &clock).await?;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

/// The customer tenants the connection has assigned to a desk customer (lower case).
async fn tenants_read(db: &Db) -> anyhow::Result<Vec<String>> {
    let store = db.open().await?;
    let connection = async {
        let mut tx = store.read().await?;
        let c = tx.connection_by_name(NAME).await?;
        tx.commit().await?;
        anyhow::Ok(c)
    }
    .await;
    store.close().await;
    let connection = connection?.context("the CSP connection vanished")?;
    Ok(connection
        .config
        .get("tenants")
        .and_then(Value::as_array)
        .map(|tenants| {
            tenants
                .iter()
                .filter(|t| !t["customer_id"].is_null())
                .filter_map(|t| t["tenant_id"].as_str().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default())
}

/// The requests the emulator logged from `from` on, by kind.
fn traffic_since(served: &Served, from: usize) -> CspTraffic {
    let partner = served.summary.partner_tenant_id.as_deref().unwrap_or_default();
    let mut t = CspTraffic::default();
    for e in served.emu.request_log().iter().skip(from) {
        let kind = if e.path.starts_with("/pc") || e.path.contains("/v1.0/") {
            let path = e.path.split_once('?').map_or(e.path.as_str(), |(p, _)| p);
            path.split('/')
                .map(|part| {
                    if part.len() >= 32 && part.contains('-') {
                        "{id}"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        } else {
            "token".to_owned()
        };
        *t.by_path.entry(kind).or_default() += 1;
        if e.path.starts_with("/pc") {
            t.partner_center += 1;
        } else if e.path.contains("/v1.0/") {
            if e.tenant
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(partner))
            {
                t.graph_partner += 1;
            } else {
                t.graph_customers += 1;
            }
            t.resource_units += u64::from(e.resource_units.unwrap_or(0));
        } else {
            t.tokens += 1;
        }
        if e.status == 429 {
            t.throttled += 1;
        }
    }
    t
}
