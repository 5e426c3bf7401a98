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
//! [functions.hello]               # see nimbus_functions::spec for the full grammar
//! kind = "process"
//! command = ["python3", "-m", "awslambdaric"]
//! handler = "app.handler"
//! code = "hello"                  # a directory or .zip, relative to the project directory;
//!                                 # apply zips and uploads it, once per change
//!
//! [pipelines.titanic]             # see nimbus_pipeline::spec for the full grammar
//! model_group = "titanic"
//! [pipelines.titanic.parameters]
//! max_depth = { type = "integer", default = 4 }
//! [pipelines.titanic.steps.train]
//! kind = "train"
//! …
//!
//! [iam.policies.reader]           # a managed policy: the AWS JSON grammar, as TOML or a file
//! document = { Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "nimbus:Describe*", Resource = "*" }] }
//! [iam.users.alice]
//! policies = ["reader"]
//! groups = ["ml"]
//! [usage_plans.basic]             # see nimbus_gateway::usage::plan
//! throttle = { rate = 10, burst = 5 }
//! quota = { limit = 100, period = "DAY" }
//! stages = [{ api = "titanic", stage = "prod" }]
//! [api_keys.demo]
//! usage_plan = "basic"
//! [auth.resource_servers.titanic]
//! name = "Titanic API"
//! scopes = [{ name = "predict" }]
//! [auth.clients.reports]
//! scopes = ["titanic/predict"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nimbus_functions::bundle::MAX_ZIPPED_BYTES;
use nimbus_functions::{FunctionKind, FunctionSpec};
use nimbus_gateway::ApiSpec;
use nimbus_gateway::authorizers::Auth;
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
    /// An API key declared under `[api_keys]`, and the route path (on the same API and
    /// stage) that needs it: `up` sends the sample there too and prints the curl with the key.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_key_path: Option<String>,
}

/// A policy document in the project: a TOML table in the AWS grammar, or a JSON file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDecl {
    #[serde(default)]
    pub description: String,
    /// The document itself.
    #[serde(default)]
    pub document: Option<serde_json::Value>,
    /// A JSON file holding the document, relative to the project.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// `[iam.users.NAME]`, `[iam.groups.NAME]`, `[iam.roles.NAME]`: who holds which policies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalDecl {
    /// Managed policies to attach (declared under `[iam.policies]`, or `AdministratorAccess`).
    #[serde(default)]
    pub policies: Vec<String>,
    /// Inline policies: name → document.
    #[serde(default)]
    pub inline_policies: BTreeMap<String, serde_json::Value>,
    /// Users only: the groups the user is in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Users only: tags (`aws:PrincipalTag/…`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Roles only: the trust policy (who may assume the role).
    #[serde(default)]
    pub trust_policy: Option<serde_json::Value>,
    #[serde(default)]
    pub description: String,
}

/// `[iam]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamDecl {
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyDecl>,
    #[serde(default)]
    pub groups: BTreeMap<String, PrincipalDecl>,
    #[serde(default)]
    pub users: BTreeMap<String, PrincipalDecl>,
    #[serde(default)]
    pub roles: BTreeMap<String, PrincipalDecl>,
}

/// `[api_keys.NAME]`: an API key (its value is printed once, when `apply` creates it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyDecl {
    #[serde(default)]
    pub usage_plan: Option<String>,
}

/// `[auth.resource_servers.IDENTIFIER]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerDecl {
    #[serde(default)]
    pub name: Option<String>,
    pub scopes: Vec<nimbus_oauth::ScopeSpec>,
}

