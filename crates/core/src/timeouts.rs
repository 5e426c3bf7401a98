//! The body read timeout as an error value: raised by the server's listener when a request
//! body does not arrive in time, recognised by every handler that reads a body (the admin API,
//! the gateway) so that a slow upload is answered `408 Request Timeout`, never `413`.

use std::time::Duration;

/// The error a request body yields when it did not arrive within the body read timeout.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body did not arrive within {0:?} (the server's --body-timeout); send it faster or raise the limit"
)]
pub struct BodyTimeout(pub Duration);

/// Whether `e`, or any error it wraps, is the body read timeout.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.is::<BodyTimeout>() {
            return true;
        }
        source = e.source();
    }
    false
}
