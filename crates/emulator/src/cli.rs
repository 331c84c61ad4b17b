//! The `deskbridge emulator` subcommand's arguments and entry point.
use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// Serves the emulator until interrupted. Prints one JSON line when ready.
pub async fn run(_args: EmulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("the emulator is not built yet")
}
