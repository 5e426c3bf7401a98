//! `nimbus functions`, `nimbus apis` and `nimbus logs`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::CliError;
use crate::cli::{AliasCommand, ApisCommand, FunctionsCommand, Global, Output};
use crate::client::{Client, encode_segment};
use crate::output::{self, cell};

pub async fn functions(g: &Global, cmd: FunctionsCommand) -> Result<(), CliError> {
    let client = Client::new(g)?;
    match cmd {
        FunctionsCommand::List => {
            let v = client.json("GET", "/functions", &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    vec![
                        cell(&f["name"]),
                        cell(&f["spec"]["model_group"]),
                        cell(&f["spec"]["selector"]),
                        cell(&f["state"]),
                        cell(&f["loaded_version"]),
                        cell(&f["spec"]["memory_mb"]),
                        cell(&f["spec"]["timeout_s"]),
                    ]
                })
                .collect();
            output::print(
                g.output,
                &v,
                &["FUNCTION", "MODEL GROUP", "SELECTOR", "STATE", "VERSION", "MEMORY MB", "TIMEOUT S"],
                rows,
            );
        }
        FunctionsCommand::Describe { name } => {
            let v = client.json("GET", &format!("/functions/{}", encode_segment(&name)), &[], None).await?;
            let spec = &v["spec"];
            let command =
                Value::String(spec["command"].as_array().into_iter().flatten().map(cell).collect::<Vec<_>>().join(" "));
            let mut rows = vec![("name", &v["name"]), ("arn", &v["arn"]), ("kind", &spec["kind"])];
            if spec["kind"] == "process" {
                rows.extend([
                    ("command", &command),
                    ("handler", &spec["handler"]),
                    ("code", &spec["code"]),
                    ("code_sha256", &spec["code_sha256"]),
                    ("requirements", &spec["requirements"]),
                    ("min_instances", &spec["min_instances"]),
                ]);
            } else {
                rows.extend([
                    ("model_group", &spec["model_group"]),
                    ("selector", &spec["selector"]),
                    ("state", &v["state"]),
                    ("loaded_version", &v["loaded_version"]),
                    ("loaded_at", &v["loaded_at"]),
                    ("init_ms", &v["init_ms"]),
                ]);
            }
            rows.extend([
                ("memory_mb", &spec["memory_mb"]),
                ("timeout_s", &spec["timeout_s"]),
                ("max_concurrency", &spec["max_concurrency"]),
                ("idle_s", &spec["idle_s"]),
                ("default", &spec["default"]),
            ]);
            let rows = rows.iter().map(|(k, val)| vec![k.to_string(), cell(val)]).collect();
            output::print(g.output, &v, &["FIELD", "VALUE"], rows);
        }
        FunctionsCommand::Deploy { name, code } => deploy(&client, g, &name, &code).await?,
        FunctionsCommand::Invoke { name, payload, qualifier, log, asynchronous } => {
            let body = match payload.strip_prefix('@') {
                Some(file) => std::fs::read(file).map_err(|e| CliError::Input(format!("--payload @{file}: {e}")))?,
                None => payload.into_bytes(),
            };
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| CliError::Input(format!("--payload is not JSON: {e}")))?;
            let path = format!("/2015-03-31/functions/{}/invocations", encode_segment(&name));
            let query: Vec<(&str, &str)> = qualifier.as_deref().map(|q| ("Qualifier", q)).into_iter().collect();
            let mut headers = vec![("content-type", "application/json")];
            if log {
                headers.push(("x-amz-log-type", "Tail"));
            }
            if asynchronous {
                headers.push(("x-amz-invocation-type", "Event"));
            }
            let (status, answer) = client.signed("lambda", "POST", &path, &query, &headers, body).await?;
            let text = String::from_utf8_lossy(&answer.body).into_owned();
            if !status.is_success() {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let message = v["message"].as_str().or(v["Message"].as_str()).unwrap_or(&text).to_string();
                return Err(if status.is_client_error() {
                    CliError::Input(message)
                } else {
                    CliError::Failure(message)
                });
            }
            if asynchronous {
                let id = answer.headers.get("x-amzn-requestid").and_then(|v| v.to_str().ok()).unwrap_or("");
                outln!("queued event {id} for {name}");
                return Ok(());
            }
            outln!("{text}");
            if let Some(tail) = answer.headers.get("x-amz-log-result").and_then(|v| v.to_str().ok()) {
                let lines = base64::engine::general_purpose::STANDARD.decode(tail).unwrap_or_default();
                eprint!("{}", String::from_utf8_lossy(&lines));
            }
            if answer.headers.contains_key("x-amz-function-error") {
                return Err(CliError::Failure(format!("function {name} failed; see `nimbus logs {name}`")));
            }
        }
        FunctionsCommand::Failures { name, limit } => {
            let path = format!("/functions/{}/failures", encode_segment(&name));
            let limit = limit.to_string();
            let v = client.json("GET", &path, &[("limit", limit.as_str())], None).await?;
            let rows = v["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    let error = format!("{}: {}", cell(&f["error"]["errorType"]), cell(&f["error"]["errorMessage"]));
                    vec![cell(&f["id"]), cell(&f["failed"]), cell(&f["attempts"]), error]
                })
                .collect();
            output::print(g.output, &v, &["EVENT", "FAILED", "ATTEMPTS", "LAST ERROR"], rows);
            if g.output == Output::Table {
                eprintln!("{} event(s) of {name} waiting", cell(&v["queued"]));
            }
        }
        FunctionsCommand::Publish { name, description } => {
            let path = format!("/functions/{}/versions", encode_segment(&name));
            let v = client.json("POST", &path, &[], Some(serde_json::json!({ "description": description }))).await?;
            if g.output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            } else {
                let version = &v["version"];
                let model = match version["spec"]["model_group"].as_str() {
                    Some(group) => format!(", serving model {group} version {}", cell(&version["spec"]["selector"])),
                    None => String::new(),
                };
                if v["created"] == true {
                    outln!("published {name} version {}{model}", cell(&version["version"]));
                } else {
                    outln!(
                        "{name} is unchanged since version {}{model}; nothing new published",
                        cell(&version["version"])
                    );
                }
            }
        }
        FunctionsCommand::Versions { name } => {
            let v = client.json("GET", &format!("/functions/{}/versions", encode_segment(&name)), &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    let serves = match f["spec"]["model_group"].as_str() {
                        Some(group) => format!("model {group} {}", selector_words(&f["spec"]["selector"])),
                        None => cell(&f["spec"]["code"]),
                    };
                    let published = match f["created_at"].as_str() {
                        Some(at) => format!("{at} by {}", cell(&f["created_by"])),
                        None => "- (editable)".into(),
                    };
                    vec![cell(&f["version"]), serves, cell(&f["state"]), published, cell(&f["description"])]
                })
                .collect();
            output::print(g.output, &v, &["VERSION", "SERVES", "STATE", "PUBLISHED", "DESCRIPTION"], rows);
        }
        FunctionsCommand::Alias(cmd) => alias(g, &client, cmd).await?,
    }
    Ok(())
}

