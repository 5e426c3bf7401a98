//! API Gateway HTTP API's Lambda proxy integration, both ways: the event a route's function
//! receives ([`event`], payload format 2.0 by default or 1.0 on request) and the HTTP answer
//! made of what the function returned ([`response`]), by AWS's rules (DESIGN §4).
//!
//! Pure: no I/O and no clock. The caller (the integrate stage of [`crate::request`]) passes
//! the request, the matched route and the authorizer's finding in an [`EventRequest`], sends
//! the event through the function runtime, and gives the returned payload to [`response`];
//! a [`Malformed`] payload is its 502 `{"message":"Internal Server Error"}`.
//!
//! What AWS does and this module copies, beyond the field names:
//! - a body goes as text when its content type is textual and it is UTF-8, else base64
//!   ([`is_textual`]);
//! - query keys and values arrive percent-decoded with `+` as a space, path parameters
//!   percent-decoded; `rawPath` and `rawQueryString` stay as the client sent them;
//! - in 2.0 the `Cookie` headers become `cookies` and leave `headers`; repeated headers and
//!   query keys are joined with `,`; in 1.0 `headers` holds the last value of a name and
//!   `multiValueHeaders` all of them;
//! - JWT claims reach the function as strings (`"exp": "1700000000"`, an array as
//!   `"[a b]"`), as API Gateway's JWT authorizer writes them;
//! - a 2.0 function may return any JSON: without `statusCode` it is a 200
//!   `application/json` answer with that JSON as the body. A 1.0 function must return the
//!   proxy shape.
//!
//! Model functions do not come here (they take the raw body); this is the path of `process`
//! functions, so events are written with `serde` rather than by hand.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::authorizers::Identity;

/// The shape of the event a function integration receives and of the response it returns
/// (API Gateway's `payloadFormatVersion`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// `1.0`: the REST-compatible event (`resource`, `httpMethod`, `multiValueHeaders`, …);
    /// the function must return `{statusCode, headers, body, …}`.
    V1,
    /// `2.0`, the default: `routeKey`, `rawPath`, `cookies`, `requestContext.http`; the
    /// function may return any JSON.
    #[default]
    V2,
}

impl PayloadFormat {
    /// Parses a route's `payload_format` (absent = `2.0`).
    pub fn parse(text: Option<&str>) -> Result<PayloadFormat, String> {
        match text {
            None | Some("2.0") => Ok(PayloadFormat::V2),
            Some("1.0") => Ok(PayloadFormat::V1),
            Some(other) => Err(format!("{other:?} is not a payload format; use \"2.0\" (the default) or \"1.0\"")),
        }
    }

    /// `"1.0"` or `"2.0"`, as the event's `version` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::V1 => "1.0",
            PayloadFormat::V2 => "2.0",
        }
    }
}

