//! The `api_key` authorizer: the caller names its key in `x-api-key`. A request without one
//! is refused here at once (403 `Forbidden`, as API Gateway); whether the key exists, is
//! enabled and has a plan covering this stage is decided with its throttles and quota in the
//! throttle stage ([`crate::usage::Usage::admit`]), which gives the same 403 for each, so a
//! caller cannot tell an unknown key from a disabled one.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::Identity;

/// The header API Gateway reads the key from.
pub const HEADER: &str = "x-api-key";

/// The key the request carries, or `None` (→ 403 `Forbidden`).
pub fn authorize(headers: &HeaderMap) -> Option<Identity> {
    let value = headers.get(HEADER)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| Identity::ApiKey(Arc::from(value)))
}
