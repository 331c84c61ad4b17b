use std::sync::Arc;

use clap::Args;
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_mapping::Action;
use deskbridge_source::{SourceRegistry, SyncEntity};
use deskbridge_sync::{SyncOptions, SyncOutcome, sync, sync_many};
use serde_json::json;

use crate::error::CliError;
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The connection to sync.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub connection: Option<String>,
    /// Sync every connection this build has a connector for, several at once (one Graph client
    /// per app registration, so Microsoft's per-app limits are shared as they are counted).
    #[arg(long, conflicts_with = "approve_held")]
    pub all: bool,
    /// With --all: how many connections sync at the same time. Reading and planning run side by
    /// side; SQLite writes queue for its one writer. Each sync in flight holds its tenant's read
    /// and plan in memory (about 20 KiB per user).
    #[arg(long, default_value_t = 32, requires = "all")]
    pub concurrency: usize,
    /// What to import: `directory` (users, agents, sites, licences) or `assets` (managed devices).
    #[arg(long, default_value = "directory", value_parser = parse_entity)]
    pub entity: SyncEntity,
    /// Import only this tenant of the connection (a CSP connection's customer tenant, by its id),
    /// as "import now" for one site does.
    #[arg(long, conflicts_with = "all")]
    pub tenant: Option<String>,
    /// With --entity custom_tables: only this table mapping (by its desk table's name).
    #[arg(long)]
    pub table: Option<String>,
    /// Show what the sync would change and write nothing.
    #[arg(long)]
    pub plan: bool,
    /// Read everything, ignoring delta tokens. With --plan: a full preview, which moves no
    /// cursor either.
    #[arg(long)]
    pub full: bool,
    /// With --plan: show only the changes of these actions (comma separated: create, update,
    /// deactivate, reactivate, link, conflict, skip); the counts still cover every change.
    #[arg(long, requires = "plan", value_parser = parse_actions)]
    pub action: Option<Actions>,
    /// Print one JSON object (run_id, status, counts, and with --plan the changes).
    #[arg(long)]
    pub json: bool,
    /// Approve the connection's held run: apply what the circuit breaker stopped.
    #[arg(long, conflicts_with = "plan")]
    pub approve_held: bool,
    /// This instance's kind; a connection runs only on instances it is enabled for.
    #[arg(long, env = "DESKBRIDGE_INSTANCE", default_value = "production")]
    pub instance: String,
}

pub async fn run(global: &GlobalArgs, args: SyncArgs) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    // Notes the runs this process starts, so that a Ctrl-C or SIGTERM can end them, and shows
    // their progress (not with --json: the result is all a script reads).
    let watch = Arc::new(super::sync_progress::SyncWatch::new(args.json));
    let started = watch.started.clone();
    let options = SyncOptions {
        entity: args.entity,
        tenant: args.tenant.clone(),
        plan_only: args.plan,
        full: args.full,
        instance: args.instance.clone(),
        approve_held: args.approve_held,
        observer: Some(watch.clone()),
        table: args.table.clone(),
        tenant_readers: None,
    };
    let sources = global.registry();
    let Some(connection) = &args.connection else {
        let all = run_all(store.clone(), &sources, &args, &options, &clock, &watch);
        return super::stop::unless_stopped(&store, &started, all).await;
    };
    let outcome = super::stop::unless_stopped(&store, &started, async {
        Ok::<_, anyhow::Error>(sync(&store, &sources, connection, &options, &clock).await?)
    })
    .await;
    watch.finish();
    store.close().await;
    let mut outcome = outcome?;
    if let Some(Actions(actions)) = &args.action {
        outcome.retain_actions(actions);
    }
    if args.json {
        crate::output::outln!("{}", serde_json::to_string(&outcome)?);
    } else {
        print_outcome(&outcome);
    }
    if matches!(outcome.status.as_str(), "failed") {
        let run = outcome
            .run_id
            .map(|id| format!(" (run {id})"))
            .unwrap_or_default();
        // The text output has just said the errors with their remedies: they are not said again.
        let message = match (args.json, outcome.errors.first()) {
            (true, Some(first)) => format!("the sync failed{run}: {}", first.message),
            (false, Some(_)) => format!("the sync failed{run}, for the error(s) above"),
            (_, None) => format!("the sync failed{run}; `deskbridge runs list` lists it with its notes"),
        };
        anyhow::bail!(CliError::new(ErrorCode::RunFailed, message));
    }
    Ok(())
}

