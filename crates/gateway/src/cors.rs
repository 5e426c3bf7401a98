//! Cross-origin resource sharing per API, with the semantics of API Gateway HTTP APIs.
//!
//! An API that declares CORS has its preflights answered by the gateway itself, whatever its
//! routes (API Gateway answers them "even if there isn't an OPTIONS route configured"), and its
//! real responses carry the CORS headers for an allowed `Origin`. CORS headers an integration
//! returns are dropped: with CORS configured, API Gateway ignores the backend's CORS headers,
//! so the declaration is the one source of truth.
//!
//! ```toml
//! [apis.titanic.cors]
//! allow_origins = ["https://app.example.com", "https://*.preview.example.com"]
//! allow_methods = ["GET", "POST"]
//! allow_headers = ["content-type", "authorization"]
//! expose_headers = ["x-amzn-requestid"]
//! max_age = 300
//! allow_credentials = true
//! ```
//!
//! - [`CorsSpec`] is the declaration; [`CorsSpec::validate`] names the field and the fix.
//! - [`CompiledCors`] is what the gateway keeps: parsed origin patterns, lowercase name lists
//!   and the header values precomputed, so the per-request work is comparisons and cheap
//!   clones of shared values. A request without `Origin` costs a few header-map look-ups and
//!   allocates nothing.
//!
//! Origins: an entry is `*` (any origin), an exact `scheme://host[:port]`, `scheme://*` (any
//! origin of that scheme, as API Gateway documents `https://*` and `http://*`), or
//! `scheme://*.domain[:port]` (any subdomain, at any depth, of `domain` — not `domain` itself).
//! Scheme and host compare case-insensitively, the port exactly, and a default port (443 for
//! https, 80 for http) is the same as none, because browsers leave it out of `Origin`.
//!
//! The `null` origin (sandboxed iframes, `file:` pages, some redirects) matches no exact or
//! wildcard entry, and `"null"` is refused as an entry: every sandboxed document on the web
//! sends the same `null`, so allowing it would allow anyone while looking like a restriction.
//! Only `*` (without credentials) answers it, because the `*` answer grants every origin the
//! same thing anyway.

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// The longest `max_age` API Gateway accepts, in seconds (one day).
pub const MAX_AGE_LIMIT: u32 = 86_400;

/// Methods `allow_methods` may name, besides `*`. CONNECT and TRACE are left out: browsers
/// refuse to send them from scripts, so allowing them cross-origin could never matter.
pub const CORS_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The response headers CORS owns; an integration's own values for them are dropped.
static OWNED_HEADERS: [HeaderName; 6] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
];

/// An API's CORS declaration (`[apis.NAME.cors]`), the fields of API Gateway's
/// `CorsConfiguration` in snake case. Every field may be left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSpec {
    /// Allowed origins: `"https://app.example.com"`, `"*"`, `"https://*"` or a wildcard
    /// subdomain `"https://*.example.com"`.
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (`"GET"`, `"POST"`, …) or `"*"` for any.
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for, case-insensitive, or `"*"` for any.
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read besides the CORS-safelisted ones, or `"*"`.
    pub expose_headers: Vec<String>,
    /// How long, in seconds, a browser may cache a preflight answer; at most 86400.
    pub max_age: Option<u32>,
    /// Whether credentialed requests (cookies, `Authorization`) may read the answers.
    pub allow_credentials: bool,
}

/// A parsed `scheme://host[:port]`, borrowed from its text.
#[derive(Debug, PartialEq)]
struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    /// `None` for no port or the scheme's default port.
    port: Option<u16>,
}

/// Why a text is not an origin, for the declaration's error messages.
#[derive(Debug, PartialEq)]
enum NotOrigin {
    NoScheme,
    Path,
    Malformed,
    BadPort,
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|c| c.is_ascii_alphabetic())
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// A DNS name or IPv4 address (letters, digits, `-`, dot-separated non-empty labels), or an
/// IPv6 address in brackets. Anything else (`@`, `%`, `_`, spaces) cannot be in a browser's
/// serialized `Origin`, and refusing it keeps a crafted header from sliding past the suffix
/// comparison of a wildcard entry.
fn is_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
    }
    !h.is_empty()
        && h.split('.').all(|label| !label.is_empty() && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
}

