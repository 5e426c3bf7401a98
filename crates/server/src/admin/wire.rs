//! JSON shapes of the admin API. Domain types stay in their crates; these are the edge.

use std::collections::BTreeMap;

use nimbus_core::clock::rfc3339;
use nimbus_registry::{Lineage, ModelEvent, ModelGroup, ModelVersion, Schema};
use nimbus_store::{BucketInfo, ObjectInfo};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub struct Whoami {
    pub user: String,
    pub arn: String,
    pub access_key_id: String,
    pub is_admin: bool,
    pub region: String,
    pub account: String,
}

#[derive(Serialize)]
pub struct Bucket {
    pub name: String,
    pub created_at: String,
}

impl From<BucketInfo> for Bucket {
    fn from(b: BucketInfo) -> Self {
        Bucket { name: b.name, created_at: rfc3339(b.created_ms) }
    }
}

#[derive(Serialize)]
pub struct Object {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
    pub created_at: String,
    pub uri: String,
}

impl From<ObjectInfo> for Object {
    fn from(o: ObjectInfo) -> Self {
        Object {
            uri: o.uri(),
            bucket: o.bucket,
            key: o.key,
            size: o.size,
            sha256: o.sha256,
            content_type: o.content_type,
            created_at: rfc3339(o.created_ms),
        }
    }
}

#[derive(Serialize)]
pub struct ObjectList {
    pub objects: Vec<Object>,
    /// Pass as `start_after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize)]
pub struct Group {
    pub name: String,
    pub arn: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
    pub version_count: i64,
    pub latest_approved_version: Option<i64>,
    pub aliases: BTreeMap<String, i64>,
}

impl Group {
    pub fn new(g: ModelGroup, arn: String) -> Group {
        Group {
            arn,
            name: g.name,
            description: g.description,
            created_at: rfc3339(g.created_ms),
            created_by: g.created_by,
            version_count: g.version_count,
            latest_approved_version: g.latest_approved,
            aliases: g.aliases,
        }
    }
}

#[derive(Serialize)]
pub struct Artifact {
    pub uri: String,
    pub sha256: String,
    pub size: i64,
    pub format: String,
}

#[derive(Serialize)]
pub struct Approval {
    pub status: String,
    pub by: Option<String>,
    pub at: Option<String>,
    pub description: Option<String>,
}

#[derive(Serialize)]
pub struct Version {
    pub group: String,
    pub version: i64,
    pub arn: String,
    pub status: String,
    pub approval: Approval,
    pub aliases: Vec<String>,
    pub artifact: Artifact,
    pub input_schema: Schema,
    pub output_schema: Schema,
    pub metrics: BTreeMap<String, f64>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub lineage: Lineage,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
}

impl Version {
    pub fn new(v: ModelVersion, arn: String) -> Version {
        Version {
            arn,
            status: v.status.as_str().to_string(),
            approval: Approval {
                status: v.status.as_str().to_string(),
                by: v.status_by,
                at: v.status_ms.map(rfc3339),
                description: v.status_description,
            },
            aliases: v.aliases,
            artifact: Artifact {
                uri: v.artifact_uri,
                sha256: v.artifact_sha256,
                size: v.artifact_size,
                format: v.format,
            },
            input_schema: v.input_schema,
            output_schema: v.output_schema,
            metrics: v.metrics,
            parameters: v.parameters,
            lineage: v.lineage,
            tags: v.tags,
            description: v.description,
            created_at: rfc3339(v.created_ms),
            created_by: v.created_by,
            group: v.group,
            version: v.version,
        }
    }
}

/// Registration of an artifact already in the store.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterVersion {
    pub artifact_uri: String,
    pub format: String,
    #[serde(default)]
    pub input_schema: Schema,
    #[serde(default)]
    pub output_schema: Schema,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub lineage: Lineage,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    /// `PendingManualApproval` (default) or `Approved`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Approve or reject.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersion {
    pub status: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    pub version: i64,
}

#[derive(Serialize)]
pub struct Event {
    pub version: i64,
    pub kind: String,
    pub detail: String,
    pub actor: String,
    pub at: String,
}

impl From<ModelEvent> for Event {
    fn from(e: ModelEvent) -> Self {
        Event { version: e.version, kind: e.kind, detail: e.detail, actor: e.actor, at: rfc3339(e.at_ms) }
    }
}
