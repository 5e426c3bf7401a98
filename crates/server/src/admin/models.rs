//! The model registry over the admin API: groups, versions, approval, aliases, selectors.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use nimbus_iam::Principal;
use nimbus_registry::bundle::{self, BUNDLE_FORMAT};
use nimbus_registry::{ApprovalStatus, NewVersion, Selector};

use super::{json_body, wire};
use crate::AppState;
use crate::error::ApiError;

/// The bucket that holds imported model artifacts.
pub const MODELS_BUCKET: &str = "nimbus-models";

fn version_number(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::invalid("version", format!("{text:?} is not a version number (1, 2, 3, ...)")))
}

fn group_view(s: &AppState, g: nimbus_registry::ModelGroup) -> wire::Group {
    let arn = s.partition.model_group_arn(&g.name);
    wire::Group::new(g, arn)
}

fn version_view(s: &AppState, v: nimbus_registry::ModelVersion) -> wire::Version {
    let arn = s.partition.model_version_arn(&v.group, v.version);
    wire::Version::new(v, arn)
}

pub async fn list_groups(State(s): State<AppState>) -> Result<Json<Vec<wire::Group>>, ApiError> {
    Ok(Json(s.registry.groups().await?.into_iter().map(|g| group_view(&s, g)).collect()))
}

