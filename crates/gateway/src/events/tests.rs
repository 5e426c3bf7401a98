//! Events compared field by field with the JSON API Gateway sends (absent and `null` are
//! different answers), and responses read as API Gateway reads them. Each table reports
//! every failing row, not only the first.

use super::*;

/// Every difference between `actual` and `expected`, by field path: a wrong value, a missing
/// field, a field that should be absent.
fn diff(path: &str, actual: &Value, expected: &Value, out: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, want) in e {
                match a.get(key) {
                    Some(got) => diff(&format!("{path}.{key}"), got, want, out),
                    None => out.push(format!("{path}.{key}: absent, expected {want}")),
                }
            }
            for (key, got) in a.iter().filter(|(k, _)| !e.contains_key(*k)) {
                out.push(format!("{path}.{key}: {got}, expected absent"));
            }
        }
        _ if actual != expected => out.push(format!("{path}: {actual}, expected {expected}")),
        _ => {}
    }
}

fn report(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} difference(s):\n  {}", failures.len(), failures.join("\n  "));
}

fn parsed(format: PayloadFormat, r: &EventRequest) -> Value {
    serde_json::from_slice(&event(format, r)).expect("the event is JSON")
}

/// The PNG signature: a body that is not text.
const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

fn busy_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "shop.example.com"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "text/plain"),
        ("accept", "application/json"),
        ("cookie", "session=abc; theme=dark"),
        ("cookie", "lang=en"),
        ("content-type", "image/png"),
        ("x-trace", "one"),
        ("x-trace", "two"),
    ] {
        h.append(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    h
}

struct Parts {
    headers: HeaderMap,
    params: Vec<(String, String)>,
    variables: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Parts {
    /// Repeated headers and query keys, cookies, a percent-encoded path parameter, a stage
    /// variable and a binary body.
    fn busy() -> Parts {
        Parts {
            headers: busy_headers(),
            params: vec![("id".into(), "a%20b".into())],
            variables: [("model".to_string(), "titanic".to_string())].into(),
            body: PNG.to_vec(),
        }
    }

    /// No headers, query, parameters, variables or body.
    fn bare() -> Parts {
        Parts { headers: HeaderMap::new(), params: Vec::new(), variables: BTreeMap::new(), body: Vec::new() }
    }

    fn request<'a>(&'a self, authorizer: Authorizer<'a>) -> EventRequest<'a> {
        EventRequest {
            api_id: "shop",
            account_id: "123456789012",
            stage: "prod",
            route_key: "POST /items/{id}",
            resource: "/items/{id}",
            method: "POST",
            raw_path: "/shop/prod/items/a%20b",
            raw_query: "tag=red&tag=blue&q=hello%20world&name=x+y&flag",
            headers: &self.headers,
            path_parameters: &self.params,
            stage_variables: &self.variables,
            body: &self.body,
            source_ip: "203.0.113.7",
            protocol: "HTTP/1.1",
            domain_name: "shop.example.com",
            request_id: "req-1",
            time_epoch_ms: 1_583_348_638_390,
            authorizer,
        }
    }

    fn bare_request(&self) -> EventRequest<'_> {
        EventRequest {
            route_key: "$default",
            resource: "$default",
            method: "GET",
            raw_path: "/shop/prod/",
            raw_query: "",
            domain_name: "localhost",
            ..self.request(Authorizer::None)
        }
    }
}

#[test]
fn v2_event_of_a_busy_request() {
    let parts = Parts::busy();
    let expected = json!({
        "version": "2.0",
        "routeKey": "POST /items/{id}",
        "rawPath": "/shop/prod/items/a%20b",
        "rawQueryString": "tag=red&tag=blue&q=hello%20world&name=x+y&flag",
        "cookies": ["session=abc", "theme=dark", "lang=en"],
        "headers": {
            "accept": "text/plain,application/json",
            "content-type": "image/png",
            "host": "shop.example.com",
            "user-agent": "curl/8.5.0",
            "x-trace": "one,two"
        },
        "queryStringParameters": { "flag": "", "name": "x y", "q": "hello world", "tag": "red,blue" },
        "pathParameters": { "id": "a b" },
        "stageVariables": { "model": "titanic" },
        "body": "iVBORw0KGgo=",
        "isBase64Encoded": true,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "shop",
            "domainName": "shop.example.com",
            "domainPrefix": "shop",
            "http": {
                "method": "POST",
                "path": "/shop/prod/items/a%20b",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0"
            },
            "requestId": "req-1",
            "routeKey": "POST /items/{id}",
            "stage": "prod",
            "time": "04/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1_583_348_638_390_i64
        }
    });
    let mut failures = Vec::new();
    diff("event", &parsed(PayloadFormat::V2, &parts.request(Authorizer::None)), &expected, &mut failures);
    report(failures);
}

