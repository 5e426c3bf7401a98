//! The OAuth2 authorization server's HTTP face (Cognito-compatible): `POST /oauth2/token`
//! (client credentials; `grant_type` and `scope` in the form body or the query string, the
//! client's credentials as Basic auth or form fields), `GET /.well-known/jwks.json` and
//! `GET /.well-known/openid-configuration`. The logic is `nimbus_oauth`'s; this module only
//! moves bytes.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nimbus_oauth::TokenRequest;

use crate::AppState;

/// Token requests are small forms.
const MAX_FORM_BYTES: u64 = 16 * 1024;

fn no_store(mut res: Response) -> Response {
    // RFC 6749 §5.1: token answers must not be cached.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub async fn token(State(s): State<AppState>, req: Request) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let body = match crate::body::read(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(e) => return crate::auth::body_error(e, 0).into_response(),
    };
    let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let parsed = TokenRequest::parse(
        parts.uri.query().unwrap_or(""),
        header(header::CONTENT_TYPE),
        &body,
        header(header::AUTHORIZATION),
    );
    let result = match parsed {
        Ok(req) => s.oauth.token(&req, peer).await,
        Err(e) => Err(e),
    };
    let res = match result {
        Ok(t) => (StatusCode::OK, Json(t.to_json())).into_response(),
        Err(e) => {
            tracing::info!(target: "authz", source = ?peer, error = ?e, "token request refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, Json(e.body())).into_response()
        }
    };
    no_store(res)
}

pub async fn jwks(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(s.oauth.jwks())
}

pub async fn openid_configuration(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(s.oauth.openid_configuration())
}
