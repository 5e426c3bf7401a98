//! `nimbus pipelines`: list, run (and follow), executions, describe.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{Global, Output, PipelinesCommand};
use crate::client::{Client, encode_segment};
use crate::output::{self, cell};

pub async fn run(g: &Global, cmd: PipelinesCommand) -> Result<(), CliError> {
    let client = Client::new(g)?;
    match cmd {
        PipelinesCommand::List => {
            let v = client.json("GET", "/pipelines", &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        cell(&p["name"]),
                        cell(&p["model_group"]),
                        cell(&p["executions"]),
                        cell(&p["updated_at"]),
                        cell(&p["description"]),
                    ]
                })
                .collect();
            output::print(g.output, &v, &["PIPELINE", "MODEL GROUP", "EXECUTIONS", "UPDATED", "DESCRIPTION"], rows);
        }
        PipelinesCommand::Run { name, param, wait, retry } => {
            let started = match retry {
                Some(id) => {
                    if !param.is_empty() {
                        return Err(CliError::Input(
                            "--retry re-runs with the execution's own parameters; drop --param".into(),
                        ));
                    }
                    client.json("POST", &format!("/executions/{}/retry", encode_segment(&id)), &[], None).await?
                }
                None => {
                    let name =
                        name.ok_or_else(|| CliError::Input("name the pipeline to run (or --retry EXECUTION)".into()))?;
                    let mut parameters = BTreeMap::new();
                    for p in &param {
                        let (k, v) = p
                            .split_once('=')
                            .ok_or_else(|| CliError::Input(format!("--param {p:?} must be KEY=VALUE")))?;
                        parameters.insert(k.trim().to_string(), Value::String(v.to_string()));
                    }
                    client
                        .json(
                            "POST",
                            &format!("/pipelines/{}/executions", encode_segment(&name)),
                            &[],
                            Some(json!({"parameters": parameters})),
                        )
                        .await?
                }
            };
            let id = cell(&started["id"]);
            if !wait {
                match g.output {
                    Output::Json => outln!("{}", serde_json::to_string_pretty(&started).expect("JSON")),
                    Output::Table => outln!("started {id}; follow it with `nimbus pipelines describe {id}`"),
                }
                return Ok(());
            }
            let done = follow(&client, &id, g.output == Output::Table).await?;
            if g.output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&done).expect("JSON"));
            }
            if done["status"] == "Failed" || done["status"] == "Stopped" {
                let how = cell(&done["status"]).to_lowercase();
                return Err(CliError::Failure(format!("{id} {how}: {}", cell(&done["outcome"]))));
            }
        }
        PipelinesCommand::Executions { name } => {
            let v = client.json("GET", &format!("/pipelines/{}/executions", encode_segment(&name)), &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        cell(&e["id"]),
                        cell(&e["status"]),
                        cell(&e["started_at"]),
                        seconds(&e["duration_ms"]),
                        cell(&e["outcome"]),
                    ]
                })
                .collect();
            output::print(g.output, &v, &["EXECUTION", "STATUS", "STARTED", "DURATION", "OUTCOME"], rows);
        }
        PipelinesCommand::Stop { execution } => {
            let e = client.json("POST", &format!("/executions/{}/stop", encode_segment(&execution)), &[], None).await?;
            match g.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&e).expect("JSON")),
                Output::Table => outln!("{} {}: {}", cell(&e["id"]), cell(&e["status"]), cell(&e["outcome"])),
            }
        }
        PipelinesCommand::Describe { execution } => {
            let e = client.json("GET", &format!("/executions/{}", encode_segment(&execution)), &[], None).await?;
            if g.output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&e).expect("JSON"));
                return Ok(());
            }
            outln!("{}  {}  {}", cell(&e["id"]), cell(&e["status"]), cell(&e["outcome"]));
            outln!(
                "started {} by {}, took {}",
                cell(&e["started_at"]),
                cell(&e["started_by"]),
                seconds(&e["duration_ms"])
            );
            outln!("parameters: {}", params_line(&e["parameters"]));
            let rows: Vec<Vec<String>> = e["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        cell(&s["name"]),
                        cell(&s["kind"]),
                        cell(&s["status"]),
                        seconds(&s["duration_ms"]),
                        step_summary(s),
                    ]
                })
                .collect();
            out!("{}", output::table(&["STEP", "KIND", "STATUS", "DURATION", "DETAIL"], &rows));
            for s in e["steps"].as_array().into_iter().flatten() {
                let log = s["log"].as_str().unwrap_or_default();
                if !log.is_empty() {
                    outln!("--- {} log ---\n{log}", cell(&s["name"]));
                }
            }
        }
    }
    Ok(())
}

