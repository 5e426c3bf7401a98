//! Consistency of rows and blobs: what a crash or a failing disk can leave behind.
//!
//! - A blob no row names (a crash between the blob's write and its row's commit, or before an
//!   old blob was removed) is an orphan: reported, and removed on repair.
//! - A temporary file (a write that never finished) likewise.
//! - A row whose blob is missing, or whose bytes no longer hash to the recorded SHA-256, is
//!   reported; on repair the row is removed, unless the object is held (a registered model's
//!   artifact): then it is kept and the report says so, because removing it would silently
//!   break a version.
//!
//! At start-up [`sweep`] removes orphans and temporary files (nothing is in flight then).
//! While the server runs, files younger than a grace period are left alone: they may belong to
//! a write whose row is about to commit.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use nimbus_meta::sqlx::{self, Row};
use sha2::{Digest, Sha256};

use crate::{Store, StoreError, holds};

/// One object whose row and bytes disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    /// `s3://bucket/key`
    pub uri: String,
    /// `missing` (no blob) or `damaged` (bytes differ from the recorded digest).
    pub problem: &'static str,
    /// What holds the object, when something does.
    pub held_by: Option<String>,
    /// Whether repair removed the row.
    pub removed: bool,
}

/// What a check found (and, when repairing, did).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects checked.
    pub objects: usize,
    /// Blobs no row names, as locations.
    pub orphans: Vec<String>,
    /// Temporary files of writes that never finished.
    pub temporary: Vec<String>,
    pub damaged: Vec<Damaged>,
    /// Whether orphans and temporary files were removed.
    pub repaired: bool,
}

/// Checks every object and blob; with `repair`, removes orphans, temporary files and rows of
/// damaged objects that nothing holds. Files younger than `grace` are not looked at.
pub async fn check(store: &Store, repair: bool, grace: Duration) -> Result<Report, StoreError> {
    let rows = sqlx::query("SELECT bucket, object_key, sha256, location FROM objects ORDER BY bucket, object_key")
        .fetch_all(store.db().pool())
        .await?;
    let mut report = Report { objects: rows.len(), repaired: repair, ..Report::default() };
    let mut referenced = HashSet::with_capacity(rows.len());
    for r in &rows {
        let (bucket, key): (String, String) = (r.try_get("bucket")?, r.try_get("object_key")?);
        let (sha256, location): (String, String) = (r.try_get("sha256")?, r.try_get("location")?);
        referenced.insert(location.clone());
        let problem = match store.blobs().open(&location).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("missing"),
            Err(e) => return Err(StoreError::Disk(format!("{location}: {e}"))),
            Ok(stream) => {
                let mut stream = Box::pin(stream);
                let mut hash = Sha256::new();
                let mut readable = true;
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(c) => hash.update(&c),
                        Err(_) => {
                            readable = false;
                            break;
                        }
                    }
                }
                (!readable || hex::encode(hash.finalize()) != sha256).then_some("damaged")
            }
        };
        let Some(problem) = problem else { continue };
        let held_by = holds::holder(store.db().pool(), &bucket, &key).await?;
        let removed = repair && held_by.is_none() && remove_row(store, &bucket, &key, &location).await?;
        report.damaged.push(Damaged { uri: format!("s3://{bucket}/{key}"), problem, held_by, removed });
    }
    let files = store.blobs().list().map_err(|e| StoreError::Disk(format!("listing blobs: {e}")))?;
    let now = SystemTime::now();
    for (location, temporary, modified) in files {
        if now.duration_since(modified).unwrap_or_default() < grace || referenced.contains(&location) {
            continue;
        }
        if repair {
            store.blobs().delete(&location).await.map_err(|e| StoreError::Disk(format!("{location}: {e}")))?;
        }
        if temporary { report.temporary.push(location) } else { report.orphans.push(location) }
    }
    Ok(report)
}

