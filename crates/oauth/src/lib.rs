//! The OAuth2 authorization server and the JWT verifier (work in progress).
#![forbid(unsafe_code)]
