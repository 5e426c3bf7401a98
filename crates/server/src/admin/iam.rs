//! IAM over the admin API: users, access keys, groups, roles, managed and inline policies.
//! Policy documents are validated on upload; errors point at the statement and key. A new
//! access key's secret is in the answer once and nowhere else.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nimbus_core::clock::rfc3339;
use nimbus_iam::{Attachment, NewAccessKey, PrincipalKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::json_body;
use crate::AppState;
use crate::error::ApiError;

type Answer = Result<Json<Value>, ApiError>;

fn ok() -> Answer {
    Ok(Json(json!({ "ok": true })))
}

fn body_or_empty<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { json_body(body) }
}

fn not_found(kind: &'static str, name: &str) -> ApiError {
    nimbus_iam::IamError::NotFound { kind, name: name.to_string() }.into()
}

#[derive(Serialize)]
struct NewKeyView<'a> {
    user: &'a str,
    access_key_id: &'a str,
    /// Shown once: keep it now.
    secret_access_key: &'a str,
}

fn new_key(k: &NewAccessKey) -> Json<Value> {
    Json(json!(NewKeyView { user: &k.user, access_key_id: &k.access_key_id, secret_access_key: &k.secret_access_key }))
}

pub async fn list_users(State(s): State<AppState>) -> Answer {
    let users = s.iam.list_users().await?;
    Ok(Json(Value::Array(
        users
            .into_iter()
            .map(|u| {
                json!({"name": u.name, "arn": u.arn, "groups": u.groups, "policies": u.policies,
                       "inline_policies": u.inline_policies, "tags": u.tags, "created_at": rfc3339(u.created_ms)})
            })
            .collect(),
    )))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub async fn create_user(State(s): State<AppState>, Path(user): Path<String>, body: Bytes) -> Answer {
    let req: CreateUser = body_or_empty(&body)?;
    s.iam.create_user(&user, false).await?;
    if !req.tags.is_empty() {
        s.iam.set_user_tags(&user, &req.tags).await?;
    }
    Ok(Json(json!({ "name": user, "arn": s.partition.user_arn(&user) })))
}

pub async fn delete_user(State(s): State<AppState>, Path(user): Path<String>) -> Answer {
    if !s.iam.delete_user(&user).await? {
        return Err(not_found("user", &user));
    }
    ok()
}

pub async fn tag_user(State(s): State<AppState>, Path(user): Path<String>, body: Bytes) -> Answer {
    let tags: BTreeMap<String, String> = json_body(&body)?;
    s.iam.set_user_tags(&user, &tags).await?;
    ok()
}

pub async fn list_access_keys(State(s): State<AppState>, Path(user): Path<String>) -> Answer {
    let keys = s.iam.list_access_keys(Some(&user)).await?;
    Ok(Json(Value::Array(
        keys.into_iter()
            .map(|k| {
                json!({"access_key_id": k.access_key_id, "user": k.user,
                       "status": if k.active { "Active" } else { "Inactive" }, "created_at": rfc3339(k.created_ms)})
            })
            .collect(),
    )))
}

pub async fn create_access_key(
    State(s): State<AppState>,
    Path(user): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = s.iam.create_access_key(&user).await?;
    Ok((StatusCode::CREATED, new_key(&key)))
}

/// The key must belong to the user of the path: the policy was checked on that user.
async fn key_of(s: &AppState, user: &str, key: &str) -> Result<(), ApiError> {
    if s.iam.list_access_keys(Some(user)).await?.iter().any(|k| k.access_key_id == key) {
        Ok(())
    } else {
        Err(not_found("access key", key))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// `Active` or `Inactive`.
    status: String,
}

pub async fn update_access_key(
    State(s): State<AppState>,
    Path((user, key)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let req: UpdateKey = json_body(&body)?;
    let active = match req.status.as_str() {
        "Active" => true,
        "Inactive" => false,
        other => return Err(ApiError::invalid("status", format!("is {other:?}; use \"Active\" or \"Inactive\""))),
    };
    key_of(&s, &user, &key).await?;
    s.iam.set_access_key_status(&key, active).await?;
    ok()
}

pub async fn delete_access_key(State(s): State<AppState>, Path((user, key)): Path<(String, String)>) -> Answer {
    key_of(&s, &user, &key).await?;
    s.iam.delete_access_key(&key).await?;
    ok()
}

pub async fn rotate_access_key(
    State(s): State<AppState>,
    Path((user, key)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    key_of(&s, &user, &key).await?;
    let fresh = s.iam.rotate_access_key(&key).await?;
    Ok((StatusCode::CREATED, new_key(&fresh)))
}

async fn attach(s: &AppState, kind: PrincipalKind, name: String, policy: String, on: bool) -> Answer {
    s.iam.set_attachment(&Attachment { kind, name, policy }, on).await?;
    ok()
}

pub async fn attach_user_policy(State(s): State<AppState>, Path((u, p)): Path<(String, String)>) -> Answer {
    attach(&s, PrincipalKind::User, u, p, true).await
}
pub async fn detach_user_policy(State(s): State<AppState>, Path((u, p)): Path<(String, String)>) -> Answer {
    attach(&s, PrincipalKind::User, u, p, false).await
}
pub async fn attach_group_policy(State(s): State<AppState>, Path((g, p)): Path<(String, String)>) -> Answer {
    attach(&s, PrincipalKind::Group, g, p, true).await
}
pub async fn detach_group_policy(State(s): State<AppState>, Path((g, p)): Path<(String, String)>) -> Answer {
    attach(&s, PrincipalKind::Group, g, p, false).await
}
pub async fn attach_role_policy(State(s): State<AppState>, Path((r, p)): Path<(String, String)>) -> Answer {
    attach(&s, PrincipalKind::Role, r, p, true).await
}
pub async fn detach_role_policy(State(s): State<AppState>, Path((r, p)): Path<(String, String)>) -> Answer {
    attach(&s, PrincipalKind::Role, r, p, false).await
}

/// A policy document as uploaded: the JSON document itself (a JSON object), or
/// `{"document": "<text>", "description": "…"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    document: String,
    #[serde(default)]
    description: String,
}

fn upload_of(body: &[u8]) -> Result<Upload, ApiError> {
    let value: Value = json_body(body)?;
    if value.get("Statement").is_some() {
        return Ok(Upload { document: value.to_string(), description: String::new() });
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::malformed_body(format!(
            "{e}; send the policy document itself, or {{\"document\": \"<policy JSON text>\", \"description\": \"…\"}}"
        ))
    })
}

async fn put_inline(s: &AppState, kind: PrincipalKind, name: String, policy: String, body: &[u8]) -> Answer {
    let up = upload_of(body)?;
    s.iam.put_inline_policy(kind, &name, &policy, &up.document).await?;
    ok()
}

async fn delete_inline(s: &AppState, kind: PrincipalKind, name: String, policy: String) -> Answer {
    if !s.iam.delete_inline_policy(kind, &name, &policy).await? {
        return Err(not_found("policy", &policy));
    }
    ok()
}

pub async fn get_user_policy(State(s): State<AppState>, Path((u, p)): Path<(String, String)>) -> Answer {
    let doc = s.iam.inline_policy(PrincipalKind::User, &u, &p).await?.ok_or_else(|| not_found("policy", &p))?;
    Ok(Json(
        json!({ "user": u, "policy": p, "document": serde_json::from_str::<Value>(&doc).unwrap_or(Value::String(doc)) }),
    ))
}
pub async fn put_user_policy(State(s): State<AppState>, Path((u, p)): Path<(String, String)>, body: Bytes) -> Answer {
    put_inline(&s, PrincipalKind::User, u, p, &body).await
}
pub async fn delete_user_policy(State(s): State<AppState>, Path((u, p)): Path<(String, String)>) -> Answer {
    delete_inline(&s, PrincipalKind::User, u, p).await
}
pub async fn put_group_policy(State(s): State<AppState>, Path((g, p)): Path<(String, String)>, body: Bytes) -> Answer {
    put_inline(&s, PrincipalKind::Group, g, p, &body).await
}
pub async fn delete_group_policy(State(s): State<AppState>, Path((g, p)): Path<(String, String)>) -> Answer {
    delete_inline(&s, PrincipalKind::Group, g, p).await
}
pub async fn put_role_policy(State(s): State<AppState>, Path((r, p)): Path<(String, String)>, body: Bytes) -> Answer {
    put_inline(&s, PrincipalKind::Role, r, p, &body).await
}
pub async fn delete_role_policy(State(s): State<AppState>, Path((r, p)): Path<(String, String)>) -> Answer {
    delete_inline(&s, PrincipalKind::Role, r, p).await
}

pub async fn list_groups(State(s): State<AppState>) -> Answer {
    let groups = s.iam.list_groups().await?;
    Ok(Json(Value::Array(
        groups
            .into_iter()
            .map(|g| {
                json!({"name": g.name, "arn": g.arn, "members": g.members, "policies": g.policies,
                       "inline_policies": g.inline_policies})
            })
            .collect(),
    )))
}

pub async fn create_group(State(s): State<AppState>, Path(group): Path<String>) -> Answer {
    s.iam.create_group(&group).await?;
    ok()
}

pub async fn delete_group(State(s): State<AppState>, Path(group): Path<String>) -> Answer {
    if !s.iam.delete_group(&group).await? {
        return Err(not_found("group", &group));
    }
    ok()
}

pub async fn add_member(State(s): State<AppState>, Path((g, u)): Path<(String, String)>) -> Answer {
    s.iam.set_group_member(&g, &u, true).await?;
    ok()
}

pub async fn remove_member(State(s): State<AppState>, Path((g, u)): Path<(String, String)>) -> Answer {
    s.iam.set_group_member(&g, &u, false).await?;
    ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// Who may assume the role: a policy document with `Principal`, as JSON.
    trust_policy: Value,
    #[serde(default)]
    description: String,
}

pub async fn list_roles(State(s): State<AppState>) -> Answer {
    let roles = s.iam.list_roles().await?;
    Ok(Json(Value::Array(
        roles
            .into_iter()
            .map(|r| {
                json!({"name": r.name, "arn": r.arn, "description": r.description,
                       "trust_policy": serde_json::from_str::<Value>(&r.trust_policy).unwrap_or_default(),
                       "policies": r.policies, "inline_policies": r.inline_policies})
            })
            .collect(),
    )))
}

pub async fn create_role(State(s): State<AppState>, Path(role): Path<String>, body: Bytes) -> Answer {
    let req: CreateRole = json_body(&body)?;
    s.iam.create_role(&role, &req.trust_policy.to_string(), &req.description).await?;
    ok()
}

pub async fn delete_role(State(s): State<AppState>, Path(role): Path<String>) -> Answer {
    if !s.iam.delete_role(&role).await? {
        return Err(not_found("role", &role));
    }
    ok()
}

fn policy_view(p: nimbus_iam::ManagedPolicy) -> Value {
    json!({"name": p.name, "arn": p.arn, "description": p.description, "builtin": p.builtin,
           "attached_to": p.attached_to,
           "document": serde_json::from_str::<Value>(&p.document).unwrap_or(Value::String(p.document))})
}

pub async fn list_policies(State(s): State<AppState>) -> Answer {
    Ok(Json(Value::Array(s.iam.list_policies().await?.into_iter().map(policy_view).collect())))
}

pub async fn get_policy(State(s): State<AppState>, Path(policy): Path<String>) -> Answer {
    let found = s.iam.list_policies().await?.into_iter().find(|p| p.name == policy);
    Ok(Json(policy_view(found.ok_or_else(|| not_found("policy", &policy))?)))
}

pub async fn put_policy(State(s): State<AppState>, Path(policy): Path<String>, body: Bytes) -> Answer {
    let up = upload_of(&body)?;
    let changed = s.iam.put_policy(&policy, &up.document, &up.description).await?;
    Ok(Json(json!({ "name": policy, "changed": changed })))
}

pub async fn delete_policy(State(s): State<AppState>, Path(policy): Path<String>) -> Answer {
    if !s.iam.delete_policy(&policy).await? {
        return Err(not_found("policy", &policy));
    }
    ok()
}
