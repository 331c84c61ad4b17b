//! Checks of JSON values against `Edm.*` primitive types, as OData JSON format 4.01 writes them.

use base64::Engine as _;
use serde_json::Value;

/// Returns why `value` is not a valid JSON representation of the primitive `edm_type`, or `None`.
pub(crate) fn check_primitive(edm_type: &str, value: &Value) -> Option<String> {
    match edm_type {
        "Edm.String" => expect_string(value).err(),
        "Edm.Boolean" => (!value.is_boolean()).then(|| format!("expected a boolean, found {}", kind(value))),
        "Edm.Byte" => integer_in(value, 0, 255, edm_type),
        "Edm.SByte" => integer_in(value, -128, 127, edm_type),
        "Edm.Int16" => integer_in(value, i16::MIN.into(), i16::MAX.into(), edm_type),
        "Edm.Int32" => integer_in(value, i32::MIN.into(), i32::MAX.into(), edm_type),
        "Edm.Int64" => integer_in(value, i64::MIN, i64::MAX, edm_type),
        "Edm.Double" | "Edm.Single" | "Edm.Decimal" => match value {
            Value::Number(_) => None,
            Value::String(s) if matches!(s.as_str(), "INF" | "-INF" | "NaN") => None,
            other => Some(format!(
                "expected a number (or \"INF\", \"-INF\", \"NaN\"), found {}",
                kind(other)
            )),
        },
        "Edm.Guid" => string_matching(value, "a GUID (8-4-4-4-12 hex digits)", is_guid),
        "Edm.DateTimeOffset" => {
            string_matching(value, "an RFC 3339 date-time with offset", is_date_time_offset)
        }
        "Edm.Date" => string_matching(value, "a date YYYY-MM-DD", is_date),
        "Edm.TimeOfDay" => string_matching(value, "a time of day hh:mm:ss[.fffffff]", is_time_of_day),
        "Edm.Duration" => string_matching(value, "an ISO 8601 duration such as P1DT2H", is_iso_duration),
        "Edm.Binary" => string_matching(value, "base64 data", is_base64),
        "Edm.Stream" => expect_string(value).err(),
        "Edm.Untyped" | "Edm.PrimitiveType" => None,
        geo if geo.starts_with("Edm.Geography") || geo.starts_with("Edm.Geometry") => {
            (!value.is_object()).then(|| format!("expected a GeoJSON object, found {}", kind(value)))
        }
        other => Some(format!(
            "the schema uses primitive type {other}, which this checker does not know"
        )),
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_string(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a string, found {}", kind(value)))
}

fn string_matching(value: &Value, what: &str, valid: fn(&str) -> bool) -> Option<String> {
    match expect_string(value) {
        Err(e) => Some(e),
        Ok(s) if valid(s) => None,
        Ok(s) => Some(format!("expected {what}, found {s:?}")),
    }
}

fn integer_in(value: &Value, min: i64, max: i64, edm_type: &str) -> Option<String> {
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => None,
        Some(n) => Some(format!("{n} is out of range for {edm_type}")),
        None => Some(format!(
            "expected an integer for {edm_type}, found {}",
            describe(value)
        )),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("the number {n}"),
        other => kind(other).to_string(),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && all_digits(&s[0..4])
        && all_digits(&s[5..7])
        && all_digits(&s[8..10])
        && s.parse::<jiff::civil::Date>().is_ok()
}

/// `hh:mm:ss` with an optional fraction of up to 12 digits (OData's precision limit).
fn is_time_of_day(s: &str) -> bool {
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let b = whole.as_bytes();
    let shape = b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && all_digits(&whole[0..2])
        && all_digits(&whole[3..5])
        && all_digits(&whole[6..8]);
    let fraction_ok = fraction.is_none_or(|f| f.len() <= 12 && all_digits(f));
    shape && fraction_ok && whole.parse::<jiff::civil::Time>().is_ok()
}

/// RFC 3339: `YYYY-MM-DDThh:mm:ss[.f]` followed by `Z` or `±hh:mm`.
fn is_date_time_offset(s: &str) -> bool {
    if s.len() < 20 || !s.is_char_boundary(10) || !is_date(&s[..10]) {
        return false;
    }
    if !matches!(s.as_bytes()[10], b'T' | b't') {
        return false;
    }
    let rest = &s[11..];
    let (time, offset_ok) = if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        (t, true)
    } else if rest.len() > 6 {
        let (t, offset) = rest.split_at(rest.len() - 6);
        let o = offset.as_bytes();
        let ok = matches!(o[0], b'+' | b'-')
            && o[3] == b':'
            && all_digits(&offset[1..3])
            && all_digits(&offset[4..6]);
        (t, ok)
    } else {
        return false;
    };
    offset_ok && is_time_of_day(time) && s.parse::<jiff::Timestamp>().is_ok()
}

/// ISO 8601 duration as OData writes it: `[-]P[nY][nM][nW][nD][T[nH][nM][n[.n]S]]` with at least one part.
fn is_iso_duration(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let Some(body) = s.strip_prefix('P') else {
        return false;
    };
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let Some(date_parts) = designated_parts(date_part, "YMWD", false) else {
        return false;
    };
    let time_parts = match time_part {
        Some(t) => match designated_parts(t, "HMS", true) {
            Some(0) | None => return false,
            Some(n) => n,
        },
        None => 0,
    };
    date_parts + time_parts > 0
}

/// Counts `<number><designator>` pairs with designators in order; `None` if malformed.
fn designated_parts(s: &str, designators: &str, fraction_on_last: bool) -> Option<usize> {
    let mut remaining = s;
    let mut allowed = designators;
    let mut count = 0;
    while !remaining.is_empty() {
        let end = remaining.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, after) = remaining.split_at(end);
        let designator = after.chars().next()?;
        let position = allowed.find(designator)?;
        let fraction_allowed = fraction_on_last && designator == 'S';
        let valid_number = match number.split_once('.') {
            Some((whole, fraction)) => fraction_allowed && all_digits(whole) && all_digits(fraction),
            None => all_digits(number),
        };
        if !valid_number {
            return None;
        }
        allowed = &allowed[position + 1..];
        remaining = &after[designator.len_utf8()..];
        count += 1;
    }
    Some(count)
}

