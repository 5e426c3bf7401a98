//! Resource servers and app clients: validation, idempotent declarations, secrets.

use serde_json::json;

use super::*;
use crate::{OauthError, TokenError};

fn orders(scopes: &[&str]) -> ResourceServerSpec {
    ResourceServerSpec {
        identifier: "orders".into(),
        name: "Orders".into(),
        scopes: scopes.iter().map(|s| scope(s)).collect(),
    }
}

#[tokio::test]
async fn resource_servers_are_created_replaced_listed_and_deleted() {
    let f = fixture().await;
    assert!(f.oauth.put_resource_server(&orders(&["read"])).await.unwrap(), "created");
    assert!(!f.oauth.put_resource_server(&orders(&["read"])).await.unwrap(), "unchanged");
    assert!(f.oauth.ensure_resource_server(&orders(&["read", "write"])).await.unwrap(), "scope added");
    let url = ResourceServerSpec {
        identifier: "https://api.example.com".into(),
        name: "Example API".into(),
        scopes: vec![ScopeSpec { name: "items.read".into(), description: String::new() }],
    };
    f.oauth.put_resource_server(&url).await.unwrap();
    let list = f.oauth.list_resource_servers().await.unwrap();
    assert_eq!(list, vec![url.clone(), orders(&["read", "write"])]);
    assert_eq!(
        f.oauth.openid_configuration()["scopes_supported"],
        json!(["https://api.example.com/items.read", "orders/read", "orders/write"])
    );

    // A client of both; replacing a server's scopes and deleting a server prune the client.
    let c = f
        .oauth
        .create_client(&client_spec("both", &["orders/read", "orders/write", "https://api.example.com/items.read"]))
        .await
        .unwrap();
    assert_eq!(f.token_scope(&c).await, "orders/read orders/write https://api.example.com/items.read");
    f.oauth.put_resource_server(&orders(&["write"])).await.unwrap();
    assert_eq!(
        f.oauth.list_clients().await.unwrap()[0].scopes,
        vec!["orders/write", "https://api.example.com/items.read"]
    );
    assert!(f.oauth.delete_resource_server("https://api.example.com").await.unwrap());
    assert!(!f.oauth.delete_resource_server("https://api.example.com").await.unwrap());
    assert_eq!(f.oauth.list_clients().await.unwrap()[0].scopes, vec!["orders/write"]);
    assert_eq!(f.token_scope(&c).await, "orders/write");
    assert_eq!(f.oauth.openid_configuration()["scopes_supported"], json!(["orders/write"]));
    f.oauth.delete_resource_server("orders").await.unwrap();
    let req = TokenRequest::parse(
        "grant_type=client_credentials",
        None,
        b"",
        Some(&basic(&c.info.client_id, &c.client_secret)),
    )
    .unwrap();
    assert!(matches!(f.oauth.token(&req, None).await, Err(TokenError::InvalidScope(_))), "no scope left");
}

