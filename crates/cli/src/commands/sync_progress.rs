//! Live progress of `deskbridge sync` for people: on a terminal, one line per connection that
//! redraws in place with its stage (reading, planning, applying), tenant, pages, records read
//! and their rate, requests and changes; without a terminal, the same as a plain line every few
//! seconds per connection (logs of unattended runs); with `--json`, nothing (stdout is the
//! result, stderr stays quiet).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deskbridge_core::RunId;
use deskbridge_sync::{RunProgress, SyncObserver};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::stop::StartedRuns;

/// How often a plain progress line is written per connection without a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Watches the syncs the command starts: notes their runs (for Ctrl-C) and shows progress.
#[derive(Debug)]
pub struct SyncWatch {
    pub started: Arc<StartedRuns>,
    view: View,
    shown: Mutex<HashMap<String, Shown>>,
}

#[derive(Debug)]
enum View {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

#[derive(Debug)]
struct Shown {
    since: Instant,
    bar: Option<ProgressBar>,
    line_at: Option<Instant>,
}

impl SyncWatch {
    /// Bars on a terminal (stderr), lines otherwise, nothing with `quiet` (`--json`).
    pub fn new(quiet: bool) -> Self {
        let view = if quiet {
            View::Quiet
        } else if std::io::stderr().is_terminal() {
            View::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            View::Lines
        };
        Self {
            started: Arc::new(StartedRuns::default()),
            view,
            shown: Mutex::new(HashMap::new()),
        }
    }

    /// Clears the bars once the syncs are over (their results follow).
    pub fn finish(&self) {
        let shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for s in shown.values() {
            if let Some(bar) = &s.bar {
                bar.finish_and_clear();
            }
        }
    }
}

/// "contoso: applying · tenant 1f2e… · 12 pages · 11,988 records (2,400/s) · 31 requests · 340 changes"
fn describe(p: &RunProgress, since: Instant) -> String {
    let seconds = since.elapsed().as_secs_f64();
    let rate = if seconds >= 0.5 {
        format!(" ({:.0}/s)", p.records as f64 / seconds)
    } else {
        String::new()
    };
    let tenant = p
        .tenant
        .as_deref()
        .map(|t| format!(" · tenant {t}"))
        .unwrap_or_default();
    let done = if p.tenants_done > 0 {
        format!(" · {} tenant(s) done", p.tenants_done)
    } else {
        String::new()
    };
    format!(
        "{}: {}{tenant}{done} · {} page(s) · {} record(s){rate} · {} request(s) · {} change(s)",
        p.connection,
        p.stage.as_str(),
        p.pages,
        p.records,
        p.requests,
        p.changes
    )
}

impl SyncObserver for SyncWatch {
    fn run_started(&self, run: RunId) {
        self.started.run_started(run);
    }

    fn progress(&self, progress: &RunProgress) {
        if matches!(self.view, View::Quiet) {
            return;
        }
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = shown.entry(progress.connection.clone()).or_insert_with(|| Shown {
            since: Instant::now(),
            bar: match &self.view {
                View::Bars(multi) => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                        bar.set_style(style);
                    }
                    bar.enable_steady_tick(Duration::from_millis(120));
                    Some(bar)
                }
                _ => None,
            },
            line_at: None,
        });
        let text = describe(progress, entry.since);
        match &entry.bar {
            Some(bar) => bar.set_message(text),
            None => {
                if entry.line_at.is_none_or(|at| at.elapsed() >= LINE_EVERY) {
                    entry.line_at = Some(Instant::now());
                    // A closed stderr is no reason to stop a sync.
                    let _ = writeln_stderr(&text);
                }
            }
        }
    }
}

fn writeln_stderr(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stderr().lock(), "{text}")
}
