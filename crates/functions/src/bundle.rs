//! Code bundles of process functions: a directory zipped the same way every time, stored in
//! the object store (`s3://nimbus-functions/{function}/sha256-{hex}.zip`), and unpacked once
//! per bundle into a read-only task root that instances use as `LAMBDA_TASK_ROOT` and cwd.
//!
//! - [`zip_dir`] makes the zip: entries sorted, timestamps fixed, modes reduced to 0644/0755,
//!   so an unchanged directory gives the same bytes and SHA-256 and nothing is uploaded again.
//! - [`unpack`] checks every entry before writing anything (no absolute path, no `..`, no
//!   entry under a symbolic link, links only to places inside, sizes and counts capped) and
//!   writes the tree read-only.
//! - [`TaskRoots`] turns a stored bundle into its task root: fetched with its digest checked,
//!   unpacked beside the final directory, its `requirements` pip-installed in the sandbox, made
//!   read-only and renamed into place, so a task root either exists whole or not at all.
//!
//! **Symbolic links** are kept, never followed: a link is stored as a link entry when its
//! target is relative, its `..` components all come first and they climb no higher than the
//! link's own directory (`lib -> ../shared/lib` inside the tree is kept; `/etc`, `../../x`
//! outside it, or `a/../b` are refused with the link's path). With that form, and no entry
//! allowed under a link, every link of an unpacked tree resolves inside it.
//!
//! Not here: running instances (the function runtime calls [`TaskRoots::prepare`] before the
//! first instance of a bundle) and the upload (the CLI, through the admin object API).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_sandbox::{Command, Ending, LogLimits, Protection, Sandbox, SandboxError};
use nimbus_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

/// The bucket that holds code bundles. The object API writes it only under
/// [`code_key`]s whose digest is the signed digest of the body.
pub const CODE_BUCKET: &str = "nimbus-functions";

/// The most a bundle may unpack to: 250 MiB, Lambda's limit for unzipped code.
pub const MAX_UNZIPPED_BYTES: u64 = 250 * MIB;

/// The largest zip taken: the unzipped limit and room for the archive's own headers (a zip
/// of incompressible files is a little larger than they are).
pub const MAX_ZIPPED_BYTES: u64 = MAX_UNZIPPED_BYTES + 16 * MIB;

/// The most entries (files, directories, links) a bundle may have.
pub const MAX_ENTRIES: usize = 100_000;

/// How long a bundle's `pip install` may run.
pub const PIP_TIMEOUT: Duration = Duration::from_secs(600);

/// Directories and files [`zip_dir`] leaves out: caches, version control, Finder litter, and
/// nimbus's own data directory (its credentials must never end up in a bundle).
const SKIPPED_NAMES: [&str; 4] = ["__pycache__", ".git", ".DS_Store", ".nimbus"];

/// The longest symbolic link target kept.
const MAX_LINK_BYTES: u64 = 4096;

/// How much of pip's output a failure shows.
const PIP_TAIL_LINES: usize = 20;
const PIP_TAIL_BYTES: usize = 4096;

const MIB: u64 = 1024 * 1024;

/// Why a bundle could not be made, read or prepared. Each message names the file or entry
/// and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// More bytes than the limit.
    #[error(
        "{what} holds more than {limit} bytes ({} MiB, Lambda's limit for unzipped code); leave out what the \
         function does not need, or install large packages through requirements",
        limit / MIB
    )]
    TooLarge { what: String, limit: u64 },
    /// More entries than the limit.
    #[error("{what} has more than {limit} files and directories; leave out what the function does not need")]
    TooManyEntries { what: String, limit: usize },
    /// A file of the directory being zipped cannot go into a bundle.
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
    /// An entry of a zip would write outside the task root, or is otherwise unusable.
    #[error("bundle entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// The bytes are not a zip archive that can be read.
    #[error(
        "the code bundle is not a readable zip archive ({0}); make it with `nimbus functions deploy NAME --code DIR`"
    )]
    NotZip(String),
    /// The declaration's `code` is not an `s3://` address.
    #[error(
        "code = {0:?} is not an s3://bucket/key address; deploy the code with `nimbus apply` or `nimbus functions deploy`"
    )]
    BadUri(String),
    /// The declaration's `code_sha256` is not a SHA-256.
    #[error("code_sha256 = {0:?} is not a SHA-256 (64 lower-case hex digits); deploy the code again to set it")]
    BadDigest(String),
    /// The stored bundle could not be read, or is not the one the declaration names.
    #[error("cannot read the code bundle {uri}: {source}")]
    Store {
        uri: String,
        #[source]
        source: StoreError,
    },
    /// `requirements` names no file of the bundle.
    #[error(
        "requirements = {requirements:?} is not a file in the code bundle {uri}; add it to the code directory and \
         deploy again, or remove requirements from the declaration"
    )]
    MissingRequirements { requirements: String, uri: String },
    /// pip could not be started.
    #[error("cannot run pip for requirements = {requirements:?}: {source}")]
    Sandbox {
        requirements: String,
        #[source]
        source: SandboxError,
    },
    /// pip ran and failed.
    #[error(
        "pip could not install requirements = {requirements:?} of {uri}: {reason}; fix the file so that `pip install \
         --target DIR -r {requirements}` succeeds. The last lines of pip's output:\n{tail}"
    )]
    Pip { requirements: String, uri: String, reason: String, tail: String },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BundleError + use<> {
    let path = path.display().to_string();
    move |source| BundleError::Io { action, path, source }
}

