//! API keys, usage plans and the OAuth2 authorization server over the admin API. A new API
//! key's value and a new client's secret are in the answer once and nowhere else.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use nimbus_core::clock::{self, rfc3339};
use nimbus_gateway::usage::{ApiKeyInfo, UsageError, UsagePlanSpec};
use nimbus_iam::Principal;
use nimbus_oauth::{ClientInfo, ClientSpec, NewClient, OauthError, ResourceServerSpec};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_body;
use crate::AppState;
use crate::error::ApiError;

type Answer = Result<Json<Value>, ApiError>;

impl From<UsageError> for ApiError {
    fn from(e: UsageError) -> ApiError {
        let (status, code) = match &e {
            UsageError::InvalidPlan { .. } | UsageError::InvalidName(_) => {
                (StatusCode::BAD_REQUEST, "BadRequestException")
            }
            UsageError::PlanNotFound(_) | UsageError::KeyNotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
            UsageError::PlanInUse { .. } | UsageError::KeyExists(_) => (StatusCode::CONFLICT, "ConflictException"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

impl From<OauthError> for ApiError {
    fn from(e: OauthError) -> ApiError {
        let (status, code) = match &e {
            // Cognito's exception names.
            OauthError::Invalid { .. } => (StatusCode::BAD_REQUEST, "InvalidParameterException"),
            OauthError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            OauthError::Exists(_) => (StatusCode::CONFLICT, "ResourceExistsException"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

fn key_view(k: &ApiKeyInfo) -> Value {
    json!({"id": &*k.id, "name": k.name, "usage_plan": k.usage_plan, "enabled": k.enabled,
           "created_at": rfc3339(k.created_ms)})
}

pub async fn list_api_keys(State(s): State<AppState>) -> Json<Value> {
    Json(Value::Array(s.gateway.usage().keys().list().iter().map(key_view).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    usage_plan: Option<String>,
}

pub async fn create_api_key(State(s): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateKey = json_body(&body)?;
    let key = s.gateway.usage().keys().create(&req.name, req.usage_plan.as_deref()).await?;
    let mut view = key_view(&key.info);
    // Shown once: only its keyed hash is stored.
    view["value"] = Value::String(key.value);
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[serde(default)]
    enabled: Option<bool>,
    /// `null` or absent leaves the plan; `""` removes it.
    #[serde(default)]
    usage_plan: Option<String>,
}

pub async fn update_api_key(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> Answer {
    let req: UpdateKey = json_body(&body)?;
    let keys = s.gateway.usage().keys();
    if let Some(plan) = &req.usage_plan {
        keys.set_plan(&name, Some(plan.as_str()).filter(|p| !p.is_empty())).await?;
    }
    if let Some(enabled) = req.enabled {
        keys.set_enabled(&name, enabled).await?;
    }
    let key = keys.get(&name).ok_or_else(|| ApiError::from(UsageError::KeyNotFound(name.clone())))?;
    Ok(Json(key_view(&key)))
}

pub async fn delete_api_key(State(s): State<AppState>, Path(name): Path<String>) -> Answer {
    s.gateway.usage().keys().delete(&name).await?;
    Ok(Json(json!({ "ok": true })))
}

pub async fn api_key_usage(State(s): State<AppState>, Path(name): Path<String>) -> Answer {
    let usage = s.gateway.usage().usage(&name, clock::now_ms()).await?;
    Ok(Json(match usage {
        None => json!({ "name": name, "quota": null }),
        Some(u) => json!({ "name": name, "quota": {
            "period_start": rfc3339(u.period_start_ms), "period_end": rfc3339(u.period_end_ms),
            "limit": u.limit, "used": u.used, "remaining": u.remaining } }),
    }))
}

pub async fn list_usage_plans(State(s): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        s.gateway.usage().plans().into_iter().map(|(name, spec)| json!({ "name": name, "spec": &*spec })).collect(),
    ))
}

pub async fn put_usage_plan(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let spec: UsagePlanSpec = json_body(&body)?;
    for stage in &spec.stages {
        let known = s.gateway.get(&stage.api).is_some_and(|a| a.stage(&stage.stage).is_some());
        if !known {
            return Err(ApiError::invalid(
                "stages",
                format!("api {:?} has no stage {:?}; deploy the API first or fix the name", stage.api, stage.stage),
            ));
        }
    }
    let changed = s.gateway.usage().put_plan(&name, spec, &p.user).await?;
    Ok(Json(json!({ "name": name, "changed": changed })))
}

pub async fn delete_usage_plan(State(s): State<AppState>, Path(name): Path<String>) -> Answer {
    if !s.gateway.usage().delete_plan(&name).await? {
        return Err(UsageError::PlanNotFound(name).into());
    }
    Ok(Json(json!({ "ok": true })))
}

pub async fn list_resource_servers(State(s): State<AppState>) -> Answer {
    Ok(Json(json!(s.oauth.list_resource_servers().await?)))
}

pub async fn put_resource_server(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> Answer {
    let spec: ResourceServerSpec = json_body(&body)?;
    if spec.identifier != id {
        return Err(ApiError::invalid(
            "identifier",
            format!("is {:?} but the path names {id:?}; they must be the same", spec.identifier),
        ));
    }
    let changed = s.oauth.put_resource_server(&spec).await?;
    Ok(Json(json!({ "identifier": id, "changed": changed })))
}

pub async fn delete_resource_server(State(s): State<AppState>, Path(id): Path<String>) -> Answer {
    if !s.oauth.delete_resource_server(&id).await? {
        return Err(OauthError::NotFound(format!("resource server {id:?}")).into());
    }
    Ok(Json(json!({ "ok": true })))
}

fn client_view(info: &ClientInfo, secret: Option<&NewClient>) -> Value {
    let mut v = json!({"name": info.name, "client_id": info.client_id, "scopes": info.scopes,
                       "token_validity_s": info.token_validity_s, "created_at": rfc3339(info.created_ms)});
    if let Some(n) = secret {
        // Shown once.
        v["client_secret"] = Value::String(n.client_secret.clone());
    }
    v
}

pub async fn list_clients(State(s): State<AppState>) -> Answer {
    Ok(Json(Value::Array(s.oauth.list_clients().await?.iter().map(|c| client_view(c, None)).collect())))
}

/// Creates the client when missing, else updates its scopes and validity; a secret is shown
/// only when the client is created.
pub async fn put_client(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> Answer {
    let mut spec: ClientSpec = json_body(&body)?;
    spec.name = name;
    let (info, created) = s.oauth.ensure_client(&spec).await?;
    let mut view = client_view(&info, created.as_ref());
    view["created"] = Value::Bool(created.is_some());
    Ok(Json(view))
}

pub async fn delete_client(State(s): State<AppState>, Path(name): Path<String>) -> Answer {
    if !s.oauth.delete_client(&name).await? {
        return Err(OauthError::NotFound(format!("app client {name:?}")).into());
    }
    Ok(Json(json!({ "ok": true })))
}

pub async fn rotate_client_secret(State(s): State<AppState>, Path(name): Path<String>) -> Answer {
    let fresh = s.oauth.rotate_client_secret(&name).await?;
    Ok(Json(client_view(&fresh.info, Some(&fresh))))
}

pub async fn rotate_signing_key(State(s): State<AppState>) -> Answer {
    let kid = s.oauth.rotate_signing_key().await?;
    Ok(Json(json!({ "kid": kid })))
}
