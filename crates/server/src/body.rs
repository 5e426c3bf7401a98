//! Request bodies, read with a limit: whole ([`read`], for JSON and model files) or as a
//! stream that counts and hashes as it goes ([`checked_stream`], for uploads, which are never
//! held whole). Either way a body past its limit, a body slower than the body read timeout,
//! and a body that does not hash to its signed `x-amz-content-sha256` end in a [`BodyError`]
//! that says which.

use std::io;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::listener::is_body_timeout;

/// Why a request body was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the route allows.
    #[error("the request body is larger than this route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Not all there within the body read timeout.
    #[error("{0}")]
    Timeout(String),
    /// The bytes do not hash to the `x-amz-content-sha256` the request signed.
    #[error(
        "the body's SHA-256 is {found}, not the {signed} that x-amz-content-sha256 signed; send the body that was signed"
    )]
    HashMismatch { signed: String, found: String },
    /// The client stopped sending, or sent something unreadable.
    #[error("the request body could not be read: {0}")]
    Broken(String),
}

impl BodyError {
    fn of(e: &(dyn std::error::Error + 'static)) -> BodyError {
        if is_body_timeout(e) {
            return BodyError::Timeout(e.to_string());
        }
        let mut source = Some(e);
        while let Some(e) = source {
            if let Some(b) = e.downcast_ref::<BodyError>() {
                return b.clone();
            }
            if let Some(io) = e.downcast_ref::<io::Error>()
                && let Some(b) = io.get_ref().and_then(|inner| inner.downcast_ref::<BodyError>())
            {
                return b.clone();
            }
            source = e.source();
        }
        BodyError::Broken(e.to_string())
    }

    /// The body error behind an error from a body stream, if one is.
    pub fn find(e: &(dyn std::error::Error + 'static)) -> Option<BodyError> {
        match BodyError::of(e) {
            BodyError::Broken(_) => None,
            found => Some(found),
        }
    }
}

/// The `content-length` a request declares, if any.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read(body: Body, limit: u64) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut out = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::of(&e))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// The body as a stream of chunks that fails (with a [`BodyError`] inside the `io::Error`)
/// past `limit` bytes, and, when `signed` is given, at the end when the bytes do not hash to
/// it. Memory: one chunk at a time.
pub fn checked_stream(
    body: Body,
    limit: u64,
    signed: Option<String>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static {
    struct State {
        inner: axum::body::BodyDataStream,
        size: u64,
        hash: Option<Sha256>,
        done: bool,
    }
    let state =
        State { inner: body.into_data_stream(), size: 0, hash: signed.as_ref().map(|_| Sha256::new()), done: false };
    let fail = |e: BodyError| io::Error::other(e);
    Box::pin(futures::stream::unfold((state, signed), move |(mut st, signed)| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.size += chunk.len() as u64;
                if st.size > limit {
                    st.done = true;
                    return Some((Err(fail(BodyError::TooLarge { limit })), (st, signed)));
                }
                if let Some(h) = st.hash.as_mut() {
                    h.update(&chunk);
                }
                Some((Ok(chunk), (st, signed)))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(fail(BodyError::of(&e))), (st, signed)))
            }
            None => {
                st.done = true;
                let (hash, expected) = (st.hash.take()?, signed.clone()?);
                let found = hex::encode(hash.finalize());
                (found != expected)
                    .then(|| (Err(fail(BodyError::HashMismatch { signed: expected, found })), (st, signed)))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(s: impl Stream<Item = io::Result<Bytes>> + Unpin) -> Result<Vec<u8>, BodyError> {
        let mut s = s;
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.map_err(|e| BodyError::of(&e))?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn limits_and_hashes_are_enforced() {
        assert_eq!(read(Body::from("hello"), 5).await.unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(read(Body::from("hello!"), 5).await, Err(BodyError::TooLarge { limit: 5 }));
        let hello = hex::encode(Sha256::digest(b"hello"));
        assert_eq!(collect(checked_stream(Body::from("hello"), 10, Some(hello.clone()))).await.unwrap(), b"hello");
        let e = collect(checked_stream(Body::from("hellO"), 10, Some(hello))).await.unwrap_err();
        assert!(matches!(e, BodyError::HashMismatch { .. }), "{e}");
        let e = collect(checked_stream(Body::from("hello"), 4, None)).await.unwrap_err();
        assert_eq!(e, BodyError::TooLarge { limit: 4 });
    }
}
