//! The Titanic pipeline end to end through the CLI against the real server: apply, run,
//! registered versions with metrics, parameters, schema and lineage; overrides, a failing
//! condition, caching, bad input, and kill -9 in the middle of a run.

use std::path::{Path, PathBuf};

use crate::harness::{Backend, Nimbus, backends};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// A copy of the example project whose nimbus.toml can be edited.
fn project_copy(n: &Nimbus) -> PathBuf {
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn titanic_pipeline_registers_versions_with_metrics_parameters_schema_and_lineage() {
    for backend in backends() {
        let n = Nimbus::start(&backend);
        let applied = n.ok(&["apply", example().to_str().unwrap()]);
        assert!(applied.contains("pipeline titanic: create"), "{applied}");
        assert!(applied.contains("upload   data/train.csv -> s3://titanic/data/train.csv: upload"), "{applied}");
        let again = n.ok(&["apply", example().to_str().unwrap()]);
        assert!(again.contains("pipeline titanic: unchanged") && again.contains("train.csv: unchanged"), "{again}");

        let out = n.ok(&["pipelines", "run", "titanic", "--wait"]);
        assert!(out.contains("registered titanic version 1"), "{out}");
        assert!(out.contains("evaluation: auc="), "{out}");
        let v1 = n.json(&["models", "describe", "titanic/1"]);
        assert_eq!(v1["status"], "PendingManualApproval");
        let auc = v1["metrics"]["auc"].as_f64().unwrap();
        assert!(auc >= 0.84, "holdout AUC {auc}");
        for m in ["accuracy", "precision", "recall", "f1", "log_loss"] {
            assert!(v1["metrics"][m].is_number(), "metric {m}: {v1}");
        }
        assert_eq!(v1["parameters"]["max_depth"], 4);
        assert_eq!(v1["parameters"]["num_round"], 100);
        let fields: Vec<&str> =
            v1["input_schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(fields, ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]);
        assert_eq!(v1["input_schema"]["fields"][1]["categories"], serde_json::json!(["female", "male"]));
        assert_eq!(v1["lineage"]["pipeline_execution"], "titanic-1");
        assert_eq!(v1["lineage"]["datasets"][0]["uri"], "s3://titanic/data/train.csv");
        assert_eq!(
            v1["lineage"]["datasets"][0]["sha256"],
            "4a437fde05fe5264e1701a7387ac6fb75393772ba38bb2c9c566405af5af4bd7"
        );
        assert_eq!(v1["artifact"]["format"], "nimbus-model");

        let out = n.ok(&["pipelines", "run", "titanic", "--param", "max_depth=6", "--param", "eta=0.2", "--wait"]);
        assert!(out.contains("registered titanic version 2"), "{out}");
        let v2 = n.json(&["models", "describe", "titanic/2"]);
        assert_eq!(
            (v2["parameters"]["max_depth"].clone(), v2["parameters"]["eta"].clone()),
            (serde_json::json!(6), serde_json::json!(0.2))
        );
        assert_ne!(v2["metrics"]["auc"], v1["metrics"]["auc"]);

        // Unchanged inputs: train and evaluate come from cache; a strict condition registers nothing.
        let out = n.ok(&["pipelines", "run", "titanic", "--param", "min_auc=0.99", "--wait"]);
        assert!(out.contains("not registered: evaluate.auc >= min_auc is false"), "{out}");
        let e = n.json(&["pipelines", "describe", "titanic-3"]);
        let statuses: Vec<&str> =
            e["steps"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["Cached", "Cached", "Succeeded", "Skipped"]);
        assert_eq!(e["status"], "Succeeded");
        assert_eq!(
            n.json(&["models", "list", "titanic"]).as_array().unwrap().len(),
            2,
            "nothing registered by the failed condition"
        );

        // The evaluation report and plots are in the store.
        let ev = &e["steps"][1]["outputs"];
        for k in ["roc_plot", "confusion_plot", "importance_plot"] {
            let uri = ev[k].as_str().unwrap();
            let file = n.data_dir().join("plot.svg");
            n.ok(&["store", "cp", uri, file.to_str().unwrap()]);
            let svg = std::fs::read_to_string(&file).unwrap();
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{k}");
        }
        let listed = n.json(&["pipelines", "executions", "titanic"]);
        assert_eq!(listed.as_array().unwrap().len(), 3);
    }
}

#[test]
fn bad_parameters_and_bad_data_get_clear_errors() {
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = project_copy(&n);
    std::fs::write(dir.join("data/empty.csv"), "").unwrap();
    std::fs::write(dir.join("data/ragged.csv"), "PassengerId,Survived,Age\n1,0,22\n2,1\n").unwrap();
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap()
        + "\n[[uploads]]\nfile = \"data/empty.csv\"\nto = \"s3://titanic/bad/empty.csv\"\n\n[[uploads]]\nfile = \"data/ragged.csv\"\nto = \"s3://titanic/bad/ragged.csv\"\n";
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);

    let (code, _, err) = n.cli(&["pipelines", "run", "titanic", "--param", "max_depth=deep"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid parameter max_depth: expected an integer, got \"deep\""), "{err}");
    let (code, _, err) = n.cli(&["pipelines", "run", "titanic", "--param", "maxdepth=3"]);
    assert_eq!(code, 2);
    assert!(err.contains("parameter maxdepth") && err.contains("is not declared"), "{err}");
    let (code, _, err) = n.cli(&["pipelines", "run", "nope", "--wait"]);
    assert_eq!(code, 2);
    assert!(err.contains("pipeline \"nope\" does not exist"), "{err}");

    let cases = [
        (
            vec!["--param", "feature_columns=Pclass,Sex,Embarked,Nope"],
            "column \"Nope\" is not in s3://titanic/data/train.csv",
        ),
        (vec!["--param", "train_file=s3://titanic/bad/empty.csv"], "no data rows"),
        (
            vec!["--param", "train_file=s3://titanic/bad/ragged.csv"],
            "malformed CSV at line 3: expected 3 fields like the header, found 2",
        ),
        (vec!["--param", "train_file=s3://titanic/missing.csv"], "does not exist"),
        (vec!["--param", "feature_columns=Name,Sex,Embarked"], "column \"Name\": has text values"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["pipelines", "run", "titanic", "--wait"];
        args.extend(extra.iter().copied());
        let (code, out, err) = n.cli(&args);
        assert_eq!(code, 1, "{args:?}: {out} {err}");
        assert!(
            err.contains("failed: step train failed") && err.contains(want),
            "{args:?}: expected {want:?} in {err}"
        );
    }
    assert_eq!(n.json(&["models", "list", "titanic"]).as_array().unwrap().len(), 0);

    // A broken project file names the line and key.
    std::fs::write(dir.join("nimbus.toml"), "[project]\nname = \"t\"\n[pipelines.p]\nmodel_group = \"g\"\nsteps = 3\n")
        .unwrap();
    let (code, _, err) = n.cli(&["apply", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("nimbus.toml") && err.contains("line 5"), "{err}");
}

#[test]
fn kill_9_mid_run_fails_the_execution_and_retry_registers_exactly_once() {
    for backend in backends() {
        kill_9_mid_run(&backend);
    }
}

fn kill_9_mid_run(backend: &Backend) {
    let mut n = Nimbus::start(backend);
    n.ok(&["apply", example().to_str().unwrap()]);
    // Enough rounds that the training step is still running when the server dies.
    let started = n.json(&["pipelines", "run", "titanic", "--param", "num_round=4000", "--param", "max_depth=8"]);
    let id = started["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let e = n.json(&["pipelines", "describe", &id]);
        // The live progress reports the boosting round, e.g. "training: round 37/4000, 712 rows, 0.8 s".
        if e["steps"][0]["status"] == "Running" && e["steps"][0]["progress"].as_str().unwrap_or("").contains("/4000") {
            assert!(e["steps"][0]["progress"].as_str().unwrap().starts_with("training: round "), "{e}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "training never started: {e}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    n.kill9();
    n.start_again();
    let e = n.json(&["pipelines", "describe", &id]);
    assert_eq!(e["status"], "Failed");
    assert!(e["outcome"].as_str().unwrap().contains("interrupted"), "{e}");
    assert_eq!(e["steps"][0]["status"], "Failed");
    let (code, _, err) = n.cli(&["models", "list", "titanic"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(n.json(&["models", "list", "titanic"]).as_array().unwrap().len(), 0, "no half-registered version");

    // Retrying re-runs from the failed step with the execution's own parameters.
    let out = n.ok(&["pipelines", "run", "--retry", &id, "--wait"]);
    assert!(out.contains("registered titanic version 1"), "{out}");
    let e = n.json(&["pipelines", "describe", &id]);
    assert_eq!(e["status"], "Succeeded");
    assert_eq!(e["parameters"]["num_round"], 4000);
    assert_eq!(n.json(&["models", "list", "titanic"]).as_array().unwrap().len(), 1);
    let (code, _, err) = n.cli(&["pipelines", "run", "--retry", &id]);
    assert_eq!(code, 2);
    assert!(err.contains("only a Failed or Stopped execution is retried"), "{err}");
}

#[test]
fn a_parquet_train_file_trains_the_same_model_as_the_csv() {
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = project_copy(&n);
    let csv = std::fs::read(dir.join("data/train.csv")).unwrap();
    let parquet = nimbus_ml::table::Table::from_csv(&csv, "train.csv").unwrap().to_parquet().unwrap();
    std::fs::write(dir.join("data/train.parquet"), parquet).unwrap();
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap()
        + "\n[[uploads]]\nfile = \"data/train.parquet\"\nto = \"s3://titanic/data/train.parquet\"\n";
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    let out = n.ok(&["pipelines", "run", "titanic", "--param", "train_file=s3://titanic/data/train.parquet", "--wait"]);
    assert!(out.contains("registered titanic version 2"), "{out}");
    let (v1, v2) = (n.json(&["models", "describe", "titanic/1"]), n.json(&["models", "describe", "titanic/2"]));
    assert_eq!(v1["metrics"], v2["metrics"], "same rows, same split, same trees");
    assert_eq!(v2["lineage"]["datasets"][0]["uri"], "s3://titanic/data/train.parquet");
}

#[test]
fn a_process_step_runs_python_and_later_steps_consume_its_output() {
    let python = std::env::var("NIMBUS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("proc");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(example().join("data/train.csv"), dir.join("data/train.csv")).unwrap();
    std::fs::write(
        dir.join("prep.py"),
        r#"import csv, os, sys
min_age = float(os.environ["MIN_AGE"])
with open(os.environ["NIMBUS_INPUT_DATA"], newline="") as f:
    rows = list(csv.DictReader(f))
os.makedirs("out", exist_ok=True)
with open("out/clean.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["Survived", "Pclass", "Sex", "Age", "Fare", "IsChild"])
    w.writeheader()
    for r in rows:
        age = r["Age"]
        w.writerow({"Survived": r["Survived"], "Pclass": r["Pclass"], "Sex": r["Sex"], "Age": age, "Fare": r["Fare"],
                    "IsChild": "" if age == "" else int(float(age) < 16)})
print(f"prepared {len(rows)} rows with min_age={min_age}")
print("a warning on stderr", file=sys.stderr)
"#,
    )
    .unwrap();
    let toml = format!(
        r#"[project]
name = "proc"

[[uploads]]
file = "data/train.csv"
to = "s3://proc/train.csv"

[[uploads]]
file = "prep.py"
to = "s3://proc/code/prep.py"

[pipelines.proc]
model_group = "proc"

[pipelines.proc.parameters]
min_age = {{ type = "float", default = 1.5 }}

[pipelines.proc.steps.prep]
kind = "process"
command = ["{python}", "inputs/script"]
inputs = {{ script = "s3://proc/code/prep.py", data = "s3://proc/train.csv" }}
outputs = {{ clean = "out/clean.csv" }}

[pipelines.proc.steps.train]
kind = "train"
data = "${{steps.prep.clean}}"
target = "Survived"
feature_columns = "Pclass,Sex,Age,Fare,IsChild"
categorical_columns = "Sex"
num_round = 20

[pipelines.proc.steps.predict]
kind = "transform"
model = "${{steps.train.model}}"
data = "${{steps.prep.clean}}"

[pipelines.proc.steps.register]
kind = "register"
model = "${{steps.train.model}}"
after = ["predict"]

[pipelines.broken]
model_group = "proc"

[pipelines.broken.steps.fail]
kind = "process"
command = ["sh", "-c", "echo about to fail; exit 3"]

[pipelines.slow]
model_group = "proc"

[pipelines.slow.steps.sleep]
kind = "process"
command = ["sleep", "5"]
timeout_seconds = 0.5
"#
    );
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    let out = n.ok(&["pipelines", "run", "proc", "--wait"]);
    assert!(out.contains("registered proc version 1"), "{out}");
    let e = n.json(&["pipelines", "describe", "proc-1"]);
    let prep = &e["steps"][0];
    assert_eq!(prep["name"], "prep");
    let log = prep["log"].as_str().unwrap();
    assert!(log.contains("prepared 891 rows with min_age=1.5"), "{log}");
    assert!(log.contains("stderr: a warning on stderr"), "{log}");
    let clean = prep["outputs"]["clean"].as_str().unwrap();
    assert!(clean.starts_with("s3://nimbus-pipelines/proc/proc-1/prep/out/clean.csv"), "{clean}");
    let v = n.json(&["models", "describe", "proc/1"]);
    let fields: Vec<&str> =
        v["input_schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fields, ["Pclass", "Sex", "Age", "Fare", "IsChild"]);
    assert_eq!(v["lineage"]["datasets"][0]["uri"], clean);
    let predictions =
        e["steps"].as_array().unwrap().iter().find(|s| s["name"] == "predict").unwrap()["outputs"]["predictions"]
            .clone();
    let file = n.data_dir().join("pred.csv");
    n.ok(&["store", "cp", predictions.as_str().unwrap(), file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines().next().unwrap().ends_with(",predicted_Survived,probability"),
        "{}",
        text.lines().next().unwrap()
    );
    assert_eq!(text.lines().count(), 892);

    let (code, _, err) = n.cli(&["pipelines", "run", "broken", "--wait"]);
    assert_eq!(code, 1);
    assert!(err.contains("exited with status 3") && err.contains("about to fail"), "{err}");
    let (code, _, err) = n.cli(&["pipelines", "run", "slow", "--wait"]);
    assert_eq!(code, 1);
    assert!(err.contains("ran longer than timeout_seconds = 0.5"), "{err}");
}
