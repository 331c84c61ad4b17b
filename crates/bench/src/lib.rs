//! deskbridge-bench: the benchmark harness behind `deskbridge bench SCENARIO`.
//!
//! What it owns:
//! - the floor model of the project's PERFORMANCE.md ([`floor`]), computed from the generated
//!   dataset and the Graph client's settings;
//! - the scenarios of issue 7 ([`scenarios`]): latency-bound and CPU-bound full syncs, delta
//!   rounds, memory on a large and on many small tenants, and the Python SDK baseline;
//! - the measurement: the emulator serves from the bench process, the sync runs as a child
//!   `deskbridge sync --all` process, so its wall time, CPU and peak RSS (Linux `VmHWM`) are its
//!   own and the emulator's CPU is reported beside it ([`harness`], [`procfs`]);
//! - the baseline script on Microsoft's `msgraph-sdk` in a virtual environment ([`baseline`]);
//! - the JSON report and its one-line summaries.
//!
//! Not here: scenario 6 (scale-out with workers) lives with the sync agent's workers. Nothing
//! here asserts timings: figures are reported, and the targets are marked met or not.

pub mod baseline;
pub mod cli;
pub mod floor;
pub mod harness;
pub mod procfs;
pub mod scenarios;

pub use cli::{BenchArgs, Scenario};
pub use scenarios::{Report, run};
