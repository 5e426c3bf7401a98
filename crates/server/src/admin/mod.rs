//! The admin API under `/_nimbus/v1`: plain resource paths, JSON bodies, every request
//! SigV4-signed. [`ROUTES`] lists every route; a test checks it against the router and
//! against `docs/openapi.json`, so the documentation cannot drift.

mod buckets;
mod models;
mod pipelines;
mod serving;
mod wire;

use axum::Router;
use axum::extract::{Extension, State};
use axum::middleware;
use axum::routing::{get, put};
use nimbus_iam::Principal;

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

/// One admin route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Relative to `/_nimbus/v1`, in axum's syntax.
    pub path: &'static str,
    pub body: Body,
}

/// Every admin route, with what it takes as a body. A test checks it against the router and
/// against `docs/openapi.json`.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/whoami", body: Body::Json },
    Route { method: "GET", path: "/buckets", body: Body::Json },
    Route { method: "PUT", path: "/buckets/{bucket}", body: Body::Json },
    Route { method: "DELETE", path: "/buckets/{bucket}", body: Body::Json },
    Route { method: "GET", path: "/buckets/{bucket}/objects", body: Body::Json },
    Route { method: "GET", path: "/buckets/{bucket}/objects/{key}", body: Body::Download },
    Route { method: "HEAD", path: "/buckets/{bucket}/objects/{key}", body: Body::Download },
    Route { method: "PUT", path: "/buckets/{bucket}/objects/{key}", body: Body::Upload },
    Route { method: "DELETE", path: "/buckets/{bucket}/objects/{key}", body: Body::Json },
    Route { method: "POST", path: "/store/fsck", body: Body::Json },
    Route { method: "GET", path: "/model-groups", body: Body::Json },
    Route { method: "POST", path: "/model-groups", body: Body::Json },
    Route { method: "GET", path: "/model-groups/{group}", body: Body::Json },
    Route { method: "GET", path: "/model-groups/{group}/versions", body: Body::Json },
    Route { method: "POST", path: "/model-groups/{group}/versions", body: Body::Json },
    Route { method: "POST", path: "/model-groups/{group}/imports", body: Body::ModelFile },
    Route { method: "GET", path: "/model-groups/{group}/versions/{version}", body: Body::Json },
    Route { method: "PATCH", path: "/model-groups/{group}/versions/{version}", body: Body::Json },
    Route { method: "GET", path: "/model-groups/{group}/versions/{version}/export", body: Body::Json },
    Route { method: "GET", path: "/model-groups/{group}/aliases", body: Body::Json },
    Route { method: "PUT", path: "/model-groups/{group}/aliases/{alias}", body: Body::Json },
    Route { method: "DELETE", path: "/model-groups/{group}/aliases/{alias}", body: Body::Json },
    Route { method: "GET", path: "/model-groups/{group}/resolve", body: Body::Json },
    Route { method: "GET", path: "/model-groups/{group}/events", body: Body::Json },
    Route { method: "GET", path: "/pipelines", body: Body::Json },
    Route { method: "GET", path: "/pipelines/{pipeline}", body: Body::Json },
    Route { method: "PUT", path: "/pipelines/{pipeline}", body: Body::Json },
    Route { method: "GET", path: "/pipelines/{pipeline}/executions", body: Body::Json },
    Route { method: "POST", path: "/pipelines/{pipeline}/executions", body: Body::Json },
    Route { method: "GET", path: "/executions/{execution}", body: Body::Json },
    Route { method: "POST", path: "/executions/{execution}/retry", body: Body::Json },
    Route { method: "POST", path: "/executions/{execution}/stop", body: Body::Json },
    Route { method: "GET", path: "/functions", body: Body::Json },
    Route { method: "GET", path: "/functions/{function}", body: Body::Json },
    Route { method: "PUT", path: "/functions/{function}", body: Body::Json },
    Route { method: "DELETE", path: "/functions/{function}", body: Body::Json },
    Route { method: "GET", path: "/functions/{function}/logs", body: Body::Json },
    Route { method: "GET", path: "/apis", body: Body::Json },
    Route { method: "GET", path: "/apis/{api}", body: Body::Json },
    Route { method: "PUT", path: "/apis/{api}", body: Body::Json },
    Route { method: "DELETE", path: "/apis/{api}", body: Body::Json },
    Route { method: "GET", path: "/apis/{api}/logs", body: Body::Json },
];

/// The route a request matched (by its method and matched path under `/_nimbus/v1`).
pub fn route_of(method: &str, matched: &str) -> Option<&'static Route> {
    let rel = matched.strip_prefix("/_nimbus/v1").unwrap_or(matched);
    // axum names the greedy key segment `{*key}`; the table says `{key}`.
    let rel = rel.replace("{*key}", "{key}");
    let method = if method == "HEAD" { "HEAD" } else { method };
    ROUTES.iter().find(|r| r.method == method && r.path == rel)
}

/// The admin router, every route behind the signature check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/buckets", get(buckets::list_buckets))
        .route("/buckets/{bucket}", put(buckets::create_bucket).delete(buckets::delete_bucket))
        .route("/buckets/{bucket}/objects", get(buckets::list_objects))
        .route("/store/fsck", axum::routing::post(buckets::fsck))
        .route(
            "/buckets/{bucket}/objects/{*key}",
            get(buckets::get_object).head(buckets::head_object).put(buckets::put_object).delete(buckets::delete_object),
        )
        .route("/model-groups", get(models::list_groups).post(models::create_group))
        .route("/model-groups/{group}", get(models::describe_group))
        .route("/model-groups/{group}/versions", get(models::list_versions).post(models::register_version))
        .route("/model-groups/{group}/imports", axum::routing::post(models::import_version))
        .route("/model-groups/{group}/versions/{version}", get(models::describe_version).patch(models::update_version))
        .route("/model-groups/{group}/versions/{version}/export", get(models::export_version))
        .route("/model-groups/{group}/aliases", get(models::list_aliases))
        .route("/model-groups/{group}/aliases/{alias}", put(models::set_alias).delete(models::delete_alias))
        .route("/model-groups/{group}/resolve", get(models::resolve))
        .route("/model-groups/{group}/events", get(models::events))
        .route("/pipelines", get(pipelines::list))
        .route("/pipelines/{pipeline}", get(pipelines::describe).put(pipelines::put))
        .route("/pipelines/{pipeline}/executions", get(pipelines::executions).post(pipelines::start))
        .route("/executions/{execution}", get(pipelines::execution))
        .route("/executions/{execution}/retry", axum::routing::post(pipelines::retry))
        .route("/executions/{execution}/stop", axum::routing::post(pipelines::stop))
        .route("/functions", get(serving::list_functions))
        .route(
            "/functions/{function}",
            get(serving::describe_function).put(serving::put_function).delete(serving::delete_function),
        )
        .route("/functions/{function}/logs", get(serving::function_logs))
        .route("/apis", get(serving::list_apis))
        .route("/apis/{api}", get(serving::describe_api).put(serving::put_api).delete(serving::delete_api))
        .route("/apis/{api}/logs", get(serving::api_logs))
        // A route, not a fallback, so unknown paths are authenticated too and reveal nothing.
        .route("/{*rest}", axum::routing::any(crate::error::not_found))
        // After routing, so the signature check knows the route's body rules (MatchedPath).
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
