//! The object store: buckets of keyed objects.
//!
//! Bytes go to blob files ([`blobs`]), each write to a fresh location, streamed, hashed and
//! fsynced before anything points at them. The object's row in the metadata database — key,
//! size, SHA-256, location — is written only after that, in one transaction that also retires
//! the previous location. So a crash at any moment leaves either the old object or the new one
//! visible, never a partial one; at worst an unreferenced blob remains, which [`fsck`] removes.
//! Reads check the digest.
//!
//! An object may carry legal holds ([`holds`]): the artifact of every registered model version
//! is held, and a held object can be neither overwritten nor deleted.
#![forbid(unsafe_code)]

pub mod blobs;
pub mod fsck;
pub mod holds;

use std::io;
use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use nimbus_core::{clock, names};
use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row, any::AnyRow};
use sha2::{Digest, Sha256};

use crate::blobs::{LocalBlobs, WriteError};

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
    /// The object is held (it is a registered model's artifact) and cannot change.
    #[error(
        "object s3://{bucket}/{key} is the artifact of {holder} and cannot be overwritten or deleted; write to a new key instead"
    )]
    Held { bucket: String, key: String, holder: String },
    /// The stored bytes no longer hash to the recorded digest.
    #[error("object s3://{bucket}/{key} is damaged: its bytes do not match the recorded SHA-256")]
    Corrupt { bucket: String, key: String },
    /// The object is not the one expected: its digest differs from the one recorded elsewhere
    /// (a registered version's artifact digest).
    #[error("object s3://{bucket}/{key} has SHA-256 {found}, not the {expected} recorded for it")]
    Changed { bucket: String, key: String, expected: String, found: String },
    /// The bytes to store could not be read (the client went away, a limit was crossed).
    #[error("{0}")]
    Source(io::Error),
    /// The disk failed.
    #[error("object storage: {0}")]
    Disk(String),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Meta(e.into())
    }
}

impl From<WriteError> for StoreError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Source(e) => StoreError::Source(e),
            e @ WriteError::Disk { .. } => StoreError::Disk(e.to_string()),
        }
    }
}

