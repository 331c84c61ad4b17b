#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `deskbridge demo` as a new user meets it: a summary whose numbers add up (every user of every
//! tenant imported or skipped with a reason), the agents of the tenants' helpdesk groups with
//! their roles and teams by name, a rerun on the same data directory that says so and changes
//! nothing, the admin UI served beside the emulator, and connections that, once the demo's
//! emulator has stopped, are disabled and say why instead of reaching for a dead port.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::{deskbridge, run_ok};
use serde_json::Value;

/// What a demo connection says once its emulator has stopped.
const STOPPED: &str =
    "demo connection: its emulator has stopped; run `deskbridge demo` again to bring it back";

fn demo(dir: &Path, args: &[&str]) -> String {
    run_ok(deskbridge(dir, None).arg("demo").arg("--no-serve").args(args))
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&run_ok(deskbridge(dir, None).args(args).arg("--json"))).unwrap()
}

/// A tenant's line of the summary: (users, imported, each skip as (count, reason)).
#[derive(Debug, PartialEq)]
struct TenantLine {
    users: usize,
    imported: usize,
    skipped: Vec<(usize, String)>,
}

fn tenant_lines(out: &str) -> Vec<TenantLine> {
    let number = |text: &str| -> usize { text.trim().split(' ').next().unwrap().parse().unwrap() };
    out.lines()
        .filter(|l| l.starts_with("    ") && l.contains(" users = "))
        .map(|l| {
            let (head, parts) = l.split_once(" users = ").unwrap();
            let parts = parts.split("; the desk also holds").next().unwrap();
            let mut parts = parts.split(" + ");
            let imported = parts.next().unwrap();
            assert!(imported.contains(" imported"), "{l}");
            let skipped = parts
                .map(|p| {
                    let (n, reason) = p
                        .split_once(" skipped (")
                        .unwrap_or_else(|| panic!("not a skip: {p} in {l}"));
                    (n.parse().unwrap(), reason.trim_end_matches(')').to_owned())
                })
                .collect();
            TenantLine {
                users: number(head.rsplit_once(": ").unwrap().1),
                imported: number(imported),
                skipped,
            }
        })
        .collect()
}

/// Every tenant line adds up, each skip with a reason.
fn check_reconciles(out: &str, tenants: usize) -> Vec<TenantLine> {
    let lines = tenant_lines(out);
    assert_eq!(lines.len(), tenants, "one line per tenant: {out}");
    for line in &lines {
        let skipped: usize = line.skipped.iter().map(|(n, _)| n).sum();
        assert_eq!(line.users, line.imported + skipped, "{line:?} in {out}");
        assert!(
            line.skipped
                .iter()
                .all(|(n, reason)| *n > 0 && !reason.is_empty()),
            "{line:?}"
        );
    }
    assert!(!out.contains("UNACCOUNTED"), "{out}");
    lines
}

/// The agents the summary lists: (tenant, agent line).
fn agent_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("    agents of "))
        .map(str::to_owned)
        .collect()
}

fn check_agents(out: &str, dir: &Path) {
    let lines = agent_lines(out);
    assert!(!lines.is_empty(), "{out}");
    let listed: usize = lines.iter().map(|l| l.matches(" (roles: ").count()).sum();
    assert!(listed > 0, "some tenant has helpdesk agents: {out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("(roles: Service Desk, Team Lead; teams: 1st Line, 2nd Line)")),
        "a lead has both roles and teams by name: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("(roles: Service Desk; teams: 1st Line)")),
        "an agent has the agents' role and team by name: {out}"
    );
    assert!(
        out.contains(&format!(
            "  agents:             {listed} agents from the tenants' helpdesk groups"
        )),
        "{out}"
    );
    let agents = json(dir, &["directory", "agents"]);
    assert_eq!(agents.as_array().unwrap().len(), listed, "{agents}");
    // The directory names an agent's roles and teams for people (its JSON keeps the ids).
    assert!(agents[0]["roles"][0].is_i64(), "{agents}");
    let table = run_ok(deskbridge(dir, None).args(["directory", "agents", "--wide"]));
    assert!(
        table.contains("Service Desk") && table.contains("1st Line"),
        "{table}"
    );
}

/// The demo's connections, each with why it is disabled (`null`: enabled).
fn disabled(dir: &Path) -> Vec<(String, Value)> {
    json(dir, &["connection", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["disabled"].clone()))
        .collect()
}

