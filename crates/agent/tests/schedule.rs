//! When schedules come due, at injected instants: intervals, cron, time zones, windows and the
//! daylight-saving changes of a European and an American zone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deskbridge_agent::schedule::ScheduleSpec;
use jiff::Timestamp;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(kind: &str, spec: &str, tz: &str, window: Option<(&str, &str)>) -> ScheduleSpec {
    ScheduleSpec::from_parts(kind, spec, tz, window).unwrap()
}

/// The due times a scheduler would fire starting from `first`, if it fired each on time.
fn series(s: &ScheduleSpec, first: Timestamp, n: usize) -> Vec<String> {
    let mut out = vec![first];
    while out.len() < n {
        let due = *out.last().unwrap();
        out.push(s.next_due(due, due).unwrap());
    }
    out.iter().map(ToString::to_string).collect()
}

#[test]
fn an_interval_is_due_at_once_then_every_period_without_drift() {
    let s = spec("interval", "900", "UTC", None);
    let now = t("2026-11-23T10:00:07Z");
    assert_eq!(s.first_due(now), Some(now));
    // fired 40 seconds late: the next one keeps the anchor
    assert_eq!(
        s.next_due(now, t("2026-11-23T10:00:47Z")),
        Some(t("2026-11-23T10:15:07Z"))
    );
}

#[test]
fn a_scheduler_that_was_down_fires_once_and_moves_on() {
    let s = spec("interval", "3600", "UTC", None);
    let due = t("2026-11-23T10:00:00Z");
    // down for five and a half hours: the next due time is the next one after now
    let now = t("2026-11-23T15:30:00Z");
    assert_eq!(s.next_due(due, now), Some(t("2026-11-23T16:00:00Z")));
    let c = spec("cron", "0 * * * *", "UTC", None);
    assert_eq!(c.next_due(due, now), Some(t("2026-11-23T16:00:00Z")));
}

#[test]
fn cron_in_utc() {
    let s = spec("cron", "*/20 9-10 * * 1-5", "UTC", None);
    // Friday 2026-11-27 10:50 → next is Monday 09:00
    let now = t("2026-11-27T10:50:00Z");
    assert_eq!(s.first_due(now), Some(t("2026-11-30T09:00:00Z")));
    assert_eq!(
        series(&s, t("2026-11-30T09:00:00Z"), 7),
        [
            "2026-11-30T09:00:00Z",
            "2026-11-30T09:20:00Z",
            "2026-11-30T09:40:00Z",
            "2026-11-30T10:00:00Z",
            "2026-11-30T10:20:00Z",
            "2026-11-30T10:40:00Z",
            "2026-12-01T09:00:00Z",
        ]
    );
    // day of month OR day of week when both are restricted: the 1st, and Sundays
    let s = spec("cron", "0 0 1 * 0", "UTC", None);
    assert_eq!(
        series(&s, t("2026-11-29T00:00:00Z"), 3),
        [
            "2026-11-29T00:00:00Z",
            "2026-12-01T00:00:00Z",
            "2026-12-06T00:00:00Z"
        ]
    );
}

#[test]
fn cron_reads_the_wall_clock_of_its_time_zone() {
    // 06:00 in Sydney (UTC+11 in November) and in New York (UTC-5)
    let sydney = spec("cron", "0 6 * * *", "Australia/Sydney", None);
    let ny = spec("cron", "0 6 * * *", "America/New_York", None);
    let now = t("2026-11-23T12:00:00Z");
    assert_eq!(sydney.first_due(now), Some(t("2026-11-23T19:00:00Z")));
    assert_eq!(ny.first_due(now), Some(t("2026-11-24T11:00:00Z")));
}

#[test]
fn daylight_saving_spring_forward() {
    // Europe/London skips 01:00–02:00 on 2026-03-29. A daily 01:30 job runs once that day, at
    // 02:30 BST (the same offset after the gap), and at 01:30 again the next day.
    let s = spec("cron", "30 1 * * *", "Europe/London", None);
    assert_eq!(
        series(&s, t("2026-03-28T01:30:00Z"), 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    // An hourly cron loses no instant and fires no instant twice across the gap.
    let hourly = spec("cron", "0 * * * *", "Europe/London", None);
    assert_eq!(
        series(&hourly, t("2026-03-29T00:00:00Z"), 3),
        [
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z"
        ]
    );
}

#[test]
fn daylight_saving_fall_back() {
    // America/New_York repeats 01:00–02:00 on 2026-11-01. A daily 01:30 job runs once, at the
    // first 01:30 (EDT, 05:30Z), not again at 01:30 EST (06:30Z).
    let s = spec("cron", "30 1 * * *", "America/New_York", None);
    assert_eq!(
        series(&s, t("2026-10-31T05:30:00Z"), 3),
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
    // Asked from inside the repeated hour (01:45 EST, after the first 01:30 fired), the next
    // is the next day's.
    assert_eq!(
        s.next_due(t("2026-11-01T05:30:00Z"), t("2026-11-01T06:45:00Z")),
        Some(t("2026-11-02T06:30:00Z"))
    );
    // An interval is absolute time: every hour is an hour, whatever the wall clock does.
    let i = spec("interval", "3600", "America/New_York", None);
    assert_eq!(
        series(&i, t("2026-11-01T04:00:00Z"), 4),
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
}

#[test]
fn windows_hold_intervals_until_they_open_and_skip_cron_matches_outside() {
    // every 4h, only between 22:00 and 06:00 Paris time (UTC+1 in November)
    let s = spec("interval", "14400", "Europe/Paris", Some(("22:00", "06:00")));
    // created at 12:00 Paris: first due when the window opens
    assert_eq!(
        s.first_due(t("2026-11-23T11:00:00Z")),
        Some(t("2026-11-23T21:00:00Z"))
    );
    assert_eq!(
        series(&s, t("2026-11-23T21:00:00Z"), 4),
        [
            "2026-11-23T21:00:00Z", // 22:00
            "2026-11-24T01:00:00Z", // 02:00
            "2026-11-24T21:00:00Z", // 06:00 is outside (the end is excluded): next opening
            "2026-11-25T01:00:00Z",
        ]
    );
    let c = spec("cron", "0 */6 * * *", "Europe/Paris", Some(("22:00", "06:00")));
    assert_eq!(
        series(&c, t("2026-11-23T23:00:00Z"), 3),
        [
            "2026-11-23T23:00:00Z",
            "2026-11-24T23:00:00Z",
            "2026-11-25T23:00:00Z"
        ]
    );
    // a window across a DST change: 01:00–03:00 London on the spring-forward day opens at 02:00 BST
    let w = spec("interval", "86400", "Europe/London", Some(("01:00", "03:00")));
    assert_eq!(
        w.first_due(t("2026-03-28T12:00:00Z")),
        Some(t("2026-03-29T01:00:00Z"))
    );
}

#[test]
fn bad_schedules_are_refused_with_the_reason() {
    for (kind, s, tz, window) in [
        ("interval", "5", "UTC", None),
        ("interval", "soon", "UTC", None),
        ("cron", "61 * * * *", "UTC", None),
        ("cron", "0 0 * *", "UTC", None),
        ("cron", "0 0 * * *", "Mars/Olympus", None),
        ("interval", "3600", "UTC", Some(("25:00", "06:00"))),
        ("weekly", "1", "UTC", None),
    ] {
        let e = ScheduleSpec::from_parts(kind, s, tz, window).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    let never = spec("cron", "0 0 31 2 *", "UTC", None);
    assert_eq!(never.first_due(t("2026-01-01T00:00:00Z")), None);
}