#[test]
fn v1_event_of_a_busy_request() {
    let parts = Parts::busy();
    let expected = json!({
        "version": "1.0",
        "resource": "/items/{id}",
        "path": "/shop/prod/items/a%20b",
        "httpMethod": "POST",
        "headers": {
            "accept": "application/json",
            "content-type": "image/png",
            "cookie": "lang=en",
            "host": "shop.example.com",
            "user-agent": "curl/8.5.0",
            "x-trace": "two"
        },
        "multiValueHeaders": {
            "accept": ["text/plain", "application/json"],
            "content-type": ["image/png"],
            "cookie": ["session=abc; theme=dark", "lang=en"],
            "host": ["shop.example.com"],
            "user-agent": ["curl/8.5.0"],
            "x-trace": ["one", "two"]
        },
        "queryStringParameters": { "flag": "", "name": "x y", "q": "hello world", "tag": "blue" },
        "multiValueQueryStringParameters": {
            "flag": [""], "name": ["x y"], "q": ["hello world"], "tag": ["red", "blue"]
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "shop",
            "authorizer": { "claims": null, "scopes": null },
            "domainName": "shop.example.com",
            "domainPrefix": "shop",
            "extendedRequestId": "req-1",
            "httpMethod": "POST",
            "identity": {
                "accessKey": null,
                "accountId": null,
                "caller": null,
                "cognitoAuthenticationProvider": null,
                "cognitoAuthenticationType": null,
                "cognitoIdentityId": null,
                "cognitoIdentityPoolId": null,
                "principalOrgId": null,
                "sourceIp": "203.0.113.7",
                "user": null,
                "userAgent": "curl/8.5.0",
                "userArn": null
            },
            "path": "/shop/prod/items/a%20b",
            "protocol": "HTTP/1.1",
            "requestId": "req-1",
            "requestTime": "04/Mar/2020:19:03:58 +0000",
            "requestTimeEpoch": 1_583_348_638_390_i64,
            "resourceId": "POST /items/{id}",
            "resourcePath": "/items/{id}",
            "stage": "prod"
        },
        "pathParameters": { "id": "a b" },
        "stageVariables": { "model": "titanic" },
        "body": "iVBORw0KGgo=",
        "isBase64Encoded": true
    });
    let mut failures = Vec::new();
    diff("event", &parsed(PayloadFormat::V1, &parts.request(Authorizer::None)), &expected, &mut failures);
    report(failures);
}

#[test]
fn events_of_a_bare_request_leave_out_or_null_what_is_not_there() {
    let parts = Parts::bare();
    let r = parts.bare_request();
    let v2 = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/shop/prod/",
        "rawQueryString": "",
        "headers": {},
        "isBase64Encoded": false,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "shop",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": "GET", "path": "/shop/prod/", "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7", "userAgent": ""
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "prod",
            "time": "04/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1_583_348_638_390_i64
        }
    });
    let v1 = json!({
        "version": "1.0",
        "resource": "$default",
        "path": "/shop/prod/",
        "httpMethod": "GET",
        "headers": null,
        "multiValueHeaders": null,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "shop",
            "authorizer": { "claims": null, "scopes": null },
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "extendedRequestId": "req-1",
            "httpMethod": "GET",
            "identity": {
                "accessKey": null, "accountId": null, "caller": null,
                "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
                "cognitoIdentityId": null, "cognitoIdentityPoolId": null, "principalOrgId": null,
                "sourceIp": "203.0.113.7", "user": null, "userAgent": null, "userArn": null
            },
            "path": "/shop/prod/",
            "protocol": "HTTP/1.1",
            "requestId": "req-1",
            "requestTime": "04/Mar/2020:19:03:58 +0000",
            "requestTimeEpoch": 1_583_348_638_390_i64,
            "resourceId": "$default",
            "resourcePath": "$default",
            "stage": "prod"
        },
        "pathParameters": null,
        "stageVariables": null,
        "body": null,
        "isBase64Encoded": false
    });
    let mut failures = Vec::new();
    diff("v2", &parsed(PayloadFormat::V2, &r), &v2, &mut failures);
    diff("v1", &parsed(PayloadFormat::V1, &r), &v1, &mut failures);
    report(failures);
}

