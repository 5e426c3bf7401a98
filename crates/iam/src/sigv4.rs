//! AWS Signature Version 4: one implementation for the admin API (`nimbus`), the gateway
//! (`execute-api`) and the S3 endpoint (`s3`).
//!
//! Verification is split in two so the caller can fetch the secret between the steps:
//! [`parse`] reads the `Authorization` header (or the presigned query form) without any
//! secret, then [`Parsed::verify`] rebuilds the canonical request and compares signatures in
//! constant time. [`Signer`] is the client side, used by the CLI; both sides share the
//! canonicalisation below, which the published AWS test-suite vectors check.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};

/// The algorithm name in headers and strings to sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Payload hash marker for requests whose body is not signed (S3 and presigned URLs).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Largest accepted difference between the request time and the server clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Characters left as they are by SigV4's URI encoding: `A-Z a-z 0-9 - _ . ~`.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was not accepted. The messages follow AWS's own wording where
/// clients may look for it, and otherwise say what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header and no presigned query parameters.
    #[error("Missing Authentication Token")]
    Missing,
    /// The header or query is not a well-formed SigV4 authorization.
    #[error("{0}")]
    Malformed(String),
    /// The access key is unknown or disabled.
    #[error("The security token included in the request is invalid: access key {0} is unknown or disabled.")]
    UnknownKey(String),
    /// The credential scope names another region or service.
    #[error("Credential should be scoped to {what} '{expected}', not '{found}'.")]
    WrongScope { what: &'static str, expected: String, found: String },
    /// The request time is too far from the server's clock (or a presigned URL has expired).
    #[error(
        "Signature expired or not yet valid: request time {request_time} differs from server time {server_time} by more than {limit}; check the client clock."
    )]
    Skew { request_time: String, server_time: String, limit: String },
    /// The body does not hash to the signed `x-amz-content-sha256`.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    BodyHashMismatch,
    /// The signature does not match.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

/// How the canonical URI is derived from the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriMode {
    /// Every service but S3: remove `.`/`..`/empty segments, then URI-encode the path as sent
    /// (so an encoded path is encoded twice, as botocore does).
    Normalized,
    /// S3: the path is used exactly as sent (encoded once, not normalised).
    S3,
}

/// A request as the verifier sees it.
pub struct Request<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// The path as sent on the wire (percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header names (any case) and values, in the order received.
    pub headers: &'a [(String, String)],
    /// SHA-256 of the body, hex; `None` when the body was not read.
    pub body_sha256: Option<&'a str>,
}

/// A parsed, not yet verified SigV4 authorization.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The access key id the client signed with.
    pub access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    request_time: OffsetDateTime,
    presigned_expires: Option<i64>,
    /// `X-Amz-Security-Token`, when present (temporary credentials).
    pub session_token: Option<String>,
}

/// Reads the SigV4 authorization of a request: header form or presigned query form.
pub fn parse(req: &Request<'_>) -> Result<Parsed, SigError> {
    if let Some(auth) = header(req.headers, "authorization") {
        return parse_header(req, auth);
    }
    if query_pairs(req.query).any(|(k, _)| k == "X-Amz-Algorithm") {
        return parse_presigned(req);
    }
    Err(SigError::Missing)
}

fn parse_header(req: &Request<'_>, auth: &str) -> Result<Parsed, SigError> {
    let rest = auth
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| SigError::Malformed(format!("Authorization header must start with '{ALGORITHM} '.")))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |p: &str| SigError::Malformed(format!("Authorization header requires '{p}' parameter."));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let amz_date = header(req.headers, "x-amz-date").ok_or_else(|| {
        SigError::Malformed("Authorization header requires existence of a 'X-Amz-Date' header.".into())
    })?;
    let token = header(req.headers, "x-amz-security-token").map(str::to_string);
    build(credential, signed, signature, amz_date, None, token)
}

