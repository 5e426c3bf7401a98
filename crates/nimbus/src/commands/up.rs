//! `nimbus up DIR`: the one-command demo. Starts the embedded server, applies the project,
//! runs its pipeline when the model group has no version yet, approves the result when the
//! project says `auto_approve = true`, sends the sample request through the gateway, prints
//! the answer and ready-to-paste `curl` commands, and keeps serving until Ctrl-C.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{Global, ServeArgs};
use crate::client::{Client, encode_segment};
use crate::commands::{apply, pipelines, serve};
use crate::output::cell;
use crate::project::{self, Project, UpSpec};

pub async fn run(g: &Global, path: &Path, mut args: ServeArgs) -> Result<(), CliError> {
    let project = project::load(path)?;
    // Checked before anything starts, so a typo does not leave a half-run demo behind.
    if let Some(up) = &project.up {
        let sample = project.dir.join(&up.sample);
        if !sample.is_file() {
            return Err(CliError::Input(format!("up.sample: {} is not a file", sample.display())));
        }
    }
    // The demo's emulator curl line is unsigned, as the seeds' local tests are.
    args.allow_unsigned_local_invoke = true;
    let server = serve::start(g, args).await?;
    let endpoint = server.endpoint.clone();
    let data_dir = g.data_dir.clone();
    let serving = tokio::spawn(server.run(nimbus_server::shutdown_signal()));
    // The CLI's own client, pointed at this server with the data directory's admin key.
    let g = Global { endpoint: Some(endpoint.clone()), profile: None, ..g.clone() };
    let client = Client::new(&g)?;
    outln!();
    let created = apply::apply(&client, &project, false, &mut |line| outln!("{line}")).await?;
    if let Some(up) = &project.up {
        walk_through(&g, &client, &project, up, &endpoint).await?;
        if let (Some(key), Some(path)) = (&up.api_key, &up.api_key_path) {
            let value = demo_key(&client, &data_dir, key, &created).await?;
            with_key(&project, up, &endpoint, path, &value).await?;
        }
    }
    outln!("\nServing on {endpoint}; Ctrl-C stops.");
    match serving.await {
        Ok(Ok(())) => {
            outln!("nimbus stopped");
            Ok(())
        }
        Ok(Err(e)) => Err(CliError::Failure(e.to_string())),
        Err(e) => Err(CliError::Failure(format!("the server stopped: {e}"))),
    }
}

async fn walk_through(
    g: &Global,
    client: &Client,
    project: &Project,
    up: &UpSpec,
    endpoint: &str,
) -> Result<(), CliError> {
    let function = project.apis[&up.api]
        .routes
        .values()
        .next()
        .map(|r| nimbus_functions::versions::split_target(&r.function).0.to_string())
        .ok_or_else(|| CliError::Input(format!("up.api: API {} has no routes", up.api)))?;
    let group = project.functions[&function].model_group.clone().unwrap_or_default();
    let versions = client.json("GET", &format!("/model-groups/{}/versions", encode_segment(&group)), &[], None).await?;
    let versions = versions.as_array().cloned().unwrap_or_default();
    if versions.is_empty()
        && let Some(pipeline) = &up.pipeline
    {
        outln!("\nModel group {group} has no version yet: running pipeline {pipeline}");
        let started = client
            .json("POST", &format!("/pipelines/{}/executions", encode_segment(pipeline)), &[], Some(json!({})))
            .await?;
        let done = pipelines::follow(client, &cell(&started["id"]), true).await?;
        if done["status"] == "Failed" {
            return Err(CliError::Failure(format!("pipeline {pipeline} failed: {}", cell(&done["outcome"]))));
        }
    }
    if up.auto_approve {
        approve_latest(client, &group).await?;
    }

    let sample_path = project.dir.join(&up.sample);
    let sample = std::fs::read(&sample_path)
        .map_err(|e| CliError::Input(format!("up.sample: cannot read {}: {e}", sample_path.display())))?;
    let url = format!("{endpoint}/{}/{}{}", up.api, up.stage, up.path);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .body(sample.clone())
        .send()
        .await
        .map_err(|e| CliError::Failure(format!("sample request to {url}: {e}")))?;
    let took = started.elapsed().as_secs_f64() * 1e3;
    let status = resp.status();
    let answer = resp.text().await.unwrap_or_default();
    let compact: Value = serde_json::from_slice(&sample).unwrap_or(Value::Null);
    let body = serde_json::to_string(&compact).unwrap_or_else(|_| String::from_utf8_lossy(&sample).into_owned());
    let init = client
        .json("GET", &format!("/functions/{}", encode_segment(&function)), &[], None)
        .await
        .ok()
        .and_then(|f| f["init_ms"].as_f64())
        .map(|ms| format!(", of which {ms:.2} ms loading the model"))
        .unwrap_or_default();
    outln!("\nPOST {url}\n  {body}\n-> {status} in {took:.2} ms (the first request{init})\n  {answer}");
    if !status.is_success() {
        return Err(CliError::Failure(format!("the sample request was answered {status}: {answer}")));
    }
    outln!("\nTry it:");
    outln!("  curl -s -X POST {url} -H 'content-type: application/json' -d '{body}'");
    outln!(
        "  curl -s -X POST {endpoint}/2015-03-31/functions/function/invocations -H 'content-type: application/json' -d '{body}'"
    );
    // The CLI finds this server through the data directory; name it when it is not the default.
    let dir = if g.data_dir == Path::new(".nimbus") {
        String::new()
    } else {
        format!(" --data-dir {}", g.data_dir.display())
    };
    outln!("  nimbus{dir} functions invoke {function} --payload '{body}'");
    outln!("  nimbus{dir} logs {function}            # START/END/REPORT lines");
    outln!("  curl -s {endpoint}/metrics");
    Ok(())
}

