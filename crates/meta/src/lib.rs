//! The metadata database: SQLite in the data directory by default, PostgreSQL for scale-out.
//!
//! Both backends sit behind [`Db`], which hands out sqlx `Any` connections and transactions.
//! Every query in nimbus is written once in the SQL both dialects accept (`$1` parameters,
//! `TEXT` and `BIGINT` columns only), so the same code and the same tests run on both.
//! Schema changes are the numbered files under `migrations/`, embedded in the binary and
//! applied in order at start-up ([`migrate`]).
#![forbid(unsafe_code)]

mod migrate;
mod specs;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use migrate::{MIGRATIONS, Migration, SCHEMA_VERSION};
pub use specs::{StoredSpec, digest as spec_digest};
pub use sqlx;

/// Errors of the metadata layer.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database could not be reached or opened.
    #[error("cannot open metadata database {target}: {source}")]
    Open {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database holds a newer schema than this binary knows.
    #[error("metadata schema version {found} is newer than this nimbus supports ({supported}); upgrade nimbus")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A migration failed; the database is left at the previous version.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Any other database error.
    #[error("metadata database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Which database engine holds the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the metadata database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time and answers a second with SQLITE_BUSY when two
    /// deferred transactions both try to upgrade; serialising writers in-process avoids that.
    /// PostgreSQL needs no such lock (row locks do the job).
    write_lock: std::sync::Arc<Mutex<()>>,
}

/// A write transaction; on SQLite it also holds the process-wide writer lock.
pub struct WriteTx {
    /// The open transaction; commit it with [`WriteTx::commit`].
    pub tx: Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits the transaction and releases the writer lock.
    pub async fn commit(self) -> Result<(), MetaError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path`, and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Db, MetaError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::open_url(&url, Backend::Sqlite, &path.display().to_string()).await
    }

    /// Opens a database by URL (`postgres://…` or `sqlite://…`), and migrates it.
    pub async fn open(url: &str) -> Result<Db, MetaError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        Self::open_url(url, backend, &redact_url(url)).await
    }

    async fn open_url(url: &str, backend: Backend, shown: &str) -> Result<Db, MetaError> {
        install_default_drivers();
        let opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10));
        let opts = if backend == Backend::Sqlite {
            opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // FULL makes every commit durable before it returns, so a crash right after
                    // a registration never loses it.
                    conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        let pool = opts.connect(url).await.map_err(|source| MetaError::Open { target: shown.to_string(), source })?;
        if backend == Backend::Sqlite {
            sqlx::raw_sql("PRAGMA journal_mode = WAL;").execute(&pool).await?;
        }
        let db = Db { pool, backend, write_lock: Default::default() };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// The connection pool, for reads and single-statement writes.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `" FOR UPDATE"` on PostgreSQL (row lock inside a transaction), nothing on SQLite, where
    /// [`Db::write`] already serialises writers.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Starts a write transaction. Every write in nimbus goes through here (never through
    /// [`Db::pool`]): on SQLite a write outside the writer lock could commit between another
    /// transaction's read and its write, which SQLite refuses with SQLITE_BUSY_SNAPSHOT.
    pub async fn write(&self) -> Result<WriteTx, MetaError> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Runs one write statement in its own write transaction; returns the rows it touched.
    pub async fn write_one<'q>(
        &self,
        statement: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<u64, MetaError> {
        let mut tx = self.write().await?;
        let n = statement.execute(&mut *tx.tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hides the password of a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
