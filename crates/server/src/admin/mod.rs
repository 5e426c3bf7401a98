//! The admin API under `/_nimbus/v1`: plain resource paths, JSON bodies, every request
//! SigV4-signed and authorised by the caller's IAM policies. [`ROUTES`] lists every route
//! with its action and resource; the router is built from it, and a test checks it against
//! the router and against `docs/openapi.json`, so the documentation cannot drift.

mod access;
mod buckets;
mod function_versions;
mod iam;
mod models;
mod pipelines;
mod routes;
mod serving;
mod wire;

use axum::Router;
use axum::extract::{Extension, State};
use axum::middleware;
use nimbus_iam::Principal;

pub use routes::{ROUTES, Route, resource_of, route_of};

use crate::AppState;
use crate::auth::require_signature;

/// What a route takes as its request body, and so how much of it is read and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A JSON document (or nothing), read whole: at most [`Body::JSON_LIMIT`].
    Json,
    /// A model file, read whole to be parsed: at most [`Body::MODEL_FILE_LIMIT`].
    ModelFile,
    /// An object's bytes, streamed to the store and never held whole: at most
    /// [`Body::UPLOAD_LIMIT`]. The payload may be `UNSIGNED-PAYLOAD`, as S3 allows.
    Upload,
    /// No body; an object's bytes are streamed out. `UNSIGNED-PAYLOAD` and presigned URLs are
    /// accepted, as S3 allows for downloads.
    Download,
    /// A Lambda invocation payload (the Invoke API, not an admin route): at most 6 MB, as Lambda.
    Invocation,
}

impl Body {
    pub const JSON_LIMIT: u64 = 1 << 20;
    pub const MODEL_FILE_LIMIT: u64 = 256 << 20;
    pub const UPLOAD_LIMIT: u64 = 5 << 30;
    /// Without `x-amz-content-sha256` the body must be read before the signature can be
    /// checked, so it is held in memory: at most this much.
    pub const UNSTATED_HASH_LIMIT: u64 = 16 << 20;

    /// The largest body accepted.
    pub fn limit(self) -> u64 {
        match self {
            Body::Json | Body::Download => Body::JSON_LIMIT,
            Body::ModelFile => Body::MODEL_FILE_LIMIT,
            Body::Upload => Body::UPLOAD_LIMIT,
            Body::Invocation => 6 * 1024 * 1024,
        }
    }

    /// Whether the body is streamed to the handler rather than read first.
    pub fn streams(self) -> bool {
        self == Body::Upload
    }

    /// Whether a payload the signature does not cover is accepted (S3's object reads and
    /// writes only).
    pub fn unsigned_allowed(self) -> bool {
        matches!(self, Body::Upload | Body::Download)
    }
}

/// The admin router, built from [`ROUTES`], every route behind the signature and policy
/// check.
pub fn router(state: AppState) -> Router<AppState> {
    let mut router = Router::new();
    for route in ROUTES {
        // Routes of one path merge their method routers.
        router = router.route(route.path, (route.handler)());
    }
    router
        // A route, not a fallback, so unknown paths are authenticated too and reveal nothing.
        .route("/{*rest}", axum::routing::any(crate::error::not_found))
        // After routing, so the check knows the route's body rules, action and resource
        // (MatchedPath).
        .route_layer(middleware::from_fn_with_state(state, require_signature))
        // Body limits are the route table's, enforced by the signature check.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

async fn whoami(State(state): State<AppState>, Extension(p): Extension<Principal>) -> axum::Json<wire::Whoami> {
    axum::Json(wire::Whoami {
        user: p.user,
        arn: p.arn,
        access_key_id: p.access_key_id,
        is_admin: p.is_admin,
        region: state.partition.region.clone(),
        account: state.partition.account.clone(),
    })
}

/// Parses a JSON body into a wire type, naming the broken field on failure.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::error::ApiError> {
    if body.is_empty() {
        return Err(crate::error::ApiError::invalid("request body", "is empty; this route takes a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            crate::error::ApiError::malformed_body(inner.to_string())
        } else {
            crate::error::ApiError::malformed_body(format!("field `{path}`: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests;
