//! The project file, `nimbus.toml`: what `nimbus apply` makes the server match.
//!
//! ```toml
//! [project]
//! name = "titanic"
//!
//! [[uploads]]                     # local files copied into the store
//! file = "data/train.csv"         # relative to the project directory
//! to = "s3://titanic/data/train.csv"
//!
//! [pipelines.titanic]             # see nimbus_pipeline::spec for the full grammar
//! model_group = "titanic"
//! [pipelines.titanic.parameters]
//! max_depth = { type = "integer", default = 4 }
//! [pipelines.titanic.steps.train]
//! kind = "train"
//! …
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nimbus_functions::FunctionSpec;
use nimbus_gateway::ApiSpec;
use nimbus_pipeline::PipelineSpec;
use serde::Deserialize;

use crate::CliError;

/// The largest object the admin API takes in one upload (5 GiB, as S3's single PUT).
pub const UPLOAD_LIMIT: u64 = 5 << 30;

/// `[project]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectMeta {
    /// A name for messages.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[uploads]]`: a local file the store should hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// Path relative to the project directory.
    pub file: PathBuf,
    /// `s3://bucket/key` destination.
    pub to: String,
}

/// `[up]`: what `nimbus up` does after applying the project.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpSpec {
    /// A pipeline to run when its model group has no version yet.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// Approve the version the pipeline registered (demo projects only; the default is
    /// manual approval).
    #[serde(default)]
    pub auto_approve: bool,
    /// The API, stage and route path to send the sample request to.
    pub api: String,
    pub stage: String,
    pub path: String,
    /// A JSON file (relative to the project) holding the sample request body.
    pub sample: PathBuf,
}

/// A parsed `nimbus.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    #[serde(default)]
    pub project: ProjectMeta,
    #[serde(default)]
    pub uploads: Vec<Upload>,
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineSpec>,
    /// `[functions.NAME]`: see nimbus_functions::spec.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionSpec>,
    /// `[apis.NAME]`: see nimbus_gateway::spec.
    #[serde(default)]
    pub apis: BTreeMap<String, ApiSpec>,
    #[serde(default)]
    pub up: Option<UpSpec>,
    /// The directory the file is in; relative paths start there.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Reads `path` (a `nimbus.toml`, or a directory holding one) and checks every pipeline.
pub fn load(path: &Path) -> Result<Project, CliError> {
    let file = if path.is_dir() { path.join("nimbus.toml") } else { path.to_path_buf() };
    let text =
        std::fs::read_to_string(&file).map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    let mut project: Project = toml::from_str(&text)
        .map_err(|e| CliError::Input(format!("{}: {}", file.display(), e.to_string().trim_end().replace('\n', " "))))?;
    project.dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    for (name, spec) in &project.pipelines {
        spec.validate(name).map_err(|e| CliError::Input(format!("{}: pipelines.{name}: {e}", file.display())))?;
    }
    for (name, spec) in &project.functions {
        spec.validate(name).map_err(|e| CliError::Input(format!("{}: functions.{name}: {e}", file.display())))?;
    }
    let mut hosts: BTreeMap<String, &str> = BTreeMap::new();
    for (name, spec) in &project.apis {
        spec.validate(name).map_err(|e| CliError::Input(format!("{}: apis.{name}: {e}", file.display())))?;
        for host in &spec.hosts {
            if let Some(other) = hosts.insert(host.to_ascii_lowercase(), name) {
                return Err(CliError::Input(format!(
                    "{}: apis.{name}.hosts: {:?} is also claimed by apis.{other}; a host name belongs to one API",
                    file.display(),
                    host.to_ascii_lowercase()
                )));
            }
        }
        for (key, route) in &spec.routes {
            if !project.functions.contains_key(&route.function) {
                return Err(CliError::Input(format!(
                    "{}: apis.{name}.routes.{key:?}: function {:?} is not declared; add [functions.{}]",
                    file.display(),
                    route.function,
                    route.function
                )));
            }
        }
    }
    if let Some(up) = &project.up {
        if let Some(p) = up.pipeline.as_ref().filter(|p| !project.pipelines.contains_key(*p)) {
            return Err(CliError::Input(format!("{}: up.pipeline: pipeline {p:?} is not declared", file.display())));
        }
        let api = project
            .apis
            .get(&up.api)
            .ok_or_else(|| CliError::Input(format!("{}: up.api: API {:?} is not declared", file.display(), up.api)))?;
        if !api.stages.contains_key(&up.stage) {
            return Err(CliError::Input(format!(
                "{}: up.stage: API {} has no stage {:?}",
                file.display(),
                up.api,
                up.stage
            )));
        }
    }
    // Everything an upload needs is checked here, before `apply` changes anything.
    for u in &project.uploads {
        let bad = |reason: String| CliError::Input(format!("{}: uploads: {reason}", file.display()));
        let (bucket, key) =
            u.to.strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .filter(|(b, k)| !b.is_empty() && !k.is_empty() && !k.ends_with('/'))
                .ok_or_else(|| bad(format!("to = {:?} must be s3://bucket/key", u.to)))?;
        nimbus_core::names::bucket(bucket).map_err(|e| bad(format!("to = {:?}: {e}", u.to)))?;
        nimbus_core::names::object_key(key).map_err(|e| bad(format!("to = {:?}: {e}", u.to)))?;
        if bucket.starts_with("nimbus-") {
            return Err(bad(format!("to = {:?}: buckets named nimbus-* belong to the system; use your own", u.to)));
        }
        let local = project.dir.join(&u.file);
        let meta = std::fs::metadata(&local).map_err(|e| bad(format!("file = {:?}: {e}", local.display())))?;
        if !meta.is_file() {
            return Err(bad(format!("file = {:?} is not a file", local.display())));
        }
        if meta.len() > UPLOAD_LIMIT {
            return Err(bad(format!(
                "file = {:?} is {} bytes, over the store's limit of {UPLOAD_LIMIT}",
                local.display(),
                meta.len()
            )));
        }
    }
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nimbus.toml");
        std::fs::write(&f, "[project]\nname = \"x\"\nnmae = 1\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("nimbus.toml") && e.contains("line 3") && e.contains("nmae"), "{e}");
        std::fs::write(&f, "[pipelines.p]\nmodel_group = \"g\"\n[pipelines.p.steps.t]\nkind = \"train\"\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("pipelines.p") && e.contains("steps.t.data") && e.contains("required"), "{e}");
    }
}
