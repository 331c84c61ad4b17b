use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Formats a timestamp the way the store keeps it: UTC, microseconds, fixed width, so that text
/// order is time order on both databases.
pub fn format_timestamp(ts: Timestamp) -> String {
    let dt = ts.to_zoned(TimeZone::UTC).datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1_000
    )
}

/// Parses any RFC 3339 timestamp (as stored, or as given by a caller).
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>()
        .map_err(|e| format!("{text:?} is not an RFC 3339 timestamp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_round_trips() {
        let ts: Timestamp = "2026-03-04T05:06:07.5+02:00".parse().unwrap();
        let text = format_timestamp(ts);
        assert_eq!(text, "2026-03-04T03:06:07.500000Z");
        assert_eq!(parse_timestamp(&text).unwrap(), ts);
        assert!(format_timestamp("1999-12-31T23:59:59Z".parse().unwrap()) < text);
        assert!(parse_timestamp("yesterday").is_err());
    }
}
