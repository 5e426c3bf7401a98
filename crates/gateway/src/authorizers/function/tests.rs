//! The function authorizer's settings, identity sources, simple responses and cache. Each
//! table reports every failing row, not only the first.

use axum::http::HeaderValue;
use serde_json::json;

use super::*;
use crate::spec::{ApiSpec, RouteSpec, StageSpec};

fn report(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} failure(s):\n  {}", failures.len(), failures.join("\n  "));
}

/// An API with one route `auth = "function:authz"` and `settings` (TOML) as its
/// `[function_authorizers.authz]`, when given.
fn api(settings: Option<&str>) -> Result<ApiSpec, String> {
    let mut text =
        String::from("[routes]\n\"GET /items\" = { function = \"items\", auth = \"function:authz\" }\n[stages.prod]\n");
    if let Some(s) = settings {
        text.push_str("[function_authorizers.authz]\n");
        text.push_str(s);
    }
    toml::from_str(&text).map_err(|e| e.to_string())
}

#[test]
fn settings_default_and_their_errors_name_the_field() {
    let mut failures = Vec::new();
    // (row, settings, Ok(compiled sources, ttl seconds) | Err(words the error must contain))
    type Want = Result<(Vec<IdentitySource>, u64), Vec<&'static str>>;
    let rows: Vec<(&str, Option<&str>, Want)> = vec![
        ("no settings", None, Ok((vec![IdentitySource::Header(HeaderName::from_static("authorization"))], 300))),
        ("empty settings", Some(""), Ok((vec![IdentitySource::Header(HeaderName::from_static("authorization"))], 300))),
        (
            "header and query",
            Some("identity_source = [\"$request.header.X-Token\", \"$request.querystring.tenant\"]\nttl_s = 60\n"),
            Ok((
                vec![
                    IdentitySource::Header(HeaderName::from_static("x-token")),
                    IdentitySource::Query("tenant".into()),
                ],
                60,
            )),
        ),
        (
            "no caching",
            Some("ttl_s = 0\n"),
            Ok((vec![IdentitySource::Header(HeaderName::from_static("authorization"))], 0)),
        ),
        ("no source without caching", Some("identity_source = []\nttl_s = 0\n"), Ok((vec![], 0))),
        (
            "the maximum ttl",
            Some("ttl_s = 3600\n"),
            Ok((vec![IdentitySource::Header(HeaderName::from_static("authorization"))], 3600)),
        ),
        (
            "simple responses said",
            Some("enable_simple_responses = true\n"),
            Ok((vec![IdentitySource::Header(HeaderName::from_static("authorization"))], 300)),
        ),
        ("ttl too long", Some("ttl_s = 3601\n"), Err(vec!["function_authorizers.authz.ttl_s", "3600"])),
        ("negative ttl", Some("ttl_s = -1\n"), Err(vec!["ttl_s"])),
        (
            "policy responses",
            Some("enable_simple_responses = false\n"),
            Err(vec!["function_authorizers.authz.enable_simple_responses", "simple responses"]),
        ),
        (
            "no source but caching",
            Some("identity_source = []\n"),
            Err(vec!["function_authorizers.authz.identity_source", "ttl_s = 0"]),
        ),
        (
            "a context source",
            Some("identity_source = [\"$context.identity.sourceIp\"]\n"),
            Err(vec!["function_authorizers.authz.identity_source[0]", "$request.header.NAME", "not supported"]),
        ),
        (
            "a bad header name",
            Some("identity_source = [\"$request.header.Authorization\", \"$request.header.bad name\"]\n"),
            Err(vec!["identity_source[1]", "not a valid HTTP header name"]),
        ),
        (
            "an unnamed query parameter",
            Some("identity_source = [\"$request.querystring.\"]\n"),
            Err(vec!["identity_source[0]"]),
        ),
        ("an unknown field", Some("cache = 5\n"), Err(vec!["unknown field", "cache"])),
    ];
    for (row, settings, want) in rows {
        let got = api(settings).and_then(|spec| {
            spec.validate("shop")?;
            crate::CompiledApi::compile("shop", spec, "")
        });
        match (got, want) {
            (Ok(compiled), Ok((sources, ttl))) => {
                let a = &compiled.function_authorizers["authz"];
                if a.sources != sources || a.ttl != Duration::from_secs(ttl) || a.function != "authz" {
                    failures.push(format!("{row}: compiled {a:?}, expected {sources:?} for {ttl} s"));
                }
            }
            (Err(e), Err(words)) => {
                for w in words.iter().filter(|w| !e.contains(*w)) {
                    failures.push(format!("{row}: the error does not say {w:?}: {e}"));
                }
            }
            (got, want) => {
                failures.push(format!("{row}: {:?}, expected {want:?}", got.map(|c| c.function_authorizers)))
            }
        }
    }
    report(failures);
}