#[test]
fn each_authorizer_in_both_formats() {
    let alice = nimbus_iam::Principal {
        user: "alice".into(),
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        is_admin: false,
        access_key_id: "AKIAALICE".into(),
    };
    let claims = json!({
        "sub": "client-1",
        "client_id": "client-1",
        "exp": 1_700_000_000,
        "scope": "shop/read shop/write",
        "groups": ["admin", "ops"],
        "email_verified": true
    });
    let claims = claims.as_object().unwrap();
    // API Gateway's JWT authorizer hands every claim over as a string.
    let claims_as_sent = json!({
        "sub": "client-1",
        "client_id": "client-1",
        "exp": "1700000000",
        "scope": "shop/read shop/write",
        "groups": "[admin ops]",
        "email_verified": "true"
    });
    let scopes = ["shop/read".to_string()];
    let context = json!({ "user": "bob", "tier": 3 });
    let context = context.as_object().unwrap();
    let nulls = json!({
        "accessKey": null, "accountId": null, "caller": null,
        "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
        "cognitoIdentityId": null, "cognitoIdentityPoolId": null, "principalOrgId": null,
        "sourceIp": "203.0.113.7", "user": null, "userAgent": "curl/8.5.0", "userArn": null
    });

    // (row, authorizer, 2.0 requestContext.authorizer (None: absent), 1.0 requestContext.authorizer, 1.0 identity)
    let rows: Vec<(&str, Authorizer, Option<Value>, Value, Value)> = vec![
        ("none", Authorizer::None, None, json!({ "claims": null, "scopes": null }), nulls.clone()),
        (
            "iam",
            Authorizer::Iam(&alice),
            Some(json!({ "iam": {
                "accessKey": "AKIAALICE",
                "accountId": "123456789012",
                "callerId": "alice",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": "arn:aws:iam::123456789012:user/alice",
                "userId": "alice"
            }})),
            json!({ "claims": null, "scopes": null }),
            json!({
                "accessKey": "AKIAALICE", "accountId": "123456789012", "caller": "alice",
                "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
                "cognitoIdentityId": null, "cognitoIdentityPoolId": null, "principalOrgId": null,
                "sourceIp": "203.0.113.7", "user": "alice", "userAgent": "curl/8.5.0",
                "userArn": "arn:aws:iam::123456789012:user/alice"
            }),
        ),
        (
            "jwt with scopes",
            Authorizer::Jwt { claims, scopes: &scopes },
            Some(json!({ "jwt": { "claims": claims_as_sent, "scopes": ["shop/read"] } })),
            json!({ "claims": claims_as_sent, "scopes": ["shop/read"] }),
            nulls.clone(),
        ),
        (
            "jwt without scopes",
            Authorizer::Jwt { claims, scopes: &[] },
            Some(json!({ "jwt": { "claims": claims_as_sent, "scopes": null } })),
            json!({ "claims": claims_as_sent, "scopes": null }),
            nulls.clone(),
        ),
        (
            "lambda",
            Authorizer::Lambda(context),
            Some(json!({ "lambda": { "user": "bob", "tier": 3 } })),
            json!({ "user": "bob", "tier": 3 }),
            nulls.clone(),
        ),
    ];

    let parts = Parts::busy();
    let mut failures = Vec::new();
    for (row, authorizer, v2_authorizer, v1_authorizer, v1_identity) in rows {
        let r = parts.request(authorizer);
        let v2 = parsed(PayloadFormat::V2, &r);
        match (v2["requestContext"].get("authorizer"), &v2_authorizer) {
            (None, None) => {}
            (Some(got), Some(want)) => diff(&format!("{row}: v2 requestContext.authorizer"), got, want, &mut failures),
            (got, want) => failures.push(format!("{row}: v2 requestContext.authorizer is {got:?}, expected {want:?}")),
        }
        let v1 = parsed(PayloadFormat::V1, &r);
        diff(
            &format!("{row}: v1 requestContext.authorizer"),
            &v1["requestContext"]["authorizer"],
            &v1_authorizer,
            &mut failures,
        );
        diff(
            &format!("{row}: v1 requestContext.identity"),
            &v1["requestContext"]["identity"],
            &v1_identity,
            &mut failures,
        );
    }
    report(failures);
}

