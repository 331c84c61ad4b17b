//! `deskbridge bench SCENARIO [options] [--json FILE]`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// The scenarios of issue 7.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 1. Latency-bound full sync: throttle model on, a latency per request (300 × 1,000 users).
    Latency,
    /// 2. CPU-bound full sync: no latency, no throttling, into SQLite (and PostgreSQL with --postgres).
    Cpu,
    /// 3. Delta rounds over many tenants: a full sync, then rounds with 0 % and --change-percent changes.
    Delta,
    /// 4. Memory: one large tenant, then many small ones; the sync process's peak RSS.
    Memory,
    /// 5. Baseline: Microsoft's Graph SDK for Python paging the same users into SQLite.
    Baseline,
    /// 6. Scale-out: full imports drained by one `deskbridge worker`, then by several (PostgreSQL).
    ScaleOut,
    /// 7. Latency-bound full sync through CSP: one connection, Partner Center and the partner's GDAP
    ///    relationships, then every customer tenant's users through Graph (100 × 1,000 users).
    CspLatency,
    /// 8. One Dataverse organisation's contacts (100,000) through the Dynamics 365 connector, pages
    ///    of 5,000, a latency per request and Dataverse's service protection on.
    Dataverse,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Cpu => "cpu",
            Scenario::Delta => "delta",
            Scenario::Memory => "memory",
            Scenario::Baseline => "baseline",
            Scenario::ScaleOut => "scale-out",
            Scenario::CspLatency => "csp-latency",
            Scenario::Dataverse => "dataverse",
        }
    }
}

