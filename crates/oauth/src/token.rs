//! The token endpoint (`POST /oauth2/token`): parsing a client-credentials request the ways
//! Cognito accepts it, authenticating the client, and issuing an RS256 access token.
//!
//! Parameters come from the form body and from the query string (`curl --user id:secret
//! 'https://…/oauth2/token?grant_type=client_credentials'` sends them there); a parameter
//! given in both must have one value. The client authenticates with HTTP Basic
//! (`client_secret_basic`) or with `client_id`/`client_secret` form fields
//! (`client_secret_post`), not both.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use nimbus_core::clock;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::Oauth;
use crate::clients::StoredClient;
use crate::jwt;

/// The only grant this server implements.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// Base64 as HTTP clients send it in Basic credentials: standard alphabet, padding optional.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An error of the token endpoint, answered as `{"error", "error_description"?}` (RFC 6749
/// §5.2). Cognito answers `invalid_client` with 400 too, and so does this.
#[derive(Debug)]
pub enum TokenError {
    /// The request is malformed: a missing or repeated parameter, a bad body or header.
    InvalidRequest(String),
    /// The client is unknown or its secret wrong (deliberately not told apart).
    InvalidClient,
    /// The grant is not valid (unused by client credentials; kept for the other grants).
    InvalidGrant,
    /// A requested scope is not one of the client's.
    InvalidScope(String),
    /// `grant_type` is not `client_credentials`.
    UnsupportedGrantType,
    /// Too many failed client authentications from this source or for this client (429).
    TooManyFailures,
    /// The server could not answer (database, master key); the details are for the log only.
    ServerError(String),
}

impl TokenError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            TokenError::TooManyFailures => 429,
            TokenError::ServerError(_) => 500,
            _ => 400,
        }
    }

    /// The OAuth2 error code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant => "invalid_grant",
            TokenError::InvalidScope(_) => "invalid_scope",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::TooManyFailures => "too_many_requests",
            TokenError::ServerError(_) => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let description = match self {
            TokenError::InvalidRequest(d) | TokenError::InvalidScope(d) => Some(d.as_str()),
            TokenError::UnsupportedGrantType => Some("only grant_type=client_credentials is supported"),
            TokenError::TooManyFailures => {
                Some("too many failed client authentications; wait a minute before trying again")
            }
            _ => None,
        };
        match description {
            Some(d) => json!({"error": self.code(), "error_description": d}),
            None => json!({"error": self.code()}),
        }
    }

    /// Seconds a client should wait before retrying (the `Retry-After` of a 429).
    pub fn retry_after_s(&self) -> Option<u64> {
        matches!(self, TokenError::TooManyFailures).then_some(crate::throttle::WINDOW.as_secs())
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::InvalidRequest(d) | TokenError::InvalidScope(d) | TokenError::ServerError(d) => {
                write!(f, "{}: {d}", self.code())
            }
            _ => f.write_str(self.code()),
        }
    }
}

impl std::error::Error for TokenError {}

/// A parsed token request. The secret is kept out of `Debug`.
pub struct TokenRequest {
    grant_type: String,
    scopes: Option<Vec<String>>,
    client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("scopes", &self.scopes)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .finish()
    }
}

/// Decodes `application/x-www-form-urlencoded` (also the query string): `+` is a space,
/// `%XX` a byte, the result UTF-8.
fn form_pairs(text: &[u8], what: &str) -> Result<Vec<(String, String)>, TokenError> {
    let decode = |part: &[u8]| -> Result<String, TokenError> {
        let bad = || TokenError::InvalidRequest(format!("the {what} is not valid form-urlencoded UTF-8"));
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = part.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit)).ok_or_else(bad)?;
                    let digits = std::str::from_utf8(hex).map_err(|_| bad())?;
                    out.push(u8::from_str_radix(digits, 16).map_err(|_| bad())?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| bad())
    };
    let mut pairs = Vec::new();
    for item in text.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match item.iter().position(|b| *b == b'=') {
            Some(eq) => (&item[..eq], &item[eq + 1..]),
            None => (item, &b""[..]),
        };
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(pairs)
}

impl TokenRequest {
    /// From the raw parts of the HTTP request: query string (may be ""), content type, body
    /// bytes, Authorization header value.
    pub fn parse(
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
        authorization: Option<&str>,
    ) -> Result<TokenRequest, TokenError> {
        let mut params = Vec::new();
        if !body.iter().all(u8::is_ascii_whitespace) {
            let mime = content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("");
            if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(TokenError::InvalidRequest(
                    "the body must be sent as Content-Type: application/x-www-form-urlencoded".into(),
                ));
            }
            params = form_pairs(body.trim_ascii(), "body")?;
        }
        params.extend(form_pairs(query.trim_start_matches('?').as_bytes(), "query string")?);
        let single = |name: &str| -> Result<Option<String>, TokenError> {
            let mut found: Option<&String> = None;
            for (_, v) in params.iter().filter(|(k, _)| k == name) {
                match found {
                    Some(f) if f != v => {
                        return Err(TokenError::InvalidRequest(format!(
                            "{name} is given more than once; give it once"
                        )));
                    }
                    _ => found = Some(v),
                }
            }
            Ok(found.cloned())
        };

        let grant_type = single("grant_type")?.ok_or_else(|| {
            TokenError::InvalidRequest("grant_type is missing; send grant_type=client_credentials".into())
        })?;
        if grant_type != CLIENT_CREDENTIALS {
            return Err(TokenError::UnsupportedGrantType);
        }
        let scopes = single("scope")?.and_then(|s| {
            let mut list: Vec<String> = Vec::new();
            for scope in s.split_ascii_whitespace() {
                if !list.iter().any(|have| have == scope) {
                    list.push(scope.to_string());
                }
            }
            (!list.is_empty()).then_some(list)
        });