/// Removes the row of a damaged object, if it still points at `location`.
async fn remove_row(store: &Store, bucket: &str, key: &str, location: &str) -> Result<bool, StoreError> {
    let n = store
        .db()
        .write_one(
            sqlx::query("DELETE FROM objects WHERE bucket = $1 AND object_key = $2 AND location = $3")
                .bind(bucket)
                .bind(key)
                .bind(location),
        )
        .await?;
    Ok(n > 0)
}

/// The start-up sweep: removes orphan blobs and temporary files, without hashing anything.
/// Returns how many files it removed.
pub async fn sweep(store: &Store) -> Result<usize, StoreError> {
    let rows = sqlx::query("SELECT location FROM objects").fetch_all(store.db().pool()).await?;
    let referenced: HashSet<String> = rows.iter().map(|r| r.try_get("location")).collect::<Result<_, _>>()?;
    let files = store.blobs().list().map_err(|e| StoreError::Disk(format!("listing blobs: {e}")))?;
    let mut removed = 0;
    for (location, _, _) in files.into_iter().filter(|(l, _, _)| !referenced.contains(l)) {
        store.blobs().delete(&location).await.map_err(|e| StoreError::Disk(format!("{location}: {e}")))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::tests::store;

    #[tokio::test]
    async fn finds_and_repairs_orphans_and_damage_but_keeps_held_objects() {
        let (dir, s) = store().await;
        s.create_bucket("data").await.unwrap();
        s.put("data", "ok", Bytes::from_static(b"fine"), "t").await.unwrap();
        let gone = s.put("data", "gone", Bytes::from_static(b"x"), "t").await.unwrap();
        let held = s.put("data", "held", Bytes::from_static(b"model"), "t").await.unwrap();
        let mut tx = s.db().write().await.unwrap();
        holds::hold(&mut tx.tx, "", "data", "held", &held.sha256, "model group g version 1").await.unwrap();
        tx.commit().await.unwrap();
        let root = dir.path().join("objects");
        async fn location(s: &Store, key: &str) -> String {
            let row = sqlx::query("SELECT location FROM objects WHERE object_key = $1").bind(key);
            row.fetch_one(s.db().pool()).await.unwrap().try_get("location").unwrap()
        }
        std::fs::remove_file(root.join(location(&s, "gone").await)).unwrap();
        std::fs::write(root.join(location(&s, "held").await), b"tampered").unwrap();
        std::fs::write(root.join("data/orphan-blob"), b"left by a crash").unwrap();
        std::fs::write(root.join("data/.tmp-unfinished"), b"half").unwrap();

        let found = check(&s, false, Duration::ZERO).await.unwrap();
        assert_eq!(found.objects, 3);
        assert_eq!(found.orphans, ["data/orphan-blob"]);
        assert_eq!(found.temporary, ["data/.tmp-unfinished"]);
        let damaged: Vec<(&str, &str, bool)> =
            found.damaged.iter().map(|d| (d.uri.as_str(), d.problem, d.held_by.is_some())).collect();
        assert_eq!(damaged, [("s3://data/gone", "missing", false), ("s3://data/held", "damaged", true)]);
        assert!(root.join("data/orphan-blob").exists(), "a check alone changes nothing");

        let young = check(&s, false, Duration::from_secs(3600)).await.unwrap();
        assert!(young.orphans.is_empty() && young.temporary.is_empty(), "recent files may be writes in flight");
        let repaired = check(&s, true, Duration::ZERO).await.unwrap();
        assert!(repaired.damaged.iter().any(|d| d.uri == gone.uri() && d.removed));
        assert!(repaired.damaged.iter().any(|d| d.uri == held.uri() && !d.removed), "held objects are kept");
        assert!(!root.join("data/orphan-blob").exists() && !root.join("data/.tmp-unfinished").exists());
        let after = check(&s, false, Duration::ZERO).await.unwrap();
        assert_eq!((after.objects, after.orphans.len(), after.damaged.len()), (2, 0, 1));

        std::fs::write(root.join("data/another-orphan"), b"x").unwrap();
        assert_eq!(sweep(&s).await.unwrap(), 1);
        assert_eq!(s.get("data", "ok").await.unwrap().1, Bytes::from_static(b"fine"));
    }
}
