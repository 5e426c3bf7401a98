//! The bottom layer of nimbus: small types every other crate shares.
//!
//! Nothing here knows about HTTP, SQL or files. It holds the rules for names users choose
//! (buckets, model groups, aliases), the clock, id generation and the AWS-style ARNs.
#![forbid(unsafe_code)]

pub mod arn;
pub mod clock;
pub mod names;
pub mod schema;
pub mod timeouts;

/// How a request reached the server: `secure` is true on a TLS connection. The IAM context key
/// `aws:SecureTransport`. The listener puts one in every request's extensions, so a handler
/// (or a policy check) reads it from the request rather than guessing from headers a client
/// controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    pub secure: bool,
}

/// A fresh random identifier (UUID v4, hyphenated), used for request ids and object locations.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A request id (a random UUID) from the thread's user-space generator: cheap enough for
/// every request, where [`new_id`] asks the kernel each time.
pub fn request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

#[cfg(test)]
mod request_id_tests {
    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let (a, b) = (super::request_id(), super::request_id());
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
