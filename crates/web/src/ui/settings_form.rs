//! A connection kind's settings as form fields, from the connector's description of them, and a
//! submitted form back into settings for the API's validation: no page knows a kind's settings.

use std::collections::HashMap;

use deskbridge_source::settings::{Purpose, Required, Setting, SettingKind, SettingPart};
use serde_json::{Map, Value};

use super::html::{Field, Opt, checkbox, password_field, select, text_field, textarea};
use super::{field, show};

/// The form fields of the settings in `parts`, filled from `current` (a stored configuration)
/// when editing. Secrets are never filled: on an edit, an empty one keeps what is sealed.
pub(super) fn fields(
    schema: &[Setting],
    parts: &[SettingPart],
    current: Option<&Value>,
    purpose: Purpose,
) -> Vec<Field> {
    let value = |key: &str| current.map(|c| show(&c[key])).unwrap_or_default();
    schema
        .iter()
        .filter(|s| parts.contains(&s.part))
        .map(|s| {
            let mut f = match s.kind {
                SettingKind::Flag { default } => checkbox(
                    s.key,
                    s.label,
                    current.and_then(|c| c[s.key].as_bool()).unwrap_or(default),
                ),
                SettingKind::Choice { options } => {
                    let mut f = select(s.key, s.label, &value(s.key), &[]);
                    if s.required == Required::Optional && purpose == Purpose::Create {
                        f.options.push(Opt {
                            value: String::new(),
                            label: "(automatic)".into(),
                        });
                    }
                    f.options.extend(options.iter().map(|c| Opt {
                        value: c.value.into(),
                        label: c.label.into(),
                    }));
                    f
                }
                SettingKind::Secret if purpose == Purpose::Edit => {
                    password_field(s.key, &format!("New {}", lowercase_first(s.label)), "")
                }
                SettingKind::Secret => password_field(s.key, s.label, ""),
                SettingKind::Certificate if purpose == Purpose::Edit => {
                    textarea(s.key, &format!("New {}", lowercase_first(s.label)), "", 4)
                }
                SettingKind::Certificate => textarea(s.key, s.label, "", 4),
                SettingKind::Time if s.part == SettingPart::Credential => text_field(s.key, s.label, ""),
                _ => text_field(s.key, s.label, value(s.key)),
            };
            f.help = match (s.is_secret(), purpose) {
                (true, Purpose::Edit) => format!("Leave empty to keep the stored one. {}", s.help),
                _ => s.help.to_owned(),
            };
            f.required = purpose == Purpose::Create && s.required == Required::Always;
            f
        })
        .collect()
}

/// The settings of `parts` from a submitted form, as the API takes them: a flag is whether its
/// box was ticked; empty text is left out (not given).
pub(super) fn values(
    schema: &[Setting],
    parts: &[SettingPart],
    form: &HashMap<String, String>,
) -> Map<String, Value> {
    schema
        .iter()
        .filter(|s| parts.contains(&s.part))
        .filter_map(|s| {
            let value = match s.kind {
                SettingKind::Flag { .. } => Value::Bool(field(form, s.key) == "on"),
                _ => {
                    let text = field(form, s.key);
                    if text.trim().is_empty() {
                        return None;
                    }
                    Value::String(text.to_owned())
                }
            };
            Some((s.key.to_owned(), value))
        })
        .collect()
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