fn seconds(ms: &Value) -> String {
    ms.as_i64().map(|m| format!("{:.2} s", m as f64 / 1000.0)).unwrap_or_else(|| "-".into())
}

fn params_line(p: &Value) -> String {
    p.as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn metrics_line(outputs: &Value) -> String {
    let names = ["auc", "accuracy", "precision", "recall", "f1", "log_loss", "rmse", "mae", "r2"];
    names
        .iter()
        .filter_map(|n| outputs.get(*n).and_then(Value::as_f64).map(|v| format!("{n}={v:.4}")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn step_summary(s: &Value) -> String {
    if let Some(e) = s["error"].as_str() {
        return e.to_string();
    }
    let o = &s["outputs"];
    match s["kind"].as_str() {
        Some("train") if o.is_object() => format!("{} rows, {} held out", cell(&o["rows"]), cell(&o["holdout_rows"])),
        Some("evaluate") if o.is_object() => metrics_line(o),
        Some("condition") if o.is_object() => cell(&o["reason"]),
        Some("register") if o.is_object() => format!("version {}", cell(&o["version"])),
        _ => cell(&s["progress"]),
    }
}

/// Polls an execution until it ends, printing each step as it starts and ends.
pub(crate) async fn follow(client: &Client, id: &str, print: bool) -> Result<Value, CliError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut first = true;
    loop {
        let e = client.json("GET", &format!("/executions/{}", encode_segment(id)), &[], None).await?;
        if print && first {
            outln!("{id} started: {}", params_line(&e["parameters"]));
            first = false;
        }
        for s in e["steps"].as_array().into_iter().flatten() {
            let name = cell(&s["name"]);
            let state = format!("{}|{}", cell(&s["status"]), cell(&s["progress"]));
            let quiet = s["status"] == "Pending"
                || (s["status"] == "Running" && s["progress"].as_str().unwrap_or("").is_empty());
            if print && seen.get(&name) != Some(&state) && !quiet {
                let detail = match s["status"].as_str() {
                    Some("Running") => cell(&s["progress"]),
                    _ => step_summary(s),
                };
                let took = if s["status"] == "Running" { String::new() } else { seconds(&s["duration_ms"]) };
                outln!("  {name:<10} {:<10} {took:>8}  {detail}", cell(&s["status"]).to_lowercase());
            }
            seen.insert(name, state);
        }
        if e["status"] != "Running" {
            if print {
                outln!("{id} {} in {}: {}", cell(&e["status"]), seconds(&e["duration_ms"]), cell(&e["outcome"]));
                if let Some(ev) = e["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| s["kind"] == "evaluate" && s["outputs"].is_object())
                {
                    outln!("evaluation: {}", metrics_line(&ev["outputs"]));
                    let plots: Vec<String> = ["roc_plot", "confusion_plot", "importance_plot", "report"]
                        .iter()
                        .filter_map(|k| ev["outputs"][*k].as_str().map(str::to_string))
                        .collect();
                    if !plots.is_empty() {
                        outln!("report and plots: {}", plots.join(" "));
                    }
                }
            }
            return Ok(e);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