#[test]
fn authorizer_event_is_the_v2_event_with_type_route_arn_and_identity_source_and_no_body() {
    let parts = Parts::busy();
    let context = json!({ "user": "bob" });
    // Whatever the request carried for the route, the authorizer sees no body and no
    // earlier authorizer.
    let r = parts.request(Authorizer::Lambda(context.as_object().unwrap()));
    let arn = "arn:aws:execute-api:us-east-1:123456789012:shop/prod/POST/items/a%20b";
    let values = ["allow-1".to_string(), "red,blue".to_string()];
    let event: Value = serde_json::from_slice(&authorizer_event(&r, arn, &values)).unwrap();
    let mut expected = parsed(PayloadFormat::V2, &r);
    let fields = expected.as_object_mut().unwrap();
    fields.remove("body");
    fields.insert("isBase64Encoded".into(), json!(false));
    fields["requestContext"].as_object_mut().unwrap().remove("authorizer");
    fields.insert("type".into(), json!("REQUEST"));
    fields.insert("routeArn".into(), json!(arn));
    fields.insert("identitySource".into(), json!(["allow-1", "red,blue"]));
    let mut failures = Vec::new();
    diff("authorizer event", &event, &expected, &mut failures);
    for (field, want) in
        [("version", json!("2.0")), ("routeKey", json!("POST /items/{id}")), ("type", json!("REQUEST"))]
    {
        if event[field] != want {
            failures.push(format!("{field}: {}, expected {want}", event[field]));
        }
    }
    report(failures);
}

#[test]
fn authorizer_of_each_identity() {
    let alice = nimbus_iam::Principal {
        user: "alice".into(),
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        is_admin: false,
        access_key_id: "AKIAALICE".into(),
    };
    assert!(matches!(Authorizer::of(&Identity::Anonymous), Authorizer::None));
    assert!(matches!(Authorizer::of(&Identity::ApiKey("k".into())), Authorizer::None));
    assert!(matches!(Authorizer::of(&Identity::Iam(alice)), Authorizer::Iam(p) if p.user == "alice"));
    let jwt = Identity::Jwt { claims: Map::new(), scopes: vec!["a/b".into()] };
    assert!(matches!(Authorizer::of(&jwt), Authorizer::Jwt { scopes, .. } if scopes == ["a/b"]));
    let context = json!({ "user": "alice" }).as_object().unwrap().clone();
    let lambda = Identity::Lambda { function: "authz".into(), context: std::sync::Arc::new(context) };
    assert!(matches!(Authorizer::of(&lambda), Authorizer::Lambda(c) if c["user"] == "alice"));
    assert_eq!(lambda.principal(), "function:authz");
}