/// Runs a benchmark scenario: starts the emulator in this process, generates the dataset, runs
/// the sync as a child `deskbridge sync --all` process (so its time, CPU and peak memory are its
/// own), and reports the ratio to Microsoft's floor for this dataset. Scale-out runs
/// `deskbridge worker` processes on PostgreSQL instead of the sync.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    pub scenario: Scenario,
    /// Customer tenants, one connection each (csp-latency: one CSP connection for all) (default per
    /// scenario: latency 300, cpu 50, delta 300, baseline 1, scale-out 9, csp-latency 100).
    #[arg(long, visible_alias = "connections")]
    pub tenants: Option<usize>,
    /// Users per tenant (default per scenario: latency 1,000, cpu 2,000, delta 100, baseline 5,000,
    /// scale-out 300, csp-latency 1,000).
    #[arg(long)]
    pub users_per_tenant: Option<usize>,
    /// Latency of every emulated request in ms (latency, csp-latency and delta scenarios: default 50;
    /// scale-out: default 400).
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Turn the emulator's throttle model off in the latency, delta and scale-out scenarios.
    #[arg(long)]
    pub no_throttle: bool,
    /// Connections synced at once (`deskbridge sync --all --concurrency`, whose default this is).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seed of the generated world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// PostgreSQL server URL whose user may create databases (a fresh database is created for
    /// each run and dropped after it). The cpu and latency scenarios also run into it; scale-out needs it
    /// (falling back to DESKBRIDGE_TEST_POSTGRES_URL).
    #[arg(long, env = "DESKBRIDGE_BENCH_POSTGRES_URL")]
    pub postgres: Option<String>,
    /// Scale-out: the workers compared with one.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Memory scenario: users of the large tenant.
    #[arg(long, default_value_t = 100_000)]
    pub large_users: usize,
    /// Memory scenario: number of small tenants.
    #[arg(long, default_value_t = 1_000)]
    pub small_tenants: usize,
    /// Memory scenario: users of each small tenant.
    #[arg(long, default_value_t = 20)]
    pub small_users: usize,
    /// Delta scenario: share of users changed in the second round, in percent.
    #[arg(long, default_value_t = 1.0)]
    pub change_percent: f64,
    /// Baseline scenario: the virtual environment for the Graph SDK (created when missing).
    /// Default: bench-baseline-venv in the cargo target directory.
    #[arg(long)]
    pub venv: Option<PathBuf>,
    /// Baseline scenario: the Python that creates the virtual environment.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Shrink every default size to a few seconds' work (what CI runs).
    #[arg(long, visible_alias = "quick")]
    pub small: bool,
    /// Dataverse scenario: contacts of the organisation (default 100,000; 2,000 with --small).
    #[arg(long)]
    pub contacts: Option<usize>,
    /// Directory for the scenario's databases (default: a temporary directory, removed after).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl BenchArgs {
    /// (tenants, users per tenant) for the scenario.
    pub fn size(&self) -> (usize, usize) {
        let (t, u) = match (self.scenario, self.small) {
            (Scenario::Latency, false) => (300, 1_000),
            (Scenario::Latency, true) => (10, 100),
            (Scenario::Cpu, false) => (50, 2_000),
            (Scenario::Cpu, true) => (4, 250),
            (Scenario::Delta, false) => (300, 100),
            (Scenario::Delta, true) => (10, 100),
            (Scenario::Baseline, false) => (1, 5_000),
            (Scenario::Baseline, true) => (1, 300),
            (Scenario::ScaleOut, false) => (9, 300),
            (Scenario::ScaleOut, true) => (3, 20),
            (Scenario::CspLatency, false) => (100, 1_000),
            (Scenario::CspLatency, true) => (5, 50),
            (Scenario::Memory | Scenario::Dataverse, _) => (1, 1),
        };
        (self.tenants.unwrap_or(t), self.users_per_tenant.unwrap_or(u))
    }

    /// (large tenant users, small tenants, users per small tenant) of the memory scenario.
    pub fn memory_sizes(&self) -> (usize, usize, usize) {
        if self.small {
            (
                self.large_users.min(5_000),
                self.small_tenants.min(50),
                self.small_users,
            )
        } else {
            (self.large_users, self.small_tenants, self.small_users)
        }
    }

    /// Contacts of the Dataverse scenario's organisation.
    pub fn contacts(&self) -> usize {
        self.contacts.unwrap_or(if self.small { 2_000 } else { 100_000 })
    }

    pub fn latency_ms(&self) -> u64 {
        let default = match (self.scenario, self.small) {
            (Scenario::ScaleOut, false) => 400,
            (Scenario::ScaleOut, true) => 100,
            (_, false) => 50,
            (_, true) => 10,
        };
        self.latency_ms.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().bench
    }

    #[test]
    fn scale_out_defaults_and_its_small_version() {
        let full = parse(&["scale-out"]);
        assert_eq!(full.scenario, Scenario::ScaleOut);
        assert_eq!((full.size(), full.latency_ms(), full.workers), ((9, 300), 400, 3));
        let small = parse(&["scale-out", "--small"]);
        assert_eq!((small.size(), small.latency_ms()), ((3, 20), 100));
    }

    #[test]
    fn scale_out_takes_connections_and_workers() {
        let args = parse(&[
            "scale-out",
            "--connections",
            "6",
            "--users-per-tenant",
            "50",
            "--latency-ms",
            "200",
            "--workers",
            "2",
        ]);
        assert_eq!((args.size(), args.latency_ms(), args.workers), ((6, 50), 200, 2));
    }

    #[test]
    fn the_csp_scenario_is_one_connection_for_many_tenants_and_small_for_ci() {
        let full = parse(&["csp-latency"]);
        assert_eq!((full.size(), full.latency_ms()), ((100, 1_000), 50));
        let small = parse(&["csp-latency", "--small"]);
        assert_eq!((small.size(), small.latency_ms()), ((5, 50), 10));
        assert_eq!(small.scenario.name(), "csp-latency");
    }

    #[test]
    fn the_dataverse_scenario_imports_100000_contacts_and_2000_when_quick() {
        let full = parse(&["dataverse"]);
        assert_eq!((full.contacts(), full.latency_ms()), (100_000, 50));
        let quick = parse(&["dataverse", "--quick"]);
        assert_eq!((quick.contacts(), quick.latency_ms()), (2_000, 10));
        assert_eq!(parse(&["dataverse", "--contacts", "500"]).contacts(), 500);
        assert_eq!(quick.scenario.name(), "dataverse");
    }

    #[test]
    fn other_scenarios_keep_their_latency() {
        assert_eq!(parse(&["latency"]).latency_ms(), 50);
        assert_eq!(parse(&["delta", "--small"]).latency_ms(), 10);
    }
}