/// A model selector in words: `version 3`, `the latest approved version`, `alias @prod`.
fn selector_words(selector: &Value) -> String {
    match selector.as_str() {
        Some("latest-approved") => "latest approved".into(),
        Some(s) if s.starts_with('@') => format!("alias {s}"),
        Some(s) => format!("version {s}"),
        None => cell(selector),
    }
}

/// Where an alias sends invocations, in words: `version 1`, or `90% version 1, 10% version 2`.
fn routing_words(a: &Value) -> String {
    let main = cell(&a["version"]);
    let Some((other, weight)) = a["weights"].as_object().and_then(|w| w.iter().next()) else {
        return format!("version {main}");
    };
    let share = weight.as_f64().unwrap_or(0.0) * 100.0;
    format!("{}% version {main}, {}% version {other}", trim_percent(100.0 - share), trim_percent(share))
}

/// A percentage without trailing zeros: 10, 12.5, 0.01.
fn trim_percent(p: f64) -> String {
    let text = format!("{p:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

async fn alias(g: &Global, client: &Client, cmd: AliasCommand) -> Result<(), CliError> {
    match cmd {
        AliasCommand::Set { name, alias, version, weight, description } => {
            let mut weights = serde_json::Map::new();
            if let Some(w) = weight {
                let (other, share) = w.split_once('=').ok_or_else(|| {
                    CliError::Input(format!("--weight {w:?}: write VERSION=WEIGHT, e.g. --weight 4=0.1"))
                })?;
                let share: f64 = share.trim().parse().map_err(|_| {
                    CliError::Input(format!("--weight {w:?}: {share:?} is not a number from 0 to below 1"))
                })?;
                weights.insert(other.trim().to_string(), serde_json::json!(share));
            }
            let path = format!("/functions/{}/aliases/{}", encode_segment(&name), encode_segment(&alias));
            let body = serde_json::json!({ "version": version, "weights": weights, "description": description });
            let v = client.json("PUT", &path, &[], Some(body)).await?;
            if g.output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            } else {
                outln!("alias {name}:{alias} sends {}", routing_words(&v));
            }
        }
        AliasCommand::List { name } => {
            let v = client.json("GET", &format!("/functions/{}/aliases", encode_segment(&name)), &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| vec![cell(&a["name"]), routing_words(a), cell(&a["updated_at"]), cell(&a["description"])])
                .collect();
            output::print(g.output, &v, &["ALIAS", "SENDS", "UPDATED", "DESCRIPTION"], rows);
        }
        AliasCommand::Delete { name, alias } => {
            let path = format!("/functions/{}/aliases/{}", encode_segment(&name), encode_segment(&alias));
            client.json("DELETE", &path, &[], None).await?;
            outln!("deleted alias {name}:{alias}");
        }
    }
    Ok(())
}

/// `nimbus functions deploy NAME --code DIR|ZIP`: uploads the bundle (unless stored already)
/// and stores the function's declaration with `code` and `code_sha256` naming it.
async fn deploy(client: &Client, g: &Global, name: &str, code: &std::path::Path) -> Result<(), CliError> {
    let path = format!("/functions/{}", encode_segment(name));
    let current = match client.json("GET", &path, &[], None).await {
        Ok(v) => v,
        Err(CliError::Input(m)) if m.contains("NotFound") => {
            return Err(CliError::Input(format!(
                "function {name} does not exist; declare it in nimbus.toml ([functions.{name}] with kind = \"process\", \
                 command and code = \"DIR\") and run `nimbus apply`, which uploads its code too"
            )));
        }
        Err(e) => return Err(e),
    };
    let mut spec = current["spec"].clone();
    if spec["kind"] != "process" {
        return Err(CliError::Input(format!(
            "function {name} is a {} function; --code is for functions of kind = \"process\"",
            cell(&spec["kind"])
        )));
    }
    let (bundle, bytes) = super::code::bundle_of(name, code).await.map_err(|e| in_context(e, "--code"))?;
    let uploaded = super::code::upload(client, &bundle, bytes, false).await?;
    spec["code"] = Value::String(bundle.uri.clone());
    spec["code_sha256"] = Value::String(bundle.sha256.clone());
    let answer = client.json("PUT", &path, &[], Some(spec)).await?;
    let changed = answer["changed"].as_bool().unwrap_or(true);
    let v = serde_json::json!({
        "function": name,
        "code": bundle.uri,
        "code_sha256": bundle.sha256,
        "size": bundle.size,
        "uploaded": uploaded,
        "changed": changed,
    });
    match g.output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&v).expect("JSON serialises")),
        Output::Table => {
            let stored = if uploaded { "uploaded" } else { "already stored" };
            let function = if changed { "updated" } else { "unchanged" };
            outln!("code     {}: {stored} ({} bytes, sha256 {})", bundle.uri, bundle.size, bundle.sha256);
            outln!("function {name}: {function}");
        }
    }
    Ok(())
}

