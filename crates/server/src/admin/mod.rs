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

/// Every admin route as `(method, path)`, paths relative to `/_nimbus/v1`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/whoami"),
    ("GET", "/buckets"),
    ("PUT", "/buckets/{bucket}"),
    ("DELETE", "/buckets/{bucket}"),
    ("GET", "/buckets/{bucket}/objects"),
    ("GET", "/buckets/{bucket}/objects/{key}"),
    ("HEAD", "/buckets/{bucket}/objects/{key}"),
    ("PUT", "/buckets/{bucket}/objects/{key}"),
    ("DELETE", "/buckets/{bucket}/objects/{key}"),
    ("GET", "/model-groups"),
    ("POST", "/model-groups"),
    ("GET", "/model-groups/{group}"),
    ("GET", "/model-groups/{group}/versions"),
    ("POST", "/model-groups/{group}/versions"),
    ("POST", "/model-groups/{group}/imports"),
    ("GET", "/model-groups/{group}/versions/{version}"),
    ("PATCH", "/model-groups/{group}/versions/{version}"),
    ("GET", "/model-groups/{group}/versions/{version}/export"),
    ("GET", "/model-groups/{group}/aliases"),
    ("PUT", "/model-groups/{group}/aliases/{alias}"),
    ("DELETE", "/model-groups/{group}/aliases/{alias}"),
    ("GET", "/model-groups/{group}/resolve"),
    ("GET", "/model-groups/{group}/events"),
    ("GET", "/pipelines"),
    ("GET", "/pipelines/{pipeline}"),
    ("PUT", "/pipelines/{pipeline}"),
    ("GET", "/pipelines/{pipeline}/executions"),
    ("POST", "/pipelines/{pipeline}/executions"),
    ("GET", "/executions/{execution}"),
    ("POST", "/executions/{execution}/retry"),
    ("GET", "/functions"),
    ("GET", "/functions/{function}"),
    ("PUT", "/functions/{function}"),
    ("DELETE", "/functions/{function}"),
    ("GET", "/functions/{function}/logs"),
    ("GET", "/apis"),
    ("GET", "/apis/{api}"),
    ("PUT", "/apis/{api}"),
    ("DELETE", "/apis/{api}"),
    ("GET", "/apis/{api}/logs"),
];

/// The admin router, every route behind the signature check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/buckets", get(buckets::list_buckets))
        .route("/buckets/{bucket}", put(buckets::create_bucket).delete(buckets::delete_bucket))
        .route("/buckets/{bucket}/objects", get(buckets::list_objects))
        .route(
            "/buckets/{bucket}/objects/{*key}",
            get(buckets::get_object).put(buckets::put_object).delete(buckets::delete_object),
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
        .route("/functions", get(serving::list_functions))
        .route(
            "/functions/{function}",
            get(serving::describe_function).put(serving::put_function).delete(serving::delete_function),
        )
        .route("/functions/{function}/logs", get(serving::function_logs))
        .route("/apis", get(serving::list_apis))
        .route("/apis/{api}", get(serving::describe_api).put(serving::put_api).delete(serving::delete_api))
        .route("/apis/{api}/logs", get(serving::api_logs))
        .fallback(crate::error::not_found)
        // A route, not a fallback, so unknown paths are authenticated too and reveal nothing.
        .route("/{*rest}", axum::routing::any(crate::error::not_found))
        .layer(middleware::from_fn_with_state(state, require_signature))
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
