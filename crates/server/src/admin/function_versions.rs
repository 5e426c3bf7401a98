//! Published function versions and aliases over the admin API: publish, list, set and delete
//! an alias (Lambda's PublishVersion, ListVersionsByFunction, ListAliases, UpdateAlias,
//! DeleteAlias).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use nimbus_core::clock::rfc3339;
use nimbus_functions::{Alias, Version};
use nimbus_iam::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::json_body;
use super::serving::{FunctionView, function_view};
use crate::AppState;
use crate::error::ApiError;

/// `POST /functions/{function}/versions`: the body is optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    #[serde(default)]
    pub description: String,
}

/// A version as the API shows it: the function view of the version (its frozen declaration,
/// its own state) and when it was published. `$LATEST` has no publication.
#[derive(Serialize)]
pub struct VersionView {
    #[serde(flatten)]
    pub function: FunctionView,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

fn version_view(v: &Version) -> VersionView {
    VersionView {
        function: function_view(&v.function),
        description: v.description.clone(),
        digest: Some(v.digest.clone()),
        created_at: Some(rfc3339(v.created_ms)),
        created_by: Some(v.created_by.clone()),
    }
}

/// `PUT /functions/{function}/aliases/{alias}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAlias {
    /// `$LATEST` or a version number (as a number or as text).
    pub version: VersionRef,
    /// At most one other version and the share of invocations it gets, in [0, 1):
    /// `{"4": 0.1}` (Lambda's `AdditionalVersionWeights`).
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum VersionRef {
    Number(i64),
    Text(String),
}

/// An alias as the API shows it.
#[derive(Serialize)]
pub struct AliasView {
    pub name: String,
    pub function: String,
    pub arn: String,
    pub version: String,
    /// The other version and its share; empty when the alias sends everything to `version`.
    pub weights: BTreeMap<String, f64>,
    pub description: String,
    pub updated_at: String,
}

fn alias_view(s: &AppState, function: &str, a: &Alias) -> AliasView {
    let p = &s.partition;
    AliasView {
        name: a.name.clone(),
        function: function.to_string(),
        arn: format!("arn:aws:lambda:{}:{}:function:{function}:{}", p.region, p.account, a.name),
        version: a.version.clone(),
        weights: a.additional.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
        description: a.description.clone(),
        updated_at: rfc3339(a.updated_ms),
    }
}

pub async fn publish(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: Publish = if body.iter().all(u8::is_ascii_whitespace) { Publish::default() } else { json_body(&body)? };
    let (version, created) = s.functions.publish(&name, &req.description, &p.user).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "created": created, "version": version_view(&version) }))))
}

/// `$LATEST` first, then the published versions, oldest first (as Lambda lists them).
pub async fn list_versions(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let versions = s.functions.versions(&name)?;
    let latest = s.functions.get(&name).ok_or_else(|| nimbus_functions::FunctionsError::NotFound(name.clone()))?;
    let mut out = vec![VersionView {
        description: latest.spec.description.clone(),
        function: function_view(&latest),
        digest: None,
        created_at: None,
        created_by: None,
    }];
    out.extend(versions.iter().map(|v| version_view(v)));
    Ok(Json(out))
}

pub async fn list_aliases(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<AliasView>>, ApiError> {
    Ok(Json(s.functions.aliases(&name)?.iter().map(|a| alias_view(&s, &name, a)).collect()))
}

pub async fn put_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<AliasView>, ApiError> {
    let req: PutAlias = json_body(&body)?;
    let version = match req.version {
        VersionRef::Number(n) => n.to_string(),
        VersionRef::Text(t) => t,
    };
    let additional = match req.weights.len() {
        0 => None,
        1 => {
            let (other, weight) = req.weights.iter().next().expect("one entry");
            let other =
                other.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::invalid("weights", format!("{other:?} is not a published version number"))
                })?;
            Some((other, *weight))
        }
        _ => return Err(ApiError::invalid("weights", "an alias routes to at most one other version")),
    };
    let stored = s.functions.put_alias(&name, &alias, &version, additional, &req.description).await?;
    Ok(Json(alias_view(&s, &name, &stored)))
}

pub async fn delete_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let target = format!("{name}:{alias}");
    if let Some(api) = s.gateway.list().into_iter().find(|a| a.routes.iter().any(|r| r.function == target)) {
        return Err(ApiError::invalid(
            "alias",
            format!("{target} is the integration of API {}; change or delete the API first", api.name),
        ));
    }
    s.functions.delete_alias(&name, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}