fn in_context(e: CliError, what: &str) -> CliError {
    match e {
        CliError::Input(m) => CliError::Input(format!("{what}: {m}")),
        CliError::Failure(m) => CliError::Failure(format!("{what}: {m}")),
    }
}

pub async fn apis(g: &Global, cmd: ApisCommand) -> Result<(), CliError> {
    let client = Client::new(g)?;
    let base = client.base().to_string();
    let urls = |a: &Value| -> String {
        a["stage_paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{base}{}", cell(p)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match cmd {
        ApisCommand::List => {
            let v = client.json("GET", "/apis", &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let routes: Vec<String> =
                        a["spec"]["routes"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
                    vec![cell(&a["name"]), routes.join(", "), urls(a)]
                })
                .collect();
            output::print(g.output, &v, &["API", "ROUTES", "STAGE URLS"], rows);
        }
        ApisCommand::Describe { name } => {
            let v = client.json("GET", &format!("/apis/{}", encode_segment(&name)), &[], None).await?;
            let rows = v["spec"]["routes"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, r)| vec![k.clone(), cell(&r["function"]), urls(&v)])
                .collect();
            output::print(g.output, &v, &["ROUTE", "FUNCTION", "STAGE URLS"], rows);
        }
    }
    Ok(())
}

/// One Prometheus sample: metric name, labels, value.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            let labels = labels
                .split("\",")
                .filter_map(|kv| {
                    kv.split_once("=\"").map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            Some((name.to_string(), labels, value.parse().ok()?))
        })
        .collect()
}

