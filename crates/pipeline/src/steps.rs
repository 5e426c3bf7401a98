//! The step kinds: train, evaluate, condition, register, transform (and process, in
//! `process.rs`).
//!
//! Each takes its resolved inputs and returns its outputs (JSON) and a log. Artifacts go to
//! `s3://nimbus-pipelines/{pipeline}/{execution}/{step}/…`. CPU-heavy work (training,
//! scoring) runs on the blocking pool so the server keeps answering.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nimbus_ml::bundle::Bundle;
use nimbus_ml::predict::Predictor;
use nimbus_ml::preprocess::Preprocessor;
use nimbus_ml::table::Table;
use nimbus_ml::train::{self, Task, TrainSpec};
use nimbus_ml::{metrics, plots};
use nimbus_registry::{ApprovalStatus, Dataset, Lineage, NewVersion};
use serde_json::{Value, json};

use crate::engine::StepResult;
use crate::spec::StepKind;
use crate::{ARTIFACTS_BUCKET, Execution, Pipelines, db};

/// What a step sees of its run.
pub(crate) struct Context<'a> {
    pub p: &'a Pipelines,
    pub execution: &'a Execution,
    pub step: &'a str,
    /// Turns true when the execution is to stop.
    pub cancel: tokio::sync::watch::Receiver<bool>,
}

struct Log {
    lines: Vec<String>,
}

impl Log {
    fn line(&mut self, text: impl Into<String>) {
        self.lines.push(text.into());
    }

    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

pub(crate) async fn run(
    ctx: &Context<'_>,
    kind: StepKind,
    inputs: &BTreeMap<String, Value>,
) -> Result<StepResult, String> {
    match kind {
        StepKind::Train => train_step(ctx, inputs).await,
        StepKind::Evaluate => evaluate_step(ctx, inputs).await,
        StepKind::Condition => condition_step(ctx, inputs),
        StepKind::Register => register_step(ctx, inputs).await,
        StepKind::Transform => transform_step(ctx, inputs).await,
        StepKind::Process => crate::process::process_step(ctx, inputs).await,
    }
}

fn text<'a>(inputs: &'a BTreeMap<String, Value>, key: &str) -> Result<&'a str, String> {
    match inputs.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
        None => Err(format!("{key} is required")),
    }
}

fn list(inputs: &BTreeMap<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match inputs.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            Ok(s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect())
        }
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("{key} must list strings"))).collect()
        }
        Some(other) => Err(format!("{key} must be a comma-separated string or a list, got {other}")),
    }
}

fn number(inputs: &BTreeMap<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match inputs.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(default)),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("{key} must be a number, got {s:?}")),
        Some(other) => Err(format!("{key} must be a number, got {other}")),
    }
}

pub(crate) async fn load(p: &Pipelines, uri: &str) -> Result<(Bytes, String), String> {
    let (bucket, key) =
        nimbus_store::parse_uri(uri).ok_or_else(|| format!("{uri:?} is not an s3://bucket/key address"))?;
    let (info, bytes) = p.store.get(bucket, key).await.map_err(|e| e.to_string())?;
    Ok((bytes, info.sha256))
}

/// Streams an object into a file; returns its size and SHA-256.
pub(crate) async fn load_to_file(p: &Pipelines, uri: &str, path: &std::path::Path) -> Result<(i64, String), String> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let (bucket, key) =
        nimbus_store::parse_uri(uri).ok_or_else(|| format!("{uri:?} is not an s3://bucket/key address"))?;
    let (info, mut stream) = p.store.open(bucket, key).await.map_err(|e| e.to_string())?;
    let fail = |e: std::io::Error| format!("copying {uri} to {}: {e}", path.display());
    let mut file = tokio::fs::File::create(path).await.map_err(fail)?;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(fail)?).await.map_err(fail)?;
    }
    file.flush().await.map_err(fail)?;
    Ok((info.size, info.sha256))
}

