//! The verifier against the built-in issuer: every refusal reason, the cache, rotation.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{JwtAuthorizerSpec, JwtError};

fn spec(audience: &[&str]) -> JwtAuthorizerSpec {
    JwtAuthorizerSpec {
        issuer: ISSUER.into(),
        audience: audience.iter().map(|s| s.to_string()).collect(),
        jwks_url: None,
    }
}

fn claims(over: Value) -> Value {
    let now = now_s();
    let mut c = json!({
        "sub": "c1", "client_id": "c1", "iss": ISSUER, "token_use": "access",
        "scope": "orders/read orders/write", "iat": now, "exp": now + 600,
    });
    for (k, v) in over.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = claims_of(token);
    claims.insert("scope".into(), "orders/admin".into());
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// (row, Authorization header, authorizer audience, route scopes, expected reason)
type Case<'a> = (&'a str, Option<String>, &'a [&'a str], &'a Vec<String>, &'a str);

fn reason(r: &Result<crate::Verified, JwtError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.reason(),
    }
}

#[tokio::test]
async fn every_refusal_has_its_reason() {
    let f = fixture().await;
    let now = now_s();
    let good = f.sign(claims(json!({}))).await;
    let kid = f.oauth.current_kid().unwrap();
    let none_alg = {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string());
        let p = good.split('.').nth(1).unwrap();
        format!("{h}.{p}.")
    };
    let other_kid = {
        let key = crate::jwt::RsaJwk::thumbprint(&[1, 2, 3], &[1, 0, 1]);
        let k = f.oauth.inner.keys.signing_key().await.unwrap();
        crate::jwt::sign(&k.pair, &key, claims(json!({})).as_object().unwrap()).unwrap()
    };
    let read = vec!["orders/read".to_string()];
    let admin = vec!["orders/admin".to_string(), "x/y".to_string()];
    let none: Vec<String> = Vec::new();
    let either = vec!["x/y".to_string(), "orders/write".to_string()];
    let rows: Vec<Case> = vec![
        ("good", Some(format!("Bearer {good}")), &["c1"], &read, "ok"),
        ("good, lower-case bearer", Some(format!("bearer {good}")), &["c1"], &read, "ok"),
        ("good, no scopes required", Some(good.clone()), &["c1"], &none, "ok"),
        ("missing header", None, &["c1"], &read, "missing"),
        ("empty header", Some("Bearer ".into()), &["c1"], &read, "missing"),
        ("not a JWT", Some("Bearer abc".into()), &["c1"], &read, "malformed"),
        ("alg none", Some(none_alg), &["c1"], &read, "malformed"),
        ("too long", Some("a".repeat(20_000)), &["c1"], &read, "malformed"),
        ("tampered payload", Some(tamper(&good)), &["c1"], &none, "bad_signature"),
        ("unknown kid", Some(other_kid), &["c1"], &read, "unknown_kid"),
        ("expired", Some(f.sign(claims(json!({"exp": now - 120}))).await), &["c1"], &read, "expired"),
        ("expired within the leeway", Some(f.sign(claims(json!({"exp": now - 10}))).await), &["c1"], &read, "ok"),
        ("no exp", Some(f.sign(claims(json!({"exp": null}))).await), &["c1"], &read, "malformed"),
        ("nbf ahead", Some(f.sign(claims(json!({"nbf": now + 300}))).await), &["c1"], &read, "not_yet_valid"),
        ("nbf within the leeway", Some(f.sign(claims(json!({"nbf": now + 10}))).await), &["c1"], &read, "ok"),
        (
            "wrong issuer",
            Some(f.sign(claims(json!({"iss": "https://evil.example"}))).await),
            &["c1"],
            &read,
            "wrong_issuer",
        ),
        ("no issuer", Some(f.sign(claims(json!({"iss": null}))).await), &["c1"], &read, "wrong_issuer"),
        ("client_id not an audience", Some(good.clone()), &["c2"], &read, "wrong_audience"),
        ("no audience configured", Some(good.clone()), &[], &read, "wrong_audience"),
        ("aud matches", Some(f.sign(claims(json!({"aud": "api"}))).await), &["api"], &read, "ok"),
        ("aud array matches", Some(f.sign(claims(json!({"aud": ["x", "api"]}))).await), &["api"], &read, "ok"),
        ("aud wins over client_id", Some(f.sign(claims(json!({"aud": "x"}))).await), &["c1"], &read, "wrong_audience"),
        ("aud not strings", Some(f.sign(claims(json!({"aud": 5}))).await), &["c1"], &read, "malformed"),
        (
            "no client_id nor aud",
            Some(f.sign(claims(json!({"client_id": null}))).await),
            &["c1"],
            &read,
            "wrong_audience",
        ),
        ("scope mismatch", Some(good.clone()), &["c1"], &admin, "insufficient_scope"),
        ("one of the scopes is enough", Some(good.clone()), &["c1"], &either, "ok"),
        (
            "scp array",
            Some(f.sign(claims(json!({"scope": null, "scp": ["orders/admin"]}))).await),
            &["c1"],
            &admin,
            "ok",
        ),
        (
            "scp string",
            Some(f.sign(claims(json!({"scope": null, "scp": "a orders/admin"}))).await),
            &["c1"],
            &admin,
            "ok",
        ),
        ("no scope claim", Some(f.sign(claims(json!({"scope": null}))).await), &["c1"], &read, "insufficient_scope"),
    ];
    let v = f.oauth.verifier();
    let mut failures = Failures::default();
    // Twice: the second pass runs from the cache, which must answer the same.
    for pass in ["fresh", "cached"] {
        for (row, token, audience, scopes, want) in &rows {
            let got = v.verify(&spec(audience), token.as_deref(), scopes).await;
            failures.check(&format!("{pass}: {row}"), reason(&got) == *want, || format!("want {want}, got {got:?}"));
        }
    }
    failures.assert_none();
    let ok = v.verify(&spec(&["c1"]), Some(&f.sign(claims(json!({"scp": ["extra", "orders/read"]}))).await), &[]).await;
    assert_eq!(ok.unwrap().scopes, vec!["orders/read", "orders/write", "extra"]);
}

