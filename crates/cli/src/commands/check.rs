//! `deskbridge check --connection NAME [--json]`: the configuration check, one line per point;
//! the exit status is non-zero when a point fails.

use std::sync::Arc;

use clap::Args;
use deskbridge_core::{ErrorCode, SharedClock, SystemClock};
use deskbridge_source::CheckReport;
use deskbridge_sync::check_connection;

use crate::error::CliError;
use crate::settings::GlobalArgs;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The connection to check.
    #[arg(long)]
    pub connection: String,
    /// Print one JSON object: {connection, ok, points: [{name, ok, detail, remedy}]}.
    #[arg(long)]
    pub json: bool,
    /// This instance's kind; a connection runs only on instances it is enabled for.
    #[arg(long, env = "DESKBRIDGE_INSTANCE", default_value = "production")]
    pub instance: String,
}

pub async fn run(global: &GlobalArgs, args: CheckArgs) -> anyhow::Result<()> {
    let store = global.open_store().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let report = check_connection(
        &store,
        &global.registry(),
        &args.connection,
        &args.instance,
        &clock,
    )
    .await;
    store.close().await;
    if args.json {
        crate::output::outln!("{}", serde_json::to_string(&report)?);
    } else {
        print_points(&report, "FAIL");
    }
    let failed = report.points.iter().filter(|p| !p.ok).count();
    if failed > 0 {
        anyhow::bail!(CliError::new(
            ErrorCode::CheckFailed,
            format!(
                "{failed} of {} checks failed for connection {:?}",
                report.points.len(),
                args.connection
            )
        ));
    }
    Ok(())
}

/// The report one line per point; a failed point is marked `failed_mark` (`FAIL`, or `warn` where
/// it does not stop anything) and followed by its remedy.
pub(super) fn print_points(report: &CheckReport, failed_mark: &str) {
    for p in &report.points {
        if p.ok {
            crate::output::outln!("pass  {:<18} {}", p.name, p.detail);
        } else {
            crate::output::outln!(
                "{failed_mark:<4}  {:<18} {}\n      {:<18} remedy: {}",
                p.name,
                p.detail,
                "",
                p.remedy
            );
        }
    }
}
