//! Conformance of the emulator to Microsoft's documented wire formats: every endpoint and every
//! error the issue names, exercised over HTTP against an in-process emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod batch;
mod delta;
mod devices;
mod groups;
mod identity;
mod limits;
mod misc;
mod partner;
mod schema;
mod sdk;
mod support;
mod users;
mod world;
