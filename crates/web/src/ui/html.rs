//! The generic parts every page is built from: navigation, connection tabs, tables of cells,
//! forms and their fields, sections, and the page itself rendered on the askama template
//! `page.html`. Pages fill these in; none writes HTML of its own.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::access::{Caller, Scope};
use crate::error::ApiError;

#[derive(Default)]
pub(super) struct Nav {
    pub(super) signed: bool,
    pub(super) admin: bool,
    pub(super) username: String,
    pub(super) csrf: String,
}

impl Nav {
    pub(super) fn of(caller: &Caller) -> Self {
        Self {
            signed: true,
            admin: caller.is_admin(),
            username: caller.account.username.clone(),
            csrf: caller.csrf.clone(),
        }
    }
}

pub(super) struct Tab {
    pub(super) label: &'static str,
    pub(super) href: String,
    pub(super) current: bool,
}

#[derive(Default, Clone)]
pub(super) struct Cell {
    /// The text; for a time, the server's rendering of it (UTC, to the second).
    pub(super) text: String,
    pub(super) href: String,
    pub(super) class: &'static str,
    /// A time, RFC 3339: the cell shows it in a `<time>` element that `app.js` rewrites into the
    /// viewer's own zone; `before` and `after` are the words around it.
    pub(super) time: String,
    pub(super) before: String,
    pub(super) after: String,
}

/// A stored time as people read it: `<time datetime="…">2026-11-23 10:00:00 UTC</time>`,
/// rewritten by the browser into the viewer's zone, to the second. Text that is not a time is
/// shown as it is.
pub(super) fn when(stamp: &str) -> Cell {
    match deskbridge_store::parse_timestamp(stamp) {
        Ok(at) => Cell {
            text: format!("{} UTC", at.strftime("%Y-%m-%d %H:%M:%S")),
            time: at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ..Cell::default()
        },
        Err(_) => cell(stamp),
    }
}

/// [`when`] of a time that may be missing, `none` saying what its absence means ("never").
pub(super) fn when_or(stamp: Option<&str>, none: &str) -> Cell {
    stamp.map_or_else(|| cell(none), when)
}

/// A time inside a phrase: "locked until <time> (5 failed in a row)".
pub(super) fn phrase(before: impl Into<String>, stamp: &str, after: impl Into<String>) -> Cell {
    let mut c = when(stamp);
    if c.time.is_empty() {
        c.text = format!("{}{}{}", before.into(), c.text, after.into());
    } else {
        c.before = before.into();
        c.after = after.into();
    }
    c
}

/// A length of time for people: "42 s", "3 min 5 s", "2 h 5 min", "3 days 4 h".
pub(super) fn duration(seconds: i64) -> String {
    deskbridge_agent::health::duration_text(seconds)
}

/// How often a schedule runs, in words: "every 30 minutes", "every 2 hours", "every 1 h 30 min".
pub(super) fn every(seconds: i64) -> String {
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("every {one}")
        } else {
            format!("every {n} {one}s")
        }
    };
    match seconds {
        s if s > 0 && s % 86_400 == 0 => unit(s / 86_400, "day"),
        s if s > 0 && s % 3_600 == 0 => unit(s / 3_600, "hour"),
        s if s > 0 && s % 60 == 0 => unit(s / 60, "minute"),
        s if s > 0 && s < 60 => unit(s, "second"),
        s => format!("every {}", duration(s)),
    }
}

pub(super) fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        ..Cell::default()
    }
}

pub(super) fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: href.into(),
        ..Cell::default()
    }
}

pub(super) fn verdict(ok: bool) -> Cell {
    Cell {
        text: if ok {
            "✓ passed".into()
        } else {
            "✗ failed".into()
        },
        href: String::new(),
        class: if ok { "ok" } else { "bad" },
        ..Cell::default()
    }
}

#[derive(Clone)]
pub(super) struct Opt {
    pub(super) value: String,
    pub(super) label: String,
}