fn parse_origin(text: &str) -> Result<Origin<'_>, NotOrigin> {
    let (scheme, rest) = text.split_once("://").ok_or(NotOrigin::NoScheme)?;
    if !is_scheme(scheme) {
        return Err(NotOrigin::NoScheme);
    }
    if rest.contains(['/', '?', '#']) {
        return Err(NotOrigin::Path);
    }
    // The host ends at the last ':' outside an IPv6 address's brackets.
    let port_colon = match rest.rfind(']') {
        Some(close) => rest[close..].find(':').map(|i| close + i),
        None => rest.rfind(':'),
    };
    let (host, port) = match port_colon {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if !is_host(host) {
        return Err(NotOrigin::Malformed);
    }
    let port = match port {
        None => None,
        Some(p) => {
            let n: u16 = p
                .parse()
                .ok()
                .filter(|&n| n != 0 && p.bytes().all(|c| c.is_ascii_digit()))
                .ok_or(NotOrigin::BadPort)?;
            (Some(n) != default_port(scheme)).then_some(n)
        }
    };
    Ok(Origin { scheme, host, port })
}

/// What part of an origin an allowed-origins entry leaves open.
#[derive(Clone, Debug, PartialEq)]
enum HostPattern {
    /// Exactly this host (lowercase).
    Exact(String),
    /// Any host that ends in `.` + this suffix (lowercase), with at least one label before.
    Subdomains(String),
    /// Any host and port (`scheme://*`).
    Any,
}

#[derive(Clone, Debug, PartialEq)]
struct OriginPattern {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
}