/// The value of the demo's API key: the one this apply created (kept in the data directory,
/// 0600, so the next `up` can print it again), or the kept one; when neither exists (the
/// file was removed) the key is made anew, since a value is never shown twice.
async fn demo_key(
    client: &Client,
    data_dir: &Path,
    name: &str,
    created: &super::apply_access::Created,
) -> Result<String, CliError> {
    let file = data_dir.join("api-keys").join(name);
    let keep = |value: &str| -> Result<(), CliError> {
        std::fs::create_dir_all(file.parent().expect("has a parent"))
            .and_then(|()| {
                std::fs::set_permissions(
                    file.parent().expect("has a parent"),
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )
            })
            .map_err(|e| CliError::Failure(format!("{}: {e}", file.display())))?;
        nimbus_iam::crypto::write_private(&file, value.as_bytes()).map_err(|e| CliError::Failure(e.to_string()))
    };
    if let Some((_, value)) = created.api_keys.iter().find(|(n, _)| n == name) {
        keep(value)?;
        return Ok(value.clone());
    }
    if let Ok(value) = std::fs::read_to_string(&file) {
        return Ok(value.trim().to_string());
    }
    let keys = client.json("GET", "/api-keys", &[], None).await?;
    let plan = keys.as_array().and_then(|a| a.iter().find(|k| k["name"] == name)).map(|k| k["usage_plan"].clone());
    client.json("DELETE", &format!("/api-keys/{}", encode_segment(name)), &[], None).await?;
    let v = client.json("POST", "/api-keys", &[], Some(json!({ "name": name, "usage_plan": plan }))).await?;
    let value = cell(&v["value"]);
    keep(&value)?;
    outln!("api key  {name}: made anew (its value was not kept in {})", file.display());
    Ok(value)
}

/// Sends the sample to the route behind the API key and prints its curl.
async fn with_key(project: &Project, up: &UpSpec, endpoint: &str, path: &str, key: &str) -> Result<(), CliError> {
    let sample = std::fs::read(project.dir.join(&up.sample)).map_err(|e| CliError::Input(format!("up.sample: {e}")))?;
    let compact: Value = serde_json::from_slice(&sample).unwrap_or(Value::Null);
    let body = serde_json::to_string(&compact).unwrap_or_default();
    let url = format!("{endpoint}/{}/{}{path}", up.api, up.stage);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-api-key", key)
        .body(sample)
        .send()
        .await
        .map_err(|e| CliError::Failure(format!("request to {url}: {e}")))?;
    let status = resp.status();
    let answer = resp.text().await.unwrap_or_default();
    outln!(
        "
POST {url} with x-api-key (the route needs the key; its usage plan throttles and counts)
-> {status}
  {answer}"
    );
    if !status.is_success() {
        return Err(CliError::Failure(format!("the request with the API key was answered {status}: {answer}")));
    }
    outln!("  curl -s -X POST {url} -H 'x-api-key: {key}' -H 'content-type: application/json' -d '{body}'");
    outln!("  curl -s -X POST {url} -H 'content-type: application/json' -d '{body}'   # without the key: 403");
    Ok(())
}

/// Approves the newest version when no version is approved yet.
async fn approve_latest(client: &Client, group: &str) -> Result<(), CliError> {
    let versions = client.json("GET", &format!("/model-groups/{}/versions", encode_segment(group)), &[], None).await?;
    let versions = versions.as_array().cloned().unwrap_or_default();
    if versions.iter().any(|v| v["status"] == "Approved") {
        return Ok(());
    }
    let Some(newest) =
        versions.iter().filter(|v| v["status"] == "PendingManualApproval").max_by_key(|v| v["version"].as_i64())
    else {
        return Ok(());
    };
    let version = cell(&newest["version"]);
    let body = json!({"status": "Approved", "description": "approved by `nimbus up` (the project sets up.auto_approve = true)"});
    client
        .json("PATCH", &format!("/model-groups/{}/versions/{version}", encode_segment(group)), &[], Some(body))
        .await?;
    outln!("approved {group} version {version} (up.auto_approve = true in this project; elsewhere approval is manual)");
    Ok(())
}
