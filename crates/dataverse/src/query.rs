//! The query builder: one entity set with `$select`, `$filter`, `$expand` (nested), `$orderby`,
//! `$top`, `$count`, and the `Prefer` preferences (page size, annotations, change tracking).
use std::fmt::Write as _;

/// Which annotations to ask for (`Prefer: odata.include-annotations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Annotations {
    #[default]
    None,
    /// `OData.Community.Display.V1.FormattedValue` only.
    FormattedValues,
    /// Formatted values and the lookup annotations (`lookuplogicalname`,
    /// `associatednavigationproperty`): everything a connector needs, without the rest.
    FormattedValuesAndLookups,
    /// `*`.
    All,
}

impl Annotations {
    fn header_value(self) -> Option<&'static str> {
        match self {
            Annotations::None => None,
            Annotations::FormattedValues => Some("OData.Community.Display.V1.FormattedValue"),
            Annotations::FormattedValuesAndLookups => Some(
                "OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.lookuplogicalname,\
                 Microsoft.Dynamics.CRM.associatednavigationproperty",
            ),
            Annotations::All => Some("*"),
        }
    }
}

/// An `$expand` item: a navigation property with its own options.
#[derive(Debug, Clone, PartialEq)]
pub struct Expand {
    pub navigation: String,
    pub select: Vec<String>,
    pub filter: Option<String>,
    pub order_by: Vec<(String, bool)>,
    pub top: Option<u32>,
    pub expand: Vec<Expand>,
}

impl Expand {
    pub fn new(navigation: impl Into<String>) -> Self {
        Expand {
            navigation: navigation.into(),
            select: vec![],
            filter: None,
            order_by: vec![],
            top: None,
            expand: vec![],
        }
    }

    pub fn select<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Only on collection-valued navigation without nested expands (Dataverse refuses it otherwise).
    pub fn order_by(mut self, column: impl Into<String>, descending: bool) -> Self {
        self.order_by.push((column.into(), descending));
        self
    }

    pub fn top(mut self, top: u32) -> Self {
        self.top = Some(top);
        self
    }

    pub fn expand(mut self, inner: Expand) -> Self {
        self.expand.push(inner);
        self
    }

