//! [`TaskRoots`]: a stored bundle turned into its task root once — fetched with its digest
//! checked, unpacked beside the final directory, its requirements pip-installed in the
//! sandbox, made read-only and renamed into place — shared by every instance that runs it.

use super::*;

/// A task root being built; removed when dropped unless it was renamed into place.
struct Unfinished {
    path: Option<PathBuf>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        // Off the async threads when there is a runtime: the tree may be large.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || remove_tree(&path))),
            Err(_) => remove_tree(&path),
        }
    }
}

/// The name prefix of task roots being built.
const UNFINISHED: &str = ".tmp-";

/// The task roots of process functions: one read-only directory per (bundle, requirements,
/// interpreter), made once and shared by every instance that runs that bundle. The directory
/// must be outside the data directory, which the sandbox denies to children (the server
/// uses `std::env::temp_dir().join("nimbus-code")`). Several servers may share it: each
/// task root appears by an atomic rename, whole, and whoever renames first wins. Cheap to
/// clone.
#[derive(Clone)]
pub struct TaskRoots {
    pub(super) inner: Arc<RootsInner>,
}

pub(super) struct RootsInner {
    root: PathBuf,
    /// One lock per task root being prepared, so concurrent callers wait for one build.
    pub(super) flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for TaskRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRoots").field("root", &self.inner.root).finish()
    }
}

impl TaskRoots {
    /// Task roots under `root` (made on first use).
    pub fn new(root: impl Into<PathBuf>) -> TaskRoots {
        TaskRoots { inner: Arc::new(RootsInner { root: root.into(), flights: Mutex::new(HashMap::new()) }) }
    }

    /// The directory holding the task roots.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The task root of a function without code: an empty, read-only directory.
    pub fn empty(&self) -> Result<PathBuf, BundleError> {
        let dir = self.inner.root.join("empty");
        fs::create_dir_all(&dir).map_err(io_error("make", &dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).map_err(io_error("make read-only", &dir))?;
        Ok(dir)
    }

    /// Where the task root of a bundle, its requirements file and interpreter is (or will be):
    /// `{root}/{hex SHA-256 over the three}`.
    pub fn path_of(&self, sha256: &str, requirements: Option<&str>, python: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(b"nimbus task root 1\n");
        for part in [sha256, requirements.map_or("-", |_| "+"), requirements.unwrap_or(""), python] {
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
        self.inner.root.join(hex::encode(h.finalize()))
    }

    /// The task root of the bundle at `uri` (whose bytes must hash to `sha256`), made if it
    /// does not exist yet: the zip is fetched from `store`, unpacked beside the final
    /// directory, `requirements` (a file inside the bundle) installed into it with
    /// `{python} -m pip install --target` in `sandbox`, the tree made read-only and renamed
    /// into place. Returns at once when the task root exists; concurrent callers for the same
    /// one wait for a single build. The caller chooses `python`, normally [`python_of`] the
    /// function's command.
    pub async fn prepare(
        &self,
        store: &Store,
        uri: &str,
        sha256: &str,
        requirements: Option<&str>,
        python: &str,
        sandbox: &Sandbox,
    ) -> Result<PathBuf, BundleError> {
        let (bucket, key) = nimbus_store::parse_uri(uri).ok_or_else(|| BundleError::BadUri(uri.to_string()))?;
        if !is_sha256(sha256) {
            return Err(BundleError::BadDigest(sha256.to_string()));
        }
        let dest = self.path_of(sha256, requirements, python);
        if is_dir(&dest).await {
            return Ok(dest);
        }
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let flight = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(name.clone()).or_default().clone()
        };
        let result = {
            let _one_build = flight.lock().await;
            if is_dir(&dest).await {
                Ok(dest.clone())
            } else {
                let bundle = Stored { store, uri, bucket, key, sha256 };
                self.build(&bundle, requirements, python, sandbox, &dest).await
            }
        };
        let mut flights = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: no one else waits on this flight.
        if flights.get(&name).is_some_and(|f| Arc::ptr_eq(f, &flight)) && Arc::strong_count(&flight) == 2 {
            flights.remove(&name);
        }
        result
    }

    async fn build(
        &self,
        bundle: &Stored<'_>,
        requirements: Option<&str>,
        python: &str,
        sandbox: &Sandbox,
        dest: &Path,
    ) -> Result<PathBuf, BundleError> {
        let root = self.inner.root.clone();
        let store_error = |source| BundleError::Store { uri: bundle.uri.to_string(), source };
        let info = bundle.store.head(bundle.bucket, bundle.key).await.map_err(store_error)?;
        if info.size as u64 > MAX_ZIPPED_BYTES {
            return Err(BundleError::TooLarge { what: bundle.uri.to_string(), limit: MAX_ZIPPED_BYTES });
        }
        let bytes = bundle.store.get_expecting(bundle.bucket, bundle.key, bundle.sha256).await.map_err(store_error)?;

        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let tmp = root.join(format!("{UNFINISHED}{name}-{}", nimbus_core::new_id()));
        let mut unfinished = Unfinished { path: Some(tmp.clone()) };
        {
            let (root, tmp) = (root.clone(), tmp.clone());
            blocking(move || {
                // Traversable by a sandboxed child running as another uid.
                fs::DirBuilder::new().recursive(true).mode(0o755).create(&root).map_err(io_error("make", &root))?;
                extract(&bytes, &tmp, LIMITS)
            })
            .await?;
        }
        if let Some(requirements) = requirements {
            let missing = || BundleError::MissingRequirements {
                requirements: requirements.to_string(),
                uri: bundle.uri.to_string(),
            };
            let parts = entry_components(requirements).map_err(|_| missing())?;
            let file = tmp.join(parts.join("/"));
            if !fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
                return Err(missing());
            }
            pip(sandbox, python, &tmp, &file, requirements, bundle.uri).await?;
            if *sandbox.protection() == Protection::SeparateUser {
                // pip ran as the unprivileged uid; the finished tree is the server's, so an
                // instance (that uid too) cannot make it writable again.
                let owner = fs::metadata(&root).map_err(io_error("read", &root))?;
                let tmp = tmp.clone();
                blocking(move || chown_tree(&tmp, owner.uid(), owner.gid()).map_err(io_error("take back", &tmp)))
                    .await?;
            }
        }
        {
            let tmp = tmp.clone();
            blocking(move || seal(&tmp)).await?;
        }
        match tokio::fs::rename(&tmp, dest).await {
            Ok(()) => {
                unfinished.path = None;
                if let Ok(d) = fs::File::open(&root) {
                    let _ = d.sync_all();
                }
                Ok(dest.to_path_buf())
            }
            // Another server on this machine finished the same task root first; ours goes.
            Err(_) if is_dir(dest).await => Ok(dest.to_path_buf()),
            Err(e) => Err(BundleError::Io { action: "rename into place", path: dest.display().to_string(), source: e }),
        }
    }

