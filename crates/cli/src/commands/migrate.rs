use crate::settings::GlobalArgs;

pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let store = global.connect_store().await?;
    let applied = store.migrate().await;
    store.close().await;
    let applied = applied?;
    for m in &applied {
        crate::output::outln!("applied migration {} ({})", m.version, m.name);
    }
    crate::output::outln!("schema is up to date ({})", global.database_label());
    Ok(())
}