/// The key of a bundle in [`CODE_BUCKET`]: `{function}/sha256-{hex}.zip`.
pub fn code_key(function: &str, sha256: &str) -> String {
    format!("{function}/sha256-{sha256}.zip")
}

/// The function and digest of a [`code_key`], or `None` when `key` is not one.
pub fn parse_code_key(key: &str) -> Option<(&str, &str)> {
    let (function, file) = key.split_once('/')?;
    let sha = file.strip_prefix("sha256-")?.strip_suffix(".zip")?;
    (nimbus_core::names::resource("function name", function).is_ok() && is_sha256(sha)).then_some((function, sha))
}

/// Whether `s` is a SHA-256 in lower-case hex.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The interpreter that installs a bundle's requirements: the command's program when its file
/// name starts with `python` (`python3.12`, `/opt/venv/bin/python`), so packages are built for
/// the interpreter that will import them; otherwise `python3`.
pub fn python_of(command: &[String]) -> &str {
    match command.first() {
        Some(p) if Path::new(p).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python")) => p,
        _ => "python3",
    }
}

/// Caps on what a bundle may hold; the public functions use the `MAX_*` constants, tests
/// smaller ones.
#[derive(Clone, Copy, Debug)]
struct Limits {
    bytes: u64,
    entries: usize,
}

const LIMITS: Limits = Limits { bytes: MAX_UNZIPPED_BYTES, entries: MAX_ENTRIES };

/// What a zip entry is.
#[derive(Debug)]
enum Source {
    Dir,
    File { path: PathBuf, exec: bool },
    Link { target: String },
}

/// Zips `dir` deterministically: the same directory gives the same bytes (entries sorted by
/// name, every timestamp 1980-01-01, modes 0644, or 0755 for executables and directories),
/// leaving out `__pycache__`, `.git`, `.nimbus`, `.DS_Store` and `*.pyc`. Symbolic links are
/// stored as links when they stay inside `dir` (see the module docs) and refused otherwise.
/// Fails past [`MAX_UNZIPPED_BYTES`] or [`MAX_ENTRIES`].
pub fn zip_dir(dir: &Path) -> Result<Vec<u8>, BundleError> {
    zip_dir_with(dir, LIMITS)
}

fn zip_dir_with(dir: &Path, limits: Limits) -> Result<Vec<u8>, BundleError> {
    let meta = fs::metadata(dir).map_err(io_error("read", dir))?;
    if !meta.is_dir() {
        return Err(BundleError::Refused {
            path: dir.display().to_string(),
            reason: "is not a directory; give the directory holding the function's code, or a .zip".into(),
        });
    }
    let mut entries = Vec::new();
    let mut total = 0u64;
    collect(dir, dir, "", limits, &mut entries, &mut total)?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let what = || dir.display().to_string();
    let zip_failed = |e: zip::result::ZipError| BundleError::Io {
        action: "zip",
        path: dir.display().to_string(),
        source: io::Error::other(e),
    };
    let base = SimpleFileOptions::default()
        .last_modified_time(DateTime::DEFAULT)
        .system(System::Unix)
        .compression_method(CompressionMethod::Deflated);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut written = 0u64;
    for (name, source) in entries {
        match source {
            Source::Dir => zip.add_directory(name, base.unix_permissions(0o755)).map_err(zip_failed)?,
            Source::Link { target } => {
                zip.add_symlink(name, target, base.unix_permissions(0o777)).map_err(zip_failed)?
            }
            Source::File { path, exec } => {
                zip.start_file(name, base.unix_permissions(if exec { 0o755 } else { 0o644 })).map_err(zip_failed)?;
                let file = fs::File::open(&path).map_err(io_error("read", &path))?;
                // A file that grew since it was measured still counts against the limit.
                let left = limits.bytes - written.min(limits.bytes);
                written += io::copy(&mut file.take(left + 1), &mut zip).map_err(io_error("read", &path))?;
                if written > limits.bytes {
                    return Err(BundleError::TooLarge { what: what(), limit: limits.bytes });
                }
            }
        }
    }
    Ok(zip.finish().map_err(zip_failed)?.into_inner())
}

