use crate::settings::GlobalArgs;

pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    // open_store migrates; report what that did.
    let store = global.open_store().await?;
    let applied = store.migrate().await?;
    debug_assert!(applied.is_empty());
    println!("schema is up to date ({})", global.database_label());
    store.close().await;
    Ok(())
}