/// Streams a file of the work directory to the step's artifacts; returns its URI and size.
pub(crate) async fn save_file(
    ctx: &Context<'_>,
    name: &str,
    path: &std::path::Path,
    content_type: &str,
) -> Result<(String, i64), String> {
    let key = format!("{}/{}/{}/{name}", ctx.execution.pipeline, ctx.execution.id, ctx.step);
    ctx.p.store.ensure_bucket(ARTIFACTS_BUCKET).await.map_err(|e| e.to_string())?;
    let file = tokio::fs::File::open(path).await.map_err(|e| format!("reading {}: {e}", path.display()))?;
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let info = ctx
        .p
        .store
        .put_stream(ARTIFACTS_BUCKET, &key, Box::pin(chunks), content_type)
        .await
        .map_err(|e| e.to_string())?;
    Ok((info.uri(), info.size))
}

pub(crate) async fn save(ctx: &Context<'_>, name: &str, bytes: Vec<u8>, content_type: &str) -> Result<String, String> {
    let key = format!("{}/{}/{}/{name}", ctx.execution.pipeline, ctx.execution.id, ctx.step);
    ctx.p.store.ensure_bucket(ARTIFACTS_BUCKET).await.map_err(|e| e.to_string())?;
    let info =
        ctx.p.store.put(ARTIFACTS_BUCKET, &key, Bytes::from(bytes), content_type).await.map_err(|e| e.to_string())?;
    Ok(info.uri())
}

/// How often a running training reports its boosting round.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

async fn progress(ctx: &Context<'_>, log: &Log, line: &str) {
    let _ = db::step_progress(&ctx.p.db, &ctx.execution.id, ctx.step, line, &log.text()).await;
}

async fn train_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let mut log = Log { lines: Vec::new() };
    let data_uri = text(inputs, "data")?.to_string();
    let target = text(inputs, "target")?.to_string();
    let features = list(inputs, "feature_columns")?;
    let categorical = list(inputs, "categorical_columns")?;
    let test_fraction = number(inputs, "test_fraction", 0.2)?;
    if !(0.0..0.95).contains(&test_fraction) {
        return Err(format!("test_fraction must be from 0 to 0.95, got {test_fraction}"));
    }
    let seed = number(inputs, "seed", 0.0)? as u64;
    let num_round = number(inputs, "num_round", 100.0)?;
    if num_round < 1.0 || num_round.fract() != 0.0 {
        return Err(format!("num_round must be a whole number from 1, got {num_round}"));
    }
    let params: BTreeMap<String, Value> = match inputs.get("params") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(other) => return Err(format!("params must be a table of XGBoost parameters, got {other}")),
    };
    let spec = TrainSpec { params, num_round: num_round as usize };
    let objective = spec.objective();

    let (bytes, data_sha) = load(ctx.p, &data_uri).await?;
    log.line(format!("loaded {data_uri} ({} bytes, sha256 {})", bytes.len(), &data_sha[..12]));
    progress(ctx, &log, "loading data").await;
    let table = Table::from_bytes(&bytes, &data_uri).map_err(|e| e.to_string())?;
    let (train_t, holdout) = table.split(test_fraction, seed);
    log.line(format!(
        "{} rows: {} for training, {} held out (test_fraction {test_fraction}, seed {seed})",
        table.rows(),
        train_t.rows(),
        holdout.rows()
    ));
    let train_rows = train_t.rows();
    let line =
        format!("training: {train_rows} rows x {} features, {num_round} rounds, objective {objective}", features.len());
    progress(ctx, &log, &line).await;

    let (target2, spec2) = (target.clone(), spec.clone());
    let rounds_done = Arc::new(AtomicUsize::new(0));
    let rounds_seen = rounds_done.clone();
    let mut training = tokio::task::spawn_blocking(move || -> Result<(Bundle, Vec<u8>), String> {
        let pre = Preprocessor::fit(&train_t, &features, &categorical).map_err(|e| e.to_string())?;
        let x = pre.transform_table(&train_t).map_err(|e| e.to_string())?;
        let labels = train::labels(&train_t, &target2, &spec2.objective()).map_err(|e| e.to_string())?;
        let model = train::fit_observed(&x, &pre, &labels, &spec2, |n| rounds_seen.store(n, Ordering::Relaxed))
            .map_err(|e| e.to_string())?;
        let mut parameters = spec2.params.clone();
        parameters.insert("num_round".into(), json!(spec2.num_round));
        let bundle =
            Bundle::new(&model, &pre, &spec2.objective(), &target2, labels.classes, BTreeMap::new(), parameters)
                .map_err(|e| e.to_string())?;
        Ok((bundle, holdout.to_csv()))
    });
    // Report the boosting round while training runs, at most a few times a second.
    let started = Instant::now();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut reported = 0;
    let trained = loop {
        tokio::select! {
            done = &mut training => break done.map_err(|e| format!("training stopped: {e}"))??,
            _ = tick.tick() => {
                let n = rounds_done.load(Ordering::Relaxed);
                if n != reported {
                    reported = n;
                    let line = format!(
                        "training: round {n}/{num_round}, {} rows, {:.1} s",
                        train_rows,
                        started.elapsed().as_secs_f64()
                    );
                    progress(ctx, &log, &line).await;
                }
            }
        }
    };
    let (mut bundle, holdout_csv) = trained;
    bundle.parameters.insert("test_fraction".into(), json!(test_fraction));
    bundle.parameters.insert("split_seed".into(), json!(seed));
    log.line(format!("trained {num_round} rounds; classes: {:?}", bundle.model.classes.clone().unwrap_or_default()));
    let holdout_rows = holdout_csv.iter().filter(|b| **b == b'\n').count().saturating_sub(1);
    let model_uri = save(ctx, "model.json", bundle.to_vec(), "application/json").await?;
    let holdout_uri = save(ctx, "holdout.csv", holdout_csv, "text/csv").await?;
    log.line(format!("wrote {model_uri} and {holdout_uri}"));
    Ok(StepResult {
        outputs: json!({
            "model": model_uri, "holdout": holdout_uri, "rows": table.rows(), "holdout_rows": holdout_rows,
            "data": data_uri, "data_sha256": data_sha,
        }),
        log: log.text(),
    })
}

