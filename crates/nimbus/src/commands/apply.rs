//! `nimbus apply`: make the server match `nimbus.toml` — upload data, create model groups,
//! store pipelines, IAM, functions (with their code bundles), APIs, usage plans, API keys,
//! OAuth2 clients — printing what changed and every public route. Idempotent: a second run
//! reports `unchanged`, and unchanged code is not uploaded again.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::apply_access::{Created, apply_access, apply_iam};
use nimbus_functions::FunctionKind;

use crate::CliError;
use crate::cli::Global;
use crate::client::{Client, encode_segment};
use crate::project::{self, Project};

/// Applies the project at `path`; with `dry_run` only says what it would do.
pub async fn run(g: &Global, path: &Path, dry_run: bool) -> Result<(), CliError> {
    let project = project::load(path)?;
    let client = Client::new(g)?;
    apply(&client, &project, dry_run, &mut |line| outln!("{line}")).await.map(|_| ())
}

/// Applies a loaded project, reporting each change through `say`. Everything that can be
/// checked without the server was checked when the project was loaded; when the server
/// refuses something midway, the error says what was already changed and what was not.
pub async fn apply(
    client: &Client,
    project: &Project,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<Created, CliError> {
    let mut changed: Vec<String> = Vec::new();
    let result = {
        let mut record = |line: String| {
            if !line.ends_with(": unchanged") && !line.starts_with("project ") {
                // "group    titanic: create" -> "group titanic"
                let what = line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                changed.push(what.trim_end_matches(':').to_string());
            }
            say(line)
        };
        apply_all(client, project, dry_run, &mut record).await
    };
    result.map_err(|e| {
        let done = if changed.is_empty() {
            "nothing was changed".to_string()
        } else {
            format!("already changed: {}", changed.join(", "))
        };
        let what =
            |m: String| format!("{m}; apply stopped there ({done}; what follows it in the project was not applied)");
        match e {
            CliError::Input(m) => CliError::Input(what(m)),
            CliError::Failure(m) => CliError::Failure(what(m)),
        }
    })
}

async fn apply_all(
    client: &Client,
    project: &Project,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<Created, CliError> {
    let name = project.project.name.as_deref().unwrap_or("(unnamed)");
    let about = project.project.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
    say(format!("project  {name}{about}{}", if dry_run { " (dry run: nothing changes)" } else { "" }));
    let verb = |doing: &str| if dry_run { format!("would {doing}") } else { doing.to_string() };
    for u in &project.uploads {
        let local = project.dir.join(&u.file);
        let (size, sha) = crate::client::hash_file(&local)
            .await
            .map_err(|e| CliError::Input(format!("uploads: cannot read {}: {e}", local.display())))?;
        let rest = u.to.trim_start_matches("s3://");
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let listing = client
            .json(
                "GET",
                &format!("/buckets/{}/objects", encode_segment(bucket)),
                &[("prefix", key), ("limit", "1")],
                None,
            )
            .await;
        let current = match listing {
            Ok(v) => {
                v["objects"].as_array().and_then(|a| a.first()).filter(|o| o["key"] == key).map(|o| o["sha256"].clone())
            }
            Err(CliError::Input(m)) if m.contains("NoSuchBucket") => {
                if !dry_run {
                    client.json("PUT", &format!("/buckets/{}", encode_segment(bucket)), &[], None).await?;
                }
                say(format!("bucket   {bucket}: {}", verb("create")));
                None
            }
            Err(e) => return Err(e),
        };
        if current.as_ref().and_then(|s| s.as_str()) == Some(sha.as_str()) {
            say(format!("upload   {} -> {}: unchanged", u.file.display(), u.to));
            continue;
        }
        if !dry_run {
            let path = crate::client::object_path(bucket, key)
                .map_err(|e| prefix(e, &format!("upload {} -> {}", u.file.display(), u.to)))?;
            let ct = if key.ends_with(".csv") { "text/csv" } else { "application/octet-stream" };
            client
                .send_file("PUT", &path, &local, ct)
                .await
                .map_err(|e| prefix(e, &format!("upload {} -> {}", u.file.display(), u.to)))?;
        }
        say(format!("upload   {} -> {}: {} ({size} bytes)", u.file.display(), u.to, verb("upload")));
    }
    for (name, spec) in &project.pipelines {
        let group = &spec.model_group;
        match client.json("GET", &format!("/model-groups/{}", encode_segment(group)), &[], None).await {
            Ok(_) => {}
            Err(CliError::Input(m)) if m.contains("ModelGroupNotFound") => {
                if !dry_run {
                    let body = json!({"name": group, "description": format!("models of pipeline {name}")});
                    client.json("POST", "/model-groups", &[], Some(body)).await?;
                }
                say(format!("group    {group}: {}", verb("create")));
            }
            Err(e) => return Err(e),
        }
        let definition = serde_json::to_value(spec).expect("specs serialise");
        let local_digest =
            hex::encode(Sha256::digest(serde_json::to_string(spec).expect("specs serialise").as_bytes()));
        let current = match client.json("GET", &format!("/pipelines/{}", encode_segment(name)), &[], None).await {
            Ok(v) => Some(v["digest"].as_str().unwrap_or_default().to_string()),
            Err(CliError::Input(m)) if m.contains("PipelineNotFound") => None,
            Err(e) => return Err(e),
        };
        let what = match current {
            Some(d) if d == local_digest => "unchanged".to_string(),
            Some(_) => verb("update"),
            None => verb("create"),
        };
        if !dry_run && what != "unchanged" {
            client.json("PUT", &format!("/pipelines/{}", encode_segment(name)), &[], Some(definition)).await?;
        }
        let order = spec.validate(name).map_err(|e| CliError::Input(format!("pipelines.{name}: {e}")))?;
        say(format!("pipeline {name}: {what} (steps: {}; registers into {group})", order.join(" -> ")));
    }
    apply_iam(client, project, dry_run, say).await?;
    for (name, spec) in &project.functions {
        let mut spec = spec.clone();
        if let Some(code) = spec.code.clone().filter(|c| !c.starts_with("s3://")) {
            let (bundle, bytes) = super::code::bundle_of(name, &project.dir.join(&code))
                .await
                .map_err(|e| prefix(e, &format!("functions.{name}.code")))?;
            let what = match super::code::upload(client, &bundle, bytes, dry_run).await? {
                true => format!("{} ({} bytes, sha256 {})", verb("upload"), bundle.size, &bundle.sha256[..12]),
                false => "unchanged".into(),
            };
            say(format!("code     {name} ({code}) -> {}: {what}", bundle.uri));
            spec.code = Some(bundle.uri);
            spec.code_sha256 = Some(bundle.sha256);
        }
        let what =
            put_spec(client, "functions", name, serde_json::to_value(&spec).expect("specs serialise"), dry_run).await?;
        let about = match spec.kind {
            FunctionKind::Model => {
                format!("serves model group {}, {}", spec.model_group.as_deref().unwrap_or_default(), spec.selector)
            }
            FunctionKind::Process => {
                let handler = spec.handler.as_deref().map(|h| format!(", handler {h}")).unwrap_or_default();
                format!("runs {}{handler}", spec.command.join(" "))
            }
        };
        say(format!("function {name}: {what} ({about})"));
    }
    for (name, spec) in &project.apis {
        let what =
            put_spec(client, "apis", name, serde_json::to_value(spec).expect("specs serialise"), dry_run).await?;
        let routes: Vec<&str> = spec.routes.keys().map(String::as_str).collect();
        let stages: Vec<String> = spec.stages.keys().map(|s| format!("/{name}/{s}")).collect();
        say(format!("api      {name}: {what} (routes: {}; stages: {})", routes.join(", "), stages.join(", ")));
    }
    let created = apply_access(client, project, dry_run, say).await?;
    // API Gateway's default is an open route: say so for each one, so nothing is public by
    // accident.
    for (name, spec) in &project.apis {
        for (key, route) in &spec.routes {
            if route.auth.as_deref().unwrap_or("none") == "none" {
                let (method, path) = key.split_once(' ').unwrap_or(("ANY", key));
                for stage in spec.stages.keys() {
                    say(format!("public   {method} /{name}/{stage}{path}: no authorization (auth = \"none\")"));
                }
            }
        }
    }
    Ok(created)
}

fn prefix(e: CliError, what: &str) -> CliError {
    match e {
        CliError::Input(m) => CliError::Input(format!("{what}: {m}")),
        CliError::Failure(m) => CliError::Failure(format!("{what}: {m}")),
    }
}

/// Creates or replaces a stored function or API (`kind` is its admin path), saying what
/// changed: `create`, `update` or `unchanged`.
async fn put_spec(
    client: &Client,
    kind: &str,
    name: &str,
    spec: serde_json::Value,
    dry_run: bool,
) -> Result<String, CliError> {
    let path = format!("/{kind}/{}", encode_segment(name));
    let current = match client.json("GET", &path, &[], None).await {
        Ok(v) => Some(v["spec"].clone()),
        Err(CliError::Input(m)) if m.contains("NotFound") => None,
        Err(e) => return Err(e),
    };
    let what = match &current {
        Some(c) if *c == spec => return Ok("unchanged".into()),
        Some(_) => "update",
        None => "create",
    };
    if dry_run {
        return Ok(format!("would {what}"));
    }
    let answer = client.json("PUT", &path, &[], Some(spec)).await?;
    // The server may find the declaration unchanged where the texts differ (a secret sent in
    // plain text against its sealed form).
    if answer.get("changed").and_then(serde_json::Value::as_bool) == Some(false) {
        return Ok("unchanged".into());
    }
    Ok(what.to_string())
}