/// Adds the entries under `path` (named `prefix…` in the zip) to `out`.
fn collect(
    top: &Path,
    path: &Path,
    prefix: &str,
    limits: Limits,
    out: &mut Vec<(String, Source)>,
    total: &mut u64,
) -> Result<(), BundleError> {
    for entry in fs::read_dir(path).map_err(io_error("list", path))? {
        let entry = entry.map_err(io_error("list", path))?;
        let full = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(BundleError::Refused {
                path: full.display().to_string(),
                reason: "the name is not UTF-8, which a zip entry name must be; rename the file".into(),
            });
        };
        if SKIPPED_NAMES.contains(&file_name.as_str()) || file_name.ends_with(".pyc") {
            continue;
        }
        let name = format!("{prefix}{file_name}");
        let meta = fs::symlink_metadata(&full).map_err(io_error("read", &full))?;
        if out.len() >= limits.entries {
            return Err(BundleError::TooManyEntries { what: top.display().to_string(), limit: limits.entries });
        }
        let file_type = meta.file_type();
        if file_type.is_dir() {
            out.push((format!("{name}/"), Source::Dir));
            collect(top, &full, &format!("{name}/"), limits, out, total)?;
        } else if file_type.is_file() {
            *total += meta.len();
            out.push((name, Source::File { path: full, exec: meta.mode() & 0o111 != 0 }));
        } else if file_type.is_symlink() {
            let target = fs::read_link(&full).map_err(io_error("read the link", &full))?;
            let refuse = |reason: String| BundleError::Refused {
                path: full.display().to_string(),
                reason: format!(
                    "a symbolic link to {target:?}, which {reason}; a bundle keeps links only to paths inside the code \
                     directory (relative, with any `..` first); replace the link with a copy of what it points to",
                ),
            };
            let text = target.to_str().ok_or_else(|| refuse("is not UTF-8".into()))?.to_string();
            check_link(&name, &text).map_err(refuse)?;
            *total += text.len() as u64;
            out.push((name, Source::Link { target: text }));
        } else {
            return Err(BundleError::Refused {
                path: full.display().to_string(),
                reason: "is not a file, a directory or a symbolic link (a socket, FIFO or device); remove it from \
                         the code directory"
                    .into(),
            });
        }
        if *total > limits.bytes {
            return Err(BundleError::TooLarge { what: top.display().to_string(), limit: limits.bytes });
        }
    }
    Ok(())
}

/// Checks that a link at `link` (a `/`-separated path inside the tree) to `target` resolves
/// inside the tree: relative, every `..` before the first name, and no more of them than the
/// link's directory is deep. Returns what is wrong otherwise.
fn check_link(link: &str, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("is empty".into());
    }
    if target.starts_with('/') {
        return Err("is an absolute path".into());
    }
    if target.contains('\0') || target.contains('\\') {
        return Err("contains a NUL byte or a backslash".into());
    }
    let depth = link.split('/').filter(|c| !c.is_empty() && *c != ".").count().saturating_sub(1);
    let (mut ups, mut named) = (0usize, false);
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if named => return Err("has `..` after a name (it could climb out through another link)".into()),
            ".." => ups += 1,
            _ => named = true,
        }
    }
    if ups > depth {
        return Err("leads outside the directory".into());
    }
    Ok(())
}

/// The components of a zip entry's name, or what makes it unsafe. `.` and empty components
/// are dropped.
fn entry_components(name: &str) -> Result<Vec<&str>, String> {
    if name.starts_with('/') {
        return Err("is an absolute path, which would write outside the task root".into());
    }
    if name.contains('\\') {
        return Err("uses \\ as a separator (a Windows zip tool?); make the zip with / separators, as \
                    `nimbus functions deploy --code DIR` does"
            .into());
    }
    if name.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let parts: Vec<&str> = name.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if parts.contains(&"..") {
        return Err("contains `..`, which would write outside the task root".into());
    }
    Ok(parts)
}