fn parse_presigned(req: &Request<'_>) -> Result<Parsed, SigError> {
    let get = |name: &str| {
        query_pairs(req.query)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| SigError::Malformed(format!("Presigned URL requires the '{name}' query parameter.")))
    };
    let algorithm = get("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(SigError::Malformed(format!("X-Amz-Algorithm must be {ALGORITHM}.")));
    }
    let credential = get("X-Amz-Credential")?;
    let signed = get("X-Amz-SignedHeaders")?;
    let signature = get("X-Amz-Signature")?;
    let amz_date = get("X-Amz-Date")?;
    let expires: i64 = get("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|e| (1..=604_800).contains(e))
        .ok_or_else(|| SigError::Malformed("X-Amz-Expires must be a number of seconds from 1 to 604800.".into()))?;
    let token = query_pairs(req.query).find(|(k, _)| k == "X-Amz-Security-Token").map(|(_, v)| v);
    build(&credential, &signed, &signature, &amz_date, Some(expires), token)
}

fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    amz_date: &str,
    presigned_expires: Option<i64>,
    session_token: Option<String>,
) -> Result<Parsed, SigError> {
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts[0].is_empty() {
        return Err(SigError::Malformed(
            "Credential must have the form ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request.".into(),
        ));
    }
    let request_time = parse_amz_date(amz_date)?;
    if parts[1].len() != 8 || amz_date.get(..8) != Some(parts[1]) {
        return Err(SigError::Malformed(format!("Credential date {} does not match X-Amz-Date {amz_date}.", parts[1])));
    }
    let signed_headers: Vec<String> = signed.split(';').map(|h| h.to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed("SignedHeaders must include 'host'.".into()));
    }
    Ok(Parsed {
        access_key_id: parts[0].to_string(),
        date: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
        signed_headers,
        signature: signature.to_string(),
        amz_date: amz_date.to_string(),
        request_time,
        presigned_expires,
        session_token,
    })
}

/// What a request says about its payload, before the body is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `x-amz-content-sha256` names the body's SHA-256 (lower-case hex): the signature can be
    /// checked now, and the body against the hash as it streams.
    Signed(String),
    /// `UNSIGNED-PAYLOAD`, or a presigned URL: the body is not covered by the signature.
    Unsigned,
    /// No `x-amz-content-sha256`: the body must be read and hashed before the signature can be
    /// checked (botocore sends none for services other than S3).
    Unstated,
}

impl Parsed {
    /// Checks the credential scope's region and service and the request time against `now`:
    /// everything that needs neither the secret nor the body.
    pub fn check_scope_and_time(&self, region: &str, service: &str, now: OffsetDateTime) -> Result<(), SigError> {
        if self.service != service {
            return Err(SigError::WrongScope {
                what: "service",
                expected: service.into(),
                found: self.service.clone(),
            });
        }
        if self.region != region {
            return Err(SigError::WrongScope { what: "region", expected: region.into(), found: self.region.clone() });
        }
        self.check_time(now)
    }

    /// Whether this is the presigned query form.
    pub fn is_presigned(&self) -> bool {
        self.presigned_expires.is_some()
    }

