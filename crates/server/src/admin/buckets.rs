//! Buckets and objects of the store, over the admin API (the S3 endpoint is separate).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::wire;
use crate::AppState;
use crate::error::ApiError;

pub async fn list_buckets(State(s): State<AppState>) -> Result<Json<Vec<wire::Bucket>>, ApiError> {
    Ok(Json(s.store.list_buckets().await?.into_iter().map(Into::into).collect()))
}

pub async fn create_bucket(
    State(s): State<AppState>,
    Path(bucket): Path<String>,
) -> Result<(StatusCode, Json<wire::Bucket>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.create_bucket(&bucket).await?.into())))
}

pub async fn delete_bucket(State(s): State<AppState>, Path(bucket): Path<String>) -> Result<StatusCode, ApiError> {
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

pub async fn put_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<wire::Object>, ApiError> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/octet-stream");
    Ok(Json(s.store.put(&bucket, &key, body, content_type).await?.into()))
}

pub async fn get_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (info, bytes) = s.store.get(&bucket, &key).await?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&info.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        h.insert(header::ETAG, v.clone());
        h.insert("x-nimbus-sha256", HeaderValue::from_str(&info.sha256).unwrap_or(v));
    }
    Ok(resp)
}

pub async fn delete_object(
    State(s): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.store.delete(&bucket, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