pub async fn create_group(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Result<(StatusCode, Json<wire::Group>), ApiError> {
    let req: wire::CreateGroup = json_body(&body)?;
    let g = s.registry.create_group(&req.name, &req.description, &p.user).await?;
    Ok((StatusCode::CREATED, Json(group_view(&s, g))))
}

pub async fn describe_group(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<wire::Group>, ApiError> {
    Ok(Json(group_view(&s, s.registry.group(&group).await?)))
}

pub async fn list_versions(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<wire::Version>>, ApiError> {
    let status = match q.get("status") {
        None => None,
        Some(t) => Some(ApprovalStatus::parse(t).ok_or_else(|| {
            ApiError::invalid("status", format!("{t:?}; use PendingManualApproval, Approved or Rejected"))
        })?),
    };
    let versions = s.registry.versions(&group, status).await?;
    Ok(Json(versions.into_iter().map(|v| version_view(&s, v)).collect()))
}

fn initial_status(text: Option<&str>) -> Result<Option<ApprovalStatus>, ApiError> {
    match text {
        None => Ok(None),
        Some("PendingManualApproval") => Ok(Some(ApprovalStatus::PendingManualApproval)),
        Some("Approved") => Ok(Some(ApprovalStatus::Approved)),
        Some(t) => {
            Err(ApiError::invalid("status", format!("{t:?}; a new version is PendingManualApproval or Approved")))
        }
    }
}

/// Registers an artifact that is already in the store (the pipeline's way).
pub async fn register_version(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(group): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<wire::Version>), ApiError> {
    let req: wire::RegisterVersion = json_body(&body)?;
    let (bucket, key) = nimbus_store::parse_uri(&req.artifact_uri).ok_or_else(|| {
        ApiError::invalid("artifact_uri", format!("{:?} is not of the form s3://bucket/key", req.artifact_uri))
    })?;
    // The version may only point at an object that exists, whole, now.
    let object = s.store.head(bucket, key).await?;
    let new = NewVersion {
        artifact_uri: req.artifact_uri.clone(),
        artifact_sha256: object.sha256,
        artifact_size: object.size,
        format: req.format,
        input_schema: req.input_schema,
        output_schema: req.output_schema,
        metrics: req.metrics,
        parameters: req.parameters,
        lineage: req.lineage,
        tags: req.tags,
        description: req.description,
        status: initial_status(req.status.as_deref())?,
    };
    let v = s.registry.register(&group, new, &p.user).await?;
    Ok((StatusCode::CREATED, Json(version_view(&s, v))))
}

/// Imports a model file as a new version, creating the group when needed. The file is
/// stored first (content-addressed), then registered in one transaction, so a crash
/// between the two leaves no version pointing at a missing artifact.
pub async fn import_version(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<(StatusCode, Json<wire::Version>), ApiError> {
    let format = q.get("format").map(String::as_str).unwrap_or("native");
    let body = match format {
        "native" => body,
        "xgboost-json" => Bytes::from(xgboost_to_native(&body, &q)?),
        other => {
            return Err(ApiError::invalid(
                "format",
                format!(
                    "{other:?} cannot be imported; use native (a {BUNDLE_FORMAT} bundle) or xgboost-json (booster.save_model(\"m.json\"))"
                ),
            ));
        }
    };
    let manifest = bundle::read_manifest(&body)?;
    nimbus_core::names::resource("model group", &group).map_err(nimbus_registry::RegistryError::from)?;
    let description = q.get("description").cloned().unwrap_or(manifest.description.clone());
    let status = initial_status(q.get("status").map(String::as_str))?;
    let tags: BTreeMap<String, String> =
        q.iter().filter_map(|(k, v)| k.strip_prefix("tag.").map(|t| (t.to_string(), v.clone()))).collect();

    s.store.ensure_bucket(MODELS_BUCKET).await?;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    let key = format!("{group}/sha256-{digest}.json");
    // Content-addressed: the same model imported again is the object already there (which an
    // earlier version may hold). Imports of the same file at once all find nothing and all
    // write; once the first has registered, its hold refuses the others' writes, and they too
    // take the object that is there, which is this file.
    let object = match s.store.head(MODELS_BUCKET, &key).await {
        Ok(existing) if existing.sha256 == digest => existing,
        _ => match s.store.put(MODELS_BUCKET, &key, body, "application/json").await {
            Ok(stored) => stored,
            Err(held @ nimbus_store::StoreError::Held { .. }) => match s.store.head(MODELS_BUCKET, &key).await {
                Ok(existing) if existing.sha256 == digest => existing,
                _ => return Err(held.into()),
            },
            Err(e) => return Err(e.into()),
        },
    };
    s.registry.ensure_group(&group, &p.user).await?;
    let new = NewVersion {
        artifact_uri: object.uri(),
        artifact_sha256: object.sha256,
        artifact_size: object.size,
        format: BUNDLE_FORMAT.to_string(),
        input_schema: manifest.input_schema,
        output_schema: manifest.output_schema,
        metrics: manifest.metrics,
        parameters: manifest.parameters,
        lineage: Default::default(),
        tags,
        description,
        status,
    };
    let v = s.registry.register(&group, new, &p.user).await?;
    Ok((StatusCode::CREATED, Json(version_view(&s, v))))
}

/// Converts a model saved by Python xgboost into a native bundle. Query options:
/// `category.FEATURE=label0,label1,…` (labels in code order), `feature_names=a,b,…`,
/// `classes=…`, `target=NAME`.
fn xgboost_to_native(body: &[u8], q: &HashMap<String, String>) -> Result<Vec<u8>, ApiError> {
    let list = |v: &String| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>();
    let options = nimbus_ml::xgboost::ImportOptions {
        feature_names: q.get("feature_names").map(list),
        categories: q
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("category.").map(|f| (f.to_string(), list(v))))
            .collect(),
        classes: q.get("classes").map(list),
        target: q.get("target").cloned(),
        description: q.get("description").cloned(),
    };
    let bundle =
        nimbus_ml::xgboost::bundle_from_xgboost_json(body, &options).map_err(|e| ApiError::invalid("model file", e))?;
    Ok(bundle.to_vec())
}

/// `GET …/versions/{version}/export?format=xgboost-json|native`: the model file.
pub async fn export_version(
    State(s): State<AppState>,
    Path((group, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    let version: i64 = version.parse().map_err(|_| ApiError::invalid("version", "must be a version number"))?;
    let v = s.registry.version(&group, version).await?;
    let (bucket, key) = nimbus_store::parse_uri(&v.artifact_uri)
        .ok_or_else(|| ApiError::invalid("artifact", format!("{} is not in the store", v.artifact_uri)))?;
    let (_, bytes) = s.store.get(bucket, key).await?;
    let out = match q.get("format").map(String::as_str).unwrap_or("xgboost-json") {
        "native" => bytes.to_vec(),
        "xgboost-json" => {
            let bundle = nimbus_ml::bundle::Bundle::from_slice(&bytes).map_err(|e| ApiError::invalid("artifact", e))?;
            nimbus_ml::xgboost::bundle_to_xgboost_json(&bundle).map_err(|e| ApiError::invalid("artifact", e))?
        }
        other => return Err(ApiError::invalid("format", format!("{other:?}: use xgboost-json or native"))),
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], out).into_response())
}

pub async fn describe_version(
    State(s): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Result<Json<wire::Version>, ApiError> {
    let v = s.registry.version(&group, version_number(&version)?).await?;
    Ok(Json(version_view(&s, v)))
}

/// Approves or rejects a version.
pub async fn update_version(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((group, version)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<wire::Version>, ApiError> {
    let version = version_number(&version)?;
    let req: wire::UpdateVersion = json_body(&body)?;
    let to = match req.status.as_str() {
        "Approved" => ApprovalStatus::Approved,
        "Rejected" => ApprovalStatus::Rejected,
        other => return Err(ApiError::invalid("status", format!("{other:?}; set Approved or Rejected"))),
    };
    let v = s.registry.set_status(&group, version, to, &req.description, &p.user).await?;
    Ok(Json(version_view(&s, v)))
}

pub async fn list_aliases(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<BTreeMap<String, i64>>, ApiError> {
    Ok(Json(s.registry.group(&group).await?.aliases))
}

pub async fn set_alias(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((group, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<wire::Version>, ApiError> {
    let req: wire::SetAlias = json_body(&body)?;
    let v = s.registry.set_alias(&group, &alias, req.version, &p.user).await?;
    Ok(Json(version_view(&s, v)))
}

pub async fn delete_alias(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((group, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.registry.delete_alias(&group, &alias, &p.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The version a selector names now: `?selector=latest-approved|@alias|N`.
pub async fn resolve(
    State(s): State<AppState>,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<wire::Version>, ApiError> {
    let text = q.get("selector").map(String::as_str).unwrap_or("latest-approved");
    let selector: Selector = text.parse().map_err(|e: String| ApiError::invalid("selector", e))?;
    Ok(Json(version_view(&s, s.registry.resolve(&group, &selector).await?)))
}

pub async fn events(State(s): State<AppState>, Path(group): Path<String>) -> Result<Json<Vec<wire::Event>>, ApiError> {
    Ok(Json(s.registry.history(&group).await?.into_iter().map(Into::into).collect()))
}
