//! Domain types of the registry. Schemas, lineage and metrics are stored as JSON text in
//! the metadata database, so those types (and only those) are serialisable.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use nimbus_core::schema::{Field, FieldType, Schema};

/// Approval status of a model version, with SageMaker's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    PendingManualApproval,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::PendingManualApproval => "PendingManualApproval",
            ApprovalStatus::Approved => "Approved",
            ApprovalStatus::Rejected => "Rejected",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<ApprovalStatus> {
        match s {
            "PendingManualApproval" => Some(ApprovalStatus::PendingManualApproval),
            "Approved" => Some(ApprovalStatus::Approved),
            "Rejected" => Some(ApprovalStatus::Rejected),
            _ => None,
        }
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dataset a version was trained or evaluated on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub uri: String,
    pub sha256: String,
}

/// Where a version came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The pipeline execution that registered it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_execution: Option<String>,
    #[serde(default)]
    pub datasets: Vec<Dataset>,
}

/// What a registration supplies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewVersion {
    /// `s3://bucket/key` of the artifact.
    pub artifact_uri: String,
    pub artifact_sha256: String,
    pub artifact_size: i64,
    /// `nimbus-bundle`, `xgboost-json`, …
    pub format: String,
    pub input_schema: Schema,
    pub output_schema: Schema,
    pub metrics: BTreeMap<String, f64>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub lineage: Lineage,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    /// Initial status; `PendingManualApproval` when not given.
    pub status: Option<ApprovalStatus>,
}

/// A registered model version.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelVersion {
    pub group: String,
    pub version: i64,
    pub artifact_uri: String,
    pub artifact_sha256: String,
    pub artifact_size: i64,
    pub format: String,
    pub input_schema: Schema,
    pub output_schema: Schema,
    pub metrics: BTreeMap<String, f64>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub lineage: Lineage,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    pub status: ApprovalStatus,
    pub status_by: Option<String>,
    pub status_ms: Option<i64>,
    pub status_description: Option<String>,
    pub created_ms: i64,
    pub created_by: String,
    /// Aliases pointing at this version, sorted.
    pub aliases: Vec<String>,
}

/// A model group with a summary of its versions.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelGroup {
    pub name: String,
    pub description: String,
    pub created_ms: i64,
    pub created_by: String,
    /// Number of versions registered.
    pub version_count: i64,
    /// Highest approved version, if any.
    pub latest_approved: Option<i64>,
    /// Aliases and the versions they point at.
    pub aliases: BTreeMap<String, i64>,
}

/// One entry of a group's audit trail.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelEvent {
    pub group: String,
    pub version: i64,
    /// `Registered`, `Approved`, `Rejected`, `AliasSet`, `AliasRemoved`.
    pub kind: String,
    pub detail: String,
    pub actor: String,
    pub at_ms: i64,
}