    /// What the request claims about its payload.
    pub fn payload(&self, req: &Request<'_>) -> Result<Payload, SigError> {
        if self.is_presigned() {
            return Ok(Payload::Unsigned);
        }
        match header(req.headers, "x-amz-content-sha256") {
            None => Ok(Payload::Unstated),
            Some(UNSIGNED_PAYLOAD) => Ok(Payload::Unsigned),
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Payload::Signed(h.to_ascii_lowercase()))
            }
            Some(other) => Err(SigError::Malformed(format!(
                "x-amz-content-sha256 {other:?} is neither a hex SHA-256 nor {UNSIGNED_PAYLOAD}."
            ))),
        }
    }

    /// Checks scope, clock and signature against the key's secret. `now` is the server time.
    /// The canonical URI is the path exactly as received (in [`UriMode::Normalized`], callers
    /// refuse paths that normalisation would change, so the verified path is the routed one);
    /// the only other form tried differs in the case of percent-escapes, which HTTP clients
    /// rewrite (urllib3 upper-cases them) and which name the same resource.
    pub fn verify(
        &self,
        req: &Request<'_>,
        secret: &str,
        region: &str,
        service: &str,
        mode: UriMode,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        let key = signing_key(secret, &self.date, &self.region, &self.service);
        self.verify_with_key(req, &key, region, service, mode, now)
    }

    /// The credential scope's date, region and service: what the derived signing key depends
    /// on besides the secret (a cache of derived keys is keyed by it).
    pub fn scope(&self) -> (&str, &str, &str) {
        (&self.date, &self.region, &self.service)
    }

    /// [`Parsed::verify`] with the signing key already derived from the secret and
    /// [`Parsed::scope`] (see [`signing_key`]), so a caller may keep it for the day.
    pub fn verify_with_key(
        &self,
        req: &Request<'_>,
        key: &[u8; 32],
        region: &str,
        service: &str,
        mode: UriMode,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        self.check_scope_and_time(region, service, now)?;
        let payload_hash = self.payload_hash(req)?;
        let key = *key;
        let scope = format!("{}/{}/{}/aws4_request", self.date, self.region, self.service);
        let query = if self.presigned_expires.is_some() {
            canonical_query_without(req.query, Some("X-Amz-Signature"))
        } else {
            canonical_query(req.query)
        };
        let headers = canonical_headers(req.headers, &self.signed_headers)?;
        let provided = hex::decode(&self.signature).map_err(|_| SigError::Mismatch)?;
        for uri in canonical_uri_candidates(req.path, mode) {
            let creq =
                canonical_request(req.method, &uri, &query, &headers, &self.signed_headers.join(";"), &payload_hash);
            let sts = string_to_sign(&self.amz_date, &scope, &creq);
            if constant_time_eq(&hmac(&key, sts.as_bytes()), &provided) {
                return Ok(());
            }
        }
        Err(SigError::Mismatch)
    }

    fn check_time(&self, now: OffsetDateTime) -> Result<(), SigError> {
        let t = self.request_time.unix_timestamp();
        let n = now.unix_timestamp();
        let (ok, limit) = match self.presigned_expires {
            Some(expires) => (t - MAX_SKEW_SECS <= n && n <= t + expires, format!("{expires} s (X-Amz-Expires)")),
            None => ((t - n).abs() <= MAX_SKEW_SECS, "15 minutes".to_string()),
        };
        if ok {
            Ok(())
        } else {
            Err(SigError::Skew { request_time: self.amz_date.clone(), server_time: amz_date(now), limit })
        }
    }

    fn payload_hash(&self, req: &Request<'_>) -> Result<String, SigError> {
        match (self.payload(req)?, req.body_sha256) {
            (Payload::Unsigned, _) => Ok(UNSIGNED_PAYLOAD.to_string()),
            (Payload::Signed(claimed), Some(actual)) if !claimed.eq_ignore_ascii_case(actual) => {
                Err(SigError::BodyHashMismatch)
            }
            (Payload::Signed(claimed), _) => Ok(claimed),
            (Payload::Unstated, Some(actual)) => Ok(actual.to_string()),
            (Payload::Unstated, None) => {
                Err(SigError::Malformed("the request body was not read, so it cannot be verified".into()))
            }
        }
    }
}

/// The client side: signs requests with an access key.
#[derive(Clone)]
pub struct Signer {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret: String,
    /// Region of the credential scope.
    pub region: String,
    /// Service of the credential scope (`nimbus`, `execute-api`, `s3`).
    pub service: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"***")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