#[test]
fn settings_no_route_uses_are_refused() {
    let spec = ApiSpec {
        description: String::new(),
        hosts: vec![],
        routes: [(
            "GET /items".to_string(),
            RouteSpec { auth: Some("function:auth".into()), ..RouteSpec::to("items") },
        )]
        .into(),
        stages: [("prod".to_string(), StageSpec::default())].into(),
        authorizers: Default::default(),
        function_authorizers: [("authz".to_string(), FunctionAuthorizerSpec::default())].into(),
        cors: None,
    };
    let e = spec.validate("shop").unwrap_err();
    assert!(e.contains("function_authorizers.authz") && e.contains("function:authz"), "{e}");
    let mut scoped = api(None).unwrap();
    scoped.routes.get_mut("GET /items").unwrap().scopes = vec!["shop/read".into()];
    let e = scoped.validate("shop").unwrap_err();
    assert!(e.contains("scopes") && e.contains("jwt"), "{e}");
}

#[test]
fn settings_round_trip_and_stay_out_of_documents_without_them() {
    let plain = api(None).unwrap();
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("function_authorizers").is_none(), "an API without settings stores none: {json}");
    let set = api(Some("ttl_s = 5\n")).unwrap();
    let back: ApiSpec = serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.function_authorizers["authz"].ttl_s, 5);
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    h
}

#[test]
fn identity_values_are_read_in_order_and_missing_or_empty_ones_named() {
    let authorizer = FunctionAuthorizer::compile(
        "authz",
        Some(&FunctionAuthorizerSpec {
            identity_source: vec!["$request.header.Authorization".into(), "$request.querystring.tenant".into()],
            ..FunctionAuthorizerSpec::default()
        }),
    )
    .unwrap();
    let header_only = FunctionAuthorizer::compile("authz", None).unwrap();
    let mut failures = Vec::new();
    // (row, authorizer, headers, query, Ok(values) | Err(the source named missing))
    type Want = Result<Vec<&'static str>, &'static str>;
    let rows: Vec<(&str, &FunctionAuthorizer, HeaderMap, &str, Want)> = vec![
        ("both", &authorizer, headers(&[("authorization", "allow-1")]), "tenant=acme", Ok(vec!["allow-1", "acme"])),
        (
            "repeated ones joined, query decoded",
            &authorizer,
            headers(&[("authorization", "a"), ("authorization", "b")]),
            "tenant=big+co&x=1&tenant=%C3%A9",
            Ok(vec!["a,b", "big co,é"]),
        ),
        ("no header", &authorizer, HeaderMap::new(), "tenant=acme", Err("$request.header.authorization")),
        ("no query", &authorizer, headers(&[("authorization", "allow-1")]), "x=1", Err("$request.querystring.tenant")),
        ("an empty header", &header_only, headers(&[("authorization", "")]), "", Err("$request.header.authorization")),
        ("a blank header", &header_only, headers(&[("authorization", "  ")]), "", Err("$request.header.authorization")),
        (
            "an empty query value",
            &authorizer,
            headers(&[("authorization", "t")]),
            "tenant=",
            Err("$request.querystring.tenant"),
        ),
        ("the header by any case", &header_only, headers(&[("authorization", "Bearer x")]), "", Ok(vec!["Bearer x"])),
    ];
    for (row, a, h, query, want) in rows {
        let got = a.identity(&h, query);
        let got = got.as_ref().map(|v| v.iter().map(String::as_str).collect::<Vec<_>>()).map_err(|s| s.describe());
        if got != want.map_err(str::to_string) {
            failures.push(format!("{row}: {got:?}"));
        }
    }
    report(failures);
}