/// The actions `--action` keeps.
#[derive(Debug, Clone)]
pub struct Actions(Vec<Action>);

fn parse_actions(list: &str) -> Result<Actions, String> {
    Action::parse_list(list).map(Actions)
}

fn parse_entity(name: &str) -> Result<SyncEntity, String> {
    SyncEntity::parse(name).ok_or_else(|| {
        let names: Vec<&str> = SyncEntity::ALL.iter().map(|e| e.as_str()).collect();
        format!(
            "{name:?} is not an entity deskbridge syncs; use one of: {}",
            names.join(", ")
        )
    })
}

/// `sync --all`: every connection a connector serves, through one bounded pool.
async fn run_all(
    store: deskbridge_store::Store,
    sources: &SourceRegistry,
    args: &SyncArgs,
    options: &SyncOptions,
    clock: &SharedClock,
    watch: &super::sync_progress::SyncWatch,
) -> anyhow::Result<()> {
    let mut tx = store.read().await?;
    let mut skipped = Vec::new();
    let names: Vec<String> = tx
        .connections()
        .await?
        .into_iter()
        .filter(|c| sources.get(&c.kind).is_some())
        .filter(|c| {
            // An asset run of every connection leaves out those that do not import assets (not
            // their kind's, or not set up): they are not failures. One that cannot be opened is
            // kept, so that its sync reports why.
            let imports_assets = sources
                .source_of(c)
                .and_then(|source| source.open(c))
                .map(|open| {
                    let kind = sources.get(&c.kind).map_or(&[][..], |s| s.entities());
                    kind.contains(&SyncEntity::Assets.as_str()) && open.mapping().assets.is_some()
                })
                .unwrap_or(true);
            if options.entity == SyncEntity::Assets && !imports_assets {
                skipped.push(c.name.clone());
                return false;
            }
            true
        })
        .map(|c| c.name)
        .collect();
    tx.commit().await?;
    if !skipped.is_empty() {
        eprintln!(
            "not importing assets for {} (asset import is not set up, or the kind reads no devices)",
            skipped.join(", ")
        );
    }
    let started = std::time::Instant::now();
    let results = sync_many(&store, sources, &names, options, args.concurrency, clock).await;
    watch.finish();
    let seconds = started.elapsed().as_secs_f64();
    store.close().await;
    let results = results?;
    let failed = results
        .iter()
        .filter(|r| r.result.as_ref().map_or(true, |o| o.status == "failed"))
        .count();
    if args.json {
        let connections: Vec<serde_json::Value> = results
            .iter()
            .map(|r| match &r.result {
                Ok(outcome) => json!({"connection": r.connection, "outcome": outcome}),
                Err(e) => json!({"connection": r.connection, "error": e.to_string()}),
            })
            .collect();
        let stage = |f: fn(&deskbridge_sync::Timings) -> f64| -> f64 {
            results
                .iter()
                .filter_map(|r| r.result.as_ref().ok())
                .map(|o| f(&o.timings))
                .sum()
        };
        let total = |f: fn(&SyncOutcome) -> i64| -> i64 {
            results.iter().filter_map(|r| r.result.as_ref().ok()).map(f).sum()
        };
        crate::output::outln!(
            "{}",
            json!({
                "connections": connections,
                "failed": failed,
                "seconds": seconds,
                "requests": results.iter().filter_map(|r| r.result.as_ref().ok()).map(|o| o.requests).sum::<u64>(),
                "created": total(|o| o.counts.created),
                "updated": total(|o| o.counts.updated),
                "deactivated": total(|o| o.counts.deactivated),
                "unchanged": total(|o| o.counts.unchanged),
                "errors": total(|o| o.counts.errors),
                // Summed over the syncs: they overlap, so the sum can exceed `seconds`.
                "stage_seconds": {
                    "read": stage(|t| t.read_seconds),
                    "plan": stage(|t| t.plan_seconds),
                    "apply": stage(|t| t.apply_seconds),
                },
                "writer_wait_seconds": store.writer_wait().as_secs_f64(),
                // This process's own figures, so a benchmark can tell them from the emulator's.
                "peak_rss_bytes": deskbridge_bench::procfs::peak_rss_bytes("self"),
                "cpu_seconds": deskbridge_bench::procfs::cpu_seconds("self"),
            })
        );
    } else {
        for r in &results {
            crate::output::out!("{}: ", r.connection);
            match &r.result {
                Ok(outcome) => print_outcome(outcome),
                Err(e) => crate::output::outln!("error: {e}"),
            }
        }
        crate::output::outln!("{} connections in {seconds:.1}s, {failed} failed", results.len());
    }
    if failed > 0 {
        anyhow::bail!(CliError::new(
            ErrorCode::RunFailed,
            format!("{failed} of {} connections failed to sync", results.len())
        ));
    }
    Ok(())
}

