//! `deskbridge bench SCENARIO`: the harness lives in `deskbridge-bench`; this runs it with this
//! very binary as the sync process, prints the summary, and writes the JSON report.

use anyhow::Context as _;
use deskbridge_bench::{BenchArgs, run};

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this deskbridge binary to run the syncs")?;
    let report = run(&args, &exe).await?;
    for line in report.lines() {
        crate::output::outln!("{line}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        crate::output::outln!("report: {}", path.display());
    }
    Ok(())
}
