//! Deserializers for Graph's wire quirks.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `Edm.DateTimeOffset` as an optional timestamp. `null`, `""` and Intune's "never set" sentinel
/// `0001-01-01T00:00:00Z` all mean "no value"; `9999-12-31…` ("never expires") becomes
/// `Timestamp::MAX`. A timestamp without an offset is read as UTC.
pub(crate) fn graph_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    parse_graph_time(&text).map_err(serde::de::Error::custom)
}

pub(crate) fn parse_graph_time(text: &str) -> Result<Option<Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() || text.starts_with("0001-01-01") {
        return Ok(None);
    }
    // Intune's "never" (9999-12-31T23:59:59Z) lies past jiff's range; the latest instant says the same.
    if text.starts_with("9999-12-31") {
        return Ok(Some(Timestamp::MAX));
    }
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(Some(timestamp));
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|civil| civil.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| Some(zoned.timestamp()))
        .ok_or_else(|| format!("{text:?} is not a date-time"))
}

/// Optional string where Intune's `""` means "no value".
pub(crate) fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

/// A collection that Graph normally sends as `[]` but may send as `null`.
pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// `manager@delta` arrives as one object or as an array depending on the service version.
pub(crate) fn one_or_many<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| T::deserialize(item).map_err(serde::de::Error::custom))
            .collect::<Result<Vec<T>, D::Error>>()
            .map(Some),
        Some(single) => T::deserialize(single)
            .map(|one| Some(vec![one]))
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_time_quirks() {
        assert_eq!(parse_graph_time("").unwrap(), None);
        assert_eq!(parse_graph_time("0001-01-01T00:00:00Z").unwrap(), None);
        assert_eq!(
            parse_graph_time("2026-11-23T10:00:00Z")
                .unwrap()
                .unwrap()
                .to_string(),
            "2026-11-23T10:00:00Z"
        );
        assert_eq!(
            parse_graph_time("2026-11-23T10:00:00")
                .unwrap()
                .unwrap()
                .to_string(),
            "2026-11-23T10:00:00Z"
        );
        assert_eq!(
            parse_graph_time("9999-12-31T23:59:59Z").unwrap(),
            Some(Timestamp::MAX)
        );
        assert!(parse_graph_time("yesterday").is_err());
    }
}
