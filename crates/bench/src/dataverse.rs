//! Scenario 8, `bench dataverse`: one emulated Dataverse organisation's contacts (100,000 by
//! default) imported through the real Dynamics 365 connector into SQLite: a Dynamics connection
//! added through the registry as `deskbridge connection add dynamics` adds it, then the child
//! `deskbridge sync --all --full --json` process reads the contacts in pages of 5,000 (the
//! connector's default, Dataverse's largest), with the emulator's latency on every request and
//! its service protection model on. The time is reported as rows per second and as a ratio to
//! [`floor::dataverse_import`]: the page chain at that latency plus the emulator's own time to
//! serve the pages, which the bench measures after the sync by asking for the same pages again
//! (the sync's own first request, replayed) without latency and without parsing them.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use deskbridge_emulator::RequestLogEntry;
use deskbridge_emulator::{Emulator, EmulatorConfig, Faults, GenerateOptions, Summary, World};
use deskbridge_source::NewConnection;
use deskbridge_source::settings::{EndpointPolicy, Purpose, validate};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::BenchArgs;
use crate::floor::{self, DataverseRead};
use crate::harness::{Db, RunReport, Served, run_sync};
use crate::scenarios::{Report, Target, faults};

/// The benchmark's one connection.
const NAME: &str = "bench-dataverse";

/// What the Dataverse scenario adds to the report.
#[derive(Debug, Clone, Serialize)]
pub struct DataverseReport {
    pub contacts: u64,
    pub page_size: u64,
    /// Requests to the organisation during the sync (retries included).
    pub requests: u64,
    /// Token requests during the sync (the identity platform's).
    pub token_requests: u64,
    /// 429s the organisation answered (service protection).
    pub throttled: u64,
    /// The emulator's time to serve every page once, without latency (the floor's serve term).
    pub serve_seconds: f64,
}

impl DataverseReport {
    pub fn line(&self) -> String {
        format!(
            "Dataverse: {} contacts in pages of {}; requests to the organisation {}, tokens {}, 429s {}; the emulator \
             serves the pages in {:.2} s without latency",
            self.contacts,
            self.page_size,
            self.requests,
            self.token_requests,
            self.throttled,
            self.serve_seconds
        )
    }
}

/// A world with one Dataverse organisation of `contacts` contacts, every one active (so every
/// one becomes an active desk user, as the connector's own tests set it up).
fn world(seed: u64, contacts: usize) -> anyhow::Result<World> {
    let mut world = World::generate(&GenerateOptions {
        seed,
        tenants: 1,
        users_per_tenant: Some(8),
        dataverse_orgs: 1,
        dataverse_contacts: Some(contacts),
        ..GenerateOptions::default()
    })?;
    for org in &mut world.dataverse_orgs {
        for table in org.tables.iter_mut().filter(|t| t.logical_name == "contact") {
            for row in &mut table.rows {
                row.values.insert("statecode".into(), Value::from(0));
                row.values.insert("statuscode".into(), Value::from(1));
            }
        }
    }
    Ok(world)
}

pub async fn dataverse(args: &BenchArgs, exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let contacts = args.contacts();
    let latency_ms = args.latency_ms();
    let page_size = floor::DATAVERSE_PAGE;
    report.settings = json!({"contacts": contacts, "page_size": page_size, "latency_ms": latency_ms,
        "service_protection": !args.no_throttle, "seed": args.seed, "connections": 1});
    let mut config = EmulatorConfig::new(world(args.seed, contacts)?);
    config.request_log_capacity = 100_000;
    config.faults = faults(!args.no_throttle, latency_ms);
    let emu = Emulator::start(config).await?;
    let summary = emu.summary();
    let served = Served {
        emu,
        summary,
        shapes: Vec::new(),
    };
    let result = async {
        let org = served
            .summary
            .dataverse_orgs
            .first()
            .context("the generated world has no Dataverse organisation")?
            .clone();
        let rows = org.rows.get("contact").copied().unwrap_or(0) as u64;
        let db = Db::sqlite(work.join("dataverse"))?;
        connect(&db, &served.summary, &org).await?;
        let log_from = served.log_len();
        let mut run = run_sync(exe, &db, &served, 1, true).await?;
        // The harness counts Graph's `/v1.0/` paths as requests and the rest as tokens; here the
        // organisation's paths are the requests.
        let log: Vec<RequestLogEntry> = served.emu.request_log().into_iter().skip(log_from).collect();
        let (mut requests, mut tokens, mut throttled) = (0, 0, 0);
        for e in &log {
            if e.path.starts_with("/org/") {
                requests += 1;
                throttled += u64::from(e.status == 429);
            } else {
                tokens += 1;
            }
        }
        run.traffic.requests = requests;
        run.traffic.token_requests = tokens;
        run.traffic.throttled = throttled;
        run.traffic.resource_units = 0;
        if run.created != rows as i64 {
            bail!(
                "the sync created {} desk users for the organisation's {rows} contacts ({} errors); see `deskbridge runs \
                 show` in {}",
                run.created,
                run.errors,
                work.join("dataverse").display()
            );
        }
        // The emulator alone: the same pages again, without latency or service protection.
        served.emu.set_faults(Faults::default());
        let first = log
            .iter()
            .find(|e| e.path.starts_with("/org/") && e.path.contains("/contacts?"))
            .context("the sync never asked the organisation for its contacts")?;
        let serve_seconds = serve_pass(&served, &org.url, &org.tenant, &first.path, page_size).await?;
        let read = DataverseRead {
            rows,
            page_size,
            // The token; the contacts' read asks for no metadata.
            setup_requests: 1,
            serve_seconds,
        };
        let floor = floor::dataverse_import(&read, latency_ms as f64 / 1_000.0);
        let run = RunReport::of("contacts", "Dataverse contacts full import", &db, rows, floor, run);
        report.targets.push(Target {
            what: "Dataverse contacts full import".into(),
            target: "≤ 1.25× Dataverse's floor".into(),
            measured: format!("{:.2}×", run.ratio),
            met: run.ratio <= 1.25,
        });
        report.dataverse = Some(DataverseReport {
            contacts: rows,
            page_size,
            requests,
            token_requests: tokens,
            throttled,
            serve_seconds,
        });
        report.runs.push(run);
        anyhow::Ok(())
    }
    .await;
    served.shutdown().await;
    result
}