#[derive(Default, Clone)]
pub(super) struct Field {
    pub(super) kind: &'static str,
    pub(super) name: &'static str,
    pub(super) label: String,
    pub(super) value: String,
    pub(super) help: String,
    pub(super) options: Vec<Opt>,
    pub(super) required: bool,
    pub(super) disabled: bool,
    pub(super) rows: u32,
    /// A number's bounds and step (empty: none).
    pub(super) min: String,
    pub(super) max: String,
    pub(super) step: String,
}

/// A number input with its bounds: the browser refuses what is out of them, and the server
/// checks again (see the forms that read them).
pub(super) fn number_field(
    name: &'static str,
    label: &str,
    value: impl ToString,
    min: &str,
    max: &str,
    step: &str,
) -> Field {
    Field {
        kind: "number",
        min: min.into(),
        max: max.into(),
        step: step.into(),
        required: true,
        ..text_field(name, label, value.to_string())
    }
}

/// The tick box a destructive form carries: `what` says what will happen. The handler checks
/// it with `super::confirmed`; without it nothing changes.
pub(super) fn confirm_box(what: &str) -> Field {
    checkbox("confirm", what, false)
}

/// Makes `f` a destructive form: marked as such, with the tick box saying what will happen.
pub(super) fn destructive(mut f: Form, what: &str) -> Form {
    f.danger = true;
    f.fields.push(confirm_box(what));
    f
}

pub(super) fn text_field(name: &'static str, label: &str, value: impl Into<String>) -> Field {
    Field {
        kind: "text",
        name,
        label: label.into(),
        value: value.into(),
        ..Field::default()
    }
}

pub(super) fn password_field(name: &'static str, label: &str, help: &str) -> Field {
    Field {
        kind: "password",
        name,
        label: label.into(),
        help: help.into(),
        ..Field::default()
    }
}

pub(super) fn checkbox(name: &'static str, label: &str, on: bool) -> Field {
    Field {
        kind: "checkbox",
        name,
        label: label.into(),
        value: if on { "on".into() } else { String::new() },
        ..Field::default()
    }
}

pub(super) fn hidden(name: &'static str, value: impl Into<String>) -> Field {
    Field {
        kind: "hidden",
        name,
        value: value.into(),
        ..Field::default()
    }
}

pub(super) fn select(name: &'static str, label: &str, value: &str, options: &[(&str, &str)]) -> Field {
    Field {
        kind: "select",
        name,
        label: label.into(),
        value: value.into(),
        options: options
            .iter()
            .map(|(v, l)| Opt {
                value: (*v).into(),
                label: (*l).into(),
            })
            .collect(),
        ..Field::default()
    }
}

/// A select over options built at run time.
pub(super) fn select_of(name: &'static str, label: &str, value: &str, options: Vec<Opt>) -> Field {
    Field {
        kind: "select",
        name,
        label: label.into(),
        value: value.into(),
        options,
        ..Field::default()
    }
}

pub(super) fn textarea(name: &'static str, label: &str, value: impl Into<String>, rows: u32) -> Field {
    Field {
        kind: "textarea",
        name,
        label: label.into(),
        value: value.into(),
        rows,
        ..Field::default()
    }
}

#[derive(Default)]
pub(super) struct Form {
    pub(super) id: String,
    pub(super) method: &'static str,
    pub(super) action: String,
    pub(super) submit: String,
    pub(super) fields: Vec<Field>,
    pub(super) class: &'static str,
    pub(super) danger: bool,
}

pub(super) fn form(id: &str, action: impl Into<String>, submit: &str, fields: Vec<Field>) -> Form {
    Form {
        id: id.into(),
        method: "post",
        action: action.into(),
        submit: submit.into(),
        fields,
        class: "",
        danger: false,
    }
}

pub(super) struct Link {
    pub(super) text: String,
    pub(super) href: String,
}

