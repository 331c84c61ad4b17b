//! The `deskbridge` binary: one command-line entry point for every process deskbridge runs.
fn main() {}
