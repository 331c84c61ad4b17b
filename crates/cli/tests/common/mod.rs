//! What the binary's tests share: the command on a data folder (and a PostgreSQL database when
//! given), its output, and a PostgreSQL database of a test's own.
#![allow(dead_code)] // each test binary uses its part

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

pub fn deskbridge(data: &Path, database: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
    cmd.env("DESKBRIDGE_ALLOWED_ENDPOINT_HOSTS", "127.0.0.1")
        .env("DESKBRIDGE_DATA_DIR", data)
        .env_remove("DESKBRIDGE_SECRET_KEY")
        .env_remove("DESKBRIDGE_KEY_FILE")
        .env("DESKBRIDGE_LOG", "error");
    match database {
        Some(url) => cmd.env("DESKBRIDGE_DATABASE_URL", url),
        None => cmd.env_remove("DESKBRIDGE_DATABASE_URL"),
    };
    cmd
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout(&out)
    );
    stdout(&out)
}

pub fn json_of(cmd: &mut Command) -> Value {
    serde_json::from_str(&run_ok(cmd)).unwrap()
}

/// A PostgreSQL database of its own for one test, or `None` when there is no server to use.
pub async fn postgres(prefix: &str) -> Option<(String, String, String)> {
    let admin = match std::env::var("DESKBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("DESKBRIDGE_TEST_POSTGRES_URL must be set in CI")
        }
        _ => {
            eprintln!("skipping the PostgreSQL run: DESKBRIDGE_TEST_POSTGRES_URL is not set");
            return None;
        }
    };
    let name = format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some((url.to_string(), admin, name))
}

pub async fn drop_postgres(admin: &str, name: &str) {
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// The output of a command that must have succeeded.
pub fn run_ok_output(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout(out)
    );
    stdout(out)
}