impl fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the route's authorizer found calling, as the event tells the function.
#[derive(Clone, Copy, Debug)]
pub enum Authorizer<'a> {
    /// A public or API-key route: no `authorizer` in 2.0; `{"claims": null, "scopes": null}`
    /// in 1.0.
    None,
    /// A SigV4-signed caller of an `iam` route.
    Iam(&'a nimbus_iam::Principal),
    /// A verified JWT of a `jwt:NAME` route: its claims and scopes.
    Jwt { claims: &'a Map<String, Value>, scopes: &'a [String] },
    /// The `context` a function authorizer returned.
    Lambda(&'a Map<String, Value>),
}

impl<'a> Authorizer<'a> {
    /// What the authorize stage found, in the event's terms. An API key is no authorizer in
    /// API Gateway's events.
    pub fn of(identity: &'a Identity) -> Authorizer<'a> {
        match identity {
            Identity::Anonymous | Identity::ApiKey(_) => Authorizer::None,
            Identity::Iam(principal) => Authorizer::Iam(principal),
            Identity::Jwt { claims, scopes } => Authorizer::Jwt { claims, scopes },
            Identity::Lambda { context, .. } => Authorizer::Lambda(context),
        }
    }
}

/// Everything an event says about one request.
#[derive(Clone, Debug)]
pub struct EventRequest<'a> {
    /// The API's name (API Gateway's API id).
    pub api_id: &'a str,
    /// The account the API belongs to.
    pub account_id: &'a str,
    /// The stage's name.
    pub stage: &'a str,
    /// The matched route's key as declared: `POST /predict`, `GET /items/{id}`, `$default`.
    pub route_key: &'a str,
    /// The route's path template (`/items/{id}`, `/{proxy+}`, `$default`): 1.0's `resource`.
    pub resource: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The path as the client sent it, still percent-encoded.
    pub raw_path: &'a str,
    /// The query as the client sent it, without the `?`.
    pub raw_query: &'a str,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The matched path parameters by API Gateway's names (`proxy` for `{proxy+}`), as they
    /// appear in the path; the event carries them percent-decoded.
    pub path_parameters: &'a [(String, String)],
    /// The stage's variables.
    pub stage_variables: &'a BTreeMap<String, String>,
    /// The request body.
    pub body: &'a [u8],
    /// The client's IP address.
    pub source_ip: &'a str,
    /// The HTTP version, e.g. `HTTP/1.1`.
    pub protocol: &'a str,
    /// The host name the client addressed (the `Host` header), or `localhost`.
    pub domain_name: &'a str,
    /// The gateway's request id (also `x-amzn-RequestId`).
    pub request_id: &'a str,
    /// When the request arrived, epoch milliseconds.
    pub time_epoch_ms: i64,
    /// Who the authorizer found.
    pub authorizer: Authorizer<'a>,
}

/// The event for `r` in `format`, as JSON bytes.
pub fn event(format: PayloadFormat, r: &EventRequest) -> Vec<u8> {
    let written = match format {
        PayloadFormat::V2 => serde_json::to_vec(&event_v2(r)),
        PayloadFormat::V1 => serde_json::to_vec(&event_v1(r)),
    };
    // Only maps with string keys, strings, numbers and JSON values: writing cannot fail.
    written.expect("an event serialises")
}

/// The event of a function authorizer (`REQUEST`, payload format 2.0) for `r`, as JSON bytes:
/// the 2.0 event of the request (without its body, which is not read before authorization,
/// and without `requestContext.authorizer`) plus `type`, `routeArn` and `identitySource`,
/// the identity source values in the order declared.
pub fn authorizer_event(r: &EventRequest, route_arn: &str, identity_source: &[String]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct AuthorizerEventV2<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        route_arn: &'a str,
        identity_source: &'a [String],
        #[serde(flatten)]
        request: EventV2<'a>,
    }
    let r = EventRequest { body: &[], authorizer: Authorizer::None, ..r.clone() };
    let event = AuthorizerEventV2 { kind: "REQUEST", route_arn, identity_source, request: event_v2(&r) };
    serde_json::to_vec(&event).expect("an event serialises")
}

/// The HTTP answer made of a function's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status, 100 to 599.
    pub status: u16,
    /// Header names (lower case) and values, in order; a name may repeat (`set-cookie`).
    /// Always has a `content-type`.
    pub headers: Vec<(String, String)>,
    /// The body, base64-decoded when the function said `isBase64Encoded`.
    pub body: Bytes,
}

/// A function response API Gateway would not accept; the reason is for the log, the client
/// gets 502 `{"message":"Internal Server Error"}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed Lambda proxy response: {0}")]
pub struct Malformed(pub String);

/// Interprets a function's response `payload` as API Gateway does for `format`.
pub fn response(format: PayloadFormat, payload: &[u8]) -> Result<HttpAnswer, Malformed> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| Malformed(format!("not JSON: {e}")))?;
    match value {
        Value::Object(fields) if fields.contains_key("statusCode") => proxy_response(format, fields),
        // "If your Lambda function returns valid JSON and doesn't return a statusCode",
        // 2.0 answers 200 with the whole response as the body.
        _ if format == PayloadFormat::V2 => Ok(HttpAnswer {
            status: 200,
            headers: vec![(header::CONTENT_TYPE.as_str().to_string(), "application/json".to_string())],
            body: Bytes::copy_from_slice(payload),
        }),
        _ => Err(Malformed(
            "payload format 1.0 needs an object with statusCode (and headers, body, isBase64Encoded)".into(),
        )),
    }
}

/// Whether a body of this `Content-Type` goes into an event as text (when it is UTF-8);
/// any other is base64. No content type counts as text.
pub fn is_textual(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return true };
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media.is_empty()
        || media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/javascript" | "application/xml" | "application/x-www-form-urlencoded"
        )
        || (media.starts_with("application/") && media.ends_with("+json"))
        || media.ends_with("+xml")
}