/// One entry of a checked archive.
struct Planned {
    index: usize,
    /// The `/`-joined path below the destination.
    path: String,
    kind: Kind,
}

enum Kind {
    Dir,
    File { exec: bool },
    Link { target: String },
}

/// Unpacks `zip` into `dest` (created when missing; it should be new or empty), read-only:
/// directories 0555, files 0444, or 0555 when the zip marks them executable. Every entry is
/// checked before anything is written: no absolute path, no `..`, no entry under a symbolic
/// link, links only to places inside `dest`, no duplicate; at most [`MAX_ENTRIES`] entries
/// and [`MAX_UNZIPPED_BYTES`] in all, counted as the bytes come out, not as the zip claims.
pub fn unpack(zip: &[u8], dest: &Path) -> Result<(), BundleError> {
    extract(zip, dest, LIMITS)?;
    seal(dest)
}

/// Checks a zip as [`unpack`] would, without writing anything: the entries' names, links,
/// count and declared sizes (the bytes themselves are counted only when unpacked).
pub fn check(zip: &[u8]) -> Result<(), BundleError> {
    check_archive(&mut open_archive(zip)?, LIMITS).map(|_| ())
}

/// [`unpack`] without the final step: the tree is left writable (0755/0644) for pip.
fn extract(zip: &[u8], dest: &Path, limits: Limits) -> Result<(), BundleError> {
    let mut archive = open_archive(zip)?;
    let plan = check_archive(&mut archive, limits)?;

    fs::DirBuilder::new().recursive(true).mode(0o755).create(dest).map_err(io_error("make", dest))?;
    let mut written = 0u64;
    let mut links = Vec::new();
    for p in plan {
        let path = dest.join(&p.path);
        match p.kind {
            Kind::Dir => {
                fs::DirBuilder::new().recursive(true).mode(0o755).create(&path).map_err(io_error("make", &path))?
            }
            Kind::Link { target } => links.push((path, target)),
            Kind::File { exec } => {
                if let Some(parent) = path.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(parent)
                        .map_err(io_error("make", parent))?;
                }
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if exec { 0o755 } else { 0o644 })
                    .open(&path)
                    .map_err(io_error("write", &path))?;
                let mut entry = archive.by_index(p.index).map_err(|e| damaged(&p.path, e))?;
                let left = limits.bytes - written.min(limits.bytes);
                let n = io::copy(&mut (&mut entry).take(left + 1), &mut out).map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::Other => {
                        BundleError::UnsafeEntry { entry: p.path.clone(), reason: format!("is damaged: {e}") }
                    }
                    _ => BundleError::Io { action: "write", path: path.display().to_string(), source: e },
                })?;
                written += n;
                if written > limits.bytes {
                    return Err(BundleError::TooLarge {
                        what: format!("the bundle (at entry {:?}, larger than its zip header says)", p.path),
                        limit: limits.bytes,
                    });
                }
                // A task root outlives the server: its bytes are on disk before its name is.
                out.sync_all().map_err(io_error("write", &path))?;
            }
        }
    }
    // Links last, so nothing is ever written through one.
    for (path, target) in links {
        std::os::unix::fs::symlink(&target, &path).map_err(io_error("make the link", &path))?;
    }
    Ok(())
}

fn open_archive(zip: &[u8]) -> Result<ZipArchive<Cursor<&[u8]>>, BundleError> {
    if zip.len() as u64 > MAX_ZIPPED_BYTES {
        return Err(BundleError::TooLarge { what: "the zip archive".into(), limit: MAX_ZIPPED_BYTES });
    }
    ZipArchive::new(Cursor::new(zip)).map_err(|e| BundleError::NotZip(e.to_string()))
}

fn damaged(entry: &str, e: zip::result::ZipError) -> BundleError {
    BundleError::UnsafeEntry { entry: entry.to_string(), reason: format!("cannot be read: {e}") }
}

