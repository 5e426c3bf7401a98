//! Blob files on the local disk: the bytes behind object rows.
//!
//! Every write goes to a fresh location `ROOT/{bucket}/{uuid}`: the bytes are streamed into
//! `ROOT/{bucket}/.tmp-{uuid}` (mode 0600) while being hashed, the file is fsynced, renamed to
//! its final name, and the directory is fsynced, so once [`LocalBlobs::write`] returns the
//! blob survives a power loss. Only then may a row point at it. Temporary files and blobs that
//! no row names are what a crash leaves behind; [`crate::fsck`] finds and removes them.

use std::io;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The prefix of temporary files; nothing else in a bucket directory starts with a dot.
pub const TMP_PREFIX: &str = ".tmp-";

/// Bytes read per chunk when streaming a blob out.
const READ_CHUNK: usize = 256 * 1024;

/// What a finished write produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub location: String,
    pub size: i64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
}

/// Why a streamed write stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The source of the bytes failed (a client that went away, a body over its limit, a
    /// payload whose hash did not match its signature).
    #[error("{0}")]
    Source(io::Error),
    /// The disk failed.
    #[error("writing blob {path}: {source}")]
    Disk {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Blob files under one root directory.
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// Blobs under `root`, created (mode 0700) when missing.
    pub fn at(root: &Path) -> io::Result<LocalBlobs> {
        create_private_dir(root)?;
        Ok(LocalBlobs { root: root.to_path_buf() })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, location: &str) -> PathBuf {
        self.root.join(location)
    }

    /// Streams `chunks` into a new blob of `bucket`, hashing as it goes; durable on return.
    /// On any error nothing is left behind.
    pub async fn write<S>(&self, bucket: &str, mut chunks: S) -> Result<Written, WriteError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let dir = self.root.join(bucket);
        let disk = |path: &Path| {
            let path = path.display().to_string();
            move |source| WriteError::Disk { path, source }
        };
        create_private_dir(&dir).map_err(disk(&dir))?;
        let id = nimbus_core::new_id();
        let tmp = dir.join(format!("{TMP_PREFIX}{id}"));
        let result: Result<Written, WriteError> = async {
            let mut file = open_private(&tmp).await.map_err(disk(&tmp))?;
            let mut hash = Sha256::new();
            let mut size = 0i64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(WriteError::Source)?;
                hash.update(&chunk);
                size += chunk.len() as i64;
                file.write_all(&chunk).await.map_err(disk(&tmp))?;
            }
            file.flush().await.map_err(disk(&tmp))?;
            file.sync_all().await.map_err(disk(&tmp))?;
            drop(file);
            let location = format!("{bucket}/{id}");
            let fin = self.path(&location);
            tokio::fs::rename(&tmp, &fin).await.map_err(disk(&fin))?;
            sync_dir(&dir).await.map_err(disk(&dir))?;
            Ok(Written { location, size, sha256: hex::encode(hash.finalize()) })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// The whole blob.
    pub async fn read(&self, location: &str) -> io::Result<Bytes> {
        tokio::fs::read(self.path(location)).await.map(Bytes::from)
    }

    /// The blob as a stream of chunks.
    pub async fn open(&self, location: &str) -> io::Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static> {
        let file = tokio::fs::File::open(self.path(location)).await?;
        Ok(futures::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buf = BytesMut::zeroed(READ_CHUNK);
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(buf.freeze()), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }))
    }

    /// Removes a blob; a missing one is not an error.
    pub async fn delete(&self, location: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(location)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every file under the root as `(location, is_temporary, modified)`.
    pub fn list(&self) -> io::Result<Vec<(String, bool, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for bucket in std::fs::read_dir(&self.root)? {
            let bucket = bucket?;
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            let name = bucket.file_name().to_string_lossy().into_owned();
            for entry in std::fs::read_dir(bucket.path())? {
                let entry = entry?;
                let file = entry.file_name().to_string_lossy().into_owned();
                let modified = entry.metadata()?.modified()?;
                out.push((format!("{name}/{file}"), file.starts_with(TMP_PREFIX), modified));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Creates a directory (and its parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

async fn open_private(path: &Path) -> io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await
}

/// Makes a directory's entries (a rename, a new file) durable.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = tokio::fs::File::open(dir).await?;
        dir.sync_all().await
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = io::Result<Bytes>> + Unpin {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn writes_are_private_hashed_and_leave_nothing_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::at(&dir.path().join("objects")).unwrap();
        let w = blobs.write("data", chunks(&[b"hel", b"lo"])).await.unwrap();
        assert_eq!(w.size, 5);
        assert_eq!(w.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(blobs.read(&w.location).await.unwrap(), Bytes::from_static(b"hello"));
        let streamed: Vec<Bytes> = Box::pin(blobs.open(&w.location).await.unwrap()).map(|c| c.unwrap()).collect().await;
        assert_eq!(streamed.concat(), b"hello");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("objects").join(&w.location)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(dir.path().join("objects/data")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let failing =
            futures::stream::iter(vec![Ok(Bytes::from_static(b"part")), Err(io::Error::other("the client went away"))]);
        let e = blobs.write("data", failing).await.unwrap_err();
        assert!(matches!(e, WriteError::Source(_)), "{e}");
        let files = blobs.list().unwrap();
        assert_eq!(files.len(), 1, "only the finished blob remains: {files:?}");
        blobs.delete(&w.location).await.unwrap();
        blobs.delete(&w.location).await.unwrap();
        assert!(blobs.list().unwrap().is_empty());
    }
}