#[test]
fn simple_responses_are_read_and_anything_else_is_a_failure() {
    let context = json!({ "user": "alice", "n": 1, "roles": ["a"] });
    let mut failures = Vec::new();
    // (row, payload, Ok(verdict) | Err(words of the reason))
    let rows: Vec<(&str, String, Result<Verdict, &str>)> = vec![
        (
            "allowed with context",
            json!({ "isAuthorized": true, "context": context }).to_string(),
            Ok(Verdict::Allow(Arc::new(context.as_object().unwrap().clone()))),
        ),
        ("allowed without context", r#"{"isAuthorized": true}"#.into(), Ok(Verdict::Allow(Arc::default()))),
        (
            "allowed, context null",
            r#"{"isAuthorized": true, "context": null}"#.into(),
            Ok(Verdict::Allow(Arc::default())),
        ),
        ("denied", r#"{"isAuthorized": false, "context": {"why": "no"}}"#.into(), Ok(Verdict::Deny)),
        ("not JSON", "allow".into(), Err("not JSON")),
        ("not an object", "true".into(), Err("not an object")),
        ("an IAM policy", r#"{"principalId": "u", "policyDocument": {}}"#.into(), Err("no isAuthorized")),
        ("a string verdict", r#"{"isAuthorized": "true"}"#.into(), Err("not true or false")),
        ("a context list", r#"{"isAuthorized": true, "context": ["a"]}"#.into(), Err("not an object")),
    ];
    for (row, payload, want) in rows {
        match (simple_response(payload.as_bytes()), want) {
            (Ok(got), Ok(want)) if got == want => {}
            (Err(e), Err(words)) if e.contains(words) => {}
            (got, want) => failures.push(format!("{row}: {got:?}, expected {want:?}")),
        }
    }
    report(failures);
}

fn allow(user: &str) -> Verdict {
    Verdict::Allow(Arc::new(json!({ "user": user }).as_object().unwrap().clone()))
}

#[test]
fn the_cache_hits_on_the_same_values_until_the_ttl_is_over() {
    let cache = Cache::new(100);
    let t0 = Instant::now();
    let ttl = Duration::from_secs(300);
    let alice = cache_key("shop", "authz", &["allow-alice".into()]);
    let bob = cache_key("shop", "authz", &["allow-bob".into()]);
    assert_eq!(cache.get(&alice, t0), None, "nothing before the first call");
    cache.put(alice, allow("alice"), ttl, t0);
    assert_eq!(cache.get(&alice, t0 + Duration::from_secs(1)), Some(allow("alice")), "the same value hits");
    assert_eq!(cache.get(&bob, t0 + Duration::from_secs(1)), None, "another value misses");
    cache.put(bob, Verdict::Deny, ttl, t0);
    assert_eq!(cache.get(&bob, t0 + Duration::from_secs(2)), Some(Verdict::Deny), "a denial is cached too");
    assert_eq!(cache.get(&alice, t0 + ttl - Duration::from_millis(1)), Some(allow("alice")));
    assert_eq!(cache.get(&alice, t0 + ttl), None, "expired at its ttl");
    assert_eq!(cache.len(), 1, "the expired entry is dropped when met");

    cache.put(alice, allow("alice"), Duration::ZERO, t0);
    assert_eq!(cache.get(&alice, t0), None, "a zero ttl caches nothing");
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn cache_keys_separate_apis_authorizers_and_value_lists() {
    let key = |api: &str, f: &str, values: &[&str]| {
        cache_key(api, f, &values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    };
    let base = key("shop", "authz", &["a", "b"]);
    let mut failures = Vec::new();
    for (row, other) in [
        ("another api", key("shop2", "authz", &["a", "b"])),
        ("another authorizer", key("shop", "authz2", &["a", "b"])),
        ("values joined differently", key("shop", "authz", &["ab"])),
        ("values split differently", key("shop", "authz", &["a", "", "b"])),
        ("a shifted boundary", key("shopa", "uthz", &["a", "b"])),
    ] {
        if other == base {
            failures.push(format!("{row}: same key"));
        }
    }
    assert_eq!(key("shop", "authz", &["a", "b"]), base, "the same request has the same key");
    report(failures);
}

#[test]
fn a_full_cache_drops_expired_results_first_then_the_oldest() {
    let cache = Cache::new(3);
    let t0 = Instant::now();
    let k = |i: u8| [i; 32];
    let short = Duration::from_secs(1);
    let long = Duration::from_secs(100);
    cache.put(k(1), allow("1"), long, t0);
    cache.put(k(2), allow("2"), short, t0);
    cache.put(k(3), allow("3"), long, t0);
    // Past k(2)'s ttl, a fourth result sweeps k(2) out rather than the oldest, k(1).
    let t1 = t0 + Duration::from_secs(2);
    cache.put(k(4), allow("4"), long, t1);
    assert_eq!(cache.len(), 3);
    assert!(cache.get(&k(1), t1).is_some() && cache.get(&k(2), t1).is_none(), "the expired one went");
    // Nothing expired: the oldest goes.
    cache.put(k(5), allow("5"), long, t1);
    assert_eq!(cache.len(), 3);
    assert!(cache.get(&k(1), t1).is_none(), "the oldest went");
    for i in [3, 4, 5] {
        assert!(cache.get(&k(i), t1).is_some(), "k({i}) stays");
    }
    // Storing one key over and over keeps the order bounded and the others in place.
    for _ in 0..50 {
        cache.put(k(5), allow("5"), long, t1);
    }
    assert!(cache.state().order.len() <= 2 * 3 + 1, "stale order entries are compacted");
    for i in [3, 4, 5] {
        assert!(cache.get(&k(i), t1).is_some(), "k({i}) still stays");
    }
}