/// Reads every page of contacts once more, from the sync's first request (`first`: its path and
/// query, so its columns) with the connector's `Prefer` (change tracking, annotations,
/// `page_size` a page), without parsing the rows, and returns the time: the emulator's own cost
/// of serving the read.
async fn serve_pass(
    served: &Served,
    org_url: &str,
    tenant: &str,
    first: &str,
    page_size: u64,
) -> anyhow::Result<f64> {
    let (app, secret) = served.app()?;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            served.summary.authority_host.trim_end_matches('/')
        ))
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", &format!("{org_url}/.default")),
        ])
        .send()
        .await?
        .error_for_status()
        .context("the emulator refused a token for its own organisation")?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .context("the emulator's token answer has no access_token")?
        .to_owned();
    let prefer = deskbridge_connectors::dynamics::contacts_prefer(u32::try_from(page_size).unwrap_or(5_000));
    let mut next = Some(format!(
        "{}{first}",
        served.summary.base_url.trim_end_matches('/')
    ));
    let started = Instant::now();
    while let Some(url) = next.take() {
        let body = http
            .get(&url)
            .bearer_auth(&token)
            .header("Prefer", &prefer)
            .header("Accept", "application/json")
            .send()
            .await?
            .error_for_status()
            .context("the emulator refused a page of contacts")?
            .text()
            .await?;
        next = next_link(&body)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A page's `@odata.nextLink`, found without parsing its rows (parsing 5,000 rows would be the
/// client's time, not the server's).
fn next_link(body: &str) -> anyhow::Result<Option<String>> {
    const KEY: &str = "\"@odata.nextLink\"";
    let Some(at) = body.rfind(KEY) else {
        return Ok(None);
    };
    let rest = body[at + KEY.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .context("a page's @odata.nextLink has no value")?;
    let link = serde_json::Deserializer::from_str(rest)
        .into_iter::<String>()
        .next()
        .context("a page's @odata.nextLink has no value")?
        .context("a page's @odata.nextLink is not a string")?;
    Ok(Some(link))
}

/// Adds the Dynamics connection through the registry (as `deskbridge connection add dynamics`
/// does): a service principal of the generated multi-tenant app, which is the organisation's
/// application user.
async fn connect(db: &Db, summary: &Summary, org: &deskbridge_emulator::OrgSummary) -> anyhow::Result<()> {
    let store = db.open().await?;
    let result = async {
        let sources =
            deskbridge_connectors::registry().with_endpoint_policy(EndpointPolicy::allowing(["127.0.0.1"]));
        let source = sources
            .get("dynamics")
            .context("this build has no Dynamics 365 connector")?;
        let app = summary
            .apps
            .iter()
            .find(|a| a.kind == "multi_tenant_secret")
            .context("the generated world has no multi-tenant app")?;
        let settings = json!({
            "url": org.url,
            "tenant_id": org.tenant,
            "client_id": app.client_id,
            "client_secret": app.client_secret.clone().context("the multi-tenant app has no secret")?,
            "authority_host": summary.authority_host,
        });
        let settings = settings
            .as_object()
            .context("the connection's settings are not an object")?;
        let values = validate(
            source.settings(),
            settings,
            Purpose::Create,
            sources.endpoint_policy(),
        )?;
        source
            .create(
                &store,
                NewConnection {
                    name: NAME.into(),
                    customer: Some(format!("Dataverse organisation {}", org.name)),
                    enabled_instances: "production".into(),
                    settings: values,
                },
            )
            .await?;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn the_next_link_is_found_without_parsing_the_rows() {
        let page = r#"{"value":[{"fullname":"\"@odata.nextLink\" in a name"}],"@odata.nextLink" : "http://h/contacts?$skiptoken=%3Ccookie%3E\u0026x=1"}"#;
        assert_eq!(
            next_link(page).unwrap().as_deref(),
            Some("http://h/contacts?$skiptoken=%3Ccookie%3E&x=1")
        );
        assert_eq!(next_link(r#"{"value":[],"@odata.deltaLink":"d"}"#).unwrap(), None);
        assert!(next_link(r#"{"@odata.nextLink":3}"#).is_err());
    }
}
