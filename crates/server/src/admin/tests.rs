//! The route table is the truth: every entry answers on the router, and the OpenAPI
//! document lists exactly these routes.

use std::collections::BTreeSet;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use nimbus_iam::sigv4::Signer;
use tower::ServiceExt;

use super::ROUTES;
use crate::{Server, ServerConfig};

#[tokio::test]
async fn every_listed_route_is_served_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig { data_dir: dir.path().to_path_buf(), listen: "127.0.0.1:0".into(), ..Default::default() };
    let server = Server::start(&cfg).await.unwrap();
    let key = server.new_admin_key.clone().unwrap();
    let signer = Signer {
        access_key_id: key.access_key_id,
        secret: key.secret_access_key,
        region: "us-east-1".into(),
        service: "nimbus".into(),
    };
    let app = server.router();
    let send = |method: &str, path: String| {
        let mut headers = vec![("host".to_string(), "localhost".to_string())];
        signer.sign(method, &path, "", &mut headers, b"", time::OffsetDateTime::now_utc());
        let mut req = Request::builder().method(method).uri(&path);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let app = app.clone();
        async move {
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status();
            let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    for super::Route { method, path, .. } in ROUTES {
        let concrete = format!("/_nimbus/v1{path}")
            .replace("{bucket}", "some-bucket")
            .replace("{key}", "a/b.txt")
            .replace("{group}", "g")
            .replace("{version}", "1")
            .replace("{alias}", "prod")
            .replace("{pipeline}", "p")
            .replace("{execution}", "p-1")
            .replace("{function}", "f")
            .replace("{api}", "a")
            .replace("{*key}", "a/b.txt")
            .replace("{user}", "u")
            .replace("{access_key}", "AKIAEXAMPLE")
            .replace("{api_key}", "k")
            .replace("{role}", "r")
            .replace("{policy}", "p")
            .replace("{plan}", "p")
            .replace("{identifier}", "i")
            .replace("{client}", "c");
        assert!(super::route_of(method, &format!("/_nimbus/v1{path}")).is_some());
        let (m, p) = (method, path);
        assert!(ROUTES.iter().filter(|r| r.method == *m && r.path == *p).count() == 1, "{m} {p} is listed twice");
        let (status, body) = send(method, concrete.clone()).await;
        assert_ne!(status, 405, "{method} {concrete} is listed but not routed");
        assert!(!body.contains("\"NotFound\""), "{method} {concrete} is listed but not routed: {body}");
    }
    let (status, body) = send("GET", "/_nimbus/v1/no-such-thing".into()).await;
    assert_eq!(status, 404);
    assert!(body.contains("\"NotFound\""), "{body}");
}

#[test]
fn openapi_document_lists_exactly_the_routes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(rel) = path.strip_prefix("/_nimbus/v1") else { continue };
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "patch", "delete", "head"].contains(&method.as_str()) {
                let action = op["x-nimbus-action"].as_str().unwrap_or("(none)").to_string();
                let resource = op["x-nimbus-resource"].as_str().unwrap_or("(none)").to_string();
                documented.insert((method.to_uppercase(), rel.to_string(), action, resource));
            }
        }
    }
    // The table names the greedy object key `{*key}` (axum's syntax); OpenAPI `{key}`.
    let routed: BTreeSet<(String, String, String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.replace("{*key}", "{key}"), r.action.into(), r.resource.into()))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.json and admin::ROUTES differ:\n in the table only: {missing:#?}\n in the document only: {extra:#?}"
    );
}

#[test]
fn every_action_names_its_service_and_every_resource_is_an_arn() {
    let mut bad = Vec::new();
    for r in ROUTES {
        let service_ok = r.action.split_once(':').is_some_and(|(s, a)| !s.is_empty() && !a.is_empty());
        let resource_ok = r.resource == "*" || r.resource.starts_with("arn:aws:");
        // Every path parameter the resource names is a parameter of the path.
        let params_ok = r
            .resource
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(n, _)| n))
            .filter(|n| *n != "region" && *n != "account")
            .all(|n| r.path.contains(&format!("{{{n}}}")) || r.path.contains(&format!("{{*{n}}}")));
        if !(service_ok && resource_ok && params_ok) {
            bad.push(format!("{r:?}"));
        }
    }
    assert!(bad.is_empty(), "routes with a malformed action or resource: {bad:#?}");
}

#[test]
fn resources_are_filled_from_the_path() {
    let cases = [
        (
            "PATCH",
            "/model-groups/{group}/versions/{version}",
            "/model-groups/titanic/versions/3",
            "arn:aws:sagemaker:eu-west-3:123456789012:model-package/titanic/3",
        ),
        ("PUT", "/buckets/{bucket}/objects/{*key}", "/buckets/data/objects/a/b%20c.csv", "arn:aws:s3:::data/a/b c.csv"),
        ("GET", "/buckets", "/buckets", "arn:aws:s3:::*"),
        (
            "DELETE",
            "/iam/users/{user}/policies/{policy}",
            "/iam/users/bob/policies/read",
            "arn:aws:iam::123456789012:user/bob",
        ),
    ];
    let mut failures = Vec::new();
    for (method, template, path, want) in cases {
        let route = ROUTES.iter().find(|r| r.method == method && r.path == template).expect("route exists");
        let got = super::resource_of(route, path, "eu-west-3", "123456789012");
        if got != want {
            failures.push(format!("{method} {path}: {got} != {want}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
