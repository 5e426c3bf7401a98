//! TEMPORARY local stand-in until the bundle work lands (not committed).
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BundleError(String);

#[derive(Clone, Debug)]
pub struct TaskRoots {
    root: PathBuf,
}

impl TaskRoots {
    pub fn new(root: PathBuf) -> TaskRoots {
        TaskRoots { root }
    }
    pub async fn prepare(
        &self,
        _store: &nimbus_store::Store,
        _uri: &str,
        _sha256: &str,
        _requirements: Option<&str>,
        _python: &str,
        _sandbox: &nimbus_sandbox::Sandbox,
    ) -> Result<PathBuf, BundleError> {
        Err(BundleError("not yet".into()))
    }
    pub fn empty(&self) -> Result<PathBuf, BundleError> {
        let p = self.root.join("empty");
        std::fs::create_dir_all(&p).map_err(|e| BundleError(e.to_string()))?;
        Ok(p)
    }
}

pub fn python_of(command: &[String]) -> &str {
    let _ = Path::new("");
    command
        .first()
        .map(|s| s.as_str())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with("python")))
        .unwrap_or("python3")
}
