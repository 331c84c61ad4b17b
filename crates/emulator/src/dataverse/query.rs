//! Query options of a Dataverse request: `$select`, `$filter` (with the date and user query
//! functions of `Microsoft.Dynamics.CRM` rewritten into plain comparisons at request time),
//! `$expand` (nested options), `$orderby`, `$top`, `$count`, and the `Prefer` header.
use std::cmp::Ordering;

use deskbridge_odata::{BinaryOp, EvalOptions, Expr, Literal};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::{DvError, bad_query};

/// Options of one level of a query (top level or inside an `$expand`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub select: Option<Vec<String>>,
    pub filter: Option<Expr>,
    pub filter_text: Option<String>,
    pub expand: Vec<Expand>,
    pub orderby: Vec<(String, bool)>,
    pub top: Option<usize>,
    pub count: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Expand {
    pub nav: String,
    pub options: Options,
}

/// Splits at `sep` outside parentheses, brackets and quoted strings.
pub(crate) fn split_top(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut current = String::new();
    for ch in text.chars() {
        match ch {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if !current.trim().is_empty() || !parts.is_empty() {
        parts.push(current);
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

impl Options {
    /// Reads the options of a request (`params` already percent-decoded).
    pub(crate) fn from_params(params: &[(String, String)]) -> Result<Options, DvError> {
        let mut out = Options::default();
        for (key, value) in params {
            let key = key.trim();
            out.apply(key, value)?;
        }
        Ok(out)
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<(), DvError> {
        match key.to_ascii_lowercase().as_str() {
            "$select" => {
                self.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            "$filter" => {
                let expr = deskbridge_odata::parse(value)
                    .map_err(|e| bad_query(format!("Syntax error in $filter: {e}")))?;
                self.filter = Some(expr);
                self.filter_text = Some(value.to_owned());
            }
            "$expand" => {
                for item in split_top(value, ',') {
                    self.expand.push(parse_expand(&item)?);
                }
            }
            "$orderby" => {
                for item in value.split(',') {
                    let mut words = item.split_whitespace();
                    let Some(name) = words.next() else { continue };
                    let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(bad_query(format!(
                                "Syntax error: character '{other}' is not valid at position in '$orderby={value}'."
                            )));
                        }
                    };
                    self.orderby.push((name.to_owned(), desc));
                }
            }
            "$top" => {
                let top: usize = value.trim().parse().map_err(|_| {
                    bad_query(format!("Invalid value '{value}' for $top query option found."))
                })?;
                self.top = Some(top);
            }
            "$count" => self.count = value.trim().eq_ignore_ascii_case("true"),
            "$skip" => {
                return Err(bad_query("The query parameter $skip is not supported".to_owned()));
            }
            "$apply" | "$search" | "$format" => {
                return Err(bad_query(format!("The query parameter {key} is not supported")));
            }
            _ => {}
        }
        Ok(())
    }

    /// Number of `$expand` options at every level.
    pub(crate) fn expand_count(&self) -> usize {
        self.expand.iter().map(|e| 1 + e.options.expand_count()).sum()
    }
}

fn parse_expand(item: &str) -> Result<Expand, DvError> {
    let (nav, inner) = match item.find('(') {
        Some(open) => {
            let close = item.rfind(')').filter(|c| *c > open).ok_or_else(|| {
                bad_query(format!(
                    "Syntax error in $expand: unbalanced parentheses in '{item}'."
                ))
            })?;
            (&item[..open], &item[open + 1..close])
        }
        None => (item, ""),
    };
    let mut options = Options::default();
    for part in split_top(inner, ';') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad_query(format!("Syntax error in $expand option '{part}'.")))?;
        options.apply(key.trim(), value.trim())?;
    }
    Ok(Expand {
        nav: nav.trim().to_owned(),
        options,
    })
}

/// The `Prefer` header's preferences (comma-separated, with or without spaces).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefer {
    pub max_page_size: Option<usize>,
    pub track_changes: bool,
    /// Annotation patterns of `odata.include-annotations` (`*`, `OData.Community.Display.V1.FormattedValue`, `Microsoft.Dynamics.CRM.*`).
    pub annotations: Vec<String>,
    pub return_representation: bool,
}

impl Prefer {
    pub(crate) fn parse(headers: &http::HeaderMap) -> Prefer {
        let mut out = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for pref in split_top(&text.replace('"', "'"), ',') {
                let (name, value) = match pref.split_once('=') {
                    Some((n, v)) => (
                        n.trim().to_ascii_lowercase(),
                        Some(v.trim().trim_matches('\'').to_owned()),
                    ),
                    None => (pref.trim().to_ascii_lowercase(), None),
                };
                match name.as_str() {
                    "odata.maxpagesize" => {
                        out.max_page_size = value.and_then(|v| v.parse().ok());
                    }
                    "odata.track-changes" => out.track_changes = true,
                    "odata.include-annotations" => {
                        out.annotations = value
                            .unwrap_or_default()
                            .split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect();
                    }
                    "return" => out.return_representation = value.as_deref() == Some("representation"),
                    _ => {}
                }
            }
        }
        out
    }

    pub(crate) fn wants(&self, annotation: &str) -> bool {
        self.annotations.iter().any(|p| {
            p == "*"
                || p.eq_ignore_ascii_case(annotation)
                || p.strip_suffix('*').is_some_and(|prefix| {
                    annotation
                        .to_ascii_lowercase()
                        .starts_with(&prefix.to_ascii_lowercase())
                })
        })
    }
}