/// Refuses the keys `.` and `..`: objects are addressed by URL path, and URL parsers (WHATWG's,
/// as in browsers and reqwest) resolve such a segment even when it is percent-encoded, so an
/// object under one could be written by some clients and never read or removed by others.
fn addressable(key: &str) -> Result<(), StoreError> {
    if matches!(key, "." | "..") {
        return Err(StoreError::InvalidName(names::InvalidName {
            kind: "object key",
            value: key.to_string(),
            rule: "use a key other than '.' or '..', which URL clients resolve as path segments even when \
                   percent-encoded, so the object could not be read back",
        }));
    }
    Ok(())
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

/// What writing an object's row did.
enum Recorded {
    /// The row now names the new blob; the blob it named before, if any, is unreferenced.
    Replaced(Option<String>),
    /// The object held these very bytes already; the new blob is not needed.
    Unchanged,
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

/// A stream of an object's bytes.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The object store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    blobs: LocalBlobs,
}

const COLUMNS: &str = "bucket, object_key, size, sha256, content_type, created_ms";

impl Store {
    /// A store keeping bytes in files under `root`.
    pub fn local(db: Db, root: &Path) -> Result<Store, StoreError> {
        let blobs = LocalBlobs::at(root).map_err(|e| StoreError::Disk(format!("{}: {e}", root.display())))?;
        Ok(Store { db, blobs })
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) -> Result<BucketInfo, StoreError> {
        names::bucket(name)?;
        let created_ms = clock::now_ms();
        let n = self
            .db
            .write_one(
                sqlx::query("INSERT INTO buckets (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(created_ms),
            )
            .await?;
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

    /// Whether a bucket exists.
    pub async fn bucket_exists(&self, name: &str) -> Result<bool, StoreError> {
        let found =
            sqlx::query("SELECT name FROM buckets WHERE name = $1").bind(name).fetch_optional(self.db.pool()).await?;
        Ok(found.is_some())
    }

    /// Deletes an empty bucket.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.db.write().await?;
        require_bucket(&mut tx.tx, name).await?;
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

    /// Stores `bytes` under `bucket/key`, replacing any previous object there.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<ObjectInfo, StoreError> {
        self.put_stream(bucket, key, futures::stream::iter([Ok(bytes)]), content_type).await
    }

    /// Stores the bytes of `chunks` under `bucket/key`, replacing any previous object there.
    /// The bytes are streamed to disk, never held whole; the object appears only once they
    /// are all down (and is not replaced at all when the stream fails).
    pub async fn put_stream<S>(
        &self,
        bucket: &str,
        key: &str,
        chunks: S,
        content_type: &str,
    ) -> Result<ObjectInfo, StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        names::object_key(key)?;
        addressable(key)?;
        // Fail before reading a byte when the write cannot succeed.
        if !self.bucket_exists(bucket).await? {
            return Err(StoreError::NoSuchBucket(bucket.to_string()));
        }
        if let Some(holder) = holds::holder(self.db.pool(), bucket, key).await? {
            return Err(StoreError::Held { bucket: bucket.to_string(), key: key.to_string(), holder });
        }
        let written = self.blobs.write(bucket, chunks).await?;
        let info = ObjectInfo {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: written.size,
            sha256: written.sha256,
            content_type: content_type.to_string(),
            created_ms: clock::now_ms(),
        };
        match self.record(&info, &written.location).await {
            Ok(Recorded::Replaced(previous)) => {
                if let Some(old) = previous {
                    self.remove_blob(&old).await;
                }
                Ok(info)
            }
            Ok(Recorded::Unchanged) => {
                self.remove_blob(&written.location).await;
                Ok(info)
            }
            Err(e) => {
                self.remove_blob(&written.location).await;
                Err(e)
            }
        }
    }

    /// Writes the object's row. A held object is refused unless the new bytes are the very
    /// bytes it holds (two imports of one content-addressed artifact race to the same key):
    /// then nothing changes.
    async fn record(&self, info: &ObjectInfo, location: &str) -> Result<Recorded, StoreError> {
        let mut tx = self.db.write().await?;
        require_bucket(&mut tx.tx, &info.bucket).await?;
        if let Some(holder) = holds::holder(&mut *tx.tx, &info.bucket, &info.key).await? {
            let current: Option<String> =
                sqlx::query("SELECT sha256 FROM objects WHERE bucket = $1 AND object_key = $2")
                    .bind(&info.bucket)
                    .bind(&info.key)
                    .fetch_optional(&mut *tx.tx)
                    .await?
                    .map(|r| r.try_get("sha256"))
                    .transpose()?;
            if current.as_deref() == Some(info.sha256.as_str()) {
                return Ok(Recorded::Unchanged);
            }
            return Err(StoreError::Held { bucket: info.bucket.clone(), key: info.key.clone(), holder });
        }
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
        Ok(Recorded::Replaced(previous))
    }

    async fn remove_blob(&self, location: &str) {
        if let Err(e) = self.blobs.delete(location).await {
            tracing::warn!(location, error = %e, "could not remove an unreferenced blob; `nimbus store fsck --repair` will");
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
            None if self.bucket_exists(bucket).await? => {
                Err(StoreError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() })
            }
            None => Err(StoreError::NoSuchBucket(bucket.to_string())),
        }
    }

    /// The object's metadata.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        Ok(self.locate(bucket, key).await?.0)
    }

    /// The object's metadata and bytes; the bytes are checked against the recorded digest.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, Bytes), StoreError> {
        let (info, location) = self.locate(bucket, key).await?;
        let bytes = self.read_blob(&info, &location).await?;
        if hex::encode(Sha256::digest(&bytes)) != info.sha256 {
            return Err(StoreError::Corrupt { bucket: bucket.to_string(), key: key.to_string() });
        }
        Ok((info, bytes))
    }

    /// The object's bytes, which must hash to `sha256` (a digest recorded elsewhere, such as a
    /// registered version's): anything else is refused, whatever the object's row says.
    pub async fn get_expecting(&self, bucket: &str, key: &str, sha256: &str) -> Result<Bytes, StoreError> {
        let (info, location) = self.locate(bucket, key).await?;
        if info.sha256 != sha256 {
            let (expected, found) = (sha256.to_string(), info.sha256);
            return Err(StoreError::Changed { bucket: bucket.to_string(), key: key.to_string(), expected, found });
        }
        let bytes = self.read_blob(&info, &location).await?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(StoreError::Corrupt { bucket: bucket.to_string(), key: key.to_string() });
        }
        Ok(bytes)
    }

    /// The object's metadata and a stream of its bytes, for downloads of any size. The stream
    /// is checked against the recorded digest as it goes: when the bytes turn out damaged, its
    /// last item is an error instead of the end, so the transfer fails rather than completes.
    pub async fn open(&self, bucket: &str, key: &str) -> Result<(ObjectInfo, ByteStream), StoreError> {
        let (info, location) = self.locate(bucket, key).await?;
        let stream = match self.blobs.open(&location).await {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing_blob(&info)),
            Err(e) => return Err(StoreError::Disk(format!("{location}: {e}"))),
        };
        let expected = info.sha256.clone();
        let uri = info.uri();
        let checked =
            futures::stream::unfold((Box::pin(stream), Some(Sha256::new())), move |(mut stream, mut hash)| {
                let (expected, uri) = (expected.clone(), uri.clone());
                async move {
                    let h = hash.as_mut()?;
                    match stream.next().await {
                        Some(Ok(chunk)) => {
                            h.update(&chunk);
                            Some((Ok(chunk), (stream, hash)))
                        }
                        Some(Err(e)) => Some((Err(e), (stream, None))),
                        None => {
                            let found = hex::encode(hash.take()?.finalize());
                            (found != expected).then(|| {
                                let e = io::Error::new(io::ErrorKind::InvalidData, format!("{uri} is damaged"));
                                (Err(e), (stream, None))
                            })
                        }
                    }
                }
            });
        Ok((info, Box::pin(checked)))
    }

    async fn read_blob(&self, info: &ObjectInfo, location: &str) -> Result<Bytes, StoreError> {
        match self.blobs.read(location).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.missing_blob(info)),
            Err(e) => Err(StoreError::Disk(format!("{location}: {e}"))),
        }
    }

    fn missing_blob(&self, info: &ObjectInfo) -> StoreError {
        StoreError::Corrupt { bucket: info.bucket.clone(), key: info.key.clone() }
    }

    /// Deletes an object; deleting a missing key is not an error (as in S3). A held object is
    /// refused.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.db.write().await?;
        require_bucket(&mut tx.tx, bucket).await?;
        if let Some(holder) = holds::holder(&mut *tx.tx, bucket, key).await? {
            return Err(StoreError::Held { bucket: bucket.to_string(), key: key.to_string(), holder });
        }
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
        if !self.bucket_exists(bucket).await? {
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

    /// The metadata database this store records into.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn blobs(&self) -> &LocalBlobs {
        &self.blobs
    }
}

