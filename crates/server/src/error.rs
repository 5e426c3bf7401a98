//! The one mapping from errors of every part to an HTTP status, a stable error code and a
//! message the user can act on. Bodies are `{"code": …, "message": …}`; authentication
//! failures use AWS's `{"message": …}` shape so AWS clients recognise them.

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nimbus_iam::IamError;
use nimbus_iam::sigv4::SigError;
use nimbus_registry::RegistryError;
use nimbus_store::StoreError;

/// An error answer of the admin API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable code (`ModelVersionNotFound`, …).
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// A 400 naming the offending field.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidField",
            message: format!("invalid {field}: {reason}"),
        }
    }

    /// A 400 for a body that is not the JSON the route expects.
    pub fn malformed_body(e: impl std::fmt::Display) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "MalformedBody", message: format!("request body: {e}") }
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.status.is_server_error() {
            // The details (a database error, a path on disk) are for the operator, not the caller.
            let id = nimbus_core::request_id();
            tracing::error!(request_id = %id, code = self.code, message = %self.message, "request failed");
            self.message = format!("internal error; the server's log has the details under request id {id}");
        }
        let body = if self.code == "AuthFailure" {
            serde_json::json!({ "message": self.message })
        } else {
            serde_json::json!({ "code": self.code, "message": self.message })
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(self.code) {
            resp.headers_mut().insert("x-amzn-errortype", v);
        }
        resp
    }
}

impl From<SigError> for ApiError {
    fn from(e: SigError) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, code: "AuthFailure", message: e.to_string() }
    }
}

impl From<IamError> for ApiError {
    fn from(e: IamError) -> ApiError {
        match e {
            IamError::Signature(s) => s.into(),
            IamError::InvalidName(n) => {
                ApiError { status: StatusCode::BAD_REQUEST, code: "InvalidName", message: n.to_string() }
            }
            IamError::UserNotFound(_) => {
                ApiError { status: StatusCode::NOT_FOUND, code: "UserNotFound", message: e.to_string() }
            }
            IamError::NotFound { .. } => {
                ApiError { status: StatusCode::NOT_FOUND, code: "NoSuchEntity", message: e.to_string() }
            }
            IamError::Exists { .. } => {
                ApiError { status: StatusCode::CONFLICT, code: "EntityAlreadyExists", message: e.to_string() }
            }
            IamError::Policy { .. } => {
                ApiError { status: StatusCode::BAD_REQUEST, code: "MalformedPolicyDocument", message: e.to_string() }
            }
            IamError::Conflict(_) => {
                ApiError { status: StatusCode::CONFLICT, code: "DeleteConflict", message: e.to_string() }
            }
            other => internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let (status, code) = match &e {
            StoreError::InvalidName(_) => (StatusCode::BAD_REQUEST, "InvalidName"),
            StoreError::NoSuchBucket(_) => (StatusCode::NOT_FOUND, "NoSuchBucket"),
            StoreError::NoSuchKey { .. } => (StatusCode::NOT_FOUND, "NoSuchKey"),
            StoreError::BucketExists(_) => (StatusCode::CONFLICT, "BucketAlreadyExists"),
            StoreError::BucketNotEmpty(_) => (StatusCode::CONFLICT, "BucketNotEmpty"),
            StoreError::Held { .. } => (StatusCode::CONFLICT, "ObjectHeld"),
            StoreError::Changed { .. } => (StatusCode::CONFLICT, "ObjectChanged"),
            StoreError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "ObjectCorrupt"),
            StoreError::Source(io) => {
                return match crate::body::BodyError::find(io) {
                    Some(b) => crate::auth::body_error(b, 0),
                    None => ApiError {
                        status: StatusCode::BAD_REQUEST,
                        code: "IncompleteBody",
                        message: format!("the request body could not be read: {io}"),
                    },
                };
            }
            _ => return internal(e),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        let (status, code) = match &e {
            RegistryError::InvalidName(_) => (StatusCode::BAD_REQUEST, "InvalidName"),
            RegistryError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "InvalidField"),
            RegistryError::GroupNotFound(_) => (StatusCode::NOT_FOUND, "ModelGroupNotFound"),
            RegistryError::VersionNotFound { .. } => (StatusCode::NOT_FOUND, "ModelVersionNotFound"),
            RegistryError::AliasNotFound { .. } => (StatusCode::NOT_FOUND, "AliasNotFound"),
            RegistryError::Unresolved { .. } => (StatusCode::NOT_FOUND, "SelectorUnresolved"),
            RegistryError::GroupExists(_) => (StatusCode::CONFLICT, "ModelGroupExists"),
            RegistryError::InvalidTransition { .. } => (StatusCode::CONFLICT, "InvalidStatusTransition"),
            RegistryError::Artifact(_) => (StatusCode::CONFLICT, "ArtifactMismatch"),
            RegistryError::Meta(_) => return internal(e),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

impl From<nimbus_pipeline::PipelineError> for ApiError {
    fn from(e: nimbus_pipeline::PipelineError) -> ApiError {
        use nimbus_pipeline::PipelineError as P;
        let (status, code) = match &e {
            P::Invalid { .. } => (StatusCode::BAD_REQUEST, "ValidationError"),
            P::NotFound(_) => (StatusCode::NOT_FOUND, "PipelineNotFound"),
            P::ExecutionNotFound(_) => (StatusCode::NOT_FOUND, "ExecutionNotFound"),
            P::NotRetryable { .. } => (StatusCode::CONFLICT, "ExecutionNotRetryable"),
            P::Meta(_) => return internal(e),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "InternalError", message: e.to_string() }
}

/// Any path no route claims.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "NotFound",
        message: format!("no route for {}; the admin API is documented in docs/openapi.json", uri.path()),
    }
}

impl From<nimbus_functions::FunctionsError> for ApiError {
    fn from(e: nimbus_functions::FunctionsError) -> ApiError {
        use nimbus_functions::FunctionsError as F;
        let (status, code) = match &e {
            F::Invalid { .. } => (StatusCode::BAD_REQUEST, "ValidationError"),
            F::NotFound(_) => (StatusCode::NOT_FOUND, "FunctionNotFound"),
            F::VersionNotFound { .. } | F::AliasNotFound { .. } => (StatusCode::NOT_FOUND, "NotFoundException"),
            F::NotPublishable { .. } => (StatusCode::CONFLICT, "ResourceConflictException"),
            F::Meta(_) => return internal(e),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

impl From<nimbus_gateway::GatewayError> for ApiError {
    fn from(e: nimbus_gateway::GatewayError) -> ApiError {
        use nimbus_gateway::GatewayError as G;
        let (status, code) = match &e {
            G::Invalid { .. } => (StatusCode::BAD_REQUEST, "ValidationError"),
            G::NotFound(_) => (StatusCode::NOT_FOUND, "ApiNotFound"),
            G::Meta(_) => return internal(e),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_error_answers_a_generic_message_with_a_request_id() {
        let e = internal("error returned from database: no such table: objects at /srv/.nimbus/meta.db");
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("database") && !text.contains("/srv"), "{text}");
        assert!(text.contains("under request id "), "{text}");
    }
}