async fn evaluate_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let mut log = Log { lines: Vec::new() };
    let model_uri = text(inputs, "model")?.to_string();
    let data_uri = text(inputs, "data")?.to_string();
    let (model_bytes, _) = load(ctx.p, &model_uri).await?;
    let (data_bytes, _) = load(ctx.p, &data_uri).await?;
    progress(ctx, &log, "scoring").await;
    let report = tokio::task::spawn_blocking(move || -> Result<(Value, Vec<(String, String)>), String> {
        let bundle = Bundle::from_slice(&model_bytes).map_err(|e| e.to_string())?;
        let predictor = Predictor::from_bundle(&bundle).map_err(|e| e.to_string())?;
        let table = Table::from_bytes(&data_bytes, &data_uri).map_err(|e| e.to_string())?;
        let m = &bundle.model;
        let labels = train::labels_for_model(&table, &m.target, &m.objective, m.classes.as_deref())
            .map_err(|e| e.to_string())?;
        let x = predictor.preprocessor().transform_table(&table).map_err(|e| e.to_string())?;
        let out = predictor.predict_matrix(&x).map_err(|e| e.to_string())?;
        let eval = match Task::of_objective(&m.objective).map_err(|e| e.to_string())? {
            Task::Binary => metrics::binary(&labels.values, &out),
            Task::Multiclass { .. } => {
                metrics::multiclass(&labels.values, &out, m.classes.as_ref().map(Vec::len).unwrap_or(2))
            }
            Task::Regression => metrics::regression(&labels.values, &out),
        };
        let booster = bundle.booster().map_err(|e| e.to_string())?;
        let importance = train::importance(&booster, predictor.preprocessor());
        let mut svgs = vec![("importance.svg".to_string(), plots::importance(&importance))];
        if let Some(roc) = &eval.roc {
            svgs.push(("roc.svg".to_string(), plots::roc(roc, eval.metrics["auc"])));
        }
        if let Some(c) = &eval.confusion {
            svgs.push(("confusion.svg".to_string(), plots::confusion(c, m.classes.as_deref().unwrap_or(&[]))));
        }
        let report = json!({
            "model": model_uri, "data": data_uri, "rows": eval.rows, "metrics": eval.metrics,
            "confusion_matrix": eval.confusion, "roc_curve": eval.roc,
            "feature_importance": importance.iter().map(|(n, g)| json!({"feature": n, "gain": g})).collect::<Vec<_>>(),
        });
        Ok((report, svgs))
    })
    .await
    .map_err(|e| format!("evaluation stopped: {e}"))??;
    let (mut report, svgs) = report;
    let mut outputs = serde_json::Map::new();
    for (name, svg) in svgs {
        let uri = save(ctx, &name, svg.into_bytes(), "image/svg+xml").await?;
        outputs.insert(name.trim_end_matches(".svg").to_string() + "_plot", json!(uri));
    }
    report["plots"] = Value::Object(outputs.clone());
    let metrics = report["metrics"].as_object().cloned().unwrap_or_default();
    log.line(format!(
        "{} rows: {}",
        report["rows"],
        metrics.iter().map(|(k, v)| format!("{k}={:.4}", v.as_f64().unwrap_or(0.0))).collect::<Vec<_>>().join(" ")
    ));
    let report_uri =
        save(ctx, "evaluation.json", serde_json::to_vec_pretty(&report).expect("JSON"), "application/json").await?;
    outputs.insert("report".into(), json!(report_uri));
    outputs.extend(metrics);
    Ok(StepResult { outputs: Value::Object(outputs), log: log.text() })
}

