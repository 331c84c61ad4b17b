//! The connections' health view, shared by `deskbridge connection list`, `GET
//! /api/v1/connections` and the `/connections` page: per connection its customers' names, its
//! last run, its next scheduled run, its open errors and its held runs — sortable, and
//! filterable to those that need someone.
//!
//! Built from a fixed number of queries (the newest run of each kind of every connection, the
//! schedules' next due times, the customers' names), never one per connection, so it stays fast
//! with hundreds of connections. The caller passes the connections it may show (an agent sees
//! only those it is granted).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use deskbridge_core::{ConnectionId, RunId};
use deskbridge_source::{SourceRegistry, SyncEntity};
use deskbridge_store::{Connection, Run, RunCounts, RunStatus, Store, StoreError};
use serde::Serialize;

/// A run as the health view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunBrief {
    pub id: RunId,
    /// What it imported: `directory`, `assets`, … (never the stored kind `sync`/`full`).
    pub entity: String,
    pub status: RunStatus,
    /// When it ended, or started if it has not.
    pub at: Option<String>,
    pub counts: RunCounts,
    pub message: Option<String>,
}

/// One connection's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionHealthView {
    pub id: ConnectionId,
    pub name: String,
    pub kind: String,
    /// The names of the desk customers it imports into (a CSP connection has many).
    pub customers: Vec<String>,
    /// Its newest run, of any entity.
    pub last_run: Option<RunBrief>,
    /// When its next scheduled run is due (the earliest of its enabled schedules).
    pub next_run: Option<String>,
    /// The errors of the newest run of each entity: what is still wrong.
    pub open_errors: i64,
    /// Runs stopped by the circuit breaker, waiting for an administrator's approval.
    pub held_runs: Vec<RunBrief>,
    /// The newest run of some entity failed.
    pub failed: bool,
    /// One word: `failing`, `held`, `errors`, `running`, `interrupted`, `ok` or `never run`.
    pub health: &'static str,
}

impl ConnectionHealthView {
    /// Needs someone: its last run of some entity failed, or it has open errors or held runs.
    pub fn needs_attention(&self) -> bool {
        self.failed || self.open_errors > 0 || !self.held_runs.is_empty()
    }

    /// Worst first: what `--sort status` orders by.
    fn severity(&self) -> u8 {
        match self.health {
            "failing" => 0,
            "held" => 1,
            "errors" => 2,
            "interrupted" => 3,
            "running" => 4,
            "never run" => 5,
            _ => 6,
        }
    }
}

/// How to order the view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Name,
    /// Worst first (failing, held, errors, …), then by name.
    Status,
    /// Most recent first; never run last.
    LastRun,
    /// Most open errors first.
    Errors,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [Self::Name, Self::Status, Self::LastRun, Self::Errors];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Status => "status",
            Self::LastRun => "last-run",
            Self::Errors => "errors",
        }
    }
}

impl FromStr for SortKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("cannot sort by {s:?}; sort by one of: {}", names.join(", "))
            })
    }
}

/// The stored run kinds: the directory's two (`sync`, `full`) and every other entity's own name.
fn run_kinds() -> Vec<&'static str> {
    let mut kinds = vec!["sync", "full"];
    kinds.extend(
        SyncEntity::ALL
            .iter()
            .filter(|e| **e != SyncEntity::Directory)
            .map(|e| e.as_str()),
    );
    kinds
}

fn brief(run: &Run) -> RunBrief {
    RunBrief {
        id: run.id,
        entity: deskbridge_sync::entity_of_run_kind(&run.kind).as_str().to_owned(),
        status: run.status,
        at: run.ended_at.clone().or_else(|| run.started_at.clone()),
        counts: run.counts,
        message: run.message.clone(),
    }
}

/// The health of `connections`, in the order of `sort`.
pub async fn connection_health(
    store: &Store,
    sources: &SourceRegistry,
    connections: &[Connection],
    sort: SortKey,
) -> Result<Vec<ConnectionHealthView>, StoreError> {
    // Which customers each connection imports into: its source says, from its settings alone.
    let customers_of: HashMap<ConnectionId, BTreeSet<i64>> = connections
        .iter()
        .map(|c| {
            let ids = sources
                .describe(c)
                .ok()
                .and_then(|source| source.open(c).ok())
                .map(|open| open.partitions().into_iter().map(|p| p.customer_id.0).collect())
                .unwrap_or_default();
            (c.id, ids)
        })
        .collect();
    let all_customers: Vec<i64> = customers_of
        .values()
        .flatten()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut tx = store.read().await?;
    let latest = tx.latest_runs(&run_kinds()).await?;
    let next_due = tx.next_due_by_connection().await?;
    let names = tx.customer_names(&all_customers).await?;
    tx.commit().await?;

    // The newest run of each entity of each connection (`sync` and `full` are both the
    // directory: the newer of the two counts).
    let mut by_entity: HashMap<(ConnectionId, String), &Run> = HashMap::new();
    for run in &latest {
        let Some(connection) = run.connection_id else {
            continue;
        };
        let entity = deskbridge_sync::entity_of_run_kind(&run.kind).as_str().to_owned();
        let slot = by_entity.entry((connection, entity)).or_insert(run);
        if run.id > slot.id {
            *slot = run;
        }
    }
    let mut newest: HashMap<ConnectionId, Vec<&Run>> = HashMap::new();
    for ((connection, _), run) in by_entity {
        newest.entry(connection).or_default().push(run);
    }

    let mut out: Vec<ConnectionHealthView> = connections
        .iter()
        .map(|c| {
            let runs = newest.remove(&c.id).unwrap_or_default();
            let last = runs.iter().max_by_key(|r| r.id).map(|r| brief(r));
            let open_errors = runs.iter().map(|r| r.counts.errors).sum();
            let mut held: Vec<RunBrief> = runs
                .iter()
                .filter(|r| r.status == RunStatus::Held)
                .map(|r| brief(r))
                .collect();
            held.sort_by_key(|r| r.id);
            let failed = runs.iter().any(|r| r.status == RunStatus::Failed);
            let health = match &last {
                _ if failed => "failing",
                _ if !held.is_empty() => "held",
                _ if open_errors > 0 => "errors",
                None => "never run",
                Some(r) if r.status == RunStatus::Running || r.status == RunStatus::Queued => "running",
                Some(r) if r.status == RunStatus::Interrupted => "interrupted",
                Some(_) => "ok",
            };
            let mut customers: Vec<String> = customers_of
                .get(&c.id)
                .into_iter()
                .flatten()
                .filter_map(|id| names.get(id).cloned())
                .collect();
            customers.sort_by_key(|n| n.to_lowercase());
            ConnectionHealthView {
                id: c.id,
                name: c.name.clone(),
                kind: c.kind.clone(),
                customers,
                last_run: last,
                next_run: next_due.get(&c.id).cloned(),
                open_errors,
                held_runs: held,
                failed,
                health,
            }
        })
        .collect();
    sort_views(&mut out, sort);
    Ok(out)
}

