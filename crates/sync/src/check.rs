//! The configuration check of a connection by name: the generic part (does it exist, is there a
//! connector for its kind), then the points of its source (`deskbridge check`, the web API).

use deskbridge_core::SharedClock;
use deskbridge_source::{CheckPoint, CheckReport, SourceContext, SourceRegistry};
use deskbridge_store::Store;

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
