//! The object store: buckets of keyed objects.
//!
//! Bytes go to an [`object_store`] backend (files under `DIR/objects` by default), each write
//! to a fresh location, written atomically (temporary file + rename) by the backend. The
//! object's row in the metadata database — key, size, SHA-256, location — is written only
//! after the bytes are safely down, in one transaction that also retires the previous
//! location. So a crash at any moment leaves either the old object or the new one visible,
//! never a partial one; at worst an unreferenced blob remains. Reads check the digest.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use nimbus_core::{clock, names};
use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row, any::AnyRow};
use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

/// Errors of the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bucket or key name breaks its rules.
    #[error(transparent)]
    InvalidName(#[from] names::InvalidName),
    /// The bucket does not exist.
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    /// The bucket already exists.
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    /// The bucket still holds objects.
    #[error("bucket {0:?} is not empty; delete its objects first")]
    BucketNotEmpty(String),
    /// No object under that key.
    #[error("object s3://{bucket}/{key} does not exist")]
    NoSuchKey { bucket: String, key: String },
    /// The stored bytes no longer hash to the recorded digest.
    #[error("object s3://{bucket}/{key} is damaged: its bytes do not match the recorded SHA-256")]
    Corrupt { bucket: String, key: String },
    /// The byte backend failed.
    #[error("object backend: {0}")]
    Backend(#[from] object_store::Error),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Meta(e.into())
    }
}

/// What the store knows of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    pub content_type: String,
    pub created_ms: i64,
}

impl ObjectInfo {
    /// `s3://bucket/key`
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// A bucket and its creation time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: i64,
}

/// The object store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    blobs: Arc<dyn ObjectStore>,
}

const COLUMNS: &str = "bucket, object_key, size, sha256, content_type, created_ms";

impl Store {
    /// A store keeping bytes in files under `root`.
    pub fn local(db: Db, root: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root)
            .map_err(|e| object_store::Error::Generic { store: "local", source: Box::new(e) })?;
        let fs = LocalFileSystem::new_with_prefix(root)?;
        Ok(Store { db, blobs: Arc::new(fs) })
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) -> Result<BucketInfo, StoreError> {
        names::bucket(name)?;
        let created_ms = clock::now_ms();
        let mut tx = self.db.write().await?;
        let n = sqlx::query("INSERT INTO buckets (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(created_ms)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Err(StoreError::BucketExists(name.to_string()));
        }
        Ok(BucketInfo { name: name.to_string(), created_ms })
    }

    /// Creates a bucket unless it exists.
    pub async fn ensure_bucket(&self, name: &str) -> Result<(), StoreError> {
        match self.create_bucket(name).await {
            Ok(_) | Err(StoreError::BucketExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// All buckets, by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, StoreError> {
        let rows = sqlx::query("SELECT name, created_ms FROM buckets ORDER BY name").fetch_all(self.db.pool()).await?;
        rows.iter().map(|r| Ok(BucketInfo { name: r.try_get("name")?, created_ms: r.try_get("created_ms")? })).collect()
    }

    /// Deletes an empty bucket.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.db.write().await?;
        self.require_bucket(&mut tx.tx, name).await?;
        let any = sqlx::query("SELECT object_key FROM objects WHERE bucket = $1 LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *tx.tx)
            .await?;
        if any.is_some() {
            return Err(StoreError::BucketNotEmpty(name.to_string()));
        }
        sqlx::query("DELETE FROM buckets WHERE name = $1").bind(name).execute(&mut *tx.tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn require_bucket(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        name: &str,
    ) -> Result<(), StoreError> {
        let found =
            sqlx::query("SELECT name FROM buckets WHERE name = $1").bind(name).fetch_optional(&mut **tx).await?;
        found.map(|_| ()).ok_or_else(|| StoreError::NoSuchBucket(name.to_string()))
    }

    /// Stores `bytes` under `bucket/key`, replacing any previous object there.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<ObjectInfo, StoreError> {
        names::object_key(key)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as i64;
        let location = format!("{bucket}/{}", nimbus_core::new_id());
        // Bytes first: until the row below commits, nobody can see them.
        self.blobs.put(&BlobPath::from(location.as_str()), PutPayload::from_bytes(bytes)).await?;

        let info = ObjectInfo {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size,
            sha256,
            content_type: content_type.to_string(),
            created_ms: clock::now_ms(),
        };
        let result = self.record(&info, &location).await;
        match result {
            Ok(previous) => {
                if let Some(old) = previous {
                    self.remove_blob(&old).await;
                }
                Ok(info)
            }
            Err(e) => {
                self.remove_blob(&location).await;
                Err(e)
            }
        }
    }

    /// Writes the object's row; returns the location it replaced, if any.
    async fn record(&self, info: &ObjectInfo, location: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.db.write().await?;
        self.require_bucket(&mut tx.tx, &info.bucket).await?;
        let previous: Option<String> = sqlx::query(&format!(
            "SELECT location FROM objects WHERE bucket = $1 AND object_key = $2{}",
            self.db.for_update()
        ))
        .bind(&info.bucket)
        .bind(&info.key)
        .fetch_optional(&mut *tx.tx)
        .await?
        .map(|r| r.try_get("location"))
        .transpose()?;
        sqlx::query(
            "INSERT INTO objects (bucket, object_key, size, sha256, content_type, location, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (bucket, object_key) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, \
             content_type = excluded.content_type, location = excluded.location, created_ms = excluded.created_ms",
        )
        .bind(&info.bucket)
        .bind(&info.key)
        .bind(info.size)
        .bind(&info.sha256)
        .bind(&info.content_type)
        .bind(location)
        .bind(info.created_ms)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    async fn remove_blob(&self, location: &str) {
        if let Err(e) = self.blobs.delete(&BlobPath::from(location)).await {
            tracing::warn!(location, error = %e, "could not remove an unreferenced blob");
        }
    }

    async fn locate(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, String), StoreError> {
        let row =
            sqlx::query(&format!("SELECT {COLUMNS}, location FROM objects WHERE bucket = $1 AND object_key = $2"))
                .bind(bucket)
                .bind(key)
                .fetch_optional(self.db.pool())
                .await?;
        match row {
            Some(r) => Ok((object_info(&r)?, r.try_get("location")?)),
            None => {
                let b = sqlx::query("SELECT name FROM buckets WHERE name = $1")
                    .bind(bucket)
                    .fetch_optional(self.db.pool())
                    .await?;
                Err(match b {
                    None => StoreError::NoSuchBucket(bucket.to_string()),
                    Some(_) => StoreError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() },
                })
            }
        }
    }

    /// The object's metadata.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        Ok(self.locate(bucket, key).await?.0)
    }

    /// The object's metadata and bytes; the bytes are checked against the recorded digest.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, Bytes), StoreError> {
        let (info, location) = self.locate(bucket, key).await?;
        let bytes = self.blobs.get(&BlobPath::from(location.as_str())).await?.bytes().await?;
        if hex::encode(Sha256::digest(&bytes)) != info.sha256 {
            return Err(StoreError::Corrupt { bucket: bucket.to_string(), key: key.to_string() });
        }
        Ok((info, bytes))
    }

    /// Deletes an object; deleting a missing key is not an error (as in S3).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.db.write().await?;
        self.require_bucket(&mut tx.tx, bucket).await?;
        let location: Option<String> =
            sqlx::query("SELECT location FROM objects WHERE bucket = $1 AND object_key = $2")
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *tx.tx)
                .await?
                .map(|r| r.try_get("location"))
                .transpose()?;
        sqlx::query("DELETE FROM objects WHERE bucket = $1 AND object_key = $2")
            .bind(bucket)
            .bind(key)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        if let Some(loc) = location {
            self.remove_blob(&loc).await;
        }
        Ok(())
    }

    /// Objects whose keys start with `prefix`, in key order, after `start_after`, at most
    /// `limit` of them.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        limit: i64,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        let b =
            sqlx::query("SELECT name FROM buckets WHERE name = $1").bind(bucket).fetch_optional(self.db.pool()).await?;
        if b.is_none() {
            return Err(StoreError::NoSuchBucket(bucket.to_string()));
        }
        // Prefix match by range, not LIKE, so '%' and '_' in keys mean themselves.
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM objects WHERE bucket = $1 AND object_key > $2 AND object_key >= $3 \
             AND substr(object_key, 1, CAST($4 AS INTEGER)) = $3 ORDER BY object_key LIMIT $5"
        ))
        .bind(bucket)
        .bind(start_after)
        .bind(prefix)
        .bind(prefix.chars().count() as i64)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(object_info).collect::<Result<_, _>>()?)
    }
}

