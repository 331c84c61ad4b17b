//! Runs the emulator like `deskbridge emulator` does (handy while the main binary is built
//! elsewhere): `cargo run -p deskbridge-emulator --example serve -- --tls`.
use clap::Parser;
use deskbridge_emulator::cli::{EmulatorArgs, run};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: EmulatorArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(Cli::parse().args).await
}