// ---------------------------------------------------------------------------------------
// Events

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventV2<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<String>,
    headers: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    path_parameters: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    stage_variables: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Cow<'a, str>>,
    is_base64_encoded: bool,
    request_context: ContextV2<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContextV2<'a> {
    account_id: &'a str,
    api_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<Value>,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: HttpV2<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'a str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpV2<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'a str,
    source_ip: &'a str,
    user_agent: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventV1<'a> {
    version: &'static str,
    resource: &'a str,
    path: &'a str,
    http_method: &'a str,
    headers: Option<BTreeMap<&'a str, Cow<'a, str>>>,
    multi_value_headers: Option<BTreeMap<&'a str, Vec<Cow<'a, str>>>>,
    query_string_parameters: Option<BTreeMap<String, String>>,
    multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    request_context: ContextV1<'a>,
    path_parameters: Option<BTreeMap<&'a str, String>>,
    stage_variables: Option<&'a BTreeMap<String, String>>,
    body: Option<Cow<'a, str>>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContextV1<'a> {
    account_id: &'a str,
    api_id: &'a str,
    authorizer: Value,
    domain_name: &'a str,
    domain_prefix: &'a str,
    extended_request_id: &'a str,
    http_method: &'a str,
    identity: IdentityV1<'a>,
    path: &'a str,
    protocol: &'a str,
    request_id: &'a str,
    request_time: String,
    request_time_epoch: i64,
    resource_id: &'a str,
    resource_path: &'a str,
    stage: &'a str,
}

/// 1.0's `requestContext.identity`: the caller's IAM identity when signed, else nulls.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentityV1<'a> {
    access_key: Option<&'a str>,
    account_id: Option<&'a str>,
    caller: Option<&'a str>,
    cognito_authentication_provider: Option<&'a str>,
    cognito_authentication_type: Option<&'a str>,
    cognito_identity_id: Option<&'a str>,
    cognito_identity_pool_id: Option<&'a str>,
    principal_org_id: Option<&'a str>,
    source_ip: &'a str,
    user: Option<&'a str>,
    user_agent: Option<Cow<'a, str>>,
    user_arn: Option<&'a str>,
}

