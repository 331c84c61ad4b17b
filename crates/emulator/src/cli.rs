//! The `deskbridge emulator` subcommand's arguments and entry point.
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{Emulator, EmulatorConfig, Faults, GenerateOptions, World};

/// Flags of `deskbridge emulator` (names fixed by the interface contract).
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Number of customer tenants to generate.
    #[arg(long)]
    pub tenants: Option<usize>,
    /// Users in each generated tenant (sizes vary around this when not given).
    #[arg(long)]
    pub users_per_tenant: Option<usize>,
    /// Seed of the deterministic generator.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Load the world from this JSON dataset instead of generating it.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Serve over TLS with a CA the emulator generates.
    #[arg(long)]
    pub tls: bool,
    /// Write the generated CA certificate (PEM) here (with --tls; default: a file in the temp dir).
    #[arg(long)]
    pub ca_out: Option<PathBuf>,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Enforce Graph's resource-unit throttling (429 with Retry-After).
    #[arg(long)]
    pub throttle: bool,
    /// The authorize endpoint signs in and consents without showing the page.
    #[arg(long)]
    pub auto_approve: bool,
    /// Write the world as a JSON dataset to this file before serving.
    #[arg(long)]
    pub save_dataset: Option<PathBuf>,
    /// Dataverse organisations to generate (one per customer tenant, from the first).
    #[arg(long)]
    pub dataverse_orgs: Option<usize>,
    /// Contacts in each generated Dataverse organisation (accounts are a quarter of that).
    #[arg(long)]
    pub dataverse_contacts: Option<usize>,
}

/// Serves the emulator until interrupted. Prints one JSON line when ready.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let world = match &args.dataset {
        Some(path) => World::load_json(path)?,
        None => World::generate(&GenerateOptions {
            seed: args.seed.unwrap_or(1),
            tenants: args.tenants.unwrap_or(3),
            users_per_tenant: args.users_per_tenant,
            dataverse_orgs: args.dataverse_orgs.unwrap_or(1),
            dataverse_contacts: args.dataverse_contacts,
            ..GenerateOptions::default()
        })?,
    };
    if let Some(path) = &args.save_dataset {
        world.save_json(path)?;
    }
    let mut config = EmulatorConfig::new(world);
    config.listen = args.listen;
    config.tls = args.tls;
    config.auto_approve = args.auto_approve;
    config.faults = Faults {
        latency_ms: args.latency_ms,
        throttling: args.throttle,
        ..Faults::default()
    };
    let emulator = Emulator::start(config).await?;
    let mut summary = emulator.summary();
    if let Some(pem) = emulator.ca_pem() {
        let path = args.ca_out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "deskbridge-emulator-ca-{}.pem",
                emulator.local_addr().port()
            ))
        });
        std::fs::write(&path, pem)?;
        summary.ca_cert_file = Some(path.display().to_string());
    }
    let line = serde_json::to_string(&summary)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    wait_for_signal().await;
    emulator.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
