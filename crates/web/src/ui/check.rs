//! A connection's "Configuration check" tab: the sync agent's check, point by point, with the
//! remedy for each that failed.

use axum::Extension;
use axum::extract::State;

use super::UiResult;
use super::html::{Page, Section, cell, verdict};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;

pub(super) async fn check(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let report = api::run_check(&state, &scope.connection).await;
    Ok(Page::connection(&caller, &scope, "check")
        .section(points_table(&report))
        .render())
}

/// A check's points, one row each, with the remedy of each that failed.
pub(super) fn points_table(report: &deskbridge_source::CheckReport) -> Section {
    let rows = report
        .points
        .iter()
        .map(|p| {
            vec![
                cell(p.name.clone()),
                verdict(p.ok),
                cell(p.detail.clone()),
                cell(p.remedy.clone()),
            ]
        })
        .collect();
    let mut section = Section::default().table(&["Check", "Result", "Detail", "Remedy"], rows);
    section.id = "checks".into();
    section
}
