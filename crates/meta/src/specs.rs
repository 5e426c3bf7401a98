//! Declared resources stored as JSON documents: one row per `(kind, name)` in `specs`.
//!
//! Functions and APIs are kept this way; the server compiles them into its in-memory routing
//! and runtime tables. A document's digest (hex SHA-256 of its text) lets `nimbus apply` say
//! `unchanged` without comparing structures.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Db, MetaError};

/// One stored document.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSpec {
    pub kind: String,
    pub name: String,
    /// The document, as JSON text.
    pub spec: String,
    pub digest: String,
    pub updated_ms: i64,
    pub updated_by: String,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<StoredSpec, MetaError> {
    Ok(StoredSpec {
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        spec: r.try_get("spec")?,
        digest: r.try_get("digest")?,
        updated_ms: r.try_get("updated_ms")?,
        updated_by: r.try_get("updated_by")?,
    })
}

/// The digest of a stored document: the hex SHA-256 of its JSON text.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Db {
    /// Creates or replaces the document `kind`/`name` with `spec` as JSON; its digest is the
    /// hex SHA-256 of that text. Returns whether anything changed.
    pub async fn put_spec(
        &self,
        kind: &str,
        name: &str,
        spec: &impl serde::Serialize,
        now_ms: i64,
        actor: &str,
    ) -> Result<bool, MetaError> {
        let text = serde_json::to_string(spec).expect("declarations serialise");
        let digest = digest(&text);
        let (spec, digest) = (text.as_str(), digest.as_str());
        let mut tx = self.write().await?;
        let current: Option<String> = sqlx::query("SELECT digest FROM specs WHERE kind = $1 AND name = $2")
            .bind(kind)
            .bind(name)
            .fetch_optional(&mut *tx.tx)
            .await?
            .map(|r| r.try_get("digest"))
            .transpose()?;
        if current.as_deref() == Some(digest) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO specs (kind, name, spec, digest, updated_ms, updated_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec, digest = excluded.digest, \
             updated_ms = excluded.updated_ms, updated_by = excluded.updated_by",
        )
        .bind(kind)
        .bind(name)
        .bind(spec)
        .bind(digest)
        .bind(now_ms)
        .bind(actor)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every document of `kind`, by name.
    pub async fn specs(&self, kind: &str) -> Result<Vec<StoredSpec>, MetaError> {
        let rows = sqlx::query(
            "SELECT kind, name, spec, digest, updated_ms, updated_by FROM specs WHERE kind = $1 ORDER BY name",
        )
        .bind(kind)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes the document `kind`/`name`; returns whether it existed.
    pub async fn delete_spec(&self, kind: &str, name: &str) -> Result<bool, MetaError> {
        let n = self
            .write_one(sqlx::query("DELETE FROM specs WHERE kind = $1 AND name = $2").bind(kind).bind(name))
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_reports_changes_and_lists_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
        let (a1, a2) = (serde_json::json!({"a": 1}), serde_json::json!({"a": 2}));
        assert!(db.put_spec("function", "predict", &a1, 1, "admin").await.unwrap());
        assert!(!db.put_spec("function", "predict", &a1, 2, "admin").await.unwrap(), "same digest");
        assert!(db.put_spec("function", "predict", &a2, 3, "admin").await.unwrap());
        assert!(db.put_spec("api", "predict", &serde_json::json!({}), 4, "admin").await.unwrap());
        let listed = db.specs("function").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].spec.as_str(), listed[0].updated_ms), ("{\"a\":2}", 3));
        assert!(db.delete_spec("function", "predict").await.unwrap());
        assert!(!db.delete_spec("function", "predict").await.unwrap());
        assert_eq!(db.specs("api").await.unwrap().len(), 1);
    }
}
