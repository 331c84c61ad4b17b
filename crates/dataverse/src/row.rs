//! One row as Dataverse returned it: plain values, lookups (`_x_value` with their annotations),
//! formatted values, option values and expanded navigation properties. Accessors say "absent"
//! with `None` and "present but of the wrong type" with a [`FieldError`].
use serde_json::{Map, Value};

const FORMATTED: &str = "@OData.Community.Display.V1.FormattedValue";
const LOOKUP_NAME: &str = "@Microsoft.Dynamics.CRM.lookuplogicalname";
const NAV_PROPERTY: &str = "@Microsoft.Dynamics.CRM.associatednavigationproperty";

/// A column held a value of another type than asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: expected {expected}, found {found}")]
pub struct FieldError {
    pub column: String,
    pub expected: &'static str,
    pub found: String,
}

/// A lookup column's value: the related row's id and what the annotations say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub id: String,
    /// The related table (`account`), from `…@Microsoft.Dynamics.CRM.lookuplogicalname`.
    pub logical_name: Option<String>,
    /// The navigation property (`parentcustomerid_account`).
    pub navigation_property: Option<String>,
    /// The related row's primary name (its formatted value).
    pub name: Option<String>,
}

/// A row (or an expanded related row).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Map<String, Value>);

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

impl Row {
    pub fn new(map: Map<String, Value>) -> Self {
        Row(map)
    }

    /// The raw value (`None` when absent or null).
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.get(column).filter(|v| !v.is_null())
    }

    fn mismatch(&self, column: &str, expected: &'static str) -> FieldError {
        FieldError {
            column: column.to_owned(),
            expected,
            found: self.0.get(column).map_or_else(|| "nothing".into(), type_name),
        }
    }

    /// `@odata.etag` (`W/"12345"`).
    pub fn etag(&self) -> Option<&str> {
        self.0.get("@odata.etag").and_then(Value::as_str)
    }

    pub fn str(&self, column: &str) -> Result<Option<&str>, FieldError> {
        match self.get(column) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.mismatch(column, "a string")),
        }
    }

    pub fn i64(&self, column: &str) -> Result<Option<i64>, FieldError> {
        match self.get(column) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.mismatch(column, "an integer")),
        }
    }

    pub fn f64(&self, column: &str) -> Result<Option<f64>, FieldError> {
        match self.get(column) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.mismatch(column, "a number")),
        }
    }

    pub fn bool(&self, column: &str) -> Result<Option<bool>, FieldError> {
        match self.get(column) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.mismatch(column, "a boolean")),
        }
    }

    /// A date-and-time column (`2025-01-31T09:30:00Z`).
    pub fn timestamp(&self, column: &str) -> Result<Option<jiff::Timestamp>, FieldError> {
        match self.str(column)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| self.mismatch(column, "a date-time")),
        }
    }

    /// A date-only column (`2025-01-31`).
    pub fn date(&self, column: &str) -> Result<Option<jiff::civil::Date>, FieldError> {
        match self.str(column)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| self.mismatch(column, "a date")),
        }
    }

    /// A GUID column, the primary key included (lower-case, hyphenated).
    pub fn guid(&self, column: &str) -> Result<Option<String>, FieldError> {
        match self.str(column)? {
            None => Ok(None),
            Some(s) => uuid::Uuid::parse_str(s)
                .map(|u| Some(u.to_string()))
                .map_err(|_| self.mismatch(column, "a GUID")),
        }
    }

    /// The formatted value of a column (`industrycode` → "Accounting"), when annotations were asked for.
    pub fn formatted(&self, column: &str) -> Option<&str> {
        self.0
            .get(&format!("{column}{FORMATTED}"))
            .and_then(Value::as_str)
    }

    /// A choice (picklist, state, status) value.
    pub fn option(&self, column: &str) -> Result<Option<i32>, FieldError> {
        match self.get(column) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.mismatch(column, "an option value (integer)")),
        }
    }

    /// A multi-select choice's values (`"1,9"` → `[1, 9]`); empty when absent.
    pub fn options(&self, column: &str) -> Result<Vec<i32>, FieldError> {
        match self.str(column)? {
            None => Ok(vec![]),
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<i32>()
                        .map_err(|_| self.mismatch(column, "comma-separated option values"))
                })
                .collect(),
        }
    }

    /// A multi-select choice's labels from its formatted value (`"Reading; Swimming"`).
    pub fn option_labels(&self, column: &str) -> Vec<String> {
        self.formatted(column)
            .map(|f| {
                f.split(';')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A lookup column by its logical name (`parentcustomerid`), read from `_parentcustomerid_value`
    /// and its annotations.
    pub fn lookup(&self, column: &str) -> Result<Option<Lookup>, FieldError> {
        let wire = format!("_{column}_value");
        let Some(id) = self.guid(&wire)? else {
            return Ok(None);
        };
        let annotation = |suffix: &str| {
            self.0
                .get(&format!("{wire}{suffix}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Some(Lookup {
            id,
            logical_name: annotation(LOOKUP_NAME),
            navigation_property: annotation(NAV_PROPERTY),
            name: annotation(FORMATTED),
        }))
    }

    /// A single-valued navigation property that was expanded (`None` when it was null or not expanded).
    pub fn expanded(&self, navigation: &str) -> Result<Option<Row>, FieldError> {
        match self.get(navigation) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Row(m.clone()))),
            Some(_) => Err(self.mismatch(navigation, "an expanded row (object)")),
        }
    }

    /// A collection-valued navigation property that was expanded.
    pub fn expanded_many(&self, navigation: &str) -> Result<Vec<Row>, FieldError> {
        match self.get(navigation) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Object(m) => Ok(Row(m.clone())),
                    _ => Err(self.mismatch(navigation, "an array of rows")),
                })
                .collect(),
            Some(_) => Err(self.mismatch(navigation, "an array of rows")),
        }
    }

    /// The link to the rest of an expanded collection (more than 5,000 related rows).
    pub fn expanded_next_link(&self, navigation: &str) -> Option<&str> {
        self.0
            .get(&format!("{navigation}@odata.nextLink"))
            .and_then(Value::as_str)
    }
}
