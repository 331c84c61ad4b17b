//! The store's test suite. Every `store_test!` runs once on SQLite (a temporary file in WAL
//! mode) and once on PostgreSQL (a fresh schema on the server named by
//! DESKBRIDGE_TEST_POSTGRES_URL; with CI=true a missing or unreachable server fails the test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deskbridge_testkit::store_test;

mod accounts;
mod harness;
mod journal;
mod records;
mod run_health;
mod secrets;
mod sign_in;
mod sync_state;
mod webhooks;
