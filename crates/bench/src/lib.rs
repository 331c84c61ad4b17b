//! deskbridge-bench: the benchmark harness behind `deskbridge bench SCENARIO`.
//!
//! What it owns:
//! - the floor model of the project's PERFORMANCE.md ([`floor`]), computed from the generated
//!   dataset and the Graph client's settings;
//! - the scenarios of issue 7 ([`scenarios`]): latency-bound and CPU-bound full syncs, delta
//!   rounds, memory on a large and on many small tenants, the Python SDK baseline, and scale-out
//!   ([`scaleout`]: a queue of full imports drained by one `deskbridge worker` process, then by
//!   several, each time on a fresh PostgreSQL database) and the latency-bound full sync through
//!   one CSP connection ([`csp`]), and one Dataverse organisation's contacts through the Dynamics
//!   365 connector under Dataverse's service protection ([`dataverse`]);
//! - the measurement: the emulator serves from the bench process, the sync runs as a child
//!   `deskbridge sync --all` process, so its wall time, CPU and peak RSS (Linux `VmHWM`) are its
//!   own and the emulator's CPU is reported beside it ([`harness`], [`procfs`]);
//! - the baseline script on Microsoft's `msgraph-sdk` in a virtual environment ([`baseline`]);
//! - the JSON report and its one-line summaries.
//!
//! Nothing here asserts timings: figures are reported, and the targets are marked met or not.

pub mod baseline;
pub mod cli;
pub mod csp;
pub mod dataverse;
pub mod floor;
pub mod harness;
pub mod procfs;
pub mod scaleout;
pub mod scenarios;

pub use cli::{BenchArgs, Scenario};
pub use scenarios::{Report, run};