#[derive(Default)]
pub(super) struct Section {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) text: String,
    pub(super) secret: String,
    pub(super) pre: String,
    pub(super) caption: String,
    pub(super) headers: Vec<String>,
    pub(super) rows: Vec<Vec<Cell>>,
    pub(super) forms: Vec<Form>,
    pub(super) links: Vec<Link>,
    /// Lines of text that may hold a time (see [`phrase`]), after `text`.
    pub(super) lines: Vec<Cell>,
}

impl Section {
    pub(super) fn titled(title: &str) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    pub(super) fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    pub(super) fn table(mut self, headers: &[&str], rows: Vec<Vec<Cell>>) -> Self {
        self.headers = headers.iter().map(|h| (*h).to_owned()).collect();
        self.rows = rows;
        self
    }

    pub(super) fn line(mut self, line: Cell) -> Self {
        self.lines.push(line);
        self
    }

    pub(super) fn form(mut self, f: Form) -> Self {
        self.forms.push(f);
        self
    }

    pub(super) fn link(mut self, text: &str, href: impl Into<String>) -> Self {
        self.links.push(Link {
            text: text.into(),
            href: href.into(),
        });
        self
    }
}

#[derive(Template)]
#[template(path = "page.html")]
pub(super) struct PageT {
    pub(super) title: String,
    pub(super) heading: String,
    pub(super) nav: Nav,
    pub(super) tabs: Vec<Tab>,
    pub(super) flash: String,
    pub(super) error: String,
    pub(super) sections: Vec<Section>,
    pub(super) run_id: String,
}

/// A page under construction.
pub(super) struct Page {
    pub(super) inner: PageT,
}

impl Page {
    pub(super) fn new(caller: &Caller, title: impl Into<String>) -> Self {
        Self {
            inner: PageT {
                title: title.into(),
                heading: String::new(),
                nav: Nav::of(caller),
                tabs: Vec::new(),
                flash: String::new(),
                error: String::new(),
                sections: Vec::new(),
                run_id: String::new(),
            },
        }
    }

    pub(super) fn connection(caller: &Caller, scope: &Scope, tab: &str) -> Self {
        let mut page = Self::new(caller, tab_label(tab));
        page.inner.heading = format!("Connection {}", scope.connection.name);
        page.inner.tabs = connection_tabs(scope.connection.id.0, tab);
        page
    }

    pub(super) fn flash(mut self, text: impl Into<String>) -> Self {
        self.inner.flash = text.into();
        self
    }

    pub(super) fn error(mut self, text: impl Into<String>) -> Self {
        self.inner.error = text.into();
        self
    }

    pub(super) fn section(mut self, s: Section) -> Self {
        self.inner.sections.push(s);
        self
    }

    pub(super) fn render(self) -> Response {
        match self.inner.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => ApiError::internal(format!("page rendering: {e}")).into_response(),
        }
    }
}

pub(super) const TABS: &[(&str, &str)] = &[
    ("details", "Details & authorisation"),
    ("mappings/fields", "Field mappings"),
    ("mappings/sites", "Site mappings"),
    ("mappings/assets", "Assets"),
    ("mappings/tables", "Custom tables"),
    ("mappings/customers", "Customers"),
    ("mappings/advanced", "Advanced mappings"),
    ("tenants", "Tenants"),
    ("imports", "Imports"),
    ("agent", "Sync agent"),
    ("check", "Configuration check"),
    ("logs", "Logs"),
    ("runs", "Runs"),
    ("directory/users", "Directory"),
];

pub(super) fn tab_label(tab: &str) -> &'static str {
    TABS.iter()
        .find(|(t, _)| *t == tab)
        .map_or("Connection", |(_, l)| l)
}

pub(super) fn connection_tabs(id: i64, current: &str) -> Vec<Tab> {
    TABS.iter()
        .map(|(tab, label)| Tab {
            label,
            href: if *tab == "details" {
                format!("/connections/{id}")
            } else {
                format!("/connections/{id}/{tab}")
            },
            current: *tab == current,
        })
        .collect()
}