fn check_disabled(dir: &Path, names: &[&str]) {
    let connections = disabled(dir);
    let mut listed: Vec<&str> = connections.iter().map(|(n, _)| n.as_str()).collect();
    listed.sort_unstable();
    assert_eq!(listed, names);
    for (name, why) in &connections {
        assert_eq!(why, STOPPED, "{name}");
        let sync = deskbridge(dir, None)
            .args(["sync", "--connection", name])
            .output()
            .unwrap();
        assert!(!sync.status.success(), "a disabled connection does not sync");
        let stderr = String::from_utf8_lossy(&sync.stderr);
        assert!(
            stderr.contains(&format!("connection \"{name}\" is disabled: {STOPPED}")),
            "says why, not connection refused: {stderr}"
        );
        assert!(!stderr.to_lowercase().contains("refused"), "{stderr}");
    }
}

#[test]
fn the_csp_demo_adds_up_lists_its_agents_says_a_rerun_and_leaves_its_connections_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--tenants", "3", "--users-per-tenant", "12", "--no-dynamics"];
    let out = demo(dir.path(), &args);
    let lines = check_reconciles(&out, 3);
    assert!(
        out.contains("has no active GDAP relationship"),
        "a tenant not read says why: {out}"
    );
    assert!(!out.contains("  again:"), "a first demo is not a rerun: {out}");
    check_agents(&out, dir.path());
    assert!(
        out.contains("the demo's connections (demo-csp) are disabled"),
        "{out}"
    );
    check_disabled(dir.path(), &["demo-csp"]);
    let users = json(dir.path(), &["directory", "users"]);

    let again = demo(dir.path(), &args);
    assert!(
        again.contains(
            "again:              demo-csp was set up by an earlier demo on this data directory: pointed at this run's \
             emulator and signed in again, its mappings kept, everything read again: nothing changed"
        ),
        "{again}"
    );
    assert_eq!(check_reconciles(&again, 3), lines, "{again}");
    assert_eq!(agent_lines(&again), agent_lines(&out), "{again}");
    assert_eq!(
        json(dir.path(), &["directory", "users"]),
        users,
        "the rerun changed nothing"
    );
    check_disabled(dir.path(), &["demo-csp"]);
}

#[test]
fn the_entra_demo_adds_up_lists_its_agents_and_says_a_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--entra-only", "--tenants", "2", "--users-per-tenant", "12"];
    let out = demo(dir.path(), &args);
    check_reconciles(&out, 2);
    check_agents(&out, dir.path());
    let mut names: Vec<String> = disabled(dir.path()).into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    check_disabled(dir.path(), &names);

    let again = demo(dir.path(), &args);
    let line = again
        .lines()
        .find(|l| l.starts_with("  again:"))
        .unwrap_or_else(|| panic!("a rerun says so: {again}"));
    assert!(
        line.contains("set up by an earlier demo on this data directory: pointed at this run's emulator"),
        "{line}"
    );
    assert!(names.iter().all(|n| line.contains(n)), "{line}");
    check_reconciles(&again, 2);
    check_agents(&again, dir.path());
    check_disabled(dir.path(), &names);
}

/// Serving: the admin UI answers beside the emulator with a first administrator to sign in as;
/// SIGTERM stops both, and the connections are disabled.
#[tokio::test]
async fn the_serving_demo_serves_the_admin_ui_and_disables_its_connections_when_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = deskbridge(dir.path(), None)
        .args([
            "demo",
            "--tenants",
            "1",
            "--users-per-tenant",
            "5",
            "--no-dynamics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut password, mut seen) = (None, None, String::new());
    while url.is_none() || password.is_none() {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("the demo ended before serving: {seen}");
        }
        if let Some(rest) = line.trim().strip_prefix("serving the admin UI and API on ") {
            url = Some(rest.to_owned());
        }
        if let Some((_, rest)) = line.split_once("with the one-time password ") {
            password = rest.split(' ').next().map(str::to_owned);
        }
        seen.push_str(&line);
    }
    let url = url.unwrap();
    let login = reqwest::get(format!("{url}/login")).await.unwrap();
    assert_eq!(login.status(), 200, "{seen}");
    assert!(login.text().await.unwrap().contains("Sign in"));
    assert!(password.as_deref().is_some_and(|p| p.len() >= 8), "{seen}");
    let accounts = json(dir.path(), &["admin", "list"]);
    assert!(
        accounts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["username"] == "admin" && a["role"] == "administrator"),
        "the first administrator to sign in as: {accounts}"
    );
    assert!(
        disabled(dir.path()).iter().all(|(_, why)| why.is_null()),
        "enabled while the demo serves"
    );

    // SIGTERM to this test's own child, by its id.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(
        rest.contains("the demo's connections (demo-csp) are disabled"),
        "{seen}{rest}"
    );
    check_disabled(dir.path(), &["demo-csp"]);
}