pub fn print_outcome(outcome: &SyncOutcome) {
    if let Some(covers) = outcome.summary.as_ref().and_then(|s| s.covers.as_ref()) {
        crate::output::outln!("delta preview: {covers}");
    }
    if let Some(changes) = &outcome.changes {
        for change in changes {
            let fields: Vec<String> = change
                .fields
                .iter()
                .map(|(name, f)| {
                    // Roles, teams and CABs by name beside their ids, in full.
                    let show = |v: &serde_json::Value| {
                        outcome
                            .summary
                            .as_ref()
                            .and_then(|s| s.describe(change.entity, name, v))
                            .unwrap_or_else(|| short(v))
                    };
                    format!("{name}: {} -> {}", show(&f.before), show(&f.after))
                })
                .collect();
            // The record's name first, its id beside it for scripts and support.
            let record = match &change.name {
                Some(name) => format!("{name} ({})", change.external_id),
                None => change.external_id.clone(),
            };
            crate::output::outln!(
                "{:<10} {:<6} {:<38} {}  [{}] {}",
                change.action.as_str(),
                change.entity.as_str(),
                record,
                fields.join(", "),
                change.rule,
                change.reason
            );
        }
    }
    if let Some(summary) = &outcome.summary {
        let actions: Vec<String> = summary
            .actions
            .iter()
            .map(|(action, n)| format!("{action}: {n}"))
            .collect();
        if !actions.is_empty() {
            crate::output::outln!("by action: {}", actions.join(", "));
        }
        for (reason, n) in &summary.skipped {
            crate::output::outln!("skipped, {reason}: {n}");
        }
    }
    let c = &outcome.counts;
    crate::output::outln!(
        "{} ({}): created {}, updated {}, deactivated {}, unchanged {}, conflicts {}, errors {}{}",
        outcome.status,
        // A run that failed before its first read has no mode: say so rather than "none".
        if outcome.mode.as_str() == "none" {
            "nothing read"
        } else {
            outcome.mode.as_str()
        },
        c.created,
        c.updated,
        c.deactivated,
        c.unchanged,
        c.conflicts,
        c.errors,
        outcome.run_id.map(|r| format!("; run {r}")).unwrap_or_default()
    );
    if let Some(reason) = &outcome.held {
        crate::output::outln!("held for approval: {reason}");
    }
    for note in &outcome.notes {
        crate::output::outln!("note: {note}");
    }
    // The run's errors, each once with its remedy, on standard error.
    for e in &outcome.errors {
        crate::output::say_err(&format!(
            "error [{}] {}{}",
            e.code,
            e.message,
            e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
        ));
    }
}

fn short(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}
