//! Code bundles of process functions, the CLI's side: a directory zipped (deterministically,
//! so unchanged code has an unchanged digest) or a `.zip` taken as it is, uploaded once to
//! `s3://nimbus-functions/{function}/sha256-{hex}.zip` through the admin object API. Both
//! `nimbus apply` and `nimbus functions deploy --code` go through here.

use std::path::Path;

use nimbus_functions::bundle::{self, CODE_BUCKET};
use sha2::{Digest, Sha256};

use crate::CliError;
use crate::client::{Client, encode_segment, object_path};

/// Where a bundle goes and what it is.
pub struct Bundle {
    /// Bytes of the zip.
    pub size: u64,
    /// SHA-256 of `bytes`, hex.
    pub sha256: String,
    /// Its key in [`CODE_BUCKET`].
    pub key: String,
    /// `s3://nimbus-functions/{key}`
    pub uri: String,
}

/// The bundle of the code at `path` for `function`, and its bytes: the directory zipped, or
/// the `.zip` read and checked as the server will unpack it.
pub async fn bundle_of(function: &str, path: &Path) -> Result<(Bundle, Vec<u8>), CliError> {
    crate::project::check_code_path(path).map_err(CliError::Input)?;
    let owned = path.to_path_buf();
    let made = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        if owned.is_dir() {
            return bundle::zip_dir(&owned).map_err(|e| e.to_string());
        }
        let bytes = std::fs::read(&owned).map_err(|e| format!("cannot read {}: {e}", owned.display()))?;
        bundle::check(&bytes).map_err(|e| format!("{}: {e}", owned.display()))?;
        Ok(bytes)
    })
    .await
    .map_err(|e| CliError::Failure(format!("zipping {} stopped: {e}", path.display())))?;
    let bytes = made.map_err(CliError::Input)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let key = bundle::code_key(function, &sha256);
    let uri = format!("s3://{CODE_BUCKET}/{key}");
    Ok((Bundle { size: bytes.len() as u64, sha256, key, uri }, bytes))
}

/// Uploads `bytes` as `bundle` unless the store holds it already (its key names its digest, so an
/// object under that key is this very bundle). Returns whether it was uploaded, or with
/// `dry_run` whether it would be.
pub async fn upload(client: &Client, bundle: &Bundle, bytes: Vec<u8>, dry_run: bool) -> Result<bool, CliError> {
    let listing = client
        .json(
            "GET",
            &format!("/buckets/{}/objects", encode_segment(CODE_BUCKET)),
            &[("prefix", &bundle.key), ("limit", "1")],
            None,
        )
        .await;
    let stored = match listing {
        Ok(v) => v["objects"].as_array().and_then(|a| a.first()).is_some_and(|o| o["key"] == bundle.key.as_str()),
        // The server makes the bucket on the first upload.
        Err(CliError::Input(m)) if m.contains("NoSuchBucket") => false,
        Err(e) => return Err(e),
    };
    if stored {
        return Ok(false);
    }
    if !dry_run {
        let path = object_path(CODE_BUCKET, &bundle.key)?;
        client.send("PUT", &path, &[], bytes, Some("application/zip")).await?;
    }
    Ok(true)
}
