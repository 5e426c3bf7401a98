//! CORS: preflights, decorated answers and declaration checks.

use super::*;

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// One exact origin, listed methods and headers, exposed headers, a max age.
fn exact() -> CorsSpec {
    CorsSpec {
        allow_origins: list(&["https://app.example.com"]),
        allow_methods: list(&["GET", "post"]),
        allow_headers: list(&["Content-Type", "X-Api-Key"]),
        expose_headers: list(&["X-Request-Id"]),
        max_age: Some(300),
        allow_credentials: false,
    }
}

/// Wildcard subdomains with any method and header.
fn wild() -> CorsSpec {
    CorsSpec {
        allow_origins: list(&["https://*.example.com"]),
        allow_methods: list(&["*"]),
        allow_headers: list(&["*"]),
        ..CorsSpec::default()
    }
}

/// A public API.
fn star() -> CorsSpec {
    CorsSpec {
        allow_origins: list(&["*", "https://app.example.com"]),
        allow_methods: list(&["GET"]),
        expose_headers: list(&["*"]),
        ..CorsSpec::default()
    }
}

/// Credentials with exact origins, one on a port, and a default port written out.
fn creds() -> CorsSpec {
    CorsSpec {
        allow_origins: list(&["https://app.example.com:443", "http://localhost:3000"]),
        allow_methods: list(&["PUT"]),
        allow_headers: list(&["authorization"]),
        expose_headers: list(&["etag"]),
        max_age: Some(MAX_AGE_LIMIT),
        allow_credentials: true,
    }
}

/// API Gateway's documented whole-scheme wildcard.
fn scheme_wild() -> CorsSpec {
    CorsSpec { allow_origins: list(&["https://*"]), allow_methods: list(&["GET"]), ..CorsSpec::default() }
}