/// Orders the view by `key`; ties by name.
pub fn sort_views(views: &mut [ConnectionHealthView], key: SortKey) {
    let name = |v: &ConnectionHealthView| v.name.to_lowercase();
    match key {
        SortKey::Name => views.sort_by_key(name),
        SortKey::Status => views.sort_by_key(|v| (v.severity(), name(v))),
        SortKey::Errors => views.sort_by_key(|v| (std::cmp::Reverse(v.open_errors), name(v))),
        SortKey::LastRun => views.sort_by(|a, b| {
            // Timestamps are fixed-width UTC text: they compare as they sort.
            let at = |v: &ConnectionHealthView| v.last_run.as_ref().and_then(|r| r.at.clone());
            at(b).cmp(&at(a)).then_with(|| name(a).cmp(&name(b)))
        }),
    }
}

/// The customers a view names, for one line: the first few, then how many more.
pub fn customers_text(customers: &[String]) -> String {
    const SHOWN: usize = 3;
    match customers.len() {
        0 => String::new(),
        n if n <= SHOWN => customers.join(", "),
        n => format!("{} and {} more", customers[..SHOWN].join(", "), n - SHOWN),
    }
}

/// How long a run took (or, still running, has taken until `now`), in whole seconds.
pub fn run_seconds(run: &Run, now: jiff::Timestamp) -> Option<i64> {
    let started = deskbridge_store::parse_timestamp(run.started_at.as_deref()?).ok()?;
    let ended = match &run.ended_at {
        Some(at) => deskbridge_store::parse_timestamp(at).ok()?,
        None => now,
    };
    Some(ended.duration_since(started).as_secs().max(0))
}

/// A stored timestamp (`2026-11-23T10:00:00.000000Z`) for people: `2026-11-23 10:00:00 UTC`.
/// Anything else is shown as it is.
pub fn when_text(stored: &str) -> String {
    match (stored.get(..10), stored.get(11..19)) {
        (Some(date), Some(time)) if stored.as_bytes().get(10) == Some(&b'T') => format!("{date} {time} UTC"),
        _ => stored.to_owned(),
    }
}

/// Seconds for people, the two largest units: `42 s`, `3 min 5 s`, `2 h 7 min`, `3 days 4 h`.
pub fn duration_text(seconds: i64) -> String {
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    match seconds.max(0) {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => pair(s / 60, "min", s % 60, "s"),
        s if s < 86_400 => pair(s / 3_600, "h", (s % 3_600) / 60, "min"),
        s if s < 172_800 => pair(1, "day", (s % 86_400) / 3_600, "h"),
        s => pair(s / 86_400, "days", (s % 86_400) / 3_600, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_parse_with_their_cli_names() {
        assert_eq!("last-run".parse::<SortKey>(), Ok(SortKey::LastRun));
        assert_eq!("last_run".parse::<SortKey>(), Ok(SortKey::LastRun));
        assert_eq!("Errors".parse::<SortKey>(), Ok(SortKey::Errors));
        let e = "size".parse::<SortKey>().unwrap_err();
        assert!(e.contains("name, status, last-run, errors"), "{e}");
    }

    #[test]
    fn timestamps_read_without_their_fraction() {
        assert_eq!(
            when_text("2026-11-23T10:00:00.000000Z"),
            "2026-11-23 10:00:00 UTC"
        );
        assert_eq!(when_text("soon"), "soon");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(42), "42 s");
        assert_eq!(duration_text(185), "3 min 5 s");
        assert_eq!(duration_text(1_800), "30 min");
        assert_eq!(duration_text(7_620), "2 h 7 min");
        assert_eq!(duration_text(90_000), "1 day 1 h");
        assert_eq!(duration_text(3 * 86_400), "3 days");
    }

    #[test]
    fn many_customers_are_summed_up() {
        let names: Vec<String> = ["A", "B", "C", "D", "E"].map(String::from).to_vec();
        assert_eq!(customers_text(&names), "A, B, C and 2 more");
        assert_eq!(customers_text(&names[..2]), "A, B");
    }
}
