//! The token endpoint: request forms, client authentication, scopes, token shape, throttle.

use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::{JwtAuthorizerSpec, TokenError};

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[tokio::test]
async fn issued_tokens_verify_and_look_like_cognitos() {
    let f = fixture().await;
    let client = f.client("reports").await;
    let token = f.token(&client, None).await;

    let header = header_of(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], json!(f.oauth.current_kid().unwrap()));
    let claims = claims_of(&token);
    let id = &client.info.client_id;
    assert_eq!(claims["sub"], json!(id));
    assert_eq!(claims["client_id"], json!(id));
    assert_eq!(claims["scope"], "orders/read orders/write");
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["version"], 2);
    assert!(!claims.contains_key("aud"), "Cognito access tokens have no aud");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert_eq!(claims["auth_time"].as_i64(), Some(iat));
    assert!((iat - now_s()).abs() <= 2);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    assert_ne!(claims_of(&f.token(&client, None).await)["jti"], claims["jti"], "jti is fresh per token");

    let spec = JwtAuthorizerSpec { issuer: ISSUER.into(), audience: vec![id.clone()], jwks_url: None };
    let ok = f.oauth.verifier().verify(&spec, Some(&format!("Bearer {token}")), &["orders/read".into()]).await.unwrap();
    assert_eq!(ok.scopes, vec!["orders/read", "orders/write"]);
    assert_eq!(ok.claims, claims);
    // Without "Bearer " too.
    f.oauth.verifier().verify(&spec, Some(&token), &[]).await.unwrap();
}

#[tokio::test]
async fn the_token_answer_is_the_oauth2_json() {
    let f = fixture().await;
    let client = f.oauth.create_client(&ClientSpec { token_validity_s: 900, ..client_spec("short", &[]) }).await;
    assert!(client.is_err(), "a client needs a scope");
    let c = f.client("c").await;
    let short = f
        .oauth
        .ensure_client(&ClientSpec { token_validity_s: 900, ..client_spec("c", &["orders/read"]) })
        .await
        .unwrap();
    assert!(short.1.is_none());
    let req = TokenRequest::parse(
        "grant_type=client_credentials",
        FORM,
        b"",
        Some(&basic(&c.info.client_id, &c.client_secret)),
    )
    .unwrap();
    let answer = f.oauth.token(&req, None).await.unwrap();
    let body = answer.to_json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["access_token"], json!(answer.access_token));
    assert!(!format!("{answer:?}").contains(&answer.access_token), "Debug hides the token");
    assert!(!format!("{req:?}").contains(&c.client_secret), "Debug hides the secret");
}

/// One request form and what it must yield: the token's scope, or the error code.
struct Row {
    name: &'static str,
    query: String,
    content_type: Option<&'static str>,
    body: String,
    auth: Option<String>,
    want: Result<&'static str, &'static str>,
}