impl Signer {
    /// Adds `x-amz-date`, `x-amz-content-sha256` and `authorization` to `headers` (which must
    /// already hold `host`). `path` is the path as it will be sent (percent-encoded).
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &mut Vec<(String, String)>,
        body: &[u8],
        now: OffsetDateTime,
    ) {
        self.sign_hashed(method, path, query, headers, &hex::encode(Sha256::digest(body)), now);
    }

    /// [`Signer::sign`] for a body whose SHA-256 (hex) is already known, so the body can be
    /// streamed rather than held.
    pub fn sign_hashed(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &mut Vec<(String, String)>,
        payload_hash: &str,
        now: OffsetDateTime,
    ) {
        let date_time = amz_date(now);
        let date = &date_time[..8];
        let payload_hash = payload_hash.to_string();
        headers.push(("x-amz-date".into(), date_time.clone()));
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        let mut names: Vec<String> = headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        let canonical = canonical_headers(headers, &names).unwrap_or_default();
        let signed = names.join(";");
        let uri = canonical_uri(path, UriMode::Normalized);
        let creq = canonical_request(method, &uri, &canonical_query(query), &canonical, &signed, &payload_hash);
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let sts = string_to_sign(&date_time, &scope, &creq);
        let key = signing_key(&self.secret, date, &self.region, &self.service);
        let signature = hex::encode(hmac(&key, sts.as_bytes()));
        headers.push((
            "authorization".into(),
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.access_key_id
            ),
        ));
    }
}

/// `YYYYMMDDTHHMMSSZ` for a time.
pub fn amz_date(t: OffsetDateTime) -> String {
    let f = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&f).unwrap_or_default()
}

fn parse_amz_date(s: &str) -> Result<OffsetDateTime, SigError> {
    let f = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, &f)
        .map(|t| t.assume_utc())
        .map_err(|_| SigError::Malformed(format!("X-Amz-Date {s:?} is not of the form YYYYMMDDTHHMMSSZ.")))
}

/// The canonical request of SigV4, lines joined by `\n`.
pub fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &str,
    signed: &str,
    payload_hash: &str,
) -> String {
    format!("{method}\n{uri}\n{query}\n{headers}\n{signed}\n{payload_hash}")
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// The derived signing key for a day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Canonical headers: lower-case names, trimmed values with inner runs of spaces collapsed,
/// repeated headers joined by commas, in the order of `signed` (which is sorted).
pub fn canonical_headers(headers: &[(String, String)], signed: &[String]) -> Result<String, SigError> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigError::Malformed(format!("signed header '{name}' is not in the request")));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// The canonical URI of a path in the given mode.
pub fn canonical_uri(path: &str, mode: UriMode) -> String {
    match mode {
        UriMode::Normalized => encode_path(&normalize_path(path)),
        UriMode::S3 => path.to_string(),
    }
}

fn canonical_uri_candidates(path: &str, mode: UriMode) -> Vec<String> {
    let mut out = vec![canonical_uri(path, mode)];
    let lowered = lower_escapes(path);
    if lowered != path {
        out.push(canonical_uri(&lowered, mode));
    }
    out
}

