//! Versioned migrations, one SQL file per version and dialect, embedded in the binary. Applied
//! in order in one transaction, each recorded with a checksum so an edited migration is
//! caught instead of silently diverging.

use sha2::{Digest, Sha256};

use crate::db::{Dialect, Sql, SqlType, Store, WriteContext};
use crate::{Result, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

// Sorted by version. A database may lack a version below its newest (branches add migrations
// independently): the missing one is applied in this order on the next start.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "agent",
        sqlite: include_str!("../migrations/sqlite/0002_agent.sql"),
        postgres: include_str!("../migrations/postgres/0002_agent.sql"),
    },
    Migration {
        version: 3,
        name: "accounts",
        sqlite: include_str!("../migrations/sqlite/0003_accounts.sql"),
        postgres: include_str!("../migrations/postgres/0003_accounts.sql"),
    },
    Migration {
        version: 4,
        name: "tenant_index",
        sqlite: include_str!("../migrations/sqlite/0004_tenant_index.sql"),
        postgres: include_str!("../migrations/postgres/0004_tenant_index.sql"),
    },
    Migration {
        version: 5,
        name: "page_lookups",
        sqlite: include_str!("../migrations/sqlite/0005_page_lookups.sql"),
        postgres: include_str!("../migrations/postgres/0005_page_lookups.sql"),
    },
    Migration {
        version: 6,
        name: "sign_in_limits",
        sqlite: include_str!("../migrations/sqlite/0006_sign_in_limits.sql"),
        postgres: include_str!("../migrations/postgres/0006_sign_in_limits.sql"),
    },
    Migration {
        version: 7,
        name: "asset_tenant",
        sqlite: include_str!("../migrations/sqlite/0007_asset_tenant.sql"),
        postgres: include_str!("../migrations/postgres/0007_asset_tenant.sql"),
    },
    Migration {
        version: 8,
        name: "job_tenant",
        sqlite: include_str!("../migrations/sqlite/0008_job_tenant.sql"),
        postgres: include_str!("../migrations/postgres/0008_job_tenant.sql"),
    },
    Migration {
        version: 9,
        name: "subscription_terms",
        sqlite: include_str!("../migrations/sqlite/0009_subscription_terms.sql"),
        postgres: include_str!("../migrations/postgres/0009_subscription_terms.sql"),
    },
    Migration {
        version: 10,
        name: "webhook_deliveries",
        sqlite: include_str!("../migrations/sqlite/0010_webhook_deliveries.sql"),
        postgres: include_str!("../migrations/postgres/0010_webhook_deliveries.sql"),
    },
    Migration {
        version: 11,
        name: "subscription_changes",
        sqlite: include_str!("../migrations/sqlite/0011_subscription_changes.sql"),
        postgres: include_str!("../migrations/postgres/0011_subscription_changes.sql"),
    },
    Migration {
        version: 12,
        name: "usage_lines",
        sqlite: include_str!("../migrations/sqlite/0012_usage_lines.sql"),
        postgres: include_str!("../migrations/postgres/0012_usage_lines.sql"),
    },
    Migration {
        version: 13,
        name: "account_sign_ins",
        sqlite: include_str!("../migrations/sqlite/0013_account_sign_ins.sql"),
        postgres: include_str!("../migrations/postgres/0013_account_sign_ins.sql"),
    },
    Migration {
        version: 14,
        name: "run_heartbeats",
        sqlite: include_str!("../migrations/sqlite/0014_run_heartbeats.sql"),
        postgres: include_str!("../migrations/postgres/0014_run_heartbeats.sql"),
    },
    Migration {
        version: 15,
        name: "licence_changes",
        sqlite: include_str!("../migrations/sqlite/0015_licence_changes.sql"),
        postgres: include_str!("../migrations/postgres/0015_licence_changes.sql"),
    },
    Migration {
        version: 16,
        name: "single_sign_on",
        sqlite: include_str!("../migrations/sqlite/0016_single_sign_on.sql"),
        postgres: include_str!("../migrations/postgres/0016_single_sign_on.sql"),
    },
    Migration {
        version: 17,
        name: "connection_created_customers",
        sqlite: include_str!("../migrations/sqlite/0017_connection_created_customers.sql"),
        postgres: include_str!("../migrations/postgres/0017_connection_created_customers.sql"),
    },
    Migration {
        version: 18,
        name: "desk_settings",
        sqlite: include_str!("../migrations/sqlite/0018_desk_settings.sql"),
        postgres: include_str!("../migrations/postgres/0018_desk_settings.sql"),
    },
    Migration {
        version: 20,
        name: "disabled_connections",
        sqlite: include_str!("../migrations/sqlite/0020_disabled_connections.sql"),
        postgres: include_str!("../migrations/postgres/0020_disabled_connections.sql"),
    },
    Migration {
        version: 21,
        name: "graph_subscriptions",
        sqlite: include_str!("../migrations/sqlite/0021_graph_subscriptions.sql"),
        postgres: include_str!("../migrations/postgres/0021_graph_subscriptions.sql"),
    },
];

/// A migration applied by [`Store::migrate`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

impl Store {
    /// Brings the schema up to date; returns the migrations it applied (none when current).
    /// Safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<Vec<AppliedMigration>> {
        let mut applied_now = Vec::new();
        let mut tx = self.begin(WriteContext::manual()).await?;
        if self.dialect() == Dialect::Postgres {
            // Serialises concurrent migrators (several workers starting at once) on one server.
            tx.execute("SELECT pg_advisory_xact_lock(7422915031)", &[])
                .await?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
            &[],
        )
        .await?;
        let rows = tx
            .rows(
                "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
                &[],
                &[SqlType::Int, SqlType::Text, SqlType::Text],
            )
            .await?;
        let mut done = std::collections::BTreeMap::new();
        for row in rows {
            if let [Sql::Int(v), Sql::Text(_), Sql::Text(sum)] = row.as_slice() {
                done.insert(*v, sum.clone());
            }
        }
        if let Some(newest) = done.keys().next_back().copied()
            && !MIGRATIONS.iter().any(|m| m.version == newest)
        {
            return Err(StoreError::DatabaseTooNew(newest));
        }
        for m in MIGRATIONS {
            let sql = match self.dialect() {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            let expected = checksum(sql);
            if let Some(applied) = done.get(&m.version) {
                if *applied != expected {
                    return Err(StoreError::MigrationChanged {
                        version: m.version,
                        name: m.name.to_owned(),
                        applied: applied.clone(),
                        expected,
                    });
                }
                continue;
            }
            tx.script(sql).await.map_err(|source| StoreError::Migration {
                version: m.version,
                name: m.name.to_owned(),
                source,
            })?;
            let at = crate::format_timestamp(tx.at());
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                &[
                    Sql::Int(m.version),
                    Sql::text(m.name),
                    Sql::Text(expected),
                    Sql::Text(at),
                ],
            )
            .await?;
            applied_now.push(AppliedMigration {
                version: m.version,
                name: m.name.to_owned(),
            });
        }
        tx.commit().await?;
        Ok(applied_now)
    }
}
