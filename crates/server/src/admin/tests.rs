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
            .replace("{api}", "a");
        assert!(super::route_of(method, &format!("/_nimbus/v1{path}")).is_some());
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
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete", "head"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), rel.to_string()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(documented, routed, "docs/openapi.json and admin::ROUTES differ");
}
