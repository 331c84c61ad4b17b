//! `deskbridge serve` keeps `/metrics` off the UI's listener unless it is given a token, and can
//! serve it on a listener of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on an ephemeral loopback port; returns it and its ready line.
fn serve(data: &Path, args: &[&str], env: &[(&str, &str)]) -> (Serve, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskbridge"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-scheduler"])
        .args(args)
        .env("DESKBRIDGE_DATA_DIR", data)
        .env_remove("DESKBRIDGE_DATABASE_URL")
        .env_remove("DESKBRIDGE_SECRET_KEY")
        .env_remove("DESKBRIDGE_KEY_FILE")
        .env_remove("DESKBRIDGE_METRICS_TOKEN")
        .env_remove("DESKBRIDGE_METRICS_TOKEN_FILE")
        .env_remove("DESKBRIDGE_METRICS_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (Serve(child), ready)
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_need_a_token_or_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    // Neither: the UI's listener does not serve /metrics, and says what to configure.
    {
        let (_serve, ready) = serve(dir.path(), &[], &[]);
        let base = ready["url"].as_str().unwrap();
        let (status, body) = get(&format!("{base}/metrics"), None).await;
        assert_eq!(status, 404, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            body["error"]["remedy"]
                .as_str()
                .unwrap()
                .contains("--metrics-listen"),
            "{body}"
        );
        assert_eq!(get(&format!("{base}/healthz"), None).await.0, 200);
    }
    // A token: only a request that carries it sees the metrics.
    {
        let token = "a-metrics-token-0123456789";
        let (_serve, ready) = serve(dir.path(), &[], &[("DESKBRIDGE_METRICS_TOKEN", token)]);
        let base = ready["url"].as_str().unwrap();
        let (status, body) = get(&format!("{base}/metrics"), None).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("unauthenticated"), "{body}");
        assert_eq!(
            get(&format!("{base}/metrics"), Some("wrong-token-0123456789"))
                .await
                .0,
            401
        );
        let (status, body) = get(&format!("{base}/metrics"), Some(token)).await;
        assert_eq!(status, 200);
        assert!(body.contains("deskbridge_jobs"), "{body}");
    }
    // A listener of its own: metrics there, not on the UI's.
    {
        let (_serve, ready) = serve(dir.path(), &["--metrics-listen", "127.0.0.1:0"], &[]);
        let base = ready["url"].as_str().unwrap();
        let metrics = ready["metrics_url"].as_str().unwrap();
        assert_ne!(metrics, format!("{base}/metrics"));
        assert_eq!(get(&format!("{base}/metrics"), None).await.0, 404);
        let (status, body) = get(metrics, None).await;
        assert_eq!(status, 200);
        assert!(body.contains("deskbridge_jobs"), "{body}");
    }
    // A token too short to be one is refused at start.
    let short = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DESKBRIDGE_DATA_DIR", dir.path())
        .env("DESKBRIDGE_METRICS_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("metrics token is too short"));
}