#[tokio::test]
async fn the_cache_never_turns_a_failure_into_a_pass() {
    let throttle = crate::Options::default().throttle;
    let f = fixture_with(throttle, VerifierOptions { leeway_s: 0, ..VerifierOptions::default() }).await;
    let token = f.sign(claims(json!({"exp": now_s() + 2}))).await;
    let v = f.oauth.verifier();
    let read = vec!["orders/read".to_string()];
    v.verify(&spec(&["c1"]), Some(&token), &read).await.unwrap();
    // Same token, cached signature: another route's scopes and audience still decide.
    let r = v.verify(&spec(&["c1"]), Some(&token), &["orders/admin".to_string()]).await;
    assert!(matches!(r, Err(JwtError::InsufficientScope)), "{r:?}");
    assert!(matches!(v.verify(&spec(&["c2"]), Some(&token), &read).await, Err(JwtError::WrongAudience)));
    let other_issuer = JwtAuthorizerSpec { issuer: "http://127.0.0.1:9".into(), ..spec(&["c1"]) };
    assert!(matches!(v.verify(&other_issuer, Some(&token), &read).await, Err(JwtError::WrongIssuer)));
    // A clone shares the cache; after exp the cached entry is refused.
    v.clone().verify(&spec(&["c1"]), Some(&token), &read).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(v.verify(&spec(&["c1"]), Some(&token), &read).await, Err(JwtError::Expired)));
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_their_key_expires() {
    let f = fixture().await;
    let c = f.client("app").await;
    let old = f.token(&c, None).await;
    let old_kid = f.oauth.current_kid().unwrap();
    let new_kid = f.oauth.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(f.oauth.current_kid().as_deref(), Some(new_kid.as_str()));
    let new = f.token(&c, None).await;
    assert_eq!(header_of(&new)["kid"], json!(new_kid));
    let kids: Vec<String> =
        f.oauth.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect();
    assert_eq!(kids, vec![new_kid.clone(), old_kid.clone()], "current first, the retired one still published");

    let spec = spec(&[&c.info.client_id]);
    let v = f.oauth.verifier();
    for (name, token) in [("old", &old), ("new", &new)] {
        v.verify(&spec, Some(token), &[]).await.unwrap_or_else(|e| panic!("{name} token: {e}"));
    }
    // Another replica over the same database knows both keys, and learns of a rotation it
    // did not make when a token names the new kid.
    let replica = f.reopen().await;
    replica.verifier().verify(&spec, Some(&old), &[]).await.unwrap();
    let newest = f.oauth.rotate_signing_key().await.unwrap();
    let newest_token = f.token(&c, None).await;
    assert_eq!(header_of(&newest_token)["kid"], json!(newest));
    replica.verifier().verify(&spec, Some(&newest_token), &[]).await.unwrap();

    // Once its last token must have expired, a retired key leaves the JWKS and fails its
    // tokens; the next rotation deletes it.
    let long_ago = nimbus_core::clock::now_ms() - crate::keys::RETIRED_GRACE_MS - 1;
    f.db.write_one(
        sqlx_query("UPDATE signing_keys SET retired_ms = $1 WHERE kid = $2").bind(long_ago).bind(old_kid.clone()),
    )
    .await
    .unwrap();
    f.oauth.inner.keys.load().await.unwrap();
    let kids = f.oauth.jwks()["keys"].as_array().unwrap().len();
    assert_eq!(kids, 2, "the expired key is no longer published");
    let fresh_verifier = f.reopen().await.verifier();
    assert!(matches!(fresh_verifier.verify(&spec, Some(&old), &[]).await, Err(JwtError::UnknownKid(_))));
    // (The pool hands key 0 out again here: its insertion could not succeed unless the
    // expired row of the same kid had been deleted first.)
    f.oauth.rotate_signing_key().await.unwrap();
    let expired = nimbus_meta::sqlx::query("SELECT kid FROM signing_keys WHERE retired_ms < $1")
        .bind(nimbus_core::clock::now_ms() - crate::keys::RETIRED_GRACE_MS)
        .fetch_all(f.db.pool())
        .await
        .unwrap();
    assert!(expired.is_empty(), "the rotation deleted the expired key");
}

fn sqlx_query(
    sql: &str,
) -> nimbus_meta::sqlx::query::Query<'_, nimbus_meta::sqlx::Any, nimbus_meta::sqlx::any::AnyArguments<'_>> {
    nimbus_meta::sqlx::query(sql)
}