    /// Removes task roots left unfinished (by a server that died while preparing one) whose
    /// last change is older than `older_than`; returns how many. Use more than
    /// [`PIP_TIMEOUT`], so a build still running elsewhere is not disturbed.
    pub fn sweep(&self, older_than: Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.inner.root) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let stale = entry.file_name().to_str().is_some_and(|n| n.starts_with(UNFINISHED))
                && entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > older_than);
            if stale {
                remove_tree(&entry.path());
                removed += 1;
            }
        }
        removed
    }
}

/// The stored bundle a task root is made from.
struct Stored<'a> {
    store: &'a Store,
    uri: &'a str,
    bucket: &'a str,
    key: &'a str,
    sha256: &'a str,
}

async fn is_dir(path: &Path) -> bool {
    tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir())
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BundleError> + Send + 'static,
) -> Result<T, BundleError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| BundleError::Io {
        action: "finish",
        path: "a task root".into(),
        source: io::Error::other(e),
    })?
}

/// `{python} -m pip install … --target {tree} -r {file}` in the sandbox, with `tree` as cwd
/// (a relative path in the requirements file, such as a wheel shipped in the bundle, is
/// relative to the bundle) and an environment of PATH, HOME, TMPDIR and LANG only: no
/// variable of the server's (no secrets, no PIP_* settings) reaches pip.
async fn pip(
    sandbox: &Sandbox,
    python: &str,
    tree: &Path,
    file: &Path,
    requirements: &str,
    uri: &str,
) -> Result<(), BundleError> {
    let sandbox_error = |source| BundleError::Sandbox { requirements: requirements.to_string(), source };
    sandbox.check_usable().map_err(sandbox_error)?;
    let work = sandbox.work_dir("pip").map_err(sandbox_error)?;
    let tmpdir = work.path().join("tmp");
    fs::create_dir_all(&tmpdir).map_err(io_error("make", &tmpdir))?;
    sandbox.hand_over(work.path()).map_err(io_error("hand over", work.path()))?;
    sandbox.hand_over(tree).map_err(io_error("hand over", tree))?;
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let text = |p: &Path| p.display().to_string();
    let cmd = Command {
        argv: [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
            .into_iter()
            .map(str::to_string)
            // The cache would go to the throwaway HOME: writing it only costs time.
            .chain(["--no-cache-dir".to_string(), "--target".into(), text(tree), "-r".into(), text(file)])
            .collect(),
        env: vec![
            ("PATH".into(), path),
            ("HOME".into(), text(work.path())),
            ("TMPDIR".into(), text(&tmpdir)),
            ("LANG".into(), "C.UTF-8".into()),
        ],
        cwd: tree.to_path_buf(),
        timeout: PIP_TIMEOUT,
        log: LogLimits { max_line_bytes: 2048, max_bytes: 64 * 1024 },
        ..Command::default()
    };
    // Held for the run: a dropped sender reads as a cancel.
    let (_cancel, cancelled) = tokio::sync::watch::channel(false);
    let outcome = sandbox.run(&cmd, cancelled, &mut |_| {}).await.map_err(sandbox_error)?;
    let reason = match outcome.ending {
        Ending::Exited { success: true, .. } => return Ok(()),
        Ending::Exited { code: Some(c), .. } => format!("pip exited with status {c}"),
        Ending::Exited { code: None, .. } => "pip was killed by a signal".into(),
        Ending::TimedOut(t) => format!("pip ran longer than {} s and was stopped", t.as_secs()),
        Ending::Cancelled => "pip was cancelled".into(),
    };
    let lines = outcome.log.last_lines(PIP_TAIL_LINES + 5);
    let lines: Vec<&str> =
        lines.iter().map(String::as_str).filter(|l| !l.trim_start_matches("stderr:").trim().is_empty()).collect();
    let mut tail = lines[lines.len().saturating_sub(PIP_TAIL_LINES)..].join("\n");
    if tail.len() > PIP_TAIL_BYTES {
        let mut cut = tail.len() - PIP_TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    Err(BundleError::Pip { requirements: requirements.to_string(), uri: uri.to_string(), reason, tail })
}