pub async fn metrics(g: &Global, function: Option<String>, api: Option<String>) -> Result<(), CliError> {
    let client = Client::new(g)?;
    let url = format!("{}/metrics", client.base());
    let text = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| CliError::Failure(format!("cannot read {url}: {e}")))?
        .text()
        .await
        .map_err(|e| CliError::Failure(format!("reading {url}: {e}")))?;
    let all = samples(&text);
    let value = |metric: &str, key: &str, name: &str| {
        all.iter()
            .filter(|(m, l, _)| m == metric && l.get(key).map(String::as_str) == Some(name))
            .map(|s| s.2)
            .sum::<f64>()
    };
    let mut functions: Vec<String> = all.iter().filter_map(|(_, l, _)| l.get("function").cloned()).collect();
    functions.sort();
    functions.dedup();
    functions.retain(|f| function.as_deref().is_none_or(|w| w == f));
    let mut out = serde_json::Map::new();
    let mut rows = Vec::new();
    if api.is_none() {
        for f in &functions {
            let count = value("nimbus_function_duration_seconds_count", "function", f);
            let mean_ms = if count > 0.0 {
                value("nimbus_function_duration_seconds_sum", "function", f) / count * 1e3
            } else {
                0.0
            };
            let count = |metric: &str| value(metric, "function", f) as u64;
            let row = serde_json::json!({
                "invocations": count("nimbus_function_invocations_total"),
                "errors": count("nimbus_function_errors_total"),
                "throttles": count("nimbus_function_throttles_total"),
                "cold_starts": count("nimbus_function_cold_starts_total"),
                "in_flight": count("nimbus_function_concurrent_executions"),
                "mean_duration_ms": (mean_ms * 1000.0).round() / 1000.0,
            });
            rows.push(vec![
                f.clone(),
                cell(&row["invocations"]),
                cell(&row["errors"]),
                cell(&row["throttles"]),
                cell(&row["cold_starts"]),
                cell(&row["in_flight"]),
                format!("{mean_ms:.3}"),
            ]);
            out.insert(format!("function/{f}"), row);
        }
    }
    let mut routes = Vec::new();
    if function.is_none() {
        for (m, l, v) in &all {
            if m == "nimbus_gateway_responses_total"
                && api.as_deref().is_none_or(|a| l.get("api").map(String::as_str) == Some(a))
            {
                let key = |k: &str| l.get(k).cloned().unwrap_or_default();
                routes.push(vec![key("api"), key("stage"), key("route"), key("status"), format!("{v}")]);
                out.insert(
                    format!("route/{}/{}/{}/{}", key("api"), key("stage"), key("route"), key("status")),
                    serde_json::json!(v),
                );
            }
        }
    }
    if g.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&Value::Object(out)).expect("JSON"));
        return Ok(());
    }
    if !rows.is_empty() {
        out!(
            "{}",
            output::table(
                &["FUNCTION", "INVOCATIONS", "ERRORS", "THROTTLES", "COLD STARTS", "IN FLIGHT", "MEAN MS"],
                &rows
            )
        );
    }
    if !routes.is_empty() {
        if !rows.is_empty() {
            outln!();
        }
        out!("{}", output::table(&["API", "STAGE", "ROUTE", "STATUS", "RESPONSES"], &routes));
    }
    Ok(())
}

pub async fn logs(
    g: &Global,
    name: &str,
    api: bool,
    since: Option<String>,
    filter: Option<String>,
    follow: bool,
) -> Result<(), CliError> {
    let client = Client::new(g)?;
    // `NAME:VERSION`: each published version keeps its own log.
    let (name, qualifier) = match name.split_once(':') {
        Some((n, q)) if !api => (n, Some(q)),
        _ => (name, None),
    };
    let path = format!("/{}/{}/logs", if api { "apis" } else { "functions" }, encode_segment(name));
    let mut since = since.unwrap_or_else(|| "0".into());
    loop {
        let mut query = vec![("since", since.as_str())];
        if let Some(q) = qualifier {
            query.push(("qualifier", q));
        }
        if let Some(f) = filter.as_deref() {
            query.push(("filter", f));
        }
        let v = client.json("GET", &path, &query, None).await?;
        let lines = v["lines"].as_array().cloned().unwrap_or_default();
        if g.output == Output::Json && !follow {
            outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            return Ok(());
        }
        for l in &lines {
            outln!("{} {}", cell(&l["time"]), cell(&l["text"]));
        }
        if !follow {
            return Ok(());
        }
        // Next poll: strictly after the newest line shown.
        if let Some(last) = lines.last().and_then(|l| l["time"].as_str()) {
            let ms = time::OffsetDateTime::parse(last, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64 + 1)
                .unwrap_or(0);
            since = ms.to_string();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