fn object_info(r: &AnyRow) -> Result<ObjectInfo, sqlx::Error> {
    Ok(ObjectInfo {
        bucket: r.try_get("bucket")?,
        key: r.try_get("object_key")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        content_type: r.try_get("content_type")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// Splits `s3://bucket/key` into its parts.
pub fn parse_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
        let store = Store::local(db, &dir.path().join("objects")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let (dir, s) = store().await;
        s.create_bucket("data").await.unwrap();
        assert!(matches!(s.create_bucket("data").await, Err(StoreError::BucketExists(_))));
        let info = s.put("data", "a/x%_1.csv", Bytes::from_static(b"hello"), "text/csv").await.unwrap();
        assert_eq!(info.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        s.put("data", "a/y.csv", Bytes::from_static(b"v1"), "text/csv").await.unwrap();
        s.put("data", "a/y.csv", Bytes::from_static(b"v2"), "text/csv").await.unwrap();
        s.put("data", "b.csv", Bytes::from_static(b"b"), "text/csv").await.unwrap();
        assert_eq!(s.get("data", "a/y.csv").await.unwrap().1, Bytes::from_static(b"v2"));
        let keys: Vec<String> = s.list("data", "a/", "", 100).await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/x%_1.csv", "a/y.csv"]);
        let keys: Vec<String> = s.list("data", "", "a/y.csv", 100).await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["b.csv"]);
        // one blob per live object: the overwritten one was removed
        let blobs = std::fs::read_dir(dir.path().join("objects/data")).unwrap().count();
        assert_eq!(blobs, 3);
        assert!(matches!(s.delete_bucket("data").await, Err(StoreError::BucketNotEmpty(_))));
        s.delete("data", "b.csv").await.unwrap();
        assert!(matches!(s.get("data", "b.csv").await, Err(StoreError::NoSuchKey { .. })));
        assert!(matches!(s.get("nope", "b.csv").await, Err(StoreError::NoSuchBucket(_))));
    }

    #[tokio::test]
    async fn damaged_bytes_are_detected() {
        let (dir, s) = store().await;
        s.create_bucket("data").await.unwrap();
        s.put("data", "k", Bytes::from_static(b"good"), "text/plain").await.unwrap();
        let blob = std::fs::read_dir(dir.path().join("objects/data")).unwrap().next().unwrap().unwrap().path();
        std::fs::write(blob, b"evil").unwrap();
        assert!(matches!(s.get("data", "k").await, Err(StoreError::Corrupt { .. })));
    }
}