        let form_id = single("client_id")?;
        let form_secret = single("client_secret")?;
        let (client_id, client_secret) = match authorization.map(str::trim).filter(|a| !a.is_empty()) {
            Some(header) => {
                if form_secret.is_some() {
                    return Err(TokenError::InvalidRequest(
                        "the client authenticates twice (Authorization: Basic and client_secret); use one".into(),
                    ));
                }
                let (id, secret) = basic_credentials(header)?;
                if form_id.as_ref().is_some_and(|f| *f != id) {
                    return Err(TokenError::InvalidRequest(
                        "client_id differs from the client of the Authorization header".into(),
                    ));
                }
                (id, secret)
            }
            None => match (form_id, form_secret) {
                (Some(id), Some(secret)) => (id, secret),
                // No credentials, or a public client: neither exists here.
                _ => return Err(TokenError::InvalidClient),
            },
        };
        if client_id.is_empty() || client_secret.is_empty() {
            return Err(TokenError::InvalidClient);
        }
        Ok(TokenRequest { grant_type, scopes, client_id, client_secret })
    }

    /// The client that asks (for logs; the secret has no accessor).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The requested scopes; `None` asks for all of the client's.
    pub fn scopes(&self) -> Option<&[String]> {
        self.scopes.as_deref()
    }
}

/// `Basic base64(client_id:client_secret)`. The parts are taken as they are, not
/// form-decoded: `curl --user` does not encode them, and client ids may contain `+`.
fn basic_credentials(header: &str) -> Result<(String, String), TokenError> {
    let bad =
        || TokenError::InvalidRequest("the Authorization header must be Basic base64(client_id:client_secret)".into());
    let (scheme, rest) = header.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let raw = BASIC.decode(rest.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok((id.to_string(), secret.to_string()))
}

/// A successful token answer.
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl TokenResponse {
    /// `{"access_token","token_type":"Bearer","expires_in"}`.
    pub fn to_json(&self) -> Value {
        json!({"access_token": self.access_token, "token_type": self.token_type, "expires_in": self.expires_in})
    }
}

/// Compares secrets in time independent of where they differ (and of their lengths, as
/// fixed-size digests are compared).
fn secrets_equal(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

impl Oauth {
    /// Answers a client-credentials token request coming from `source_ip`.
    pub async fn token(&self, req: &TokenRequest, source_ip: Option<IpAddr>) -> Result<TokenResponse, TokenError> {
        let throttle = &self.inner.throttle;
        if throttle.source_blocked(source_ip) {
            return Err(TokenError::TooManyFailures);
        }
        let server = |e: crate::OauthError| TokenError::ServerError(e.to_string());
        // No client id is longer (see ClientSpec); such a request costs no query.
        let plausible = req.client_id.len() <= 128;
        let stored = if plausible { self.stored_client(&req.client_id).await.map_err(server)? } else { None };
        let Some(StoredClient { info, secret_sealed }) = stored else {
            // Same work as for a known client, so timing does not tell which ids exist.
            let _ = secrets_equal(&req.client_secret, "not a client secret");
            throttle.failure(source_ip, None);
            tracing::debug!(client_id = %jwt::short(&req.client_id), source = ?source_ip, "OAuth2 token refused: unknown client");
            return Err(TokenError::InvalidClient);
        };
        if throttle.client_blocked(&info.client_id, source_ip) {
            return Err(TokenError::TooManyFailures);
        }
        let secret = self.inner.key.open(&secret_sealed, &info.client_id).map_err(|e| {
            TokenError::ServerError(format!("cannot open the secret of client {}: {e}", info.client_id))
        })?;
        if !secrets_equal(&secret, &req.client_secret) {
            throttle.failure(source_ip, Some(&info.client_id));
            tracing::debug!(client_id = %info.client_id, source = ?source_ip, "OAuth2 token refused: wrong client secret");
            return Err(TokenError::InvalidClient);
        }

        let scopes: Vec<String> = match &req.scopes {
            None if info.scopes.is_empty() => {
                return Err(TokenError::InvalidScope(
                    "the client has no scope left (its resource servers changed); give it scopes".into(),
                ));
            }
            None => info.scopes.clone(),
            Some(asked) => {
                if let Some(bad) = asked.iter().find(|s| !info.scopes.contains(s)) {
                    return Err(TokenError::InvalidScope(format!("{} is not a scope of this client", jwt::short(bad))));
                }
                asked.clone()
            }
        };

        let key = self.inner.keys.signing_key().await.map_err(server)?;
        let now = clock::now_ms() / 1000;
        let mut claims = Map::new();
        claims.insert("sub".into(), info.client_id.clone().into());
        claims.insert("token_use".into(), "access".into());
        claims.insert("scope".into(), scopes.join(" ").into());
        claims.insert("auth_time".into(), now.into());
        claims.insert("iss".into(), self.inner.issuer.clone().into());
        claims.insert("exp".into(), (now + info.token_validity_s as i64).into());
        claims.insert("iat".into(), now.into());
        claims.insert("version".into(), 2.into());
        claims.insert("jti".into(), nimbus_core::request_id().into());
        claims.insert("client_id".into(), info.client_id.clone().into());
        let access_token = jwt::sign(&key.pair, &key.kid, &claims).map_err(TokenError::ServerError)?;
        tracing::debug!(client_id = %info.client_id, scope = %scopes.join(" "), kid = %key.kid, "OAuth2 access token issued");
        Ok(TokenResponse { access_token, token_type: "Bearer", expires_in: info.token_validity_s })
    }
}
