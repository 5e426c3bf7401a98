//! CORS on a gateway API, seen the two ways that matter: by a real browser (headless Chromium
//! running a page of an allowed origin and one of another origin, each `fetch()`ing the
//! API-key route with a non-simple request, so the browser sends a preflight first) and by raw
//! HTTP (the preflight's answer for each origin, and the CORS headers on real answers, errors
//! included). The preflight is answered without the API key, as API Gateway answers it before
//! authorization. Without Chromium the browser half is skipped with the reason printed.

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::access_oauth::{SAMPLE, deploy, send};
use crate::browser::{chromium, run_page, serve_static};
use crate::harness::{Backend, Nimbus};

/// A page that POSTs the sample to `?api=` + the keyed route with `x-api-key: ?key=` and
/// writes what it could read, or the error the browser raised, into the DOM.
const PAGE: &str = r#"<!doctype html><html><body><p id="out">waiting</p><script>
const q = new URLSearchParams(location.search);
const show = (s) => { document.getElementById("out").textContent = "outcome=[" + s + "]"; };
fetch(q.get("api") + "/titanic/prod/keyed/predict", {
  method: "POST",
  headers: {"content-type": "application/json", "x-api-key": q.get("key")},
  body: q.get("body"),
}).then(r => r.text().then(t => "read " + r.status + " " + t), e => "blocked " + e.name + ": " + e.message)
  .then(show, e => show("page error " + e));
</script></body></html>"#;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The value `apply` printed for an API key it created.
fn created_key(apply_out: &str, name: &str) -> String {
    let line = apply_out
        .lines()
        .find(|l| l.starts_with(&format!("api key  {name}: create (value ")))
        .unwrap_or_else(|| panic!("apply reports creating API key {name}:\n{apply_out}"));
    let rest = &line[format!("api key  {name}: create (value ").len()..];
    rest.split_once(": shown once").unwrap_or_else(|| panic!("no 'shown once' in {line:?}")).0.to_string()
}

/// Preflights of the keyed route in the API's access log.
fn preflights_logged(n: &Nimbus) -> usize {
    n.json(&["logs", "titanic", "--api"])["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l["text"].as_str()?).ok())
        .filter(|l| l["httpMethod"] == "OPTIONS" && l["path"] == "/titanic/prod/keyed/predict" && l["status"] == 204)
        .count()
}

#[test]
fn an_allowed_origin_reads_the_keyed_route_in_a_browser_and_another_origin_is_blocked() {
    // Both page origins exist before apply: the allowed one is named in the declaration.
    let (allowed_port, _allowed) = serve_static(vec![("/index.html", PAGE.to_string())]);
    let (other_port, _other) = serve_static(vec![("/index.html", PAGE.to_string())]);
    let allowed = format!("http://127.0.0.1:{allowed_port}");
    let other = format!("http://127.0.0.1:{other_port}");
    let extra = format!(
        r#"
[apis.titanic.cors]
allow_origins = ["{allowed}"]
allow_methods = ["POST"]
allow_headers = ["content-type", "x-api-key"]
max_age = 600
"#
    );
    let (n, applied) = deploy(&Backend::Sqlite, &extra);
    let key = created_key(&applied, "titanic-demo");
    let url = format!("{}/titanic/prod/keyed/predict", n.endpoint);

    // Raw HTTP: the preflight of the allowed origin is answered, without any API key.
    let preflight = |origin: &str| {
        send(
            "OPTIONS",
            &url,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-api-key"),
            ],
            "",
        )
    };
    let (status, h, body) = preflight(&allowed);
    assert_eq!((status, body.as_str()), (204, ""), "the preflight of the allowed origin");
    assert_eq!(header(&h, "access-control-allow-origin"), Some(allowed.as_str()), "{h:?}");
    assert_eq!(header(&h, "access-control-allow-methods"), Some("POST"), "{h:?}");
    assert_eq!(header(&h, "access-control-allow-headers"), Some("content-type, x-api-key"), "{h:?}");
    assert_eq!(header(&h, "access-control-max-age"), Some("600"), "{h:?}");
    assert!(header(&h, "vary").is_some_and(|v| v.contains("Origin")), "{h:?}");
    assert!(header(&h, "x-amzn-requestid").is_some(), "{h:?}");
    // Another origin: an answer that grants nothing.
    let (status, h, _) = preflight(&other);
    assert_eq!(status, 204);
    assert!(h.keys().all(|k| !k.as_str().starts_with("access-control-")), "no CORS header for {other}: {h:?}");
    // A header outside allow_headers is not granted either.
    let (status, h, _) = send(
        "OPTIONS",
        &url,
        &[
            ("origin", allowed.as_str()),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-other"),
        ],
        "",
    );
    assert_eq!(status, 204);
    assert!(header(&h, "access-control-allow-origin").is_none(), "{h:?}");

    // Real answers carry the headers for the allowed origin only; a 403 too, so a page can read it.
    let post = |origin: &str, key: Option<&str>| {
        let mut headers = vec![("origin", origin), ("content-type", "application/json")];
        if let Some(k) = key {
            headers.push(("x-api-key", k));
        }
        send("POST", &url, &headers, SAMPLE)
    };
    let (status, h, expected_body) = post(&allowed, Some(key.as_str()));
    assert_eq!(status, 200, "{expected_body}");
    assert_eq!(serde_json::from_str::<Value>(&expected_body).unwrap()["predictions"].as_array().map(Vec::len), Some(3));
    assert_eq!(header(&h, "access-control-allow-origin"), Some(allowed.as_str()), "{h:?}");
    let (status, h, body) = post(&allowed, None);
    assert_eq!((status, body.as_str()), (403, r#"{"message":"Forbidden"}"#));
    assert_eq!(header(&h, "access-control-allow-origin"), Some(allowed.as_str()), "{h:?}");
    // The server answers the other origin (CORS is the browser's to enforce) but grants nothing.
    let (status, h, _) = post(&other, Some(key.as_str()));
    assert_eq!(status, 200);
    assert!(header(&h, "access-control-allow-origin").is_none(), "{h:?}");

    // The browser.
    if let Err(reason) = chromium() {
        eprintln!("skipping the browser half: no headless Chromium: {reason}");
        return;
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("api", &n.endpoint)
        .append_pair("key", &key)
        .append_pair("body", SAMPLE)
        .finish();
    let before = preflights_logged(&n);
    let dom = run_page(&format!("{allowed}/index.html?{query}"), 10_000).unwrap();
    assert!(
        dom.contains(&format!("outcome=[read 200 {expected_body}]")),
        "the allowed origin reads the prediction:\n{dom}"
    );
    let dom = run_page(&format!("{other}/index.html?{query}"), 10_000).unwrap();
    assert!(dom.contains("outcome=[blocked TypeError"), "the other origin's fetch is blocked:\n{dom}");
    assert!(!dom.contains("outcome=[read"), "the other origin reads nothing:\n{dom}");
    // Each page's request was not simple (JSON, x-api-key): the browser asked first.
    assert!(preflights_logged(&n) >= before + 2, "both pages sent a preflight");
}
