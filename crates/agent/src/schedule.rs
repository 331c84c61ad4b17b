//! When a schedule is next due: an interval or a cron expression, in a time zone, optionally
//! only inside a daily window of wall-clock time. Pure functions of the time they are given, so
//! tests drive them with any clock.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan as _};

use crate::cron::Cron;

/// How often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Every {
    /// A fixed period, anchored at the previous due time (so runs do not drift).
    Interval(SignedDuration),
    Cron(Cron),
}

/// A daily window of wall-clock time runs may start in; `end` before `start` wraps midnight
/// (22:00–06:00). The start is included, the end is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub every: Every,
    pub tz: TimeZone,
    pub window: Option<Window>,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("interval {0:?}: use a number with s, m, h or d (e.g. 15m, 1h, 1d), at least 10s")]
    Interval(String),
    #[error(transparent)]
    Cron(#[from] crate::cron::CronError),
    #[error("time zone {0:?} is not known: use an IANA name such as Europe/London or UTC")]
    TimeZone(String),
    #[error("window {0:?}: use HH:MM-HH:MM in the schedule's time zone (e.g. 22:00-06:00)")]
    Window(String),
    #[error("schedule kind {0:?}: use interval or cron")]
    Kind(String),
}

impl deskbridge_core::HasErrorCode for ScheduleError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        deskbridge_core::ErrorCode::InvalidSchedule
    }
}

/// Parses "90s", "15m", "2h", "1d" (or a bare number of seconds).
pub fn parse_interval(text: &str) -> Result<SignedDuration, ScheduleError> {
    let err = || ScheduleError::Interval(text.to_owned());
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3_600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(err)?;
    if secs < 10 {
        return Err(err());
    }
    Ok(SignedDuration::from_secs(secs))
}

/// Parses "HH:MM-HH:MM".
pub fn parse_window(text: &str) -> Result<Window, ScheduleError> {
    let err = || ScheduleError::Window(text.to_owned());
    let (a, b) = text.split_once('-').ok_or_else(err)?;
    let time = |s: &str| Time::strptime("%H:%M", s.trim()).map_err(|_| err());
    let window = Window {
        start: time(a)?,
        end: time(b)?,
    };
    if window.start == window.end {
        return Err(err());
    }
    Ok(window)
}

impl Window {
    pub fn contains(&self, t: Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// `at` if it is inside the window, else the next start of the window after it.
    fn next_open(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = at.to_zoned(tz.clone());
        if self.contains(local.time()) {
            return Some(at);
        }
        let today = local.date().to_datetime(self.start);
        let start = if today > local.datetime() {
            today
        } else {
            today.checked_add(1.day()).ok()?
        };
        Some(tz.to_ambiguous_zoned(start).compatible().ok()?.timestamp())
    }
}

impl ScheduleSpec {
    /// Builds a spec from the stored fields (`kind` "interval" with seconds, or "cron").
    pub fn from_parts(
        kind: &str,
        spec: &str,
        time_zone: &str,
        window: Option<(&str, &str)>,
    ) -> Result<Self, ScheduleError> {
        let every = match kind {
            "interval" => Every::Interval(parse_interval(spec)?),
            "cron" => Every::Cron(spec.parse()?),
            other => return Err(ScheduleError::Kind(other.to_owned())),
        };
        let tz = TimeZone::get(time_zone).map_err(|_| ScheduleError::TimeZone(time_zone.to_owned()))?;
        let window = window
            .map(|(a, b)| parse_window(&format!("{a}-{b}")))
            .transpose()?;
        Ok(Self { every, tz, window })
    }

    /// The first due time of a new schedule created at `now`: at once for an interval (inside
    /// the window), the next match for cron.
    pub fn first_due(&self, now: Timestamp) -> Option<Timestamp> {
        match &self.every {
            Every::Interval(_) => match &self.window {
                Some(w) => w.next_open(now, &self.tz),
                None => Some(now),
            },
            Every::Cron(_) => self.next_due(now, now),
        }
    }

    /// The due time after `due` (the one just fired), strictly later than `now`: a scheduler
    /// that was down does not replay every missed due time, it fires once and moves on.
    pub fn next_due(&self, due: Timestamp, now: Timestamp) -> Option<Timestamp> {
        match &self.every {
            Every::Interval(period) => {
                let mut next = due.checked_add(*period).ok()?;
                if next <= now {
                    // skip the missed periods in one step, keeping the anchor
                    let behind = now.duration_since(next).as_secs();
                    let periods = behind / period.as_secs().max(1) + 1;
                    next = next
                        .checked_add(SignedDuration::from_secs(periods.checked_mul(period.as_secs())?))
                        .ok()?;
                }
                match &self.window {
                    Some(w) => w.next_open(next, &self.tz),
                    None => Some(next),
                }
            }
            Every::Cron(cron) => {
                let mut from = if due > now { due } else { now };
                // A cron match outside the window is skipped, not moved.
                for _ in 0..10_000 {
                    let next = cron.next_after(from, &self.tz)?;
                    match &self.window {
                        Some(w) if !w.contains(next.to_zoned(self.tz.clone()).time()) => from = next,
                        _ => return Some(next),
                    }
                }
                None
            }
        }
    }
}

/// A schedule for `connection` as an administrator gives it — an interval (`15m`) or a cron
/// expression, a time zone and an optional daily window (`08:00-18:00`) — checked and with its
/// first due time, ready to store. The CLI and the web API both add schedules through this.
#[allow(clippy::too_many_arguments)] // the schedule's fields as the administrator gave them
pub fn new_schedule(
    sources: &deskbridge_source::SourceRegistry,
    connection: &deskbridge_store::Connection,
    entity: &str,
    every: Option<&str>,
    cron: Option<&str>,
    time_zone: &str,
    window: Option<&str>,
    now: Timestamp,
) -> Result<deskbridge_store::NewSchedule, crate::AgentError> {
    let (kind, spec) = match (
        every.filter(|e| !e.trim().is_empty()),
        cron.filter(|c| !c.trim().is_empty()),
    ) {
        (Some(every), None) => ("interval", parse_interval(every)?.as_secs().to_string()),
        (None, Some(cron)) => ("cron", cron.trim().to_owned()),
        _ => {
            return Err(crate::AgentError::Invalid(
                "give either an interval (e.g. 15m) or a cron expression, not both".into(),
            ));
        }
    };
    let window = window
        .filter(|w| !w.trim().is_empty())
        .map(parse_window)
        .transpose()?
        .map(|w| {
            (
                w.start.strftime("%H:%M").to_string(),
                w.end.strftime("%H:%M").to_string(),
            )
        });
    let parsed = ScheduleSpec::from_parts(
        kind,
        &spec,
        time_zone,
        window.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    )?;
    let first = parsed.first_due(now).ok_or_else(|| {
        crate::AgentError::Invalid(
            "the schedule never comes due (no matching time in the next eight years)".into(),
        )
    })?;
    crate::entities::validate(sources, &connection.kind, entity)?;
    Ok(deskbridge_store::NewSchedule {
        connection_id: connection.id,
        entity: entity.to_owned(),
        kind: kind.into(),
        spec,
        time_zone: time_zone.to_owned(),
        window_start: window.as_ref().map(|(a, _)| a.clone()),
        window_end: window.map(|(_, b)| b),
        next_due: first,
    })
}