/// Reads every entry's header (and each link's target) and refuses the archive when any
/// entry is unsafe; nothing is written.
fn check_archive(archive: &mut ZipArchive<Cursor<&[u8]>>, limits: Limits) -> Result<Vec<Planned>, BundleError> {
    if archive.len() > limits.entries {
        return Err(BundleError::TooManyEntries { what: "the zip archive".into(), limit: limits.entries });
    }
    let mut plan = Vec::with_capacity(archive.len());
    let mut seen: HashMap<String, bool> = HashMap::new(); // path -> is a directory
    let mut declared = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| BundleError::NotZip(e.to_string()))?;
        let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let unsafe_entry = |reason: String| BundleError::UnsafeEntry { entry: raw.clone(), reason };
        let name = entry.name().map_err(|e| unsafe_entry(format!("has a name that cannot be read: {e}")))?.into_owned();
        let parts = entry_components(&name).map_err(unsafe_entry)?;
        if entry.encrypted() {
            return Err(unsafe_entry("is encrypted; zip the code without a password".into()));
        }
        declared += entry.size();
        if declared > limits.bytes {
            return Err(BundleError::TooLarge { what: "the zip archive".into(), limit: limits.bytes });
        }
        if parts.is_empty() {
            if entry.is_dir() {
                continue; // "./": the destination itself
            }
            return Err(unsafe_entry("has no file name".into()));
        }
        let path = parts.join("/");
        let kind = if entry.is_dir() {
            Kind::Dir
        } else if entry.is_symlink() {
            if entry.size() > MAX_LINK_BYTES {
                return Err(unsafe_entry("is a symbolic link with an overlong target".into()));
            }
            drop(entry);
            let mut target = String::new();
            archive
                .by_index(index)
                .map_err(|e| damaged(&raw, e))?
                .take(MAX_LINK_BYTES)
                .read_to_string(&mut target)
                .map_err(|e| unsafe_entry(format!("is a symbolic link whose target cannot be read: {e}")))?;
            check_link(&path, &target)
                .map_err(|reason| unsafe_entry(format!("is a symbolic link to {target:?}, which {reason}")))?;
            Kind::Link { target }
        } else {
            Kind::File { exec: entry.unix_mode().is_some_and(|m| m & 0o111 != 0) }
        };
        let is_dir = matches!(kind, Kind::Dir);
        match seen.get(&path) {
            Some(true) if is_dir => continue,
            Some(_) => return Err(unsafe_entry("appears twice in the archive".into())),
            None => {}
        }
        seen.insert(path.clone(), is_dir);
        plan.push(Planned { index, path, kind });
    }
    // Nothing may lie under a link (it would be written wherever the link leads) or a file.
    let links: HashMap<&str, bool> =
        plan.iter().map(|p| (p.path.as_str(), matches!(p.kind, Kind::Link { .. }))).collect();
    for p in &plan {
        let mut at = 0;
        while let Some(slash) = p.path[at..].find('/') {
            let prefix = &p.path[..at + slash];
            let what = match (links.get(prefix), seen.get(prefix)) {
                (Some(true), _) => Some("the symbolic link"),
                (_, Some(false)) => Some("the file"),
                _ => None,
            };
            if let Some(what) = what {
                return Err(BundleError::UnsafeEntry {
                    entry: p.path.clone(),
                    reason: format!(
                        "lies under {what} {prefix:?} of the same archive; a bundle cannot write through it"
                    ),
                });
            }
            at += slash + 1;
        }
    }
    Ok(plan)
}

/// Makes the tree under `dir` read-only: directories 0555, files 0444, or 0555 when any
/// execute bit is set; links are left as they are. Every file is synced to disk, since the
/// finished tree is trusted as complete from the moment it has its name.
fn seal(dir: &Path) -> Result<(), BundleError> {
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let path = entry.map_err(io_error("list", dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(io_error("read", &path))?;
        if meta.is_dir() {
            seal(&path)?;
        } else if meta.is_file() {
            fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io_error("sync", &path))?;
            let mode = if meta.mode() & 0o111 != 0 { 0o555 } else { 0o444 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_error("make read-only", &path))?;
        }
    }
    fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io_error("sync", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).map_err(io_error("make read-only", dir))
}

/// Makes every directory under `dir` writable again, so the tree can be removed.
fn unseal(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                unseal(&entry.path());
            }
        }
    }
}

/// Removes a tree, read-only or not.
fn remove_tree(dir: &Path) {
    unseal(dir);
    if let Err(e) = fs::remove_dir_all(dir)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %dir.display(), error = %e, "could not remove an unfinished task root");
    }
}

/// Gives the tree under `path` to `uid`/`gid` without following links.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

mod roots;
pub use roots::TaskRoots;

#[cfg(test)]
mod tests;