fn is_base64(s: &str) -> bool {
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    standard.decode(s).is_ok() || url_safe.decode(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn date_time_offsets_follow_rfc_3339() {
        for good in [
            "2024-05-01T10:00:00Z",
            "0001-01-01T00:00:00Z",
            "2024-05-01T10:00:00.1234567+02:00",
        ] {
            assert!(is_date_time_offset(good), "{good}");
        }
        for bad in [
            "2024-05-01",
            "2024-05-01 10:00:00Z",
            "2024-13-01T10:00:00Z",
            "2024-05-01T10:00Z",
            "x",
        ] {
            assert!(!is_date_time_offset(bad), "{bad}");
        }
    }

    #[test]
    fn durations_follow_iso_8601() {
        for good in ["P90D", "PT1H30M", "P1Y2M3DT4H5M6.5S", "-P1D", "PT0S", "P2W"] {
            assert!(is_iso_duration(good), "{good}");
        }
        for bad in ["P", "PT", "90 days", "P1H", "PT1D", "P1.5D", "PM1"] {
            assert!(!is_iso_duration(bad), "{bad}");
        }
    }

    #[test]
    fn numbers_and_special_floats() {
        assert!(check_primitive("Edm.Double", &json!("INF")).is_none());
        assert!(check_primitive("Edm.Double", &json!("inf")).is_some());
        assert!(check_primitive("Edm.Int32", &json!(1.5)).is_some());
        assert!(check_primitive("Edm.Int32", &json!(3_000_000_000_i64)).is_some());
        assert!(check_primitive("Edm.Byte", &json!(255)).is_none());
        assert!(check_primitive("Edm.Byte", &json!(256)).is_some());
    }

    #[test]
    fn other_primitives() {
        assert!(check_primitive("Edm.Guid", &json!("6fd2c87f-b296-42f0-b197-1e91e994b900")).is_none());
        assert!(check_primitive("Edm.Guid", &json!("6fd2c87f-b296-42f0-b197")).is_some());
        assert!(check_primitive("Edm.Date", &json!("2024-02-29")).is_none());
        assert!(check_primitive("Edm.Date", &json!("2023-02-29")).is_some());
        assert!(check_primitive("Edm.TimeOfDay", &json!("08:30:00.0000000")).is_none());
        assert!(check_primitive("Edm.TimeOfDay", &json!("25:00:00")).is_some());
        assert!(check_primitive("Edm.Binary", &json!("aGVsbG8=")).is_none());
        assert!(check_primitive("Edm.Binary", &json!("not base64!")).is_some());
        assert!(check_primitive("Edm.Untyped", &json!({"anything": [1]})).is_none());
        assert!(check_primitive("Edm.Boolean", &json!("true")).is_some());
    }
}
