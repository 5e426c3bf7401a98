//! The bottom layer of nimbus: small types every other crate shares.
//!
//! Nothing here knows about HTTP, SQL or files. It holds the rules for names users choose
//! (buckets, model groups, aliases), the clock, id generation and the AWS-style ARNs.
#![forbid(unsafe_code)]

pub mod arn;
pub mod clock;
pub mod names;
pub mod schema;

/// A fresh random identifier (UUID v4, hyphenated), used for request ids and object locations.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