enum Call {
    /// `preflight(method, request)`; expect `None` or 204 with exactly these headers.
    Preflight(&'static str),
    /// `decorate(request, response)` on a response holding these headers first.
    Decorate(&'static [(&'static str, &'static str)]),
}

struct Row {
    name: &'static str,
    spec: fn() -> CorsSpec,
    call: Call,
    request: &'static [(&'static str, &'static str)],
    /// Preflight: `None` = not a preflight; `Some(h)` = 204 with exactly the headers `h`.
    /// Decorate: the response's headers afterwards (always `Some`).
    expect: Option<&'static [(&'static str, &'static str)]>,
}

const APP: (&str, &str) = ("origin", "https://app.example.com");
const ASK_POST: (&str, &str) = ("access-control-request-method", "POST");
const NOTHING: Option<&[(&str, &str)]> = Some(&[]);

fn rows() -> Vec<Row> {
    use Call::*;
    vec![
        Row {
            name: "exact origin, listed method and header",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[APP, ASK_POST, ("access-control-request-headers", "content-type")],
            expect: Some(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "content-type, x-api-key"),
                ("access-control-max-age", "300"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "exact origin, no requested headers: the configured list still answers",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[APP, ASK_POST],
            expect: Some(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "content-type, x-api-key"),
                ("access-control-max-age", "300"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "disallowed method: 204 without CORS headers",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[APP, ("access-control-request-method", "DELETE")],
            expect: NOTHING,
        },
        Row {
            name: "disallowed origin: 204 without CORS headers",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://evil.example.com"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "same host, other scheme",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[("origin", "http://app.example.com"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "same host, other port",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://app.example.com:8443"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "origin compares case-insensitively, and is echoed as sent",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[("origin", "HTTPS://App.Example.COM"), ("access-control-request-method", "get")],
            expect: Some(&[
                ("access-control-allow-origin", "HTTPS://App.Example.COM"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "content-type, x-api-key"),
                ("access-control-max-age", "300"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "requested headers compare case-insensitively, over several lines",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[
                APP,
                ASK_POST,
                ("access-control-request-headers", "X-API-KEY"),
                ("access-control-request-headers", " Content-Type ,"),
            ],
            expect: Some(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "content-type, x-api-key"),
                ("access-control-max-age", "300"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "a requested header not listed: 204 without CORS headers",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[APP, ASK_POST, ("access-control-request-headers", "content-type, x-other")],
            expect: NOTHING,
        },
        Row {
            name: "OPTIONS without Access-Control-Request-Method is not a preflight",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[APP],
            expect: None,
        },
        Row {
            name: "OPTIONS without Origin is not a preflight",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[ASK_POST],
            expect: None,
        },
        Row {
            name: "a GET with preflight headers is not a preflight",
            spec: exact,
            call: Preflight("GET"),
            request: &[APP, ASK_POST],
            expect: None,
        },
        Row {
            name: "the null origin matches no listed entry",
            spec: exact,
            call: Preflight("OPTIONS"),
            request: &[("origin", "null"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "wildcard subdomain; '*' methods and headers echo the request",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[
                ("origin", "https://a.example.com"),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "x-foo, authorization"),
            ],
            expect: Some(&[
                ("access-control-allow-origin", "https://a.example.com"),
                ("access-control-allow-methods", "PATCH"),
                ("access-control-allow-headers", "x-foo, authorization"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "wildcard subdomain at depth two; nothing requested, no Allow-Headers",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://a.b.example.com"), ASK_POST],
            expect: Some(&[
                ("access-control-allow-origin", "https://a.b.example.com"),
                ("access-control-allow-methods", "POST"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "wildcard subdomain does not match the bare domain",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://example.com"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "wildcard subdomain does not match another scheme",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "http://a.example.com"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "wildcard subdomain does not match a look-alike domain",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://evilexample.com"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "wildcard subdomain does not match the domain as a prefix",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://a.example.com.evil.net"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "a crafted origin with a path does not slide past the suffix check",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://evil.net/.example.com"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "wildcard subdomain with another port",
            spec: wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://a.example.com:8443"), ASK_POST],
            expect: NOTHING,
        },
        Row {
            name: "'*' without credentials answers '*' and does not vary",
            spec: star,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://anyone.test"), ("access-control-request-method", "GET")],
            expect: Some(&[("access-control-allow-origin", "*"), ("access-control-allow-methods", "GET")]),
        },
        Row {
            name: "'*' answers the null origin too",
            spec: star,
            call: Preflight("OPTIONS"),
            request: &[("origin", "null"), ("access-control-request-method", "GET")],
            expect: Some(&[("access-control-allow-origin", "*"), ("access-control-allow-methods", "GET")]),
        },
        Row {
            name: "credentials: the origin echoed, Allow-Credentials, the longest max age",
            spec: creds,
            call: Preflight("OPTIONS"),
            request: &[
                ("origin", "http://localhost:3000"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "Authorization"),
            ],
            expect: Some(&[
                ("access-control-allow-origin", "http://localhost:3000"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "PUT"),
                ("access-control-allow-headers", "authorization"),
                ("access-control-max-age", "86400"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "credentials: a listed default port is the same as none",
            spec: creds,
            call: Preflight("OPTIONS"),
            request: &[APP, ("access-control-request-method", "PUT")],
            expect: Some(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "PUT"),
                ("access-control-allow-headers", "authorization"),
                ("access-control-max-age", "86400"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "whole-scheme wildcard matches any host and port of that scheme",
            spec: scheme_wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "https://anything.test:8443"), ("access-control-request-method", "GET")],
            expect: Some(&[
                ("access-control-allow-origin", "https://anything.test:8443"),
                ("access-control-allow-methods", "GET"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "whole-scheme wildcard does not match the other scheme",
            spec: scheme_wild,
            call: Preflight("OPTIONS"),
            request: &[("origin", "http://anything.test"), ("access-control-request-method", "GET")],
            expect: NOTHING,
        },
        Row {
            name: "real response from an allowed origin: origin, expose headers, Vary",
            spec: exact,
            call: Decorate(&[("content-type", "application/json")]),
            request: &[APP],
            expect: Some(&[
                ("content-type", "application/json"),
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-expose-headers", "x-request-id"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "real response without Origin: nothing added",
            spec: exact,
            call: Decorate(&[("content-type", "application/json")]),
            request: &[],
            expect: Some(&[("content-type", "application/json")]),
        },
        Row {
            name: "real response to a disallowed origin: nothing added",
            spec: exact,
            call: Decorate(&[]),
            request: &[("origin", "https://evil.test")],
            expect: NOTHING,
        },
        Row {
            name: "real response to the null origin: nothing added",
            spec: exact,
            call: Decorate(&[]),
            request: &[("origin", "null")],
            expect: NOTHING,
        },
        Row {
            name: "the integration's own CORS headers are dropped",
            spec: exact,
            call: Decorate(&[
                ("access-control-allow-origin", "*"),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "99"),
            ]),
            request: &[("origin", "https://evil.test")],
            expect: NOTHING,
        },
        Row {
            name: "and replaced by the declaration's for an allowed origin",
            spec: exact,
            call: Decorate(&[("access-control-allow-origin", "*"), ("access-control-expose-headers", "secret")]),
            request: &[APP],
            expect: Some(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-expose-headers", "x-request-id"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "'*' on a real response: '*', expose '*', no Vary",
            spec: star,
            call: Decorate(&[]),
            request: &[("origin", "https://anyone.test")],
            expect: Some(&[("access-control-allow-origin", "*"), ("access-control-expose-headers", "*")]),
        },
        Row {
            name: "credentials on a real response",
            spec: creds,
            call: Decorate(&[]),
            request: &[("origin", "http://localhost:3000")],
            expect: Some(&[
                ("access-control-allow-origin", "http://localhost:3000"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "etag"),
                ("vary", "Origin"),
            ]),
        },
        Row {
            name: "Vary keeps the integration's value and adds Origin",
            spec: wild,
            call: Decorate(&[("vary", "Accept-Encoding")]),
            request: &[("origin", "https://a.example.com")],
            expect: Some(&[
                ("vary", "Accept-Encoding"),
                ("vary", "Origin"),
                ("access-control-allow-origin", "https://a.example.com"),
            ]),
        },
        Row {
            name: "Vary already naming origin is not repeated",
            spec: wild,
            call: Decorate(&[("vary", "accept-encoding, origin")]),
            request: &[("origin", "https://a.example.com")],
            expect: Some(&[
                ("vary", "accept-encoding, origin"),
                ("access-control-allow-origin", "https://a.example.com"),
            ]),
        },
    ]
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    m
}

/// A header map as sorted `name: value` lines, so two maps compare regardless of order.
fn lines(m: &HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap())).collect();
    out.sort();
    out
}

#[test]
fn answers() {
    let rows = rows();
    assert!(rows.len() >= 25, "the table covers at least 25 cases");
    let mut failures = Vec::new();
    for row in &rows {
        let spec = (row.spec)();
        if let Err(e) = spec.validate() {
            failures.push(format!("{}: the row's declaration is invalid: {e}", row.name));
            continue;
        }
        let cors = spec.compile();
        let request = map(row.request);
        let got: Option<Vec<String>> = match &row.call {
            Call::Preflight(method) => {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                cors.preflight(&method, &request).map(|res| {
                    if res.status() != StatusCode::NO_CONTENT {
                        failures.push(format!("{}: status {} instead of 204", row.name, res.status()));
                    }
                    lines(res.headers())
                })
            }
            Call::Decorate(before) => {
                let mut response = map(before);
                cors.decorate(&request, &mut response);
                Some(lines(&response))
            }
        };
        let want = row.expect.map(|h| lines(&map(h)));
        if got != want {
            failures.push(format!("{}:\n    want {want:?}\n    got  {got:?}", row.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn validation() {
    let origins = |o: &[&str]| CorsSpec { allow_origins: list(o), ..CorsSpec::default() };
    let with_credentials = |o: &[&str]| CorsSpec { allow_credentials: true, ..origins(o) };
    // (name, declaration, None = valid or Some(text the error contains))
    let rows: Vec<(&str, CorsSpec, Option<&str>)> = vec![
        ("the exact declaration", exact(), None),
        ("wildcard subdomains", wild(), None),
        ("public", star(), None),
        ("credentials with exact origins", creds(), None),
        ("whole-scheme wildcard", scheme_wild(), None),
        ("IPv6 with a port", origins(&["http://[::1]:8080"]), None),
        ("local development subdomains", origins(&["http://*.localhost:3000"]), None),
        ("wildcard subdomains with credentials", with_credentials(&["https://*.example.com"]), None),
        ("no origins", origins(&[]), Some("cors.allow_origins is empty")),
        (
            "a bare host",
            origins(&["https://a.test", "example.com"]),
            Some(
                "cors.allow_origins[1]: \"example.com\" is not an origin; write scheme://host[:port], e.g. \
                 \"https://example.com\"",
            ),
        ),
        ("a bare wildcard host", origins(&["*.example.com"]), Some("e.g. \"https://*.example.com\"")),
        (
            "a trailing slash",
            origins(&["https://a.test/"]),
            Some("has a path; an origin is only scheme://host[:port], so write \"https://a.test\""),
        ),
        ("a path", origins(&["https://a.test:8080/app?x"]), Some("so write \"https://a.test:8080\"")),
        (
            "a wildcard mid-host",
            origins(&["https://a.*.com"]),
            Some("[0]: \"https://a.*.com\" has a wildcard in the wrong place"),
        ),
        ("a wildcard glued to a label", origins(&["https://*example.com"]), Some("wildcard in the wrong place")),
        ("a wildcard port", origins(&["https://a.test:*"]), Some("wildcard in the wrong place")),
        ("two wildcards", origins(&["https://*.*.example.com"]), Some("wildcard in the wrong place")),
        (
            "a wildcard over a top-level domain",
            origins(&["https://*.com"]),
            Some("every site under the top-level domain \"com\""),
        ),
        ("a bad port", origins(&["https://a.test:99999"]), Some("invalid port")),
        ("port zero", origins(&["https://a.test:0"]), Some("invalid port")),
        ("userinfo", origins(&["https://me@a.test"]), Some("is not an origin: the host may hold only")),
        ("the null origin", origins(&["null"]), Some("every sandboxed iframe")),
        (
            "'*' with credentials",
            with_credentials(&["https://a.test", "*"]),
            Some("cors.allow_origins[1]: \"*\" cannot be combined with allow_credentials = true"),
        ),
        (
            "a whole-scheme wildcard with credentials",
            with_credentials(&["https://*"]),
            Some("cannot be combined with allow_credentials"),
        ),
        (
            "an unknown method",
            CorsSpec { allow_methods: list(&["GET", "FETCH"]), ..origins(&["*"]) },
            Some("cors.allow_methods[1]: \"FETCH\" is not an HTTP method"),
        ),
        ("a lowercase method is fine", CorsSpec { allow_methods: list(&["patch"]), ..origins(&["*"]) }, None),
        (
            "a header name with a space",
            CorsSpec { allow_headers: list(&["x-ok", "x bad"]), ..origins(&["*"]) },
            Some("cors.allow_headers[1]: \"x bad\" is not a header name"),
        ),
        (
            "an expose header with a colon",
            CorsSpec { expose_headers: list(&["etag:"]), ..origins(&["*"]) },
            Some("cors.expose_headers[0]"),
        ),
        (
            "expose '*' with credentials",
            CorsSpec { expose_headers: list(&["*"]), ..with_credentials(&["https://a.test"]) },
            Some("cors.expose_headers: \"*\" does not work with allow_credentials"),
        ),
        ("the longest max age", CorsSpec { max_age: Some(86_400), ..origins(&["*"]) }, None),
        (
            "a max age over a day",
            CorsSpec { max_age: Some(86_401), ..origins(&["*"]) },
            Some("cors.max_age: 86401 is longer than API Gateway's limit of 86400 seconds"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, spec, want) in &rows {
        match (spec.validate(), want) {
            (Ok(()), None) => {}
            (Err(e), Some(text)) if e.contains(text) => {}
            (got, want) => failures.push(format!("{name}: want {want:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn declaration_fields_are_optional_and_checked() {
    let spec: CorsSpec = serde_json::from_str(r#"{"allow_origins": ["*"], "max_age": 60}"#).unwrap();
    assert_eq!(spec, CorsSpec { allow_origins: list(&["*"]), max_age: Some(60), ..CorsSpec::default() });
    let err = serde_json::from_str::<CorsSpec>(r#"{"allow_origin": ["*"]}"#).unwrap_err().to_string();
    assert!(err.contains("unknown field `allow_origin`"), "{err}");
}

#[test]
fn compiled_is_shareable() {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    shareable::<CompiledCors>();
}