#[tokio::test]
async fn request_forms_and_errors() {
    let f = fixture().await;
    let c = f.client("forms").await;
    let (id, secret) = (c.info.client_id.clone(), c.client_secret.clone());
    let good = basic(&id, &secret);
    let long_id = basic(&"a".repeat(500), "x");
    let row = |name, query: &str, content_type, body: &str, auth: Option<&str>, want| Row {
        name,
        query: query.to_string(),
        content_type,
        body: body.to_string(),
        auth: auth.map(String::from),
        want,
    };
    let all = Ok("orders/read orders/write");
    let creds = format!("client_id={id}&client_secret={secret}");
    let rows = vec![
        row("seed: query string + Basic", "grant_type=client_credentials", FORM, "", Some(&good), all),
        row("seed with a leading ?", "?grant_type=client_credentials", FORM, "", Some(&good), all),
        row("form body + Basic", "", FORM, "grant_type=client_credentials", Some(&good), all),
        row(
            "form body, charset, + for space",
            "",
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            "grant_type=client_credentials&scope=orders%2Fwrite+orders/read",
            Some(&good),
            Ok("orders/write orders/read"),
        ),
        row("form-field credentials", "", FORM, &format!("grant_type=client_credentials&{creds}"), None, all),
        row(
            "scope in the query",
            "scope=orders/read",
            FORM,
            "grant_type=client_credentials",
            Some(&good),
            Ok("orders/read"),
        ),
        row(
            "repeated scopes once",
            "grant_type=client_credentials&scope=orders/read%20orders/read",
            FORM,
            "",
            Some(&good),
            Ok("orders/read"),
        ),
        row(
            "same value in query and body",
            "grant_type=client_credentials",
            FORM,
            "grant_type=client_credentials",
            Some(&good),
            all,
        ),
        row("Basic without padding", "grant_type=client_credentials", None, "", Some(good.trim_end_matches('=')), all),
        row(
            "wrong secret",
            "grant_type=client_credentials",
            FORM,
            "",
            Some(&basic(&id, "nope")),
            Err("invalid_client"),
        ),
        row(
            "unknown client",
            "grant_type=client_credentials",
            FORM,
            "",
            Some(&basic("nobody", &secret)),
            Err("invalid_client"),
        ),
        row("no credentials", "grant_type=client_credentials", FORM, "", None, Err("invalid_client")),
        row(
            "id without secret",
            "",
            FORM,
            &format!("grant_type=client_credentials&client_id={id}"),
            None,
            Err("invalid_client"),
        ),
        row(
            "unknown scope",
            "grant_type=client_credentials&scope=orders/delete",
            FORM,
            "",
            Some(&good),
            Err("invalid_scope"),
        ),
        row(
            "scope of another server",
            "grant_type=client_credentials&scope=billing/read",
            FORM,
            "",
            Some(&good),
            Err("invalid_scope"),
        ),
        row("grant_type missing", "", FORM, "scope=orders/read", Some(&good), Err("invalid_request")),
        row("grant_type password", "grant_type=password", FORM, "", Some(&good), Err("unsupported_grant_type")),
        row(
            "grant_type authorization_code",
            "",
            FORM,
            "grant_type=authorization_code",
            Some(&good),
            Err("unsupported_grant_type"),
        ),
        row(
            "conflicting grant_type",
            "grant_type=client_credentials",
            FORM,
            "grant_type=password",
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "JSON body",
            "",
            Some("application/json"),
            r#"{"grant_type":"client_credentials"}"#,
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "body without content type",
            "",
            None,
            "grant_type=client_credentials",
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "two authentication methods",
            "grant_type=client_credentials",
            FORM,
            &creds,
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "client_id differs from Basic",
            "grant_type=client_credentials",
            FORM,
            "client_id=other",
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "Bearer instead of Basic",
            "grant_type=client_credentials",
            FORM,
            "",
            Some("Bearer abc"),
            Err("invalid_request"),
        ),
        row("Basic not base64", "grant_type=client_credentials", FORM, "", Some("Basic !!!"), Err("invalid_request")),
        row(
            "Basic without colon",
            "grant_type=client_credentials",
            FORM,
            "",
            Some(&format!("Basic {}", STANDARD.encode(&id))),
            Err("invalid_request"),
        ),
        row(
            "bad percent escape",
            "grant_type=client_credentials&scope=%zz",
            FORM,
            "",
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "signed percent escape",
            "grant_type=client_credentials&scope=%+1",
            FORM,
            "",
            Some(&good),
            Err("invalid_request"),
        ),
        row(
            "cut percent escape",
            "grant_type=client_credentials&scope=%2",
            FORM,
            "",
            Some(&good),
            Err("invalid_request"),
        ),
        row("overlong client id", "grant_type=client_credentials", FORM, "", Some(&long_id), Err("invalid_client")),
    ];
    let mut failures = Failures::default();
    for r in &rows {
        let outcome = match TokenRequest::parse(&r.query, r.content_type, r.body.as_bytes(), r.auth.as_deref()) {
            Err(e) => Err(e),
            Ok(req) => f
                .oauth
                .token(&req, None)
                .await
                .map(|t| claims_of(&t.access_token)["scope"].as_str().unwrap().to_string()),
        };
        let got = match &outcome {
            Ok(scope) => Ok(scope.as_str()),
            Err(e) => Err(e.code()),
        };
        failures.check(r.name, got == r.want, || format!("want {:?}, got {:?}", r.want, outcome));
        if let Err(e) = &outcome {
            let body = e.body();
            failures.check(r.name, body["error"] == e.code() && e.status() == 400, || {
                format!("answer {} {body}", e.status())
            });
        }
    }
    failures.assert_none();
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_source_and_per_client() {
    let f = fixture().await;
    let c = f.client("victim").await;
    let id = c.info.client_id.clone();
    let ask = |secret: &str| {
        TokenRequest::parse("grant_type=client_credentials", FORM, b"", Some(&basic(&id, secret))).unwrap()
    };
    let (good, bad) = (ask(&c.client_secret), ask("guess"));
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());

    // One source: ten failures, then everything from it is refused, even the right secret.
    for i in 0..crate::throttle::LIMIT {
        let e = f.oauth.token(&bad, ip("192.0.2.1")).await.unwrap_err();
        assert!(matches!(e, TokenError::InvalidClient), "attempt {i}: {e:?}");
    }
    let e = f.oauth.token(&good, ip("192.0.2.1")).await.unwrap_err();
    assert!(matches!(e, TokenError::TooManyFailures));
    assert_eq!((e.status(), e.body()["error"].as_str()), (429, Some("too_many_requests")));
    assert_eq!(e.retry_after_s(), Some(60));
    // Unknown client ids count against the source as well.
    let stranger = TokenRequest::parse("grant_type=client_credentials", FORM, b"", Some(&basic("x", "y"))).unwrap();
    assert!(matches!(f.oauth.token(&stranger, ip("192.0.2.1")).await, Err(TokenError::TooManyFailures)));

    // The client's id has had ten failures too, but a source that never failed still gets in:
    // wrong secrets from elsewhere cannot lock the client out.
    f.oauth.token(&good, ip("198.51.100.7")).await.unwrap();
    f.oauth.token(&good, None).await.unwrap_err(); // an unknown source is not trusted
    // A source that has failed once for this client is refused now, before ten of its own.
    assert!(matches!(f.oauth.token(&bad, ip("203.0.113.9")).await, Err(TokenError::InvalidClient)));
    assert!(matches!(f.oauth.token(&good, ip("203.0.113.9")).await, Err(TokenError::TooManyFailures)));
    // IPv6 sources are counted per /64.
    for _ in 0..crate::throttle::LIMIT {
        let _ = f.oauth.token(&stranger, ip("2001:db8:5::1")).await;
    }
    assert!(matches!(f.oauth.token(&stranger, ip("2001:db8:5::ffff")).await, Err(TokenError::TooManyFailures)));
    // Another client is not affected.
    let other = f.oauth.create_client(&client_spec("other", &["orders/read"])).await.unwrap();
    f.token(&other, None).await;
}
