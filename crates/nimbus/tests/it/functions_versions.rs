//! Published function versions and weighted aliases through the real binary: the Titanic
//! example's model function `predict` published twice around a newer approved model, an alias
//! that sends a tenth of its invocations to the second version (counted over the Invoke API
//! from `X-Amz-Executed-Version`), each version's own log and metrics, gateway routes that name
//! `predict:live` and `predict:2`, and the 404 of a version that does not exist.

use std::path::{Path, PathBuf};

use nimbus_iam::sigv4::Signer;
use serde_json::Value;

use crate::harness::{Backend, Nimbus, time_now};

const SAMPLE: &str = r#"{"return_probabilities":true,"instances":[{"Age":22,"Sex":"male","Pclass":3},{"Age":38,"Sex":"female","Pclass":1}]}"#;

/// Routes to a version and to an alias, appended to the example project. The alias does not
/// exist when this is applied: a route's qualifier is resolved at each request.
const EXTRA: &str = r#"
[apis.canary]
[apis.canary.routes]
"POST /live" = { function = "predict:live" }
"POST /two" = { function = "predict:2" }
[apis.canary.stages.prod]
"#;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// Signed Invoke API calls over one keep-alive connection.
struct Invoker {
    endpoint: String,
    host: String,
    signer: Signer,
    client: reqwest::blocking::Client,
}

impl Invoker {
    fn new(n: &Nimbus) -> Invoker {
        let (id, secret) = n.credentials();
        Invoker {
            endpoint: n.endpoint.clone(),
            host: n.endpoint.trim_start_matches("http://").to_string(),
            signer: Signer { access_key_id: id, secret, region: "us-east-1".into(), service: "lambda".into() },
            client: reqwest::blocking::Client::new(),
        }
    }