/// `[auth.clients.NAME]`: an OAuth2 app client (client credentials).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDecl {
    /// A fixed client id (so a JWT authorizer's `audience` can name it); default: generated.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `identifier/scope` values the client may ask for.
    pub scopes: Vec<String>,
    #[serde(default)]
    pub token_validity_s: Option<u64>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthDecl {
    #[serde(default)]
    pub resource_servers: BTreeMap<String, ResourceServerDecl>,
    #[serde(default)]
    pub clients: BTreeMap<String, ClientDecl>,
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
    /// `[iam.*]`: managed policies, groups, users and roles.
    #[serde(default)]
    pub iam: IamDecl,
    /// `[usage_plans.NAME]`: see nimbus_gateway::usage::plan.
    #[serde(default)]
    pub usage_plans: BTreeMap<String, nimbus_gateway::usage::UsagePlanSpec>,
    /// `[api_keys.NAME]`
    #[serde(default)]
    pub api_keys: BTreeMap<String, ApiKeyDecl>,
    /// `[auth.*]`: the OAuth2 authorization server's resource servers and app clients.
    #[serde(default)]
    pub auth: AuthDecl,
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
        // A local path is zipped and uploaded by apply; an s3:// address names a bundle
        // uploaded before (with its code_sha256), as the server stores it.
        match spec.code.as_deref() {
            Some(code) if code.starts_with("s3://") => spec
                .validate_stored()
                .map_err(|e| CliError::Input(format!("{}: functions.{name}.{e}", file.display())))?,
            Some(code) => check_code_path(&project.dir.join(code)).map_err(|e| {
                let at = line_of(&text, &format!("functions.{name}"), "code")
                    .map(|n| format!(" line {n}"))
                    .unwrap_or_default();
                CliError::Input(format!("{}{at}: functions.{name}.code: code = {code:?}: {e}", file.display()))
            })?,
            None => {}
        }
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
            // `NAME`, or `NAME:QUALIFIER` for a published version or an alias of NAME.
            let (function, qualifier) = nimbus_functions::versions::split_target(&route.function);
            if !project.functions.contains_key(function) {
                return Err(CliError::Input(format!(
                    "{}: apis.{name}.routes.{key:?}: function {function:?} is not declared; add [functions.{function}]",
                    file.display(),
                )));
            }
            if let Some(q) = qualifier {
                nimbus_functions::Qualifier::parse(q).map_err(|e| {
                    CliError::Input(format!("{}: apis.{name}.routes.{key:?}.function: {e}", file.display()))
                })?;
            }
            if let Ok(Auth::Function(authorizer)) = Auth::parse(route.auth.as_deref()) {
                let fail = |why: String| {
                    CliError::Input(format!("{}: apis.{name}.routes.{key:?}.auth: {why}", file.display()))
                };
                match project.functions.get(&authorizer) {
                    None => {
                        return Err(fail(format!(
                            "authorizer function {authorizer:?} is not declared; add [functions.{authorizer}] with \
                             kind = \"process\""
                        )));
                    }
                    Some(f) if f.kind != FunctionKind::Process => {
                        return Err(fail(format!(
                            "function {authorizer:?} is a model function, which takes prediction bodies, not events; \
                             an authorizer must be kind = \"process\""
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    check_access(&project).map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    if let Some(up) = &project.up {
        if let Some(p) = up.pipeline.as_ref().filter(|p| !project.pipelines.contains_key(*p)) {
            return Err(CliError::Input(format!("{}: up.pipeline: pipeline {p:?} is not declared", file.display())));
        }
        let api = project
            .apis
            .get(&up.api)
            .ok_or_else(|| CliError::Input(format!("{}: up.api: API {:?} is not declared", file.display(), up.api)))?;
        match (&up.api_key, &up.api_key_path) {
            (Some(k), Some(_)) if !project.api_keys.contains_key(k) => {
                return Err(CliError::Input(format!(
                    "{}: up.api_key: API key {k:?} is not declared under [api_keys]",
                    file.display()
                )));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(CliError::Input(format!(
                    "{}: up: give both api_key and api_key_path, or neither",
                    file.display()
                )));
            }
            _ => {}
        }
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

/// What `path` is as a function's code: a directory, a `.zip` file, or neither (the reason).
pub fn check_code_path(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{} does not exist; code is a directory or .zip, relative to the project directory", path.display())
        }
        _ => format!("{} cannot be read: {e}", path.display()),
    })?;
    if meta.is_dir() {
        return Ok(());
    }
    if meta.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        if meta.len() > MAX_ZIPPED_BYTES {
            return Err(format!(
                "{} is {} bytes, over the {MAX_ZIPPED_BYTES} a code bundle may be; leave out what the function does \
                 not need, or install large packages through requirements",
                path.display(),
                meta.len()
            ));
        }
        return Ok(());
    }
    Err(format!(
        "{} is neither a directory nor a .zip file; give the directory holding the function's code, or a zip of it",
        path.display()
    ))
}

/// The line (from 1) where `key = …` is set in the `[table]` section of a TOML text, when it
/// is written that way (not inline or dotted), for errors found after parsing.
fn line_of(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim_matches(['[', ' ']).to_string();
        } else if current == table && line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')) {
            return Some(n + 1);
        }
    }
    None
}

impl Project {
    /// The policy document of `[iam.policies.NAME]`, as JSON text.
    pub fn policy_document(&self, name: &str, decl: &PolicyDecl) -> Result<String, CliError> {
        let bad = |m: String| CliError::Input(format!("iam.policies.{name}: {m}"));
        match (&decl.document, &decl.file) {
            (Some(doc), None) => Ok(doc.to_string()),
            (None, Some(file)) => {
                let path = self.dir.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("file {}: {e}", path.display())))?;
                let doc: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| bad(format!("file {}: {e}", path.display())))?;
                Ok(doc.to_string())
            }
            _ => Err(bad("give exactly one of document = { … } or file = \"policy.json\"".into())),
        }
    }
}

