//! The configuration check of a connection by name: the generic part (does it exist, is there a
//! connector for its kind), then the points of its source (`deskbridge check`, the web API); and
//! the same check of a connection before it is saved (`connection add --check`).

use deskbridge_core::SharedClock;
use deskbridge_source::{
    CheckPoint, CheckReport, NewConnection, Source, SourceContext, SourceRegistry, SyncError,
};
use deskbridge_store::{Entity, Store, WriteContext};

use crate::load_connection;

/// Checks the connection named `name` on an instance of kind `instance`.
pub async fn check_connection(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    instance: &str,
    clock: &SharedClock,
) -> CheckReport {
    let found = match load_connection(store, name).await {
        Ok(connection) => sources.source_of(&connection).cloned().map(|s| (connection, s)),
        Err(e) => Err(e),
    };
    let (connection, source) = match found {
        Ok(found) => found,
        Err(e) => {
            let point = CheckPoint::fail(
                "connection",
                e.to_string(),
                e.remedy().unwrap_or_else(|| {
                    "Check the name with `deskbridge connection list`, or add the connection.".into()
                }),
            );
            return CheckReport::of(name, vec![point]);
        }
    };
    let cx = SourceContext::detached(store.clone(), clock.clone());
    CheckReport::of(name, source.check(&cx, &connection, instance).await)
}

/// What the check of a connection not yet saved found.
#[derive(Debug, Clone)]
pub enum NewConnectionCheck {
    /// No required point failed: the connection may be saved. The report may hold warnings:
    /// points that failed without stopping the connection from working (it is enabled for
    /// another kind of instance than this one).
    Passed(CheckReport),
    /// A required point failed: nothing may be saved.
    Failed(CheckReport),
    /// The connection signs in interactively (delegated permissions, a partner admin's sign-in):
    /// it cannot be checked before someone has, which needs it saved.
    NeedsAuthorisation,
}

/// Points whose failure is a warning before a connection is saved: adding a test instance's
/// connection from a production instance is fine.
const WARNING_POINTS: &[&str] = &["instance"];

/// Checks a connection before it is saved: the same points as [`check_connection`], on the
/// connection as `source` would create it.
///
/// Why a scratch store: a connector's `create` writes in several transactions of its own (the
/// connection, its customer, its sealed secrets, then its starting settings) and its check reads
/// them back through the store, so one transaction rolled back cannot hold them all. The
/// connection is created in an empty in-memory store with the same keys ([`Store::scratch`]),
/// holding copies of the desk's top levels (which a new connection may name), checked there and
/// thrown away: nothing reaches `store`. What the check reads of the desk (the connection's own
/// customer, mappings and cursors) is, for a new connection, what the scratch store holds.
pub async fn check_new_connection(
    store: &Store,
    source: &std::sync::Arc<dyn Source>,
    new: NewConnection,
    instance: &str,
    clock: &SharedClock,
) -> Result<NewConnectionCheck, SyncError> {
    let scratch = store.scratch().await?;
    let outcome = check_in_scratch(store, &scratch, source, new, instance, clock).await;
    scratch.close().await;
    outcome
}

async fn check_in_scratch(
    store: &Store,
    scratch: &Store,
    source: &std::sync::Arc<dyn Source>,
    new: NewConnection,
    instance: &str,
    clock: &SharedClock,
) -> Result<NewConnectionCheck, SyncError> {
    copy_top_levels(store, scratch).await?;
    let name = new.name.clone();
    let connection = source.create(scratch, new).await?;
    if let Some(sign_in) = source.sign_in()
        && sign_in.authorised(scratch, &connection).await? == Some(false)
    {
        return Ok(NewConnectionCheck::NeedsAuthorisation);
    }
    let cx = SourceContext::detached(scratch.clone(), clock.clone());
    let report = CheckReport::of(&name, source.check(&cx, &connection, instance).await);
    let required_failed = report
        .points
        .iter()
        .any(|p| !p.ok && !WARNING_POINTS.contains(&p.name.as_str()));
    Ok(if required_failed {
        NewConnectionCheck::Failed(report)
    } else {
        NewConnectionCheck::Passed(report)
    })
}

async fn copy_top_levels(store: &Store, scratch: &Store) -> Result<(), SyncError> {
    let mut tx = store.read().await?;
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list_columns(Entity::TopLevel, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        names.extend(page.iter().filter_map(|r| r.text("name").map(str::to_owned)));
    }
    tx.commit().await?;
    let mut tx = scratch.begin(WriteContext::manual()).await?;
    for name in names {
        let fields = [("name".to_owned(), serde_json::json!(name))]
            .into_iter()
            .collect();
        tx.insert(Entity::TopLevel, None, &fields).await?;
    }
    tx.commit().await?;
    Ok(())
}
