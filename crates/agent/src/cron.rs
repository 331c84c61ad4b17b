//! Five-field cron expressions (minute, hour, day of month, month, day of week), evaluated on a
//! time zone's wall clock.
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`. Day of week
//! is 0–7 (0 and 7 are Sunday). As in classic cron, when both day fields are restricted a day
//! matches if either does.
//!
//! Daylight saving: each wall-clock minute that matches is turned into an instant with the
//! "compatible" rule — a time skipped by a spring-forward gap runs at the same offset after the
//! gap (02:30 becomes 03:30), and a time that happens twice in an autumn fold runs once, at its
//! first occurrence.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron expression {expression:?}: {reason}")]
pub struct CronError {
    pub expression: String,
    pub reason: String,
}

fn field(text: &str, min: u32, max: u32, name: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let restricted = text != "*";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step {s:?} is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a, name)?, number(b, name)?)
        } else {
            let n = number(range, name)?;
            // "5/15" means from 5 to the end in steps of 15
            (n, if step > 1 { max } else { n })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name}: {part:?} is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted))
}

fn number(text: &str, name: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not a number"))
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(expression: &str) -> Result<Self, CronError> {
        let err = |reason: String| CronError {
            expression: expression.to_owned(),
            reason,
        };
        let parts: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = parts.as_slice() else {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            )));
        };
        let (minutes, _) = field(minute, 0, 59, "minute").map_err(err)?;
        let (hours, _) = field(hour, 0, 23, "hour").map_err(err)?;
        let (days, days_restricted) = field(day, 1, 31, "day of month").map_err(err)?;
        let (months, _) = field(month, 1, 12, "month").map_err(err)?;
        let (mut weekdays, weekdays_restricted) = field(weekday, 0, 7, "day of week").map_err(err)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }
}

fn has(bits: u64, v: i8) -> bool {
    v >= 0 && bits & (1 << v) != 0
}

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days, date.day());
        let dow = has(self.weekdays, date.weekday().to_sunday_zero_offset());
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first instant strictly after `after` whose wall-clock time in `tz` matches, or `None`
    /// if nothing matches in the next eight years (e.g. "0 0 31 2 *").
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        // Start at the next whole minute of the wall clock.
        let mut t = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = local.checked_add(8.years()).ok()?;
        while t < limit {
            let date = t.date();
            if !has(self.months, date.month()) {
                // first day of the next month
                t = DateTime::from_parts(
                    date.first_of_month().checked_add(1.month()).ok()?,
                    Time::midnight(),
                );
                continue;
            }
            if !self.day_matches(date) {
                t = DateTime::from_parts(date.tomorrow().ok()?, Time::midnight());
                continue;
            }
            if !has(self.hours, t.hour()) {
                t = t.with().minute(0).build().ok()?.checked_add(1.hour()).ok()?;
                continue;
            }
            if !has(self.minutes, t.minute()) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            let instant = tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if instant > after {
                return Some(instant);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_and_refuse() {
        assert!("*/15 * * * *".parse::<Cron>().is_ok());
        assert!("0 9-17/2 * * 1-5".parse::<Cron>().is_ok());
        assert!("0 0 1,15 * 7".parse::<Cron>().is_ok());
        let e = "0 24 * * *".parse::<Cron>().unwrap_err();
        assert!(e.reason.contains("hour"), "{e}");
        assert!("* * * *".parse::<Cron>().is_err());
        assert!("*/0 * * * *".parse::<Cron>().is_err());
        assert!("x * * * *".parse::<Cron>().is_err());
    }
}
