//! Embedded, numbered schema migrations, applied in order and recorded in `nimbus_schema`.
//!
//! A migration is plain SQL that both SQLite and PostgreSQL accept. Each runs in its own
//! transaction together with the row that records it, so a crash leaves the schema at a
//! whole version. On PostgreSQL an advisory lock keeps replicas from migrating at once.

use sqlx::Row;

use crate::{Backend, Db, MetaError};

/// One schema change.
pub struct Migration {
    /// Its number; versions are applied in increasing order.
    pub version: i64,
    /// A short name for messages.
    pub name: &'static str,
    /// The SQL, one or more statements.
    pub sql: &'static str,
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("../migrations/0001_initial.sql") },
    Migration { version: 2, name: "pipelines", sql: include_str!("../migrations/0002_pipelines.sql") },
    Migration { version: 3, name: "specs", sql: include_str!("../migrations/0003_specs.sql") },
    Migration { version: 4, name: "holds and leases", sql: include_str!("../migrations/0004_holds_and_leases.sql") },
    Migration { version: 5, name: "access control", sql: include_str!("../migrations/0005_access_control.sql") },
    Migration { version: 6, name: "function events", sql: include_str!("../migrations/0006_function_events.sql") },
    Migration { version: 7, name: "function versions", sql: include_str!("../migrations/0007_function_versions.sql") },
];

/// The schema version this binary brings a database to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

pub(crate) async fn run(db: &Db) -> Result<(), MetaError> {
    let mut tx = db.write().await?;
    if db.backend() == Backend::Postgres {
        // Held until the transaction ends: one replica migrates, the others wait and then
        // find nothing left to do. Taken before the schema table is made: two concurrent
        // `CREATE TABLE IF NOT EXISTS` of a new table collide in PostgreSQL's catalog.
        sqlx::query("SELECT pg_advisory_xact_lock(7243001)").execute(&mut *tx.tx).await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS nimbus_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx.tx)
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM nimbus_schema")
        .fetch_one(&mut *tx.tx)
        .await?
        .try_get("v")?;
    if current > SCHEMA_VERSION {
        return Err(MetaError::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        // One statement at a time: multi-statement strings through the `Any` driver stop
        // early on SQLite, which would leave a migration half applied.
        for statement in statements(m.sql) {
            sqlx::raw_sql(statement).execute(&mut *tx.tx).await.map_err(|source| MetaError::Migration {
                version: m.version,
                name: m.name,
                source,
            })?;
        }
        sqlx::query("INSERT INTO nimbus_schema (version, name, applied_ms) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(now_ms())
            .execute(&mut *tx.tx)
            .await?;
        tracing::info!(version = m.version, name = m.name, "applied metadata migration");
    }
    tx.commit().await
}

/// The statements of a migration file: split at `;` ending a line, comment lines dropped.
/// Migration files keep to that form (no `;` inside literals or trigger bodies).
fn statements(sql: &str) -> Vec<&str> {
    sql.split(";\n")
        .map(str::trim)
        .filter(|s| s.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--")))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
            .count();
        assert_eq!(files, MIGRATIONS.len(), "a file in migrations/ is not in MIGRATIONS");
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {} out of order", m.name);
        }
    }

    #[tokio::test]
    async fn every_table_of_every_migration_exists() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
        for m in MIGRATIONS {
            for statement in statements(m.sql) {
                let Some(rest) = statement.lines().find_map(|l| l.trim().strip_prefix("CREATE TABLE ")) else {
                    continue;
                };
                let table = rest.split_whitespace().next().unwrap();
                sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                    .fetch_one(db.pool())
                    .await
                    .unwrap_or_else(|e| panic!("table {table} of migration {}: {e}", m.version));
            }
        }
    }

    #[tokio::test]
    async fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let db = Db::open_sqlite(&path).await.unwrap();
        db.close().await;
        let db = Db::open_sqlite(&path).await.unwrap();
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM nimbus_schema").fetch_one(db.pool()).await.unwrap().get("n");
        assert_eq!(n, MIGRATIONS.len() as i64);
    }
}