    /// Invokes `predict` with `?Qualifier=`; returns (status, executed version, body).
    fn invoke(&self, qualifier: &str) -> (u16, String, String) {
        let path = "/2015-03-31/functions/predict/invocations";
        let query = format!("Qualifier={qualifier}");
        let mut headers = vec![("host".to_string(), self.host.clone())];
        self.signer.sign("POST", path, &query, &mut headers, SAMPLE.as_bytes(), time_now());
        let mut req = self.client.post(format!("{}{path}?{query}", self.endpoint));
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            req = req.header(k, v);
        }
        let res = req.body(SAMPLE).send().expect("the server answers");
        let status = res.status().as_u16();
        let executed =
            res.headers().get("x-amz-executed-version").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (status, executed, res.text().unwrap_or_default())
    }
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn an_alias_splits_invocations_by_weight_between_pinned_versions() {
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap() + EXTRA;
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);

    // Nothing approved: there is no model to pin, so nothing is published.
    let (code, _, err) = n.cli(&["functions", "publish", "predict"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot publish") && err.contains("nimbus models approve titanic"), "{err}");

    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    let out = n.ok(&["functions", "publish", "predict", "--description", "first model"]);
    assert_eq!(out.trim(), "published predict version 1, serving model titanic version 1");
    let out = n.ok(&["functions", "publish", "predict"]);
    assert!(out.contains("unchanged since version 1"), "{out}");
    let invoker = Invoker::new(&n);
    let (status, executed, first_answer) = invoker.invoke("1");
    assert_eq!((status, executed.as_str()), (200, "1"), "{first_answer}");

    // A newer model approved: $LATEST serves it, version 1 keeps its own.
    n.ok(&["pipelines", "run", "titanic", "--param", "max_depth=2", "--param", "num_round=7", "--wait"]);
    n.ok(&["models", "approve", "titanic", "2"]);
    let (_, executed, latest) = invoker.invoke("$LATEST");
    assert_eq!(executed, "$LATEST");
    assert_ne!(latest, first_answer, "$LATEST swapped to model version 2");
    assert_eq!(invoker.invoke("1").2, first_answer, "version 1 still serves model version 1");
    let out = n.ok(&["functions", "publish", "predict"]);
    assert_eq!(out.trim(), "published predict version 2, serving model titanic version 2");
    let versions = n.json(&["functions", "versions", "predict"]);
    let listed: Vec<(&str, &str)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["spec"]["selector"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("$LATEST", "latest-approved"), ("1", "1"), ("2", "2")]);
    assert_eq!(versions[1]["description"], "first model");
    let table = n.ok(&["functions", "versions", "predict"]);
    assert!(table.contains("model titanic version 1") && table.contains("model titanic latest approved"), "{table}");

    // The alias: 90% version 1, 10% version 2.
    let out = n.ok(&["functions", "alias", "set", "predict", "live", "1", "--weight", "2=0.1"]);
    assert_eq!(out.trim(), "alias predict:live sends 90% version 1, 10% version 2");
    let listed = n.ok(&["functions", "alias", "list", "predict"]);
    assert!(listed.contains("live") && listed.contains("90% version 1, 10% version 2"), "{listed}");
    let (code, _, err) = n.cli(&["functions", "alias", "set", "predict", "live", "1", "--weight", "2=1.5"]);
    assert!(code == 2 && err.contains("weights: the weight of version 2 must be from 0 to below 1"), "{err}");
    let (code, _, err) = n.cli(&["functions", "alias", "set", "predict", "live", "$LATEST", "--weight", "2=0.1"]);
    assert!(code == 2 && err.contains("an alias that points at $LATEST cannot route"), "{err}");

    // 1,000 invocations through the alias. The share of version 2 is Binomial(1000, 0.1) / 1000:
    // its 99.9% interval is 0.1 ± 3.29 * sqrt(0.1 * 0.9 / 1000), about 0.069 to 0.131.
    let n_calls = 1000;
    let mut twos = 0;
    for _ in 0..n_calls {
        let (status, executed, body) = invoker.invoke("live");
        assert_eq!(status, 200, "{body}");
        match executed.as_str() {
            "1" => assert_eq!(body, first_answer, "version 1 answers with model version 1"),
            "2" => twos += 1,
            other => panic!("executed version {other:?}"),
        }
    }
    assert!((69..=131).contains(&twos), "{twos} of {n_calls} invocations ran version 2, expected about 100");

    // Each version keeps its own log and counters.
    let starts: Vec<String> = n.json(&["logs", "predict:1", "--filter", "START"])["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(starts.len(), n_calls - twos + 2, "the alias's picks of version 1 and the two direct calls");
    assert!(starts.iter().all(|l| l.starts_with("START RequestId: ") && l.ends_with(" Version: 1")), "{starts:?}");
    let metrics = n.http("GET", "/metrics", b"", None).1;
    assert_eq!(metric(&metrics, r#"nimbus_function_invocations_total{function="predict",version="2"}"#), twos as u64);
    assert_eq!(metric(&metrics, r#"nimbus_function_invocations_total{function="predict"}"#), 1, "$LATEST once");

    // Gateway routes name the alias and a version.
    for path in ["/canary/prod/live", "/canary/prod/two"] {
        let res = reqwest::blocking::Client::new()
            .post(format!("{}{path}", n.endpoint))
            .header("content-type", "application/json")
            .body(SAMPLE)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let metrics = n.http("GET", "/metrics", b"", None).1;
    assert_eq!(
        metric(&metrics, r#"nimbus_function_invocations_total{function="predict",version="2"}"#),
        twos as u64 + 1,
        "the predict:2 route ran version 2"
    );

    // A version that does not exist; an alias a route names cannot be deleted.
    let (status, executed, body) = invoker.invoke("9");
    assert_eq!((status, executed.as_str()), (404, ""), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let message = v["message"].as_str().unwrap();
    assert!(message.starts_with("Function not found: arn:aws:lambda:us-east-1:000000000000:function:predict:9"), "{v}");
    let (code, _, err) = n.cli(&["functions", "alias", "delete", "predict", "live"]);
    assert!(code == 2 && err.contains("predict:live is the integration of API canary"), "{err}");
}