    fn render(&self) -> String {
        let mut options = Vec::new();
        if !self.select.is_empty() {
            options.push(format!("$select={}", self.select.join(",")));
        }
        if let Some(f) = &self.filter {
            options.push(format!("$filter={f}"));
        }
        if !self.order_by.is_empty() {
            options.push(format!("$orderby={}", order_text(&self.order_by)));
        }
        if let Some(t) = self.top {
            options.push(format!("$top={t}"));
        }
        if !self.expand.is_empty() {
            options.push(format!(
                "$expand={}",
                self.expand
                    .iter()
                    .map(Expand::render)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if options.is_empty() {
            self.navigation.clone()
        } else {
            format!("{}({})", self.navigation, options.join(";"))
        }
    }
}

fn order_text(order: &[(String, bool)]) -> String {
    order
        .iter()
        .map(|(c, desc)| {
            if *desc {
                format!("{c} desc")
            } else {
                format!("{c} asc")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A query of one entity set (`accounts`, `contacts`, `cr7a1_contracts`).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub entity_set: String,
    pub select: Vec<String>,
    pub filter: Option<String>,
    pub expand: Vec<Expand>,
    pub order_by: Vec<(String, bool)>,
    pub top: Option<u32>,
    pub count: bool,
    /// `Prefer: odata.maxpagesize` (1–5,000; Dataverse's default and maximum is 5,000).
    pub page_size: Option<u32>,
    pub annotations: Annotations,
    /// `Prefer: odata.track-changes`: the last page carries an `@odata.deltaLink`.
    pub track_changes: bool,
}

impl Query {
    pub fn new(entity_set: impl Into<String>) -> Self {
        Query {
            entity_set: entity_set.into(),
            select: vec![],
            filter: None,
            expand: vec![],
            order_by: vec![],
            top: None,
            count: false,
            page_size: None,
            annotations: Annotations::None,
            track_changes: false,
        }
    }

    pub fn select<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    /// An OData filter as Dataverse reads it (see [`filter`] for literals and functions).
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    pub fn expand(mut self, expand: Expand) -> Self {
        self.expand.push(expand);
        self
    }

    pub fn order_by(mut self, column: impl Into<String>, descending: bool) -> Self {
        self.order_by.push((column.into(), descending));
        self
    }

    pub fn top(mut self, top: u32) -> Self {
        self.top = Some(top);
        self
    }

    pub fn count(mut self) -> Self {
        self.count = true;
        self
    }

    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size.clamp(1, 5_000));
        self
    }

    pub fn annotations(mut self, annotations: Annotations) -> Self {
        self.annotations = annotations;
        self
    }

    /// Formatted values and lookup annotations.
    pub fn formatted_values(self) -> Self {
        self.annotations(Annotations::FormattedValuesAndLookups)
    }

    pub fn track_changes(mut self) -> Self {
        self.track_changes = true;
        self
    }

    /// The path and query below the API root, percent-encoded: `accounts?$select=name&$filter=…`.
    pub fn path(&self) -> String {
        let mut params: Vec<(String, String)> = Vec::new();
        if !self.select.is_empty() {
            params.push(("$select".into(), self.select.join(",")));
        }
        if let Some(f) = &self.filter {
            params.push(("$filter".into(), f.clone()));
        }
        if !self.expand.is_empty() {
            params.push((
                "$expand".into(),
                self.expand
                    .iter()
                    .map(Expand::render)
                    .collect::<Vec<_>>()
                    .join(","),
            ));
        }
        if !self.order_by.is_empty() {
            params.push(("$orderby".into(), order_text(&self.order_by)));
        }
        if let Some(t) = self.top {
            params.push(("$top".into(), t.to_string()));
        }
        if self.count {
            params.push(("$count".into(), "true".into()));
        }
        let mut out = self.entity_set.clone();
        for (i, (k, v)) in params.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            let _ = write!(out, "{k}={}", encode(v));
        }
        out
    }

    /// The `Prefer` header this query needs (also on every following page).
    pub fn prefer(&self) -> Option<String> {
        prefer_header(self.track_changes, self.page_size, self.annotations)
    }
}

pub(crate) fn prefer_header(track: bool, page_size: Option<u32>, annotations: Annotations) -> Option<String> {
    let mut prefs = Vec::new();
    if track {
        prefs.push("odata.track-changes".to_owned());
    }
    if let Some(n) = page_size {
        prefs.push(format!("odata.maxpagesize={n}"));
    }
    if let Some(a) = annotations.header_value() {
        prefs.push(format!("odata.include-annotations=\"{a}\""));
    }
    (!prefs.is_empty()).then(|| prefs.join(","))
}

/// Percent-encodes a query value, keeping OData's punctuation readable.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$,()'=:*@/!;".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Literals and Dataverse query functions for `$filter` text.
pub mod filter {
    /// A date-time as Dataverse wants it in a filter: unquoted UTC, `2025-01-01T00:00:00Z`.
    pub fn date_time(at: jiff::Timestamp) -> String {
        at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// A quoted string literal (`'O''Brien'`).
    pub fn string(text: &str) -> String {
        format!("'{}'", text.replace('\'', "''"))
    }

    /// `Microsoft.Dynamics.CRM.ContainValues(PropertyName='x',PropertyValues=['1','9'])`: rows
    /// whose multi-select column holds any of `values`.
    pub fn contain_values(column: &str, values: &[i32]) -> String {
        let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
        format!(
            "Microsoft.Dynamics.CRM.ContainValues(PropertyName={},PropertyValues=[{}])",
            string(column),
            list.join(",")
        )
    }

    /// `Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=['a','b'])`.
    pub fn in_values(column: &str, values: &[&str]) -> String {
        let list: Vec<String> = values.iter().map(|v| string(v)).collect();
        format!(
            "Microsoft.Dynamics.CRM.In(PropertyName={},PropertyValues=[{}])",
            string(column),
            list.join(",")
        )
    }

    /// `Microsoft.Dynamics.CRM.LastXDays(PropertyName='x',PropertyValue=n)`.
    pub fn last_x_days(column: &str, days: u32) -> String {
        format!(
            "Microsoft.Dynamics.CRM.LastXDays(PropertyName={},PropertyValue={days})",
            string(column)
        )
    }

    /// `Microsoft.Dynamics.CRM.OnOrAfter(PropertyName='x',PropertyValue='2025-01-01')`.
    pub fn on_or_after(column: &str, date: jiff::civil::Date) -> String {
        format!(
            "Microsoft.Dynamics.CRM.OnOrAfter(PropertyName={},PropertyValue='{date}')",
            string(column)
        )
    }
}