fn event_v2<'a>(r: &'a EventRequest<'a>) -> EventV2<'a> {
    let mut headers = BTreeMap::new();
    for name in r.headers.keys().filter(|n| *n != header::COOKIE) {
        let values: Vec<_> = r.headers.get_all(name).iter().map(text_of).collect();
        headers.insert(name.as_str(), values.join(","));
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in query_pairs(r.raw_query) {
        match query.get_mut(&key) {
            Some(joined) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => {
                query.insert(key, value);
            }
        }
    }
    let (body, is_base64_encoded) = body_of(r.headers, r.body);
    EventV2 {
        version: "2.0",
        route_key: r.route_key,
        raw_path: r.raw_path,
        raw_query_string: r.raw_query,
        cookies: cookies(r.headers),
        headers,
        query_string_parameters: query,
        path_parameters: path_parameters(r.path_parameters),
        stage_variables: r.stage_variables,
        body,
        is_base64_encoded,
        request_context: ContextV2 {
            account_id: r.account_id,
            api_id: r.api_id,
            authorizer: authorizer_v2(r),
            domain_name: r.domain_name,
            domain_prefix: domain_prefix(r.domain_name),
            http: HttpV2 {
                method: r.method,
                path: r.raw_path,
                protocol: r.protocol,
                source_ip: r.source_ip,
                user_agent: user_agent(r.headers).unwrap_or_default(),
            },
            request_id: r.request_id,
            route_key: r.route_key,
            stage: r.stage,
            time: clf_time(r.time_epoch_ms),
            time_epoch: r.time_epoch_ms,
        },
    }
}

fn event_v1<'a>(r: &'a EventRequest<'a>) -> EventV1<'a> {
    let mut headers = BTreeMap::new();
    let mut multi_headers = BTreeMap::new();
    for name in r.headers.keys() {
        let values: Vec<_> = r.headers.get_all(name).iter().map(text_of).collect();
        if let Some(last) = values.last() {
            headers.insert(name.as_str(), last.clone());
        }
        multi_headers.insert(name.as_str(), values);
    }
    let mut query = BTreeMap::new();
    let mut multi_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in query_pairs(r.raw_query) {
        query.insert(key.clone(), value.clone());
        multi_query.entry(key).or_default().push(value);
    }
    let (body, is_base64_encoded) = body_of(r.headers, r.body);
    let path_parameters = path_parameters(r.path_parameters);
    let iam = match r.authorizer {
        Authorizer::Iam(p) => Some(p),
        _ => None,
    };
    EventV1 {
        version: "1.0",
        resource: r.resource,
        path: r.raw_path,
        http_method: r.method,
        headers: Some(headers).filter(|m| !m.is_empty()),
        multi_value_headers: Some(multi_headers).filter(|m| !m.is_empty()),
        query_string_parameters: Some(query).filter(|m| !m.is_empty()),
        multi_value_query_string_parameters: Some(multi_query).filter(|m| !m.is_empty()),
        request_context: ContextV1 {
            account_id: r.account_id,
            api_id: r.api_id,
            authorizer: authorizer_v1(r),
            domain_name: r.domain_name,
            domain_prefix: domain_prefix(r.domain_name),
            extended_request_id: r.request_id,
            http_method: r.method,
            identity: IdentityV1 {
                access_key: iam.map(|p| p.access_key_id.as_str()),
                account_id: iam.map(|p| account_of(p, r.account_id)),
                caller: iam.map(|p| p.user.as_str()),
                cognito_authentication_provider: None,
                cognito_authentication_type: None,
                cognito_identity_id: None,
                cognito_identity_pool_id: None,
                principal_org_id: None,
                source_ip: r.source_ip,
                user: iam.map(|p| p.user.as_str()),
                user_agent: user_agent(r.headers),
                user_arn: iam.map(|p| p.arn.as_str()),
            },
            path: r.raw_path,
            protocol: r.protocol,
            request_id: r.request_id,
            request_time: clf_time(r.time_epoch_ms),
            request_time_epoch: r.time_epoch_ms,
            resource_id: r.route_key,
            resource_path: r.resource,
            stage: r.stage,
        },
        path_parameters: Some(path_parameters).filter(|m| !m.is_empty()),
        stage_variables: Some(r.stage_variables).filter(|m| !m.is_empty()),
        body,
        is_base64_encoded,
    }
}

/// 2.0's `requestContext.authorizer`, absent for public routes.
fn authorizer_v2(r: &EventRequest) -> Option<Value> {
    match r.authorizer {
        Authorizer::None => None,
        // nimbus users have no separate unique id (AWS's `AIDA…`); the user name stands in.
        Authorizer::Iam(p) => Some(json!({ "iam": {
            "accessKey": p.access_key_id,
            "accountId": account_of(p, r.account_id),
            "callerId": p.user,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": p.arn,
            "userId": p.user,
        }})),
        Authorizer::Jwt { claims, scopes } => Some(json!({ "jwt": jwt_fields(claims, scopes) })),
        Authorizer::Lambda(context) => Some(json!({ "lambda": context })),
    }
}

/// 1.0's `requestContext.authorizer`: claims and scopes (null without a JWT), or a function
/// authorizer's context as REST APIs give it. A signed caller is in `identity` instead.
fn authorizer_v1(r: &EventRequest) -> Value {
    match r.authorizer {
        Authorizer::None | Authorizer::Iam(_) => json!({ "claims": null, "scopes": null }),
        Authorizer::Jwt { claims, scopes } => jwt_fields(claims, scopes),
        Authorizer::Lambda(context) => Value::Object(context.clone()),
    }
}

/// `{"claims": {…}, "scopes": […] | null}` with every claim a string, as API Gateway's JWT
/// authorizer passes them.
fn jwt_fields(claims: &Map<String, Value>, scopes: &[String]) -> Value {
    let claims: Map<String, Value> = claims.iter().map(|(k, v)| (k.clone(), Value::String(claim_text(v)))).collect();
    let scopes = if scopes.is_empty() { Value::Null } else { json!(scopes) };
    json!({ "claims": claims, "scopes": scopes })
}

/// A claim as API Gateway writes it: a string as itself, an array as `[a b c]`, anything
/// else as its JSON text.
fn claim_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(claim_text).collect::<Vec<_>>().join(" ")),
        other => other.to_string(),
    }
}

/// The account of a signed caller: from its ARN (`arn:aws:iam::{account}:user/…`).
fn account_of<'a>(p: &'a nimbus_iam::Principal, fallback: &'a str) -> &'a str {
    p.arn.split(':').nth(4).filter(|a| !a.is_empty()).unwrap_or(fallback)
}

fn text_of(v: &HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(v.as_bytes())
}

fn user_agent(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    headers.get(header::USER_AGENT).map(text_of)
}

/// Every cookie of every `Cookie` header, in order.
fn cookies(headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        out.extend(text_of(value).split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string));
    }
    out
}

/// The query's pairs, decoded as a form is: `+` is a space, then percent escapes (invalid
/// UTF-8 replaced). A key without `=` has the empty value.
pub(crate) fn query_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key), form_decode(value))
    })
}

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn path_parameters(params: &[(String, String)]) -> BTreeMap<&str, String> {
    params.iter().map(|(k, v)| (k.as_str(), percent_decode_str(v).decode_utf8_lossy().into_owned())).collect()
}