/// Rewrites the date and user query functions (`Microsoft.Dynamics.CRM.LastXDays(…)`,
/// `On(…)`, `EqualUserId(…)`, …) into comparisons against `now`; other qualified calls
/// (`ContainValues`, `In`, `Between`, `Null`, …) are left to the evaluator.
pub(crate) fn rewrite(
    expr: &Expr,
    now: Timestamp,
    user_id: &str,
    date_only: &dyn Fn(&str) -> bool,
) -> Result<Expr, DvError> {
    Ok(match expr {
        Expr::Not(inner) => Expr::Not(Box::new(rewrite(inner, now, user_id, date_only)?)),
        Expr::Binary { op, left, right } => Expr::Binary {
            op: *op,
            left: Box::new(rewrite(left, now, user_id, date_only)?),
            right: Box::new(rewrite(right, now, user_id, date_only)?),
        },
        Expr::QualifiedCall { name, params } => match date_function(name, params, now, user_id, date_only)? {
            Some(e) => e,
            None => expr.clone(),
        },
        other => other.clone(),
    })
}

fn midnight(t: Timestamp) -> Timestamp {
    let date = t.to_zoned(jiff::tz::TimeZone::UTC).date();
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(t)
}

/// An exclusive upper bound that includes `now`.
fn just_after(now: Timestamp) -> Timestamp {
    now.checked_add(SignedDuration::from_secs(1)).unwrap_or(now)
}

fn days(t: Timestamp, n: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_hours(n.saturating_mul(24)))
        .unwrap_or(t)
}