impl Fixture {
    async fn token_scope(&self, c: &NewClient) -> String {
        claims_of(&self.token(c, None).await)["scope"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn invalid_specs_name_the_field() {
    let f = fixture().await;
    f.oauth.put_resource_server(&orders(&["read"])).await.unwrap();
    let rs = |identifier: &str, name: &str, scopes: &[&str]| ResourceServerSpec {
        identifier: identifier.into(),
        name: name.into(),
        scopes: scopes.iter().map(|s| scope(s)).collect(),
    };
    let mut failures = Failures::default();
    let rs_rows = [
        ("empty identifier", rs("", "n", &["a"]), "identifier"),
        ("identifier with a space", rs("my api", "n", &["a"]), "identifier"),
        ("identifier with a quote", rs("a\"b", "n", &["a"]), "identifier"),
        ("empty name", rs("x", "", &["a"]), "name"),
        ("name with a slash", rs("x", "a/b", &["a"]), "name"),
        ("scope with a slash", rs("x", "n", &["ok", "a/b"]), "scopes[1].name"),
        ("empty scope", rs("x", "n", &[""]), "scopes[0].name"),
        ("scope twice", rs("x", "n", &["a", "a"]), "scopes[1].name"),
    ];
    for (row, spec, field) in rs_rows {
        let got = f.oauth.put_resource_server(&spec).await;
        failures
            .check(row, matches!(&got, Err(OauthError::Invalid { field: f, .. }) if f == field), || format!("{got:?}"));
    }
    let client = |name: &str, id: Option<&str>, scopes: &[&str], validity: u64| ClientSpec {
        name: name.into(),
        client_id: id.map(String::from),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        token_validity_s: validity,
    };
    let client_rows = [
        ("empty name", client("", None, &["orders/read"], 3600), "name"),
        ("long name", client(&"n".repeat(129), None, &["orders/read"], 3600), "name"),
        ("id with a dash", client("c", Some("a-b"), &["orders/read"], 3600), "client_id"),
        ("empty id", client("c", Some(""), &["orders/read"], 3600), "client_id"),
        ("no scopes", client("c", None, &[], 3600), "scopes"),
        ("scope without server", client("c", None, &["read"], 3600), "scopes[0]"),
        ("unknown scope", client("c", None, &["orders/read", "orders/delete"], 3600), "scopes[1]"),
        ("unknown server", client("c", None, &["billing/read"], 3600), "scopes[0]"),
        ("validity too short", client("c", None, &["orders/read"], 299), "token_validity_s"),
        ("validity too long", client("c", None, &["orders/read"], 86_401), "token_validity_s"),
    ];
    for (row, spec, field) in client_rows {
        let got = f.oauth.create_client(&spec).await;
        failures
            .check(row, matches!(&got, Err(OauthError::Invalid { field: f, .. }) if f == field), || format!("{got:?}"));
        let got = f.oauth.ensure_client(&spec).await;
        failures.check(row, matches!(&got, Err(OauthError::Invalid { field: f, .. }) if f == field), || {
            format!("ensure: {got:?}")
        });
    }
    failures.assert_none();
    assert!(f.oauth.list_clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn clients_are_created_once_and_declared_idempotently() {
    let f = fixture().await;
    let first = f.client("app").await;
    assert_eq!(first.info.client_id.len(), 26);
    assert!(first.info.client_id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert!(first.client_secret.len() >= 51 && first.client_secret.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(!format!("{first:?}").contains(&first.client_secret), "Debug hides the secret");
    let shown = serde_json::to_value(&first).unwrap();
    assert_eq!((shown["client_secret"].as_str(), shown["name"].as_str()), (Some(&*first.client_secret), Some("app")));
    assert!(!serde_json::to_string(&f.oauth.list_clients().await.unwrap()).unwrap().contains(&first.client_secret));
    // The secret is sealed at rest.
    let stored = f.oauth.stored_client(&first.info.client_id).await.unwrap().unwrap();
    assert!(!stored.secret_sealed.contains(&first.client_secret));

    // Duplicates.
    let dup = f.oauth.create_client(&client_spec("app", &["orders/read"])).await;
    assert!(matches!(dup, Err(OauthError::Exists(_))), "{dup:?}");
    let given = ClientSpec { client_id: Some(first.info.client_id.clone()), ..client_spec("app2", &["orders/read"]) };
    assert!(matches!(f.oauth.create_client(&given).await, Err(OauthError::Exists(_))));

    // A chosen id.
    let chosen = ClientSpec { client_id: Some("Partner_1+x".into()), ..client_spec("partner", &["orders/read"]) };
    let (info, new) = f.oauth.ensure_client(&chosen).await.unwrap();
    let new = new.expect("created, so the secret is returned");
    assert_eq!(info.client_id, "Partner_1+x");
    assert_eq!(f.token_scope(&new).await, "orders/read");

    // Declaring again: no new secret, scopes and validity follow the declaration.
    let (again, none) = f.oauth.ensure_client(&chosen).await.unwrap();
    assert!(none.is_none());
    assert_eq!(again, info);
    let wider = ClientSpec { scopes: vec!["orders/write".into()], token_validity_s: 600, ..chosen.clone() };
    let (updated, none) = f.oauth.ensure_client(&wider).await.unwrap();
    assert!(none.is_none());
    assert_eq!((updated.scopes.clone(), updated.token_validity_s), (vec!["orders/write".to_string()], 600));
    assert_eq!(f.token_scope(&new).await, "orders/write", "the old secret still works");
    let moved = ClientSpec { client_id: Some("other".into()), ..chosen.clone() };
    let err = f.oauth.ensure_client(&moved).await.unwrap_err();
    assert!(matches!(&err, OauthError::Invalid { field, .. } if field == "client_id"), "{err}");
    // Without client_id the declared client keeps its id.
    let (same, _) = f.oauth.ensure_client(&ClientSpec { client_id: None, ..wider }).await.unwrap();
    assert_eq!(same.client_id, "Partner_1+x");

    let names: Vec<String> = f.oauth.list_clients().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["app", "partner"]);
}

#[tokio::test]
async fn secrets_rotate_and_deleted_clients_stop() {
    let f = fixture().await;
    let old = f.client("app").await;
    let new = f.oauth.rotate_client_secret("app").await.unwrap();
    assert_eq!(new.info.client_id, old.info.client_id);
    assert_ne!(new.client_secret, old.client_secret);
    let ask = |c: &NewClient| {
        TokenRequest::parse(
            "grant_type=client_credentials",
            None,
            b"",
            Some(&basic(&c.info.client_id, &c.client_secret)),
        )
        .unwrap()
    };
    assert!(matches!(f.oauth.token(&ask(&old), None).await, Err(TokenError::InvalidClient)));
    f.oauth.token(&ask(&new), None).await.unwrap();
    assert!(matches!(f.oauth.rotate_client_secret("nope").await, Err(OauthError::NotFound(_))));

    // A restarted server opens the sealed secret and the same signing key.
    let kid = f.oauth.current_kid();
    let reopened = f.reopen().await;
    assert_eq!(reopened.current_kid(), kid);
    reopened.token(&ask(&new), None).await.unwrap();

    assert!(f.oauth.delete_client("app").await.unwrap());
    assert!(!f.oauth.delete_client("app").await.unwrap());
    assert!(matches!(f.oauth.token(&ask(&new), None).await, Err(TokenError::InvalidClient)));
}

#[tokio::test]
async fn discovery_document_and_jwks_shape() {
    let f = fixture().await;
    let doc = f.oauth.openid_configuration();
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(doc["response_types_supported"], json!(["token"]));
    assert_eq!(doc["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "client_secret_post"]));
    assert_eq!(doc["scopes_supported"], json!([]));

    // The first key is made on first use.
    assert_eq!(f.oauth.jwks(), json!({"keys": []}));
    assert_eq!(f.oauth.current_kid(), None);
    let kid = f.oauth.prepare().await.unwrap();
    assert_eq!(f.oauth.prepare().await.unwrap(), kid, "made once");
    let jwks = f.oauth.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!((k["kty"].as_str(), k["alg"].as_str(), k["use"].as_str()), (Some("RSA"), Some("RS256"), Some("sig")));
    assert_eq!(k["kid"], json!(f.oauth.current_kid().unwrap()));
    assert_eq!(k["e"], "AQAB");
    let n = k["n"].as_str().unwrap();
    assert!(!n.contains('=') && !n.contains('+') && !n.contains('/'), "base64url without padding");
    assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n).unwrap().len(), 256);

    // A trailing slash is dropped from the issuer; a non-URL issuer is refused.
    let db = f.db.clone();
    let o = Oauth::open_with(db.clone(), f.master.clone(), format!("{ISSUER}/"), Options::default()).await.unwrap();
    assert_eq!(o.issuer(), ISSUER);
    let bad = Oauth::open_with(db, f.master.clone(), "auth.example.com".into(), Options::default()).await;
    assert!(matches!(bad, Err(OauthError::Invalid { field, .. }) if field == "issuer"));
    let _ = &f.dir;
}

#[tokio::test]
async fn concurrent_first_uses_make_one_key() {
    let f = fixture().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let o = f.oauth.clone();
            tokio::spawn(async move { o.prepare().await.unwrap() })
        })
        .collect();
    let mut kids = Vec::new();
    for t in tasks {
        kids.push(t.await.unwrap());
    }
    kids.dedup();
    assert_eq!(kids.len(), 1, "{kids:?}");
    let rows = nimbus_meta::sqlx::query("SELECT kid FROM signing_keys").fetch_all(f.db.pool()).await.unwrap();
    assert_eq!(rows.len(), 1);
}
