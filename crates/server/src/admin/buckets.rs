//! Buckets and objects of the store, over the admin API (the S3 endpoint is separate).
//!
//! Uploads stream into the store and downloads stream out of it, so an object of any size
//! never sits whole in memory. Buckets named `nimbus-*` belong to the system (pipeline
//! artifacts, imported models): they can be read here, not written — with one exception,
//! process functions' code bundles in `nimbus-functions`, which are content-addressed: a
//! bundle is written only under `{function}/sha256-{hex}.zip` with `{hex}` the signed
//! SHA-256 of the body, so a key can only ever hold its own bytes.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use nimbus_functions::bundle::{CODE_BUCKET, MAX_ZIPPED_BYTES, parse_code_key};
use serde_json::{Value, json};

use super::wire;
use crate::AppState;
use crate::error::ApiError;

/// Buckets of the system: readable through the object API, not writable.
pub fn is_system_bucket(name: &str) -> bool {
    name.starts_with("nimbus-")
}

fn writable(bucket: &str) -> Result<(), ApiError> {
    if is_system_bucket(bucket) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "SystemBucket",
            message: format!(
                "bucket {bucket} belongs to nimbus (names starting with nimbus- hold pipeline artifacts and imported \
                 models) and cannot be written through the object API; use your own bucket"
            ),
        });
    }
    Ok(())
}

pub async fn list_buckets(State(s): State<AppState>) -> Result<Json<Vec<wire::Bucket>>, ApiError> {
    Ok(Json(s.store.list_buckets().await?.into_iter().map(Into::into).collect()))
}

pub async fn create_bucket(
    State(s): State<AppState>,
    Path(bucket): Path<String>,
) -> Result<(StatusCode, Json<wire::Bucket>), ApiError> {
    writable(&bucket)?;
    Ok((StatusCode::CREATED, Json(s.store.create_bucket(&bucket).await?.into())))
}

pub async fn delete_bucket(State(s): State<AppState>, Path(bucket): Path<String>) -> Result<StatusCode, ApiError> {
    writable(&bucket)?;
    s.store.delete_bucket(&bucket).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_objects(
    State(s): State<AppState>,
    Path(bucket): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<wire::ObjectList>, ApiError> {
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("{l:?} is not a number from 1 to 10000")))?,
    };
    let prefix = q.get("prefix").map(String::as_str).unwrap_or("");
    let start_after = q.get("start_after").map(String::as_str).unwrap_or("");
    let objects = s.store.list(&bucket, prefix, start_after, limit + 1).await?;
    let more = objects.len() as i64 > limit;
    let objects: Vec<wire::Object> = objects.into_iter().take(limit as usize).map(Into::into).collect();
    let next_start_after = more.then(|| objects.last().map(|o| o.key.clone())).flatten();
    Ok(Json(wire::ObjectList { objects, next_start_after }))
}

/// Streams the body into the store (the signature check made it a checked stream).
pub async fn put_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    req: Request,
) -> Result<Json<wire::Object>, ApiError> {
    if bucket == CODE_BUCKET {
        code_bundle_upload(&s, &key, req.headers()).await?;
    } else {
        writable(&bucket)?;
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let chunks = req.into_body().into_data_stream().map(|c| c.map_err(std::io::Error::other));
    Ok(Json(s.store.put_stream(&bucket, &key, chunks, &content_type).await?.into()))
}

/// Checks an upload into the code-bundle bucket before any byte of it is read, and makes the
/// bucket on the first one (clients cannot make `nimbus-*` buckets).
async fn code_bundle_upload(s: &AppState, key: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = |message: String| ApiError { status: StatusCode::FORBIDDEN, code: "SystemBucket", message };
    let Some((_, digest)) = parse_code_key(key) else {
        return Err(refuse(format!(
            "bucket {CODE_BUCKET} holds code bundles under FUNCTION/sha256-HEX.zip only, not {key:?}; deploy code with \
             `nimbus functions deploy NAME --code DIR` or `nimbus apply`"
        )));
    };
    let signed = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if signed != digest {
        return Err(refuse(format!(
            "a code bundle's key names its SHA-256, so the upload must sign that digest in x-amz-content-sha256 \
             (got {signed:?} for {key:?})"
        )));
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n <= MAX_ZIPPED_BYTES => {}
        Some(n) => {
            return Err(ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "RequestTooLarge",
                message: format!("a code bundle may be at most {MAX_ZIPPED_BYTES} bytes; this one is {n}"),
            });
        }
        None => return Err(ApiError::invalid("content-length", "a code bundle upload must declare its length")),
    }
    s.store.ensure_bucket(CODE_BUCKET).await?;
    Ok(())
}

fn object_headers(h: &mut HeaderMap, info: &nimbus_store::ObjectInfo) {
    if let Ok(v) = HeaderValue::from_str(&info.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&info.sha256) {
        h.insert("x-nimbus-sha256", v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size as u64));
}

/// Streams the object out; a download whose bytes turn out damaged is cut off rather than
/// completed, and the CLI checks the SHA-256 of what it received against `x-nimbus-sha256`.
pub async fn get_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (info, stream) = s.store.open(&bucket, &key).await?;
    let mut resp = Body::from_stream(stream).into_response();
    object_headers(resp.headers_mut(), &info);
    Ok(resp)
}

pub async fn head_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let info = s.store.head(&bucket, &key).await?;
    let mut resp = StatusCode::OK.into_response();
    object_headers(resp.headers_mut(), &info);
    Ok(resp)
}

pub async fn delete_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    writable(&bucket)?;
    s.store.delete(&bucket, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /store/fsck[?repair=true]`: checks every object's bytes against its digest and finds
/// files no object names; with `repair`, removes those and the rows of damaged objects that
/// nothing holds. Files younger than a minute are left alone (they may be writes in flight).
pub async fn fsck(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let repair = match q.get("repair").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::invalid("repair", format!("{other:?}: use true or false"))),
    };
    let r = nimbus_store::fsck::check(&s.store, repair, Duration::from_secs(60)).await?;
    let damaged: Vec<Value> = r
        .damaged
        .iter()
        .map(|d| json!({"uri": d.uri, "problem": d.problem, "held_by": d.held_by, "removed": d.removed}))
        .collect();
    Ok(Json(json!({
        "objects": r.objects, "orphans": r.orphans, "temporary": r.temporary, "damaged": damaged, "repaired": r.repaired,
    })))
}