/// The path with the hex digits of its percent-escapes in lower case (`%2E` → `%2e`).
fn lower_escapes(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        let hex_at = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if b[i] == b'%' && hex_at(i + 1) && hex_at(i + 2) {
            out.push('%');
            out.push((b[i + 1] as char).to_ascii_lowercase());
            out.push((b[i + 2] as char).to_ascii_lowercase());
            i += 3;
        } else {
            let c = path[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether [`normalize_path`] leaves `path` as it is: no empty, `.` or `..` segment. Paths that
/// normalisation would change are refused where the path is signed in
/// [`UriMode::Normalized`], so a signature never verifies for a different route.
pub fn is_normalized(path: &str) -> bool {
    path.starts_with('/') && normalize_path(path) == path
}

/// Removes empty, `.` and `..` segments; keeps a trailing slash.
pub fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out = format!("/{}", segments.join("/"));
    if trailing && out != "/" {
        out.push('/');
    }
    out
}

fn encode_path(path: &str) -> String {
    path.split('/').map(|s| utf8_percent_encode(s, ENCODE).to_string()).collect::<Vec<_>>().join("/")
}

/// Decoded `(name, value)` pairs of a raw query string (`+` stays `+`).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode_str(k).decode_utf8_lossy().into_owned(), percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

/// Canonical query string: pairs re-encoded with SigV4's rules and sorted by name, then value.
pub fn canonical_query(query: &str) -> String {
    canonical_query_without(query, None)
}

fn canonical_query_without(query: &str, skip: Option<&str>) -> String {
    // Names and values are decoded to bytes and re-encoded, never through text: a lossy UTF-8
    // decoding turns every invalid sequence into the same U+FFFD, so `a=%80` and `a=%A0` would
    // share one signature.
    let encode = |s: &str| percent_encode(&percent_decode_str(s).collect::<Vec<u8>>(), ENCODE).to_string();
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(k, _)| skip.is_none_or(|skip| !percent_decode_str(k).eq(skip.bytes())))
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        parse_amz_date(s).unwrap()
    }

    fn signed_request(signer: &Signer, body: &[u8], now: OffsetDateTime) -> Vec<(String, String)> {
        let mut headers = vec![("host".to_string(), "127.0.0.1:8080".to_string())];
        signer.sign("POST", "/_nimbus/v1/model-groups", "a=1&b=two", &mut headers, body, now);
        headers
    }

    fn signer() -> Signer {
        Signer {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: "secret".into(),
            region: "us-east-1".into(),
            service: "nimbus".into(),
        }
    }

    fn check(headers: &[(String, String)], body: &[u8], secret: &str, now: OffsetDateTime) -> Result<(), SigError> {
        let hash = hex::encode(Sha256::digest(body));
        let req = Request {
            method: "POST",
            path: "/_nimbus/v1/model-groups",
            query: "b=two&a=1",
            headers,
            body_sha256: Some(&hash),
        };
        parse(&req)?.verify(&req, secret, "us-east-1", "nimbus", UriMode::Normalized, now)
    }

    #[test]
    fn signer_and_verifier_agree() {
        let now = at("20260101T000000Z");
        let h = signed_request(&signer(), b"{}", now);
        assert_eq!(check(&h, b"{}", "secret", now), Ok(()));
    }

    #[test]
    fn rejects_what_it_should() {
        let now = at("20260101T000000Z");
        let h = signed_request(&signer(), b"{}", now);
        assert_eq!(check(&h, b"{\"x\":1}", "secret", now), Err(SigError::BodyHashMismatch));
        assert_eq!(check(&h, b"{}", "wrong", now), Err(SigError::Mismatch));
        assert!(matches!(check(&h, b"{}", "secret", at("20260101T001600Z")), Err(SigError::Skew { .. })));
        assert_eq!(check(&h, b"{}", "secret", at("20260101T001400Z")), Ok(()));
        assert_eq!(check(&[], b"{}", "secret", now), Err(SigError::Missing));
        let no_date: Vec<_> = h.iter().filter(|(k, _)| k != "x-amz-date").cloned().collect();
        assert!(matches!(check(&no_date, b"{}", "secret", now), Err(SigError::Malformed(_))));
    }

    #[test]
    fn normalizes_paths_like_the_test_suite() {
        let cases = [
            ("//", "/"),
            ("//example//", "/example/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/example/.", "/example/"),
            ("", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input), want, "{input}");
        }
    }

    fn signed_get(path: &str, query: &str, now: OffsetDateTime) -> Vec<(String, String)> {
        let mut headers = vec![("host".to_string(), "h".to_string())];
        signer().sign("GET", path, query, &mut headers, b"", now);
        headers
    }

    fn verify_get(path: &str, query: &str, headers: &[(String, String)], now: OffsetDateTime) -> Result<(), SigError> {
        let hash = hex::encode(Sha256::digest(b""));
        let req = Request { method: "GET", path, query, headers, body_sha256: Some(&hash) };
        parse(&req)?.verify(&req, "secret", "us-east-1", "nimbus", UriMode::Normalized, now)
    }

    #[test]
    fn a_signature_names_exactly_one_path_and_query() {
        let now = at("20260101T000000Z");
        // An empty query key is a key like any other (botocore signs `=null` as it is).
        let h = signed_get("/x", "=null", now);
        assert_eq!(verify_get("/x", "=null", &h, now), Ok(()));
        assert_eq!(verify_get("/x", "", &h, now), Err(SigError::Mismatch));
        // Percent-escapes in either case name the same path (urllib3 upper-cases them)...
        let h = signed_get("/objects/%2e%2e", "", now);
        assert_eq!(verify_get("/objects/%2E%2E", "", &h, now), Ok(()));
        // ...but a decoded or differently normalised path is another path.
        assert_eq!(verify_get("/objects/..", "", &h, now), Err(SigError::Mismatch));
        let h = signed_get("/objects/a/b", "", now);
        assert_eq!(verify_get("/objects/a/b", "", &h, now), Ok(()));
        assert_eq!(verify_get("/objects/a%2Fb", "", &h, now), Err(SigError::Mismatch));
        assert!(is_normalized("/objects/a/b") && is_normalized("/objects/%2E%2E") && is_normalized("/a/"));
        for path in ["/objects/a//b", "/objects/x/../a/b", "/objects/./a", "objects", "/a/.."] {
            assert!(!is_normalized(path), "{path}");
        }
    }

    #[test]
    fn invalid_utf8_in_the_query_is_signed_byte_for_byte() {
        // Found by `proptests`: through lossy UTF-8, `%80` and `%A0` were both U+FFFD.
        let now = at("20260101T000000Z");
        let h = signed_get("/x", "a=_%80", now);
        assert_eq!(verify_get("/x", "a=_%80", &h, now), Ok(()));
        assert_eq!(verify_get("/x", "a=_%A0", &h, now), Err(SigError::Mismatch));
        assert_eq!(canonical_query("a=%80&b=%C3%A9"), "a=%80&b=%C3%A9");
    }

    #[test]
    fn the_scope_date_is_the_request_date() {
        let now = at("20260101T000000Z");
        let h = signed_get("/x", "", now);
        let swap = |from: &str, to: &str| -> Vec<(String, String)> {
            h.iter()
                .map(|(k, v)| (k.clone(), if k == "authorization" { v.replace(from, to) } else { v.clone() }))
                .collect()
        };
        for bad in ["AKIDEXAMPLE//us-east-1", "AKIDEXAMPLE/2026/us-east-1", "AKIDEXAMPLE/20260102/us-east-1"] {
            let e = verify_get("/x", "", &swap("AKIDEXAMPLE/20260101/us-east-1", bad), now).unwrap_err();
            assert!(matches!(e, SigError::Malformed(ref m) if m.contains("does not match X-Amz-Date")), "{bad}: {e}");
        }
    }

    #[test]
    fn payload_claims_are_read_before_the_body() {
        let now = at("20260101T000000Z");
        let mut h = signed_get("/x", "", now);
        let req = |h: &[(String, String)]| {
            parse(&Request { method: "GET", path: "/x", query: "", headers: h, body_sha256: None }).and_then(|p| {
                p.payload(&Request { method: "GET", path: "/x", query: "", headers: h, body_sha256: None })
            })
        };
        assert!(matches!(req(&h), Ok(Payload::Signed(ref s)) if s.len() == 64));
        h.retain(|(k, _)| k != "x-amz-content-sha256");
        assert_eq!(req(&h), Ok(Payload::Unstated));
        h.push(("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        assert_eq!(req(&h), Ok(Payload::Unsigned));
        h.pop();
        h.push(("x-amz-content-sha256".into(), "nope".into()));
        assert!(matches!(req(&h), Err(SigError::Malformed(_))));
    }
}
