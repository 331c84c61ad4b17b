//! The `deskbridge` binary: one command-line entry point for every process deskbridge runs.
//! It parses arguments, sets up logging, opens the store (migrating it), and hands over to one
//! command module; the work itself lives in the library crates. A failure's exit status comes
//! from its catalogue code (see [`error`]).

mod commands;
mod error;
mod output;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use settings::GlobalArgs;

#[derive(Parser, Debug)]
#[command(
    name = "deskbridge",
    version,
    about = "Keeps a service desk's directory true to Microsoft's cloud"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Try deskbridge end to end: a simulated Microsoft cloud, connections, a full and a delta
    /// import into the embedded store, and a summary.
    Demo(commands::demo::DemoArgs),
    /// Add, list and remove connections.
    Connection {
        #[command(subcommand)]
        command: commands::connection::ConnectionCommand,
    },
    /// CSP (Partner Center) operations outside a sync: the webhook registration.
    Csp {
        #[command(subcommand)]
        command: commands::csp::CspCommand,
    },
    /// Show or replace a connection's mapping configuration (validated before it is saved).
    Mappings {
        #[command(subcommand)]
        command: commands::mappings::MappingsCommand,
    },
    /// Sync one connection now (or preview what a sync would change with --plan).
    Sync(commands::sync::SyncArgs),
    /// Create or upgrade the database schema (also done automatically on start).
    Migrate,
    /// Manage the master key that seals secrets at rest.
    Keys {
        #[command(subcommand)]
        command: commands::keys::KeysCommand,
    },
    /// List what the desk's directory holds.
    Directory(commands::directory::DirectoryArgs),
    /// The desk's custom tables, which custom table syncs fill: define one, list them.
    CustomTables {
        #[command(subcommand)]
        command: commands::custom_tables::CustomTablesCommand,
    },
    /// The desk's custom fields, which field mappings fill (`custom:<name>`): define one, list
    /// them, set an option's external id (the source's option value it stands for).
    CustomFields {
        #[command(subcommand)]
        command: commands::custom_fields::CustomFieldsCommand,
    },
    /// Distribution groups as ticket followers: the desk-wide setting and default connection, and
    /// adding a group to a ticket's followers.
    Followers {
        #[command(subcommand)]
        command: commands::followers::FollowersCommand,
    },
    /// A CSP connection's customer tenants: which desk customer each goes to (or none), and its
    /// licence import type.
    Tenants {
        #[command(subcommand)]
        command: commands::tenants::TenantsCommand,
    },
    /// Adjust a subscription's quantity at its source (CSP: Partner Center), and list the
    /// changes asked.
    Subscriptions {
        #[command(subcommand)]
        command: commands::subscriptions::SubscriptionsCommand,
    },
    /// Assign or remove a desk user's licence at its source (Entra: when the connection allows
    /// licences to be managed from the desk), and list the changes asked.
    Licences {
        #[command(subcommand)]
        command: commands::licences::LicencesCommand,
    },
    /// Check a connection's configuration: credentials, token, consent, permissions, tenant,
    /// mappings; exits non-zero when a point fails.
    Check(commands::check::CheckArgs),
    /// Serve the admin UI, the JSON API, /metrics and /healthz, with a scheduler and one worker
    /// (SQLite by default).
    Serve(commands::serve::ServeArgs),
    /// Claim and run jobs (and fire due schedules) until stopped; run several on PostgreSQL.
    Worker(commands::worker::WorkerCommand),
    /// Add, list and remove schedules; start processing everything enabled.
    Schedule {
        #[command(subcommand)]
        command: commands::schedule::ScheduleCommand,
    },
    /// The job queue: list runs with their progress, start one now, cancel one.
    Runs {
        #[command(subcommand)]
        command: commands::runs::RunsCommand,
    },
    /// Serve the emulated Microsoft endpoints (identity platform, Graph) until stopped.
    Emulator(deskbridge_emulator::cli::EmulatorArgs),
    /// Accounts of the admin UI and API.
    Admin {
        #[command(subcommand)]
        command: commands::admin::AdminCommand,
    },
    /// Single sign-on to the admin UI with Microsoft work accounts: the app registration, on/off,
    /// the allowed tenants, and the Microsoft identity of an account.
    Sso {
        #[command(subcommand)]
        command: commands::sso::SsoCommand,
    },
    /// Benchmark a scenario against the emulator: time, requests, RU, 429s, peak memory, and the
    /// ratio to Microsoft's floor (scale-out: one worker against several on PostgreSQL).
    Bench(deskbridge_bench::BenchArgs),
}

/// mimalloc rather than the system allocator: a sync allocates and frees a page of records at a
/// time on many threads, and glibc's per-thread arenas kept the freed pages, so a process's peak
/// memory grew with the tenant's size although what it held did not (measured in
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = settings::init_logging(cli.global.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => commands::demo::run(&cli.global, args).await,
            Command::Connection { command } => commands::connection::run(&cli.global, command).await,
            Command::Csp { command } => commands::csp::run(&cli.global, command).await,
            Command::Sync(args) => commands::sync::run(&cli.global, args).await,
            Command::Mappings { command } => commands::mappings::run(&cli.global, command).await,
            Command::Migrate => commands::migrate::run(&cli.global).await,
            Command::Keys { command } => commands::keys::run(&cli.global, command).await,
            Command::Directory(args) => commands::directory::run(&cli.global, args).await,
            Command::CustomTables { command } => commands::custom_tables::run(&cli.global, command).await,
            Command::CustomFields { command } => commands::custom_fields::run(&cli.global, command).await,
            Command::Followers { command } => commands::followers::run(&cli.global, command).await,
            Command::Tenants { command } => commands::tenants::run(&cli.global, command).await,
            Command::Subscriptions { command } => commands::subscriptions::run(&cli.global, command).await,
            Command::Licences { command } => commands::licences::run(&cli.global, command).await,
            Command::Check(args) => commands::check::run(&cli.global, args).await,
            Command::Serve(args) => commands::serve::run(&cli.global, args).await,
            Command::Worker(args) => commands::worker::run(&cli.global, args).await,
            Command::Schedule { command } => commands::schedule::run(&cli.global, command).await,
            Command::Runs { command } => commands::runs::run(&cli.global, command).await,
            Command::Emulator(args) => deskbridge_emulator::cli::run(args).await,
            Command::Admin { command } => commands::admin::run(&cli.global, command).await,
            Command::Sso { command } => commands::sso::run(&cli.global, command).await,
            Command::Bench(args) => commands::bench::bench(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = ?e, code = ?error::error_code_of(&e), "command failed");
            output::say_err(&format!("error: {}", error::said_once(&e)));
            // Statuses are 0..=125 by construction; anything else still fails.
            ExitCode::from(u8::try_from(error::exit_status(&e)).unwrap_or(1))
        }
    }
}