fn condition_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let resolved = text(inputs, "when")?;
    let raw = ctx.execution.spec.steps[ctx.step].inputs.get("when").and_then(Value::as_str).unwrap_or(resolved);
    let (left, op, right) = ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find_map(|op| resolved.split_once(op).map(|(l, r)| (l.trim(), *op, r.trim())))
        .ok_or_else(|| format!("when = {raw:?} must compare two numbers with one of >= > <= < == !="))?;
    let num = |s: &str| s.parse::<f64>().map_err(|_| format!("when = {raw:?}: {s:?} is not a number"));
    let (l, r) = (num(left)?, num(right)?);
    let result = match op {
        "<=" => l <= r,
        ">=" => l >= r,
        "==" => l == r,
        "!=" => l != r,
        "<" => l < r,
        _ => l > r,
    };
    let short =
        |x: &str| x.parse::<f64>().map(|v| format!("{}", (v * 1e4).round() / 1e4)).unwrap_or_else(|_| x.to_string());
    let readable = raw.replace("${steps.", "").replace("${", "").replace('}', "");
    let reason = format!("{readable} is {result} ({} {op} {})", short(left), short(right));
    Ok(StepResult { outputs: json!({"result": result, "reason": reason}), log: reason })
}

async fn register_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let p = ctx.p;
    let exec = ctx.execution;
    let group = exec.spec.model_group.clone();
    let actor = exec.started_by.clone();
    p.registry.ensure_group(&group, &actor).await.map_err(|e| e.to_string())?;
    let model_uri = text(inputs, "model")?;
    let (bytes, sha) = load(p, model_uri).await?;
    let bundle = Bundle::from_slice(&bytes).map_err(|e| e.to_string())?;
    let mut metrics_map = bundle.metrics.clone();
    if let Some(Value::String(report_uri)) = inputs.get("evaluation") {
        let (report, _) = load(p, report_uri).await?;
        let report: Value =
            serde_json::from_slice(&report).map_err(|e| format!("evaluation report {report_uri}: {e}"))?;
        for (k, v) in report["metrics"].as_object().into_iter().flatten() {
            if let Some(f) = v.as_f64() {
                metrics_map.insert(k.clone(), f);
            }
        }
    }
    let status = match inputs.get("status").and_then(Value::as_str) {
        None | Some("PendingManualApproval") => ApprovalStatus::PendingManualApproval,
        Some("Approved") => ApprovalStatus::Approved,
        Some(other) => return Err(format!("status must be PendingManualApproval or Approved, got {other:?}")),
    };
    let fresh = p.execution(&exec.id).await.map_err(|e| e.to_string())?;
    let datasets = fresh
        .steps
        .iter()
        .filter_map(|s| {
            Some(Dataset {
                uri: s.outputs.get("data")?.as_str()?.to_string(),
                sha256: s.outputs.get("data_sha256")?.as_str()?.to_string(),
            })
        })
        .collect();
    let description = inputs
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("trained by pipeline {} (execution {})", exec.pipeline, exec.id));
    let new = NewVersion {
        artifact_uri: model_uri.to_string(),
        artifact_sha256: sha,
        artifact_size: bytes.len() as i64,
        format: nimbus_ml::bundle::FORMAT.to_string(),
        input_schema: bundle.input_schema.clone(),
        output_schema: bundle.output_schema.clone(),
        metrics: metrics_map,
        parameters: bundle.parameters.clone(),
        lineage: Lineage { pipeline_execution: Some(exec.id.clone()), datasets },
        tags: BTreeMap::from([("pipeline".to_string(), exec.pipeline.clone())]),
        description,
        status: Some(status),
    };
    // The version, the step's record of it and the execution's commit together: a crash
    // leaves either all three or none, so a retry never registers twice.
    let registered = db::register_in_step(p, &exec.id, ctx.step, &group, &new, &actor).await?;
    let line = format!("registered {group} version {} ({})", registered.version, registered.status);
    Ok(StepResult { outputs: json!({"version": registered.version, "group": group}), log: line })
}