fn date_function(
    name: &str,
    params: &[(String, Expr)],
    now: Timestamp,
    user_id: &str,
    date_only: &dyn Fn(&str) -> bool,
) -> Result<Option<Expr>, DvError> {
    let short = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    let param = |wanted: &str| {
        params
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v)
    };
    let property = || -> Result<String, DvError> {
        match param("PropertyName") {
            Some(Expr::Literal(Literal::String(p))) => Ok(p.clone()),
            _ => Err(bad_query(format!("{name}: PropertyName is required."))),
        }
    };
    let number = || -> Result<i64, DvError> {
        match param("PropertyValue") {
            Some(Expr::Literal(Literal::Int(n))) => Ok(*n),
            Some(Expr::Literal(Literal::String(s))) => s
                .trim()
                .parse()
                .map_err(|_| bad_query(format!("{name}: PropertyValue '{s}' is not a number."))),
            _ => Err(bad_query(format!("{name}: PropertyValue is required."))),
        }
    };
    let instant = || -> Result<Timestamp, DvError> {
        match param("PropertyValue") {
            Some(Expr::Literal(Literal::DateTimeOffset(t))) => Ok(*t),
            Some(Expr::Literal(Literal::Date(d))) => d
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp())
                .map_err(|e| bad_query(format!("{name}: {e}"))),
            Some(Expr::Literal(Literal::String(s))) => s
                .parse::<Timestamp>()
                .or_else(|_| {
                    s.parse::<jiff::civil::Date>()
                        .ok()
                        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                        .map(|z| z.timestamp())
                        .ok_or(())
                })
                .map_err(|_| bad_query(format!("{name}: PropertyValue '{s}' is not a date."))),
            _ => Err(bad_query(format!("{name}: PropertyValue is required."))),
        }
    };
    let today = midnight(now);
    let (low, high): (Option<Timestamp>, Option<Timestamp>) = match short.as_str() {
        "on" => {
            let d = midnight(instant()?);
            (Some(d), Some(days(d, 1)))
        }
        "onorafter" => (Some(midnight(instant()?)), None),
        "onorbefore" => (None, Some(days(midnight(instant()?), 1))),
        "today" => (Some(today), Some(days(today, 1))),
        "yesterday" => (Some(days(today, -1)), Some(today)),
        "tomorrow" => (Some(days(today, 1)), Some(days(today, 2))),
        "lastsevendays" => (Some(days(today, -7)), Some(just_after(now))),
        "nextsevendays" => (Some(now), Some(days(today, 8))),
        "lastxdays" => (Some(days(today, -number()?)), Some(just_after(now))),
        "nextxdays" => (Some(now), Some(days(today, number()? + 1))),
        "lastxhours" => (
            Some(
                now.checked_sub(SignedDuration::from_hours(number()?))
                    .unwrap_or(now),
            ),
            Some(just_after(now)),
        ),
        "nextxhours" => (
            Some(now),
            Some(
                now.checked_add(SignedDuration::from_hours(number()?))
                    .unwrap_or(now),
            ),
        ),
        "olderthanxdays" => (None, Some(days(now, -number()?))),
        "olderthanxhours" => (
            None,
            Some(
                now.checked_sub(SignedDuration::from_hours(number()?))
                    .unwrap_or(now),
            ),
        ),
        "thismonth" | "thisyear" | "lastyear" => {
            let z = now.to_zoned(jiff::tz::TimeZone::UTC);
            let (from, to) = match short.as_str() {
                "thismonth" => {
                    let first = z.date().first_of_month();
                    (first, first.last_of_month().tomorrow().unwrap_or(first))
                }
                "thisyear" => {
                    let first = z.date().first_of_year();
                    (first, first.last_of_year().tomorrow().unwrap_or(first))
                }
                _ => {
                    let first = z.date().first_of_year();
                    let last_year = first.yesterday().unwrap_or(first).first_of_year();
                    (last_year, first)
                }
            };
            let ts = |d: jiff::civil::Date| {
                d.to_zoned(jiff::tz::TimeZone::UTC)
                    .map(|z| z.timestamp())
                    .unwrap_or(now)
            };
            (Some(ts(from)), Some(ts(to)))
        }
        "equaluserid" | "notequaluserid" => {
            let prop = property()?;
            let e = Expr::Binary {
                op: if short == "equaluserid" {
                    BinaryOp::Eq
                } else {
                    BinaryOp::Ne
                },
                left: Box::new(Expr::Property(vec![prop])),
                right: Box::new(Expr::Literal(Literal::Guid(user_id.to_ascii_lowercase()))),
            };
            return Ok(Some(e));
        }
        _ => return Ok(None),
    };
    let prop = property()?;
    let is_date = date_only(&prop);
    let literal = |t: Timestamp| {
        if is_date {
            Expr::Literal(Literal::Date(t.to_zoned(jiff::tz::TimeZone::UTC).date()))
        } else {
            Expr::Literal(Literal::DateTimeOffset(t))
        }
    };
    let cmp = |op: BinaryOp, t: Timestamp| Expr::Binary {
        op,
        left: Box::new(Expr::Property(vec![prop.clone()])),
        right: Box::new(literal(t)),
    };
    Ok(Some(match (low, high) {
        (Some(l), Some(h)) => Expr::Binary {
            op: BinaryOp::And,
            left: Box::new(cmp(BinaryOp::Ge, l)),
            right: Box::new(cmp(
                if is_date { BinaryOp::Le } else { BinaryOp::Lt },
                if is_date { days(h, -1) } else { h },
            )),
        },
        (Some(l), None) => cmp(BinaryOp::Ge, l),
        (None, Some(h)) => {
            if is_date {
                cmp(BinaryOp::Le, days(h, -1))
            } else {
                cmp(BinaryOp::Lt, h)
            }
        }
        (None, None) => return Ok(None),
    }))
}

/// Whether `record` matches `filter` (strings compare case-insensitively, as Dataverse's
/// collation does).
pub(crate) fn matches(filter: &Expr, record: &Map<String, Value>) -> Result<bool, DvError> {
    deskbridge_odata::evaluate_object(
        filter,
        record,
        &EvalOptions {
            case_insensitive: true,
        },
    )
    .map_err(|e| bad_query(format!("The $filter cannot be evaluated: {e}")))
}

/// Total order of JSON values for `$orderby`: null first, then booleans, numbers, strings
/// (case-insensitive).
pub(crate) fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        _ => rank(a).cmp(&rank(b)),
    }
}
