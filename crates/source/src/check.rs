//! The configuration check's vocabulary: a list of points, each passed or failed with what was
//! found and what to do about it. Every source produces its own points (see
//! [`crate::Source::check`]); the agent, the CLI and the web show them.

use deskbridge_store::Connection;
use serde::Serialize;

/// One point of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckPoint {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when the point failed (empty when it passed).
    pub remedy: String,
}

impl CheckPoint {
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            remedy: String::new(),
        }
    }

    pub fn fail(name: &str, detail: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            remedy: remedy.into(),
        }
    }

    /// Whether `connection` runs on an instance of kind `instance` (production or test).
    pub fn instance(connection: &Connection, instance: &str) -> Self {
        let enabled = connection
            .enabled_instances
            .split(',')
            .any(|i| i.trim() == instance);
        if enabled {
            Self::pass(
                "instance",
                format!(
                    "enabled for {} (this is {instance})",
                    connection.enabled_instances
                ),
            )
        } else {
            Self::fail(
                "instance",
                format!(
                    "enabled for {} only; this is a {instance} instance",
                    connection.enabled_instances
                ),
                format!(
                    "Enable the connection for {instance}, or run it on a {} instance.",
                    connection.enabled_instances
                ),
            )
        }
    }

    /// A point not checked because an earlier one (`by`) failed.
    pub fn blocked(name: &str, by: &str) -> Self {
        Self::fail(
            name,
            format!("not checked: the {by} point failed"),
            format!("Fix the {by} point first."),
        )
    }
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub connection: String,
    pub ok: bool,
    pub points: Vec<CheckPoint>,
}

impl CheckReport {
    /// The report of `points`: ok when every point passed.
    pub fn of(connection: &str, points: Vec<CheckPoint>) -> Self {
        Self {
            connection: connection.to_owned(),
            ok: points.iter().all(|p| p.ok),
            points,
        }
    }
}