async fn transform_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let model_uri = text(inputs, "model")?.to_string();
    let data_uri = text(inputs, "data")?.to_string();
    let (model_bytes, _) = load(ctx.p, &model_uri).await?;
    let (data_bytes, _) = load(ctx.p, &data_uri).await?;
    let uri2 = data_uri.clone();
    let (csv, rows) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, usize), String> {
        let bundle = Bundle::from_slice(&model_bytes).map_err(|e| e.to_string())?;
        let predictor = Predictor::from_bundle(&bundle).map_err(|e| e.to_string())?;
        let mut table = Table::from_bytes(&data_bytes, &uri2).map_err(|e| e.to_string())?;
        let x = predictor.preprocessor().transform_table(&table).map_err(|e| e.to_string())?;
        let out = predictor.predict_matrix(&x).map_err(|e| e.to_string())?;
        let m = &bundle.model;
        let classes = m.classes.clone().unwrap_or_default();
        let (prediction, probability): (Vec<Option<String>>, Option<Vec<f64>>) =
            match Task::of_objective(&m.objective).map_err(|e| e.to_string())? {
                Task::Binary => (
                    out.iter().map(|p| Some(classes.get((*p > 0.5) as usize).cloned().unwrap_or_default())).collect(),
                    Some(out.iter().map(|p| *p as f64).collect()),
                ),
                Task::Multiclass { .. } => {
                    let k = classes.len().max(1);
                    (
                        out.chunks(k)
                            .map(|row| Some(classes.get(metrics::argmax(row)).cloned().unwrap_or_default()))
                            .collect(),
                        None,
                    )
                }
                Task::Regression => (out.iter().map(|v| Some(v.to_string())).collect(), None),
            };
        let rows = table.rows();
        table.columns.push(nimbus_ml::table::Column {
            name: format!("predicted_{}", m.target),
            data: nimbus_ml::table::ColumnData::Text(prediction),
        });
        if let Some(p) = probability {
            table.columns.push(nimbus_ml::table::Column {
                name: "probability".into(),
                data: nimbus_ml::table::ColumnData::Numeric(p),
            });
        }
        Ok((table.to_csv(), rows))
    })
    .await
    .map_err(|e| format!("batch prediction stopped: {e}"))??;
    let uri = save(ctx, "predictions.csv", csv, "text/csv").await?;
    Ok(StepResult {
        outputs: json!({"predictions": uri, "rows": rows}),
        log: format!("predicted {rows} rows of {data_uri} into {uri}"),
    })
}