impl OriginPattern {
    fn matches(&self, o: &Origin<'_>) -> bool {
        if !self.scheme.eq_ignore_ascii_case(o.scheme) {
            return false;
        }
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(host) => self.port == o.port && host.eq_ignore_ascii_case(o.host),
            HostPattern::Subdomains(suffix) => {
                // Hosts are ASCII (checked by `parse_origin`), so byte offsets are char offsets.
                let (h, n) = (o.host.as_bytes(), suffix.len());
                self.port == o.port
                    && h.len() > n + 1
                    && h[h.len() - n - 1] == b'.'
                    && h[h.len() - n..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// How an allowed-origins entry reads; the error is the message after the field name.
fn parse_entry(entry: &str) -> Result<Option<OriginPattern>, String> {
    let wrong_wildcard = || {
        format!(
            "{entry:?} has a wildcard in the wrong place; a '*' may stand only for every origin (\"*\"), every host \
             of a scheme (\"https://*\") or the leading subdomains of a domain (\"https://*.example.com\")"
        )
    };
    if entry == "*" {
        return Ok(None);
    }
    if entry.eq_ignore_ascii_case("null") {
        return Err(format!(
            "{entry:?} is refused: every sandboxed iframe and file: page sends the origin \"null\", so allowing it \
             allows anyone; list the real origins, or \"*\" if the API is public"
        ));
    }
    if let Some((scheme, "*")) = entry.split_once("://") {
        if !is_scheme(scheme) {
            return Err(wrong_wildcard());
        }
        return Ok(Some(OriginPattern { scheme: scheme.to_ascii_lowercase(), host: HostPattern::Any, port: None }));
    }
    let (text, subdomains) = match entry.split_once("://*.") {
        Some((scheme, rest)) => (format!("{scheme}://{rest}"), true),
        None => (entry.to_string(), false),
    };
    if text.contains('*') {
        return Err(if text.contains("://") { wrong_wildcard() } else { not_an_origin(entry) });
    }
    let o = match parse_origin(&text) {
        Ok(o) => o,
        Err(NotOrigin::NoScheme) => return Err(not_an_origin(entry)),
        Err(NotOrigin::Path) => {
            let cut = entry
                .split_once("://")
                .map_or(entry, |(s, r)| &entry[..s.len() + 3 + r.find(['/', '?', '#']).unwrap_or(r.len())]);
            return Err(format!("{entry:?} has a path; an origin is only scheme://host[:port], so write {cut:?}"));
        }
        Err(NotOrigin::BadPort) => {
            return Err(format!("{entry:?} has an invalid port; a port is a number from 1 to 65535"));
        }
        Err(NotOrigin::Malformed) => {
            return Err(format!(
                "{entry:?} is not an origin: the host may hold only letters, digits, '-' and dots (or an IPv6 \
                 address in brackets); write scheme://host[:port], e.g. \"https://example.com\""
            ));
        }
    };
    let host = o.host.to_ascii_lowercase();
    let host = if subdomains {
        // "*.com" would let every .com site in; a domain of one label is only sensible for
        // local development names.
        if !host.contains('.') && host != "localhost" {
            return Err(format!(
                "{entry:?} would allow every site under the top-level domain {host:?}; name a registered domain, \
                 e.g. \"https://*.example.{host}\""
            ));
        }
        HostPattern::Subdomains(host)
    } else {
        HostPattern::Exact(host)
    };
    Ok(Some(OriginPattern { scheme: o.scheme.to_ascii_lowercase(), host, port: o.port }))
}

fn not_an_origin(entry: &str) -> String {
    let example = if entry.contains("://") || entry.is_empty() || entry.contains('/') {
        "https://example.com".to_string()
    } else {
        format!("https://{entry}")
    };
    format!("{entry:?} is not an origin; write scheme://host[:port], e.g. {example:?}")
}

/// An HTTP token (RFC 9110): what a header name is made of.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn join_lowercase(names: &[String]) -> Option<HeaderValue> {
    if names.is_empty() {
        return None;
    }
    let joined = names.iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>().join(", ");
    HeaderValue::from_str(&joined).ok()
}

impl CorsSpec {
    /// Checks the declaration. The error names the field (`cors.allow_origins[1]`) and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.allow_origins.is_empty() {
            return Err("cors.allow_origins is empty, so no origin could call the API; list the origins of the web \
                        apps, e.g. [\"https://app.example.com\"], or [\"*\"] for a public API"
                .into());
        }
        for (i, entry) in self.allow_origins.iter().enumerate() {
            let at = |msg: String| format!("cors.allow_origins[{i}]: {msg}");
            let pattern = parse_entry(entry).map_err(at)?;
            // Browsers refuse `Access-Control-Allow-Origin: *` on credentialed requests, and
            // API Gateway refuses the configuration; a whole-scheme wildcard would echo every
            // origin with credentials, the same grant with the check switched off.
            let anyone = match &pattern {
                None => Some("\"*\""),
                Some(OriginPattern { host: HostPattern::Any, .. }) => Some("a whole-scheme wildcard"),
                _ => None,
            };
            if let (true, Some(what)) = (self.allow_credentials, anyone) {
                return Err(at(format!(
                    "{entry:?} cannot be combined with allow_credentials = true: {what} with credentials would let \
                     any site read answers made with its visitors' cookies; list the exact origins, or set \
                     allow_credentials = false"
                )));
            }
        }
        for (i, m) in self.allow_methods.iter().enumerate() {
            if m != "*" && !CORS_METHODS.iter().any(|k| k.eq_ignore_ascii_case(m)) {
                return Err(format!(
                    "cors.allow_methods[{i}]: {m:?} is not an HTTP method a browser can send; use {} or \"*\"",
                    CORS_METHODS.join(", ")
                ));
            }
        }
        for (field, names) in [("allow_headers", &self.allow_headers), ("expose_headers", &self.expose_headers)] {
            for (i, h) in names.iter().enumerate() {
                if h != "*" && !is_token(h) {
                    return Err(format!(
                        "cors.{field}[{i}]: {h:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~, no \
                         spaces or ':'); write e.g. \"x-api-key\""
                    ));
                }
            }
        }
        if self.allow_credentials && self.expose_headers.iter().any(|h| h == "*") {
            return Err("cors.expose_headers: \"*\" does not work with allow_credentials = true (on a credentialed \
                        request browsers read it as a header literally named \"*\"); list the header names"
                .into());
        }
        if let Some(age) = self.max_age.filter(|&a| a > MAX_AGE_LIMIT) {
            return Err(format!(
                "cors.max_age: {age} is longer than API Gateway's limit of {MAX_AGE_LIMIT} seconds (one day); \
                 write a value up to {MAX_AGE_LIMIT}"
            ));
        }
        Ok(())
    }

    /// Precomputes what answering needs. Meant for a validated declaration; an entry that does
    /// not parse is left out (it never matches) rather than failing here.
    pub fn compile(&self) -> CompiledCors {
        let star = self.allow_origins.iter().any(|o| o == "*");
        let origins: Vec<OriginPattern> =
            self.allow_origins.iter().filter_map(|e| parse_entry(e).ok().flatten()).collect();
        let any_origin = star && !self.allow_credentials;
        let words = |list: &[String]| list.iter().filter(|s| *s != "*").cloned().collect::<Vec<_>>();
        let methods: Vec<String> = words(&self.allow_methods).iter().map(|m| m.to_ascii_uppercase()).collect();
        let headers: Vec<String> = words(&self.allow_headers).iter().map(|h| h.to_ascii_lowercase()).collect();
        let expose_value = if self.expose_headers.iter().any(|h| h == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            join_lowercase(&self.expose_headers)
        };
        CompiledCors {
            any_origin,
            origins,
            any_method: self.allow_methods.iter().any(|m| m == "*"),
            methods_value: (!methods.is_empty()).then(|| HeaderValue::from_str(&methods.join(", ")).ok()).flatten(),
            methods,
            any_header: self.allow_headers.iter().any(|h| h == "*"),
            headers_value: join_lowercase(&headers),
            headers,
            expose_value,
            max_age_value: self.max_age.map(HeaderValue::from),
            credentials: self.allow_credentials,
        }
    }
}

/// A compiled CORS declaration: what the gateway consults on every request of the API.
#[derive(Clone, Debug)]
pub struct CompiledCors {
    /// `*` without credentials: every origin gets `Access-Control-Allow-Origin: *`.
    any_origin: bool,
    origins: Vec<OriginPattern>,
    any_method: bool,
    /// Uppercase.
    methods: Vec<String>,
    methods_value: Option<HeaderValue>,
    any_header: bool,
    /// Lowercase.
    headers: Vec<String>,
    headers_value: Option<HeaderValue>,
    expose_value: Option<HeaderValue>,
    max_age_value: Option<HeaderValue>,
    credentials: bool,
}

impl CompiledCors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, or `None` when that
    /// origin is not allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any_origin {
            return Some(HeaderValue::from_static("*"));
        }
        let o = parse_origin(origin.to_str().ok()?).ok()?;
        // The request's own value is echoed: a clone of a header value shares its bytes.
        self.origins.iter().any(|p| p.matches(&o)).then(|| origin.clone())
    }

    /// Whether answers differ between origins, which a cache must be told with `Vary: Origin`.
    fn varies(&self) -> bool {
        !self.any_origin
    }

    fn method_allowed(&self, method: &str) -> bool {
        self.any_method || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    fn header_allowed(&self, name: &str) -> bool {
        self.any_header || self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Answers a preflight: an `OPTIONS` request with `Origin` and
    /// `Access-Control-Request-Method`. Returns `None` when the request is not a preflight (a
    /// plain `OPTIONS` goes on to routing), otherwise the whole answer: status 204 and its
    /// headers, the body empty. The caller answers it before routing and authorization, as
    /// API Gateway answers preflights itself.
    ///
    /// A preflight from an origin, for a method or with a request header the declaration does
    /// not allow gets a 204 without any `Access-Control-*` header: the browser then refuses
    /// the real request, and the answer reveals nothing of the configuration.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<()>> {
        if method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get(ORIGIN)?;
        let requested_method = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut res = Response::new(());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let Some(allow_origin) = self.allow_origin(origin) else { return Some(res) };
        match requested_method.to_str() {
            Ok(m) if !m.trim().is_empty() && self.method_allowed(m.trim()) => {}
            _ => return Some(res),
        }
        // Browsers send one comma-separated line, but a list may be split over several.
        let requested_headers = headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
        let mut any_requested = false;
        for line in requested_headers {
            let Ok(line) = line.to_str() else { return Some(res) };
            for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !self.header_allowed(name) {
                    return Some(res);
                }
                any_requested = true;
            }
        }
        let h = res.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        // A "*" is echoed as the requested method and headers rather than sent: on a
        // credentialed request browsers read "*" literally, and `Authorization` is never
        // covered by a "*" in Access-Control-Allow-Headers.
        let methods = if self.any_method { Some(requested_method.clone()) } else { self.methods_value.clone() };
        if let Some(v) = methods {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        let allow_headers = if self.any_header {
            any_requested.then(|| echo(headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS).iter())).flatten()
        } else {
            self.headers_value.clone()
        };
        if let Some(v) = allow_headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(v) = &self.max_age_value {
            h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        if self.varies() {
            add_vary_origin(h);
        }
        Some(res)
    }

    /// Prepares a real response (an integration's answer or the gateway's own error answer)
    /// for the browser: drops the integration's own CORS headers, and when the request's
    /// `Origin` is allowed adds `Access-Control-Allow-Origin` (that origin, or `*` for `*`
    /// without credentials), `Access-Control-Allow-Credentials`, `Access-Control-Expose-Headers`
    /// and `Vary: Origin` (unless the answer is `*` for everyone). A request without `Origin`,
    /// or from an origin not allowed, gets no CORS header.
    pub fn decorate(&self, request_headers: &HeaderMap, response_headers: &mut HeaderMap) {
        for name in &OWNED_HEADERS {
            response_headers.remove(name);
        }
        let Some(origin) = request_headers.get(ORIGIN) else { return };
        let Some(allow_origin) = self.allow_origin(origin) else { return };
        response_headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            response_headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(v) = &self.expose_value {
            response_headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        if self.varies() {
            add_vary_origin(response_headers);
        }
    }
}

/// The requested header lines as one value (usually a clone of the single line).
fn echo<'a>(mut lines: impl Iterator<Item = &'a HeaderValue>) -> Option<HeaderValue> {
    let first = lines.next()?;
    let rest: Vec<&str> = lines.filter_map(|v| v.to_str().ok()).collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut all = vec![first.to_str().ok()?];
    all.extend(rest);
    HeaderValue::from_str(&all.join(", ")).ok()
}

/// Adds `Origin` to the response's `Vary` unless it is already there (or `Vary: *`), keeping
/// what the integration varied on.
fn add_vary_origin(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| s.split(',').map(str::trim).any(|t| t == "*" || t.eq_ignore_ascii_case("origin")))
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests;