/// Checks the access-control declarations against each other and against the policy grammar.
fn check_access(project: &Project) -> Result<(), String> {
    let iam = &project.iam;
    for (name, decl) in &iam.policies {
        nimbus_core::names::resource("policy", name).map_err(|e| format!("iam.policies: {e}"))?;
        let doc = project.policy_document(name, decl).map_err(|e| e.to_string())?;
        nimbus_iam::policy::Policy::parse(&doc).map_err(|e| format!("iam.policies.{name}: {e}"))?;
    }
    let kinds = [("groups", &iam.groups), ("users", &iam.users), ("roles", &iam.roles)];
    for (kind, table) in kinds {
        for (name, decl) in table {
            nimbus_core::names::resource("name", name).map_err(|e| format!("iam.{kind}: {e}"))?;
            for p in &decl.policies {
                if !iam.policies.contains_key(p) && p != nimbus_iam::ADMINISTRATOR_ACCESS {
                    return Err(format!(
                        "iam.{kind}.{name}.policies: policy {p:?} is not declared; add [iam.policies.{p}]"
                    ));
                }
            }
            for (pname, doc) in &decl.inline_policies {
                nimbus_iam::policy::Policy::parse(&doc.to_string())
                    .map_err(|e| format!("iam.{kind}.{name}.inline_policies.{pname}: {e}"))?;
            }
            if kind != "users" && (!decl.groups.is_empty() || !decl.tags.is_empty()) {
                return Err(format!("iam.{kind}.{name}: groups and tags belong to users only"));
            }
            for g in &decl.groups {
                if !iam.groups.contains_key(g) {
                    return Err(format!("iam.users.{name}.groups: group {g:?} is not declared; add [iam.groups.{g}]"));
                }
            }
            match (kind, &decl.trust_policy) {
                ("roles", Some(t)) => {
                    nimbus_iam::policy::Policy::parse_resource_policy(&t.to_string())
                        .map_err(|e| format!("iam.roles.{name}.trust_policy: {e}"))?;
                }
                ("roles", None) => {
                    return Err(format!(
                        "iam.roles.{name}.trust_policy: say who may assume the role, e.g. trust_policy = {{ Version = \"2012-10-17\", Statement = [{{ Effect = \"Allow\", Principal = {{ Service = \"lambda.amazonaws.com\" }}, Action = \"sts:AssumeRole\" }}] }}"
                    ));
                }
                (_, Some(_)) => return Err(format!("iam.{kind}.{name}.trust_policy: only roles have a trust policy")),
                _ => {}
            }
        }
    }
    for (name, plan) in &project.usage_plans {
        plan.validate().map_err(|e| format!("usage_plans.{name}: {e}"))?;
        for s in &plan.stages {
            let ok = project.apis.get(&s.api).is_some_and(|a| a.stages.contains_key(&s.stage));
            if !ok {
                return Err(format!(
                    "usage_plans.{name}.stages: API {:?} with stage {:?} is not declared under [apis]",
                    s.api, s.stage
                ));
            }
        }
    }
    for (name, key) in &project.api_keys {
        nimbus_core::names::resource("API key", name).map_err(|e| format!("api_keys: {e}"))?;
        if let Some(p) = key.usage_plan.as_ref().filter(|p| !project.usage_plans.contains_key(*p)) {
            return Err(format!("api_keys.{name}.usage_plan: plan {p:?} is not declared; add [usage_plans.{p}]"));
        }
    }
    let scopes: Vec<String> = project
        .auth
        .resource_servers
        .iter()
        .flat_map(|(id, rs)| rs.scopes.iter().map(move |s| format!("{id}/{}", s.name)))
        .collect();
    for (name, client) in &project.auth.clients {
        for s in &client.scopes {
            if !scopes.contains(s) {
                return Err(format!(
                    "auth.clients.{name}.scopes: {s:?} is not a scope of a declared resource server; declare it under [auth.resource_servers.IDENTIFIER] scopes"
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn a_process_functions_code_must_be_a_directory_or_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nimbus.toml");
        let project = |code: &str| {
            format!(
                "[functions.hello]\nkind = \"process\"\ncommand = [\"python3\", \"-m\", \"awslambdaric\"]\ncode = {code:?}\n"
            )
        };
        std::fs::write(&f, project("fn")).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("nimbus.toml line 4: functions.hello.code") && e.contains("does not exist"), "{e}");
        std::fs::write(dir.path().join("code.txt"), "").unwrap();
        std::fs::write(&f, project("code.txt")).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("neither a directory nor a .zip"), "{e}");
        std::fs::write(&f, project("s3://nimbus-functions/hello/x.zip")).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("functions.hello.code_sha256"), "an uploaded bundle needs its digest: {e}");
        for ok in ["fn", "fn.zip"] {
            if ok == "fn" {
                std::fs::create_dir(dir.path().join("fn")).unwrap();
            } else {
                std::fs::write(dir.path().join("fn.zip"), "").unwrap();
            }
            std::fs::write(&f, project(ok)).unwrap();
            load(&f).unwrap();
        }
    }

    #[test]
    fn a_function_authorizer_must_be_a_declared_process_function() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nimbus.toml");
        let project = |authorizer: &str| {
            format!(
                "[functions.items]\nkind = \"process\"\ncommand = [\"python3\", \"-m\", \"awslambdaric\", \"app.items\"]\n\
                 handler = \"app.items\"\n\
                 [functions.authz]\nkind = \"process\"\ncommand = [\"python3\", \"-m\", \"awslambdaric\", \"auth.handler\"]\n\
                 handler = \"auth.handler\"\n\
                 [functions.predict]\nkind = \"model\"\nmodel_group = \"titanic\"\n\
                 [apis.shop.routes]\n\"GET /items\" = {{ function = \"items\", auth = \"function:{authorizer}\" }}\n\
                 [apis.shop.stages.prod]\n"
            )
        };
        std::fs::write(&f, project("authz")).unwrap();
        load(&f).expect("a process function authorizes");
        std::fs::write(&f, project("nobody")).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("apis.shop.routes.\"GET /items\".auth") && e.contains("[functions.nobody]"), "{e}");
        std::fs::write(&f, project("predict")).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("model function") && e.contains("kind = \"process\""), "{e}");
    }
}