#[test]
fn a_body_is_text_when_textual_and_utf8_else_base64() {
    // (content type, body, event body, isBase64Encoded)
    let rows: [(Option<&str>, &[u8], &str, bool); 13] = [
        (None, b"plain", "plain", false),
        (Some("text/csv"), b"a,b\n1,2\n", "a,b\n1,2\n", false),
        (Some("text/plain; charset=utf-8"), "h\u{e9}".as_bytes(), "h\u{e9}", false),
        (Some("application/json"), br#"{"a":1}"#, r#"{"a":1}"#, false),
        (Some("Application/JSON; charset=utf-8"), b"[]", "[]", false),
        (Some("application/vnd.api+json"), b"{}", "{}", false),
        (Some("application/xml"), b"<a/>", "<a/>", false),
        (Some("image/svg+xml"), b"<svg/>", "<svg/>", false),
        (Some("application/javascript"), b"f()", "f()", false),
        (Some("application/x-www-form-urlencoded"), b"a=1&b=2", "a=1&b=2", false),
        (Some("image/png"), PNG, "iVBORw0KGgo=", true),
        (Some("application/octet-stream"), b"text-like", "dGV4dC1saWtl", true),
        (Some("text/plain"), &[0xff, 0xfe], "//4=", true),
    ];
    let mut failures = Vec::new();
    for (content_type, body, want_body, want_base64) in rows {
        let mut parts = Parts::bare();
        if let Some(ct) = content_type {
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        parts.body = body.to_vec();
        for format in [PayloadFormat::V2, PayloadFormat::V1] {
            let e = parsed(format, &parts.request(Authorizer::None));
            let got = (&e["body"], &e["isBase64Encoded"]);
            let want = (&json!(want_body), &json!(want_base64));
            if got != want {
                failures.push(format!(
                    "{format} {content_type:?}: body {} base64 {}, expected {} {}",
                    got.0, got.1, want.0, want.1
                ));
            }
        }
    }
    report(failures);
}

#[test]
fn payload_formats_parse_and_display() {
    assert_eq!(PayloadFormat::parse(None), Ok(PayloadFormat::V2));
    assert_eq!(PayloadFormat::parse(Some("2.0")), Ok(PayloadFormat::V2));
    assert_eq!(PayloadFormat::parse(Some("1.0")), Ok(PayloadFormat::V1));
    let e = PayloadFormat::parse(Some("2")).unwrap_err();
    assert!(e.contains("\"2.0\"") && e.contains("\"1.0\""), "{e}");
    assert_eq!(PayloadFormat::default(), PayloadFormat::V2);
    assert_eq!((PayloadFormat::V1.to_string(), PayloadFormat::V2.to_string()), ("1.0".into(), "2.0".into()));
}

/// What a response should become: status, headers (sorted by name, values in order), body.
type Answer<'a> = (u16, Vec<(&'a str, &'a str)>, &'a [u8]);

#[test]
fn responses_as_api_gateway_reads_them() {
    use PayloadFormat::{V1, V2};
    let json_ct = ("content-type", "application/json");
    let proxy_with_everything = r#"{
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-One": "1", "X-Num": 5, "X-Flag": true, "x-multi": "overridden"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "cookies": ["s=1; Path=/", "t=2"],
        "body": "made"
    }"#;
    let rows: Vec<(&str, PayloadFormat, &str, Result<Answer, &str>)> = vec![
        (
            "2.0 proxy shape with cookies and multiValueHeaders",
            V2,
            proxy_with_everything,
            Ok((
                201,
                vec![
                    ("content-type", "text/plain"),
                    ("set-cookie", "s=1; Path=/"),
                    ("set-cookie", "t=2"),
                    ("x-flag", "true"),
                    ("x-multi", "a"),
                    ("x-multi", "b"),
                    ("x-num", "5"),
                    ("x-one", "1"),
                ],
                b"made",
            )),
        ),
        (
            "1.0 proxy shape: multiValueHeaders, no cookies field",
            V1,
            proxy_with_everything,
            Ok((
                201,
                vec![
                    ("content-type", "text/plain"),
                    ("x-flag", "true"),
                    ("x-multi", "a"),
                    ("x-multi", "b"),
                    ("x-num", "5"),
                    ("x-one", "1"),
                ],
                b"made",
            )),
        ),
        (
            "1.0 set-cookie through multiValueHeaders",
            V1,
            r#"{"statusCode": 200, "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": "ok"}"#,
            Ok((200, vec![json_ct, ("set-cookie", "a=1"), ("set-cookie", "b=2")], b"ok")),
        ),
        (
            "base64 body is decoded",
            V2,
            r#"{"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "iVBORw0KGgo=", "isBase64Encoded": true}"#,
            Ok((200, vec![("content-type", "image/png")], PNG)),
        ),
        (
            "1.0 base64 body is decoded",
            V1,
            r#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}"#,
            Ok((200, vec![json_ct], b"hi")),
        ),
        (
            "statusCode alone: empty body, JSON content type",
            V2,
            r#"{"statusCode": 204}"#,
            Ok((204, vec![json_ct], b"")),
        ),
        (
            "hop-by-hop and framing headers are dropped",
            V2,
            r#"{"statusCode": 200, "headers": {"Content-Length": "999", "Transfer-Encoding": "chunked",
                "Connection": "close", "Keep-Alive": "5", "Upgrade": "h2c", "X-Ok": "y"}, "body": "hi"}"#,
            Ok((200, vec![json_ct, ("x-ok", "y")], b"hi")),
        ),
        (
            "2.0 object without statusCode is the body",
            V2,
            r#"{ "message": "Hello from Lambda!" }"#,
            Ok((200, vec![json_ct], br#"{ "message": "Hello from Lambda!" }"#)),
        ),
        ("2.0 array is the body", V2, "[1, 2]", Ok((200, vec![json_ct], b"[1, 2]"))),
        (
            "2.0 string is the body as JSON text",
            V2,
            r#""Hello from Lambda!""#,
            Ok((200, vec![json_ct], br#""Hello from Lambda!""#)),
        ),
        ("2.0 number is the body", V2, "42", Ok((200, vec![json_ct], b"42"))),
        ("2.0 null is the body", V2, "null", Ok((200, vec![json_ct], b"null"))),
        ("1.0 object without statusCode", V1, r#"{"message": "hi"}"#, Err("1.0 needs an object with statusCode")),
        ("1.0 array", V1, "[1, 2]", Err("1.0 needs an object with statusCode")),
        ("1.0 string", V1, r#""hi""#, Err("1.0 needs an object with statusCode")),
        ("statusCode 600", V2, r#"{"statusCode": 600}"#, Err("statusCode 600 is not an integer from 100 to 599")),
        ("statusCode 99", V1, r#"{"statusCode": 99}"#, Err("statusCode 99")),
        ("statusCode as a string", V2, r#"{"statusCode": "200"}"#, Err("statusCode \"200\"")),
        ("statusCode fractional", V2, r#"{"statusCode": 200.5}"#, Err("statusCode 200.5")),
        ("statusCode null", V2, r#"{"statusCode": null}"#, Err("statusCode null")),
        ("invalid JSON", V2, r#"{"statusCode": 200,"#, Err("not JSON")),
        ("empty payload", V2, "", Err("not JSON")),
        ("1.0 invalid JSON", V1, "nope", Err("not JSON")),
        ("bad base64", V2, r#"{"statusCode": 200, "body": "not base64!", "isBase64Encoded": true}"#, Err("not base64")),
        (
            "isBase64Encoded not a boolean",
            V2,
            r#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": "true"}"#,
            Err("isBase64Encoded \"true\""),
        ),
        ("body not a string", V2, r#"{"statusCode": 200, "body": {"a": 1}}"#, Err("body is not a string")),
        (
            "header value with a newline",
            V2,
            r#"{"statusCode": 200, "headers": {"X-Bad": "a\r\nx-injected: 1"}}"#,
            Err("not a valid HTTP header value"),
        ),
        (
            "header name with a space",
            V1,
            r#"{"statusCode": 200, "headers": {"X Bad": "a"}}"#,
            Err("not a valid HTTP header name"),
        ),
        (
            "header value an object",
            V2,
            r#"{"statusCode": 200, "headers": {"X-Obj": {"a": 1}}}"#,
            Err("headers.X-Obj is not a string"),
        ),
        ("headers not an object", V2, r#"{"statusCode": 200, "headers": ["a"]}"#, Err("headers is not an object")),
        (
            "multiValueHeaders entry not an array",
            V1,
            r#"{"statusCode": 200, "multiValueHeaders": {"X-A": "b"}}"#,
            Err("multiValueHeaders.X-A is not an array"),
        ),
        ("cookie not a string", V2, r#"{"statusCode": 200, "cookies": [1]}"#, Err("cookies has an entry")),
    ];
    let mut failures = Vec::new();
    for (row, format, payload, want) in rows {
        let got = response(format, payload.as_bytes()).map(|mut a| {
            a.headers.sort_by(|x, y| x.0.cmp(&y.0));
            a
        });
        match (got, want) {
            (Ok(got), Ok((status, headers, body))) => {
                let want_headers: Vec<(String, String)> =
                    headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
                if (got.status, &got.headers, got.body.as_ref()) != (status, &want_headers, body) {
                    failures.push(format!("{row}: got {got:?}, expected {status} {want_headers:?} {body:?}"));
                }
            }
            (Err(e), Err(part)) if e.0.contains(part) => {}
            (got, want) => failures.push(format!("{row}: got {got:?}, expected {want:?}")),
        }
    }
    report(failures);
}

#[test]
fn malformed_says_so_for_the_log() {
    let e = response(PayloadFormat::V1, b"[]").unwrap_err();
    assert!(e.to_string().starts_with("malformed Lambda proxy response: "), "{e}");
}