async fn require_bucket(tx: &mut sqlx::Transaction<'static, sqlx::Any>, name: &str) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT name FROM buckets WHERE name = $1").bind(name).fetch_optional(&mut **tx).await?;
    found.map(|_| ()).ok_or_else(|| StoreError::NoSuchBucket(name.to_string()))
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

    pub(crate) async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
        let store = Store::local(db, &dir.path().join("objects")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_keys_no_url_can_address_are_refused() {
        let (_dir, s) = store().await;
        s.create_bucket("data").await.unwrap();
        for key in [".", ".."] {
            let e = s.put("data", key, Bytes::from_static(b"x"), "t").await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidName(_)), "{key}: {e}");
        }
        for key in ["...", ".x", "a/..", "../a", "%2E%2E"] {
            s.put("data", key, Bytes::from_static(b"x"), "t").await.unwrap();
        }
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
    async fn damaged_bytes_are_detected_whole_and_streamed() {
        let (dir, s) = store().await;
        s.create_bucket("data").await.unwrap();
        let info = s.put("data", "k", Bytes::from_static(b"good"), "text/plain").await.unwrap();
        let (_, stream) = s.open("data", "k").await.unwrap();
        let chunks: Vec<io::Result<Bytes>> = stream.collect().await;
        assert!(chunks.iter().all(Result::is_ok) && chunks.len() == 1);
        assert_eq!(s.get_expecting("data", "k", &info.sha256).await.unwrap(), Bytes::from_static(b"good"));
        let e = s.get_expecting("data", "k", &"0".repeat(64)).await.unwrap_err();
        assert!(matches!(e, StoreError::Changed { .. }), "{e}");

        let blob = std::fs::read_dir(dir.path().join("objects/data")).unwrap().next().unwrap().unwrap().path();
        std::fs::write(blob, b"evil").unwrap();
        assert!(matches!(s.get("data", "k").await, Err(StoreError::Corrupt { .. })));
        assert!(matches!(s.get_expecting("data", "k", &info.sha256).await, Err(StoreError::Corrupt { .. })));
        let (_, stream) = s.open("data", "k").await.unwrap();
        let chunks: Vec<io::Result<Bytes>> = stream.collect().await;
        assert!(chunks.last().unwrap().is_err(), "a damaged download ends in an error, not a clean end");
    }

    #[tokio::test]
    async fn a_failed_stream_leaves_the_old_object() {
        let (_dir, s) = store().await;
        s.create_bucket("data").await.unwrap();
        s.put("data", "k", Bytes::from_static(b"old"), "text/plain").await.unwrap();
        let failing =
            futures::stream::iter(vec![Ok(Bytes::from_static(b"ne")), Err(io::Error::other("client went away"))]);
        let e = s.put_stream("data", "k", failing, "text/plain").await.unwrap_err();
        assert!(matches!(e, StoreError::Source(_)), "{e}");
        assert_eq!(s.get("data", "k").await.unwrap().1, Bytes::from_static(b"old"));
        let e = s.put("nope", "k", Bytes::new(), "x").await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchBucket(_)), "{e}");
    }
}