/// The body as the event carries it, and whether that is base64: absent when empty, text
/// when textual and UTF-8, else base64.
fn body_of<'b>(headers: &HeaderMap, body: &'b [u8]) -> (Option<Cow<'b, str>>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let content_type = match headers.get(header::CONTENT_TYPE) {
        // A content type that is not even ASCII names no text type.
        Some(v) => match v.to_str() {
            Ok(t) => Some(t),
            Err(_) => return (Some(Cow::Owned(STANDARD.encode(body))), true),
        },
        None => None,
    };
    if is_textual(content_type)
        && let Ok(text) = std::str::from_utf8(body)
    {
        return (Some(Cow::Borrowed(text)), false);
    }
    (Some(Cow::Owned(STANDARD.encode(body))), true)
}

/// The first label of the domain name (`abc` of `abc.execute-api.localhost`).
fn domain_prefix(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

/// Epoch milliseconds in the common log format API Gateway uses: `12/Mar/2020:19:03:58 +0000`.
fn clf_time(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let f = format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    t.format(&f).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Responses

/// Headers a function may not set: the connection's own (hop-by-hop) and the framing,
/// which the gateway writes itself. They are dropped, as API Gateway does.
const DROPPED: [&str; 10] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `{statusCode, headers, multiValueHeaders, cookies (2.0), body, isBase64Encoded}`.
fn proxy_response(format: PayloadFormat, fields: Map<String, Value>) -> Result<HttpAnswer, Malformed> {
    let code = fields.get("statusCode").unwrap_or(&Value::Null);
    let status =
        code.as_u64()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| Malformed(format!("statusCode {code} is not an integer from 100 to 599")))? as u16;

    // Both maps may name a header; as in API Gateway, multiValueHeaders wins for a name it has.
    let no_headers = Map::new();
    let multi = match fields.get("multiValueHeaders") {
        None | Some(Value::Null) => &no_headers,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Malformed("multiValueHeaders is not an object of arrays".into())),
    };
    let mut headers = Vec::new();
    match fields.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(single)) => {
            for (name, value) in single {
                if multi.keys().any(|m| m.eq_ignore_ascii_case(name)) {
                    continue;
                }
                push_header(&mut headers, name, &scalar(value).ok_or_else(|| not_text("headers", name))?)?;
            }
        }
        Some(_) => return Err(Malformed("headers is not an object of strings".into())),
    }
    for (name, values) in multi {
        let Value::Array(values) = values else {
            return Err(Malformed(format!("multiValueHeaders.{name} is not an array")));
        };
        for value in values {
            push_header(&mut headers, name, &scalar(value).ok_or_else(|| not_text("multiValueHeaders", name))?)?;
        }
    }
    if format == PayloadFormat::V2 {
        match fields.get("cookies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(cookies)) => {
                for cookie in cookies {
                    let Value::String(cookie) = cookie else {
                        return Err(Malformed("cookies has an entry that is not a string".into()));
                    };
                    push_header(&mut headers, "set-cookie", cookie)?;
                }
            }
            Some(_) => return Err(Malformed("cookies is not an array of strings".into())),
        }
    }
    if !headers.iter().any(|(n, _)| n == header::CONTENT_TYPE.as_str()) {
        headers.push((header::CONTENT_TYPE.as_str().to_string(), "application/json".to_string()));
    }

    let base64 = match fields.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(Malformed(format!("isBase64Encoded {other} is not true or false"))),
    };
    let body = match fields.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if base64 => Bytes::from(
            STANDARD
                .decode(text)
                .map_err(|e| Malformed(format!("body is marked isBase64Encoded but is not base64: {e}")))?,
        ),
        Some(Value::String(text)) => Bytes::copy_from_slice(text.as_bytes()),
        Some(_) => return Err(Malformed("body is not a string; return the body as JSON text".into())),
    };
    Ok(HttpAnswer { status, headers, body })
}

/// A header value as API Gateway takes it: a string, or a number or boolean as its text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn not_text(field: &str, name: &str) -> Malformed {
    Malformed(format!("{field}.{name} is not a string, number or boolean"))
}

/// Checks a header and adds it, unless it is one the gateway keeps for itself.
fn push_header(out: &mut Vec<(String, String)>, name: &str, value: &str) -> Result<(), Malformed> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Malformed(format!("header name {name:?} is not a valid HTTP header name")))?;
    HeaderValue::from_str(value)
        .map_err(|_| Malformed(format!("header {name}: value {value:?} is not a valid HTTP header value")))?;
    if !DROPPED.contains(&name.as_str()) {
        out.push((name.as_str().to_string(), value.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
