//! Outside issuers: JWKS fetched over HTTP from a server the test runs, cached, refetched.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{JwtAuthorizerSpec, JwtError, Verifier};

fn outside_claims(issuer: &str, jti: &str) -> Value {
    json!({"iss": issuer, "aud": "api", "sub": "user-1", "exp": now_s() + 600, "scp": ["read"], "jti": jti})
}

#[tokio::test]
async fn an_outside_issuer_is_fetched_cached_and_refetched_once_per_unknown_kid_burst() {
    let pair = RsaKeyPair::from_pkcs8(&pool_key(1)).unwrap();
    let server = JwksServer::start(json!({"keys": [jwk_of(&pair, "k1", Some("RS256"))]})).await;
    let issuer = server.base.clone();
    let interval = Duration::from_secs(1);
    let v = Verifier::new(VerifierOptions { min_refetch: interval, ..VerifierOptions::default() });
    let spec = JwtAuthorizerSpec { issuer: issuer.clone(), audience: vec!["api".into()], jwks_url: None };
    let read = vec!["read".to_string()];

    let t1 = sign_as(&pair, "RS256", "k1", &outside_claims(&issuer, "1"));
    let ok = v.verify(&spec, Some(&t1), &read).await.unwrap();
    assert_eq!((ok.claims["sub"].as_str(), ok.scopes.clone()), (Some("user-1"), read.clone()));
    assert_eq!(server.hits(), 1);
    let t2 = sign_as(&pair, "RS256", "k1", &outside_claims(&issuer, "2"));
    v.verify(&spec, Some(&t2), &read).await.unwrap();
    assert_eq!(server.hits(), 1, "the JWKS is cached");

    // Unknown kids right after a fetch cause none.
    let bogus = |i: usize| sign_as(&pair, "RS256", &format!("bogus{i}"), &outside_claims(&issuer, "x"));
    for i in 0..5 {
        assert!(matches!(v.verify(&spec, Some(&bogus(i)), &read).await, Err(JwtError::UnknownKid(_))));
    }
    assert_eq!(server.hits(), 1);
    // Later, a burst of them, concurrent and sequential, causes exactly one.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (v, spec, read, token) = (v.clone(), spec.clone(), read.clone(), bogus(i));
            tokio::spawn(async move { v.verify(&spec, Some(&token), &read).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(JwtError::UnknownKid(_))));
    }
    for i in 10..30 {
        assert!(matches!(v.verify(&spec, Some(&bogus(i)), &read).await, Err(JwtError::UnknownKid(_))));
    }
    assert_eq!(server.hits(), 2, "one refetch for the whole burst");

    // The issuer adds a key: a token naming it triggers the refetch that finds it, and every
    // RSA algorithm verifies with a key that does not restrict its alg.
    let pair2 = RsaKeyPair::from_pkcs8(&pool_key(2)).unwrap();
    server.set(200, json!({"keys": [jwk_of(&pair, "k1", Some("RS256")), jwk_of(&pair2, "k2", None)]}));
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    for alg in ["RS256", "RS384", "RS512"] {
        let t = sign_as(&pair2, alg, "k2", &outside_claims(&issuer, alg));
        v.verify(&spec, Some(&t), &read).await.unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
    assert_eq!(server.hits(), 3);
    // k1 is published for RS256 only; a token signed by another key under its kid fails.
    let t = sign_as(&pair, "RS384", "k1", &outside_claims(&issuer, "384"));
    assert!(matches!(v.verify(&spec, Some(&t), &read).await, Err(JwtError::BadSignature)));
    let forged = sign_as(&pair2, "RS256", "k1", &outside_claims(&issuer, "forged"));
    assert!(matches!(v.verify(&spec, Some(&forged), &read).await, Err(JwtError::BadSignature)));

    // An explicit jwks_url is its own source: the cached t1 does not pass against it.
    let elsewhere = JwtAuthorizerSpec { jwks_url: Some(format!("{issuer}/nope")), ..spec.clone() };
    let r = v.verify(&elsewhere, Some(&t1), &read).await;
    assert!(matches!(r, Err(JwtError::JwksUnavailable(_))), "{r:?}");
    let same = JwtAuthorizerSpec { jwks_url: Some(format!("{issuer}/.well-known/jwks.json")), ..spec.clone() };
    v.verify(&same, Some(&t1), &read).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_jwks_is_reported_and_stale_keys_bridge_an_outage() {
    let pair = RsaKeyPair::from_pkcs8(&pool_key(1)).unwrap();
    let server = JwksServer::start(json!({"keys": [jwk_of(&pair, "k1", None)]})).await;
    let issuer = server.base.clone();
    let opts = VerifierOptions {
        jwks_ttl: Duration::from_millis(500),
        min_refetch: Duration::from_millis(200),
        max_stale: Duration::from_millis(1500),
        ..VerifierOptions::default()
    };
    let v = Verifier::new(opts);
    let spec = JwtAuthorizerSpec { issuer: issuer.clone(), audience: vec!["api".into()], jwks_url: None };
    let token = |jti: &str| sign_as(&pair, "RS256", "k1", &outside_claims(&issuer, jti));

    // Nothing listens there.
    let closed = JwtAuthorizerSpec { issuer: "http://127.0.0.1:9".into(), ..spec.clone() };
    let t = sign_as(&pair, "RS256", "k1", &outside_claims("http://127.0.0.1:9", "c"));
    assert!(matches!(v.verify(&closed, Some(&t), &[]).await, Err(JwtError::JwksUnavailable(_))));

    v.verify(&spec, Some(&token("a")), &[]).await.unwrap();
    server.set(500, json!({}));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Past the TTL the refetch fails: the stale keys still verify.
    v.verify(&spec, Some(&token("b")), &[]).await.unwrap();
    assert_eq!(server.hits(), 2);
    // Past TTL + max_stale they are dropped, and the failure shows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = v.verify(&spec, Some(&token("c")), &[]).await;
    assert!(matches!(&r, Err(JwtError::JwksUnavailable(why)) if why.contains("HTTP 500")), "{r:?}");
    // Recovery is picked up at the next allowed fetch.
    server.set(200, json!({"keys": [jwk_of(&pair, "k1", None)]}));
    tokio::time::sleep(Duration::from_millis(250)).await;
    v.verify(&spec, Some(&token("d")), &[]).await.unwrap();
}
