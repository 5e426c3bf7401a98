//! Table tests of evaluation: one row per case, each commented with the AWS rule it checks.
//!
//! A row gives the identity policy (a whole document, or statements to wrap in a 2012-10-17
//! document), the action, the resource, the request context and the expected decision; the
//! optional fields add a second identity policy, a resource-based policy and the caller's
//! principal. [`evaluation_table`] runs every row and reports every failing one at once.

use super::*;

/// One evaluation case.
struct Row {
    line: u32,
    /// Identity policy; empty for none.
    policy: &'static str,
    action: &'static str,
    resource: &'static str,
    /// `(key, value)`; `a|b` sets a multi-valued key.
    ctx: &'static [(&'static str, &'static str)],
    expect: Decision,
    /// A second identity policy.
    also: &'static str,
    /// A resource-based policy.
    on_resource: &'static str,
    principal: Option<&'static str>,
}

const BASE: Row = Row {
    line: 0,
    policy: "",
    action: "",
    resource: "",
    ctx: &[],
    expect: Decision::ImplicitDeny,
    also: "",
    on_resource: "",
    principal: None,
};

macro_rules! row {
    ($policy:expr, $action:expr, $resource:expr, $ctx:expr, $expect:ident $(, $field:ident = $value:expr)* $(,)?) => {
        Row {
            line: line!(),
            policy: $policy,
            action: $action,
            resource: $resource,
            ctx: $ctx,
            expect: Decision::$expect,
            $($field: $value,)*
            ..BASE
        }
    };
}

const SEED: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:eu-west-3:123456789012:abc123/*/POST/predict"}]}"#;
const API: &str = "arn:aws:execute-api:eu-west-3:123456789012";
const OBJ: &str = "arn:aws:s3:::b/k";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const ALLOW_ALL: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;
const ALLOW_S3: &str = r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // ── Action: `service:Action`, case-insensitive, `*` and `?` wildcards ──
    // An exact action matches.
    row!(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#, "s3:GetObject", OBJ, &[], Allow),
    // Action names are case-insensitive, on both sides.
    row!(r#"{"Effect":"Allow","Action":"S3:getobject","Resource":"*"}"#, "s3:GETObject", OBJ, &[], Allow),
    // `*` matches any run of characters.
    row!(r#"{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#, "s3:GetObjectAcl", OBJ, &[], Allow),
    // ...but only what the literal parts allow.
    row!(r#"{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#, "s3:PutObject", OBJ, &[], ImplicitDeny),
    // `?` matches exactly one character.
    row!(r#"{"Effect":"Allow","Action":"s3:GetObjec?","Resource":"*"}"#, "s3:GetObject", OBJ, &[], Allow),
    // `?` does not match zero characters.
    row!(r#"{"Effect":"Allow","Action":"s3:GetObject?","Resource":"*"}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // `*` alone is every action of every service.
    row!(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#, "execute-api:Invoke", OBJ, &[], Allow),
    // `service:*` covers one service...
    row!(r#"{"Effect":"Allow","Action":"execute-api:*","Resource":"*"}"#, "execute-api:Invoke", OBJ, &[], Allow),
    // ...and not another.
    row!(r#"{"Effect":"Allow","Action":"execute-api:*","Resource":"*"}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // A list of actions: any of them matches.
    row!(r#"{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"*"}"#, "s3:GetObject", OBJ, &[], Allow),
    // The service is part of the match: `s3:*` is not `s3-outposts:*`.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#, "s3-outposts:GetObject", OBJ, &[], ImplicitDeny),
    // ── NotAction: the statement applies to every action not listed ──
    // An Allow with NotAction allows what it does not list.
    row!(r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#, "s3:GetObject", OBJ, &[], Allow),
    // ...and not what it lists.
    row!(r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#, "iam:CreateUser", "*", &[], ImplicitDeny),
    // A Deny with NotAction denies everything else, overriding an Allow of everything.
    row!(r#"{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"s3:Get*","Resource":"*"}"#, "s3:PutObject", OBJ, &[], ExplicitDeny),
    // ── Resource: ARN glob, case-sensitive, `*` crosses `/` and `:` ──
    // An exact ARN matches.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/k"}"#, "s3:GetObject", OBJ, &[], Allow),
    // Resource matching is case-sensitive.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::B/*"}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // `*` crosses `/`.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}"#, "s3:GetObject", "arn:aws:s3:::b/x/y/z", &[], Allow),
    // `*` crosses `:` too (unlike the ArnLike operator below, which matches component by component).
    row!(r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:iam::*:role/admin"}"#, "iam:PassRole", "arn:aws:iam::1:2:role/admin", &[], Allow),
    // `?` is one character...
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/file?.txt"}"#, "s3:GetObject", "arn:aws:s3:::b/file1.txt", &[], Allow),
    // ...not two.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/file?.txt"}"#, "s3:GetObject", "arn:aws:s3:::b/file12.txt", &[], ImplicitDeny),
    // A list of resources: any of them matches.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::a/*","arn:aws:s3:::b/*"]}"#, "s3:GetObject", OBJ, &[], Allow),
    // ── NotResource: the statement applies to every resource not listed ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}"#, "s3:GetObject", "arn:aws:s3:::public/x", &[], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}"#, "s3:GetObject", "arn:aws:s3:::secret/x", &[], ImplicitDeny),
    // ── The seed's policy, verbatim ──
    // The stage wildcard admits prod.
    row!(SEED, "execute-api:Invoke", "arn:aws:execute-api:eu-west-3:123456789012:abc123/prod/POST/predict", &[], Allow),
    // The method is literal: GET is not POST.
    row!(SEED, "execute-api:Invoke", "arn:aws:execute-api:eu-west-3:123456789012:abc123/prod/GET/predict", &[], ImplicitDeny),
    // The API id is literal.
    row!(SEED, "execute-api:Invoke", "arn:aws:execute-api:eu-west-3:123456789012:zzz999/prod/POST/predict", &[], ImplicitDeny),
    // Only the action named.
    row!(SEED, "execute-api:ManageConnections", "arn:aws:execute-api:eu-west-3:123456789012:abc123/prod/POST/predict", &[], ImplicitDeny),
    // ── String operators (case-sensitive values; keys case-insensitive) ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "alice")], Allow),
    // StringEquals compares values case-sensitively.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "Alice")], ImplicitDeny),
    // Condition key names are case-insensitive.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"AWS:UserName":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "alice")], Allow),
    // A positive operator on an absent key is false.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // Several values of one key are ORed.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":["bob","alice"]}}}"#, "s3:GetObject", OBJ, &[("aws:username", "alice")], Allow),
    // Several keys are ANDed: one false key makes the condition false.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice","aws:PrincipalType":"User"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "alice"), ("aws:PrincipalType", "Role")], ImplicitDeny),
    // Several operators are ANDed.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice"},"Bool":{"aws:SecureTransport":"true"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "alice"), ("aws:SecureTransport", "true")], Allow),
    // StringNotEquals: a different value passes.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotEquals":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "bob")], Allow),
    // Negated operators with several values are NORed: matching any one fails.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotEquals":{"aws:username":["alice","bob"]}}}"#, "s3:GetObject", OBJ, &[("aws:username", "bob")], ImplicitDeny),
    // A negated operator on an absent key is true (AWS: "the condition is true").
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotEquals":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    // StringEqualsIgnoreCase ignores case.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualsIgnoreCase":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "ALICE")], Allow),
    // StringNotEqualsIgnoreCase: equal but for case is equal.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotEqualsIgnoreCase":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "ALICE")], ImplicitDeny),
    // StringLike: `*` glob.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLike":{"s3:prefix":"home/*"}}}"#, "s3:ListBucket", OBJ, &[("s3:prefix", "home/alice/x")], Allow),
    // StringLike: `?` is exactly one character.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLike":{"s3:prefix":"v?"}}}"#, "s3:ListBucket", OBJ, &[("s3:prefix", "v10")], ImplicitDeny),
    // StringNotLike: not matching the glob passes...
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotLike":{"s3:prefix":"tmp/*"}}}"#, "s3:ListBucket", OBJ, &[("s3:prefix", "home/x")], Allow),
    // ...matching it fails.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotLike":{"s3:prefix":"tmp/*"}}}"#, "s3:ListBucket", OBJ, &[("s3:prefix", "tmp/x")], ImplicitDeny),
    // StringEquals has no wildcards: `*` is a literal star.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"s3:prefix":"*"}}}"#, "s3:ListBucket", OBJ, &[("s3:prefix", "anything")], ImplicitDeny),
    // ── …IfExists: absent key → true; present key → the operator's own test ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "bob")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLikeIfExists":{"s3:prefix":"home/*"}}}"#, "s3:ListBucket", OBJ, &[("s3:prefix", "home/a")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotEqualsIfExists":{"aws:username":"alice"}}}"#, "s3:GetObject", OBJ, &[("aws:username", "alice")], ImplicitDeny),
    // ── Numeric operators: numbers compare as numbers ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "5")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "10")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThanEquals":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "10")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericGreaterThan":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "11")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "9.5")], ImplicitDeny),
    // A JSON number is accepted, and 10 equals 10.0 numerically.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericEquals":{"s3:max-keys":10}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "10.0")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericNotEquals":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "3")], Allow),
    // A request value that is not a number matches nothing.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[("s3:max-keys", "five")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThanIfExists":{"s3:max-keys":"10"}}}"#, "s3:ListBucket", OBJ, &[], Allow),
    // ── Date operators: ISO 8601 / RFC 3339 or epoch seconds, compared as instants ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2025-06-01T12:00:00Z")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2025-06-01T12:00:00Z")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThanEquals":{"aws:EpochTime":"1700000000"}}}"#, "s3:GetObject", OBJ, &[("aws:EpochTime", "1700000000")], Allow),
    // Offsets count: 12:00+02:00 is 10:00Z, which 11:00Z is not before.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2025-06-01T12:00:00+02:00"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2025-06-01T11:00:00Z")], ImplicitDeny),
    // A bare date is midnight UTC.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateEquals":{"aws:CurrentTime":"2025-06-01"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2025-06-01T00:00:00Z")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateNotEquals":{"aws:CurrentTime":"2025-06-01T00:00:00Z"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2025-06-02T00:00:00Z")], Allow),
    // Epoch seconds in the policy against an RFC 3339 request value.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"1700000000"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2024-01-01T00:00:00Z")], Allow),
    // The epoch and the calendar agree (2024-02-29, a leap day, at noon).
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateEquals":{"aws:EpochTime":"2024-02-29T12:00:00Z"}}}"#, "s3:GetObject", OBJ, &[("aws:EpochTime", "1709208000")], Allow),
    // Fractional seconds count: 23:59:59.999 is still before midnight.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThanEquals":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}}"#, "s3:GetObject", OBJ, &[("aws:CurrentTime", "2024-12-31T23:59:59.999Z")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThanEqualsIfExists":{"aws:CurrentTime":"2025-01-01"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    // ── Bool ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#, "s3:GetObject", OBJ, &[("aws:SecureTransport", "true")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#, "s3:GetObject", OBJ, &[("aws:SecureTransport", "false")], ImplicitDeny),
    // The usual "deny plain HTTP" statement beats an Allow.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}"#, "s3:GetObject", OBJ, &[("aws:SecureTransport", "false")], ExplicitDeny),
    // A JSON boolean in the policy is the string "true".
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":true}}}"#, "s3:GetObject", OBJ, &[("aws:SecureTransport", "true")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"BoolIfExists":{"aws:SecureTransport":"true"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // ── Null: "true" → the key is absent; "false" → present ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"true"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"true"}}}"#, "s3:GetObject", OBJ, &[("aws:TokenIssueTime", "2025-01-01T00:00:00Z")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"false"}}}"#, "s3:GetObject", OBJ, &[("aws:TokenIssueTime", "2025-01-01T00:00:00Z")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"false"}}}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // ── IpAddress / NotIpAddress: IPv4 and IPv6 CIDRs, plain addresses ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "203.0.113.7")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "198.51.100.1")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "198.51.100.1")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "203.0.113.200")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "2001:db8:1::5")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "2001:db9::1")], ImplicitDeny),
    // A plain address is a block of one; a list of blocks is ORed.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.1"]}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "192.0.2.1")], Allow),
    // An IPv4-mapped IPv6 caller (dual-stack socket) is its IPv4 address.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "::ffff:203.0.113.9")], Allow),
    // An IPv4 block never holds an IPv6 address.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceIp", "2001:db8::1")], ImplicitDeny),
    // NotIpAddress on an absent key is true (negated operator).
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}}"#, "s3:GetObject", OBJ, &[], Allow),
    // ── ARN operators: each of the six components matched on its own ──
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket-*"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceArn", "arn:aws:s3:::bucket-1")], Allow),
    // The account `*` cannot swallow a colon into the resource component.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:iam::*:role/admin"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceArn", "arn:aws:iam::1:2:role/admin")], ImplicitDeny),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:eu-west-3:123456789012:topic"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceArn", "arn:aws:sns:eu-west-3:123456789012:topic")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:eu-west-3:123456789012:topic"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceArn", "arn:aws:sns:eu-west-3:123456789012:other")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnNotLike":{"aws:SourceArn":"arn:aws:sns:*:*:top*"}}}"#, "s3:GetObject", OBJ, &[("aws:SourceArn", "arn:aws:sns:eu-west-3:123456789012:topic")], ImplicitDeny),
    // A policy variable inside an ARN value.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/${aws:username}"}}}"#, "s3:GetObject", OBJ, &[("aws:PrincipalArn", ALICE), ("aws:username", "alice")], Allow),
    // ── Set operators over multi-valued keys ──
    // ForAnyValue: one request value matching one policy value is enough.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "cost|env")], Allow),
    // ForAnyValue on an absent key is false.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}}"#, "s3:PutObject", OBJ, &[], ImplicitDeny),
    // ForAllValues: every request value must match some policy value.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "team|env")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "team|owner")], ImplicitDeny),
    // ForAllValues on an absent key is true (AWS warns about exactly this).
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}"#, "s3:PutObject", OBJ, &[], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAllValues:StringLike":{"aws:TagKeys":"Created*"}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "CreatedBy|CreatedAt")], Allow),
    // Without a prefix, a multi-valued key behaves as ForAnyValue.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:TagKeys":"env"}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "cost|env")], Allow),
    // Without a prefix, a negated operator is the negation of the positive one: no request
    // value may match (AWS documents no rule for this case; see condition.rs).
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringNotEquals":{"aws:TagKeys":"env"}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "cost|env")], ImplicitDeny),
    // ForAnyValue with a negated operator: some request value outside the policy's set.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["DataClass","Owner"]}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "Dept|DataClass")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["DataClass","Owner"]}}}"#, "s3:PutObject", OBJ, &[("aws:TagKeys", "DataClass|Owner")], ImplicitDeny),
    // IfExists with a set prefix: an absent key is still true.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"env"}}}"#, "s3:PutObject", OBJ, &[], Allow),
    // ── Policy variables ──
    // ${aws:username} in a resource.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}"#, "s3:GetObject", "arn:aws:s3:::home/alice/f", &[("aws:username", "alice")], Allow),
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}"#, "s3:GetObject", "arn:aws:s3:::home/bob/f", &[("aws:username", "alice")], ImplicitDeny),
    // An unknown variable makes the resource entry match nothing.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}"#, "s3:GetObject", "arn:aws:s3:::home/alice/f", &[], ImplicitDeny),
    // ...unless the variable has a default.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username, 'guest'}/*"}"#, "s3:GetObject", "arn:aws:s3:::home/guest/f", &[], Allow),
    // A variable in a condition value.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLike":{"s3:prefix":"${aws:username}/*"}}}"#, "s3:ListBucket", OBJ, &[("aws:username", "alice"), ("s3:prefix", "alice/docs")], Allow),
    // A tag variable; the key is case-insensitive like every condition key.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::team-${aws:PrincipalTag/team}/*"}"#, "s3:GetObject", "arn:aws:s3:::team-ml/x", &[("aws:principaltag/TEAM", "ml")], Allow),
    // Version 2008-10-17 has no variables: the text stays literal...
    row!(r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}]}"#, "s3:GetObject", "arn:aws:s3:::home/alice/f", &[("aws:username", "alice")], ImplicitDeny),
    // ...and matches only itself.
    row!(r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}]}"#, "s3:GetObject", "arn:aws:s3:::home/${aws:username}/f", &[], Allow),
    // ${*} is a literal star...
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${*}"}"#, "s3:GetObject", "arn:aws:s3:::b/*", &[], Allow),
    // ...not a wildcard.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${*}"}"#, "s3:GetObject", "arn:aws:s3:::b/x", &[], ImplicitDeny),
    // A substituted value is literal text: a `*` user name is not a wildcard.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/f"}"#, "s3:GetObject", "arn:aws:s3:::home/x/f", &[("aws:username", "*")], ImplicitDeny),
    // A multi-valued key is no variable.
    row!(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::t/${aws:TagKeys}"}"#, "s3:GetObject", "arn:aws:s3:::t/a", &[("aws:TagKeys", "a|b")], ImplicitDeny),
    // ── Deny precedence and the default ──
    // An explicit Deny in a second policy beats an Allow in the first.
    row!(ALLOW_S3, "s3:DeleteObject", OBJ, &[], ExplicitDeny, also = r#"{"Effect":"Deny","Action":"s3:Delete*","Resource":"*"}"#),
    // A Deny first in a policy beats an Allow after it.
    row!(r#"{"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},{"Effect":"Allow","Action":"*","Resource":"*"}"#, "s3:GetObject", OBJ, &[], ExplicitDeny),
    // A Deny that does not apply changes nothing.
    row!(ALLOW_S3, "s3:GetObject", OBJ, &[], Allow, also = r#"{"Effect":"Deny","Action":"s3:Delete*","Resource":"*"}"#),
    // A Deny whose condition fails does not apply.
    row!(ALLOW_S3, "s3:GetObject", OBJ, &[("aws:SecureTransport", "true")], Allow, also = r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#),
    // No policy: implicit deny.
    row!("", "s3:GetObject", OBJ, &[], ImplicitDeny),
    // Nothing applicable: implicit deny.
    row!(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}"#, "s3:GetObject", OBJ, &[], ImplicitDeny),
    // ── Identity policies with a resource-based policy (same account) ──
    // Principal "*" admits anyone, anonymous callers included.
    row!("", "s3:GetObject", OBJ, &[], Allow, on_resource = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#),
    // {"AWS": "*"} is the same as "*".
    row!("", "s3:GetObject", OBJ, &[], Allow, on_resource = r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*"}"#),
    // A named principal matches its ARN...
    row!("", "s3:GetObject", OBJ, &[], Allow, principal = Some(ALICE), on_resource = r#"{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:user/alice"]},"Action":"s3:*","Resource":"*"}"#),
    // ...and no one else.
    row!("", "s3:GetObject", OBJ, &[], ImplicitDeny, principal = Some(BOB), on_resource = r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:*","Resource":"*"}"#),
    // ...not an anonymous caller either.
    row!("", "s3:GetObject", OBJ, &[], ImplicitDeny, on_resource = r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:*","Resource":"*"}"#),
    // NotPrincipal in a Deny: everyone but alice is denied, whatever their own policies say.
    row!(ALLOW_ALL, "s3:GetObject", OBJ, &[], ExplicitDeny, principal = Some(BOB), on_resource = r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:*","Resource":"*"}"#),
    row!(ALLOW_ALL, "s3:GetObject", OBJ, &[], Allow, principal = Some(ALICE), on_resource = r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:*","Resource":"*"}"#),
    // Same account: the identity side alone may allow.
    row!(ALLOW_S3, "s3:GetObject", OBJ, &[], Allow, principal = Some(BOB), on_resource = r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:*","Resource":"*"}"#),
    // An identity Deny beats a resource-policy Allow.
    row!(r#"{"Effect":"Deny","Action":"s3:*","Resource":"*"}"#, "s3:GetObject", OBJ, &[], ExplicitDeny, principal = Some(ALICE), on_resource = r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#),
    // A resource-policy Deny beats an identity Allow.
    row!(ALLOW_S3, "s3:GetObject", OBJ, &[], ExplicitDeny, principal = Some(ALICE), on_resource = r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"*"}"#),
    // A bare account id stands for the account's root user.
    row!("", "s3:GetObject", OBJ, &[], Allow, principal = Some("arn:aws:iam::123456789012:root"), on_resource = r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s3:*","Resource":"*"}"#),
    row!("", "s3:GetObject", OBJ, &[], Allow, principal = Some("lambda.amazonaws.com"), on_resource = r#"{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"s3:*","Resource":"*"}"#),
    // Resource-policy statements still need their action, resource and conditions.
    row!("", "s3:GetObject", OBJ, &[("aws:SourceIp", "198.51.100.1")], ImplicitDeny, on_resource = r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#),
];

/// A row's policy as a document: statements alone are wrapped in a 2012-10-17 document.
fn document(text: &str) -> String {
    if text.starts_with(r#"{"Effect""#) || text.starts_with(r#"{"Sid""#) {
        format!(r#"{{"Version":"2012-10-17","Statement":[{text}]}}"#)
    } else {
        text.to_owned()
    }
}

fn context(pairs: &[(&str, &str)]) -> Context {
    let mut ctx = Context::new();
    for (key, value) in pairs {
        if value.contains('|') {
            ctx.set_many(key, value.split('|').map(str::to_owned).collect());
        } else {
            ctx.set(key, *value);
        }
    }
    ctx
}

fn run(row: &Row) -> Result<Decision, PolicyError> {
    let mut identity = Vec::new();
    for text in [row.policy, row.also].into_iter().filter(|t| !t.is_empty()) {
        identity.push(Policy::parse(&document(text))?);
    }
    let on_resource = match row.on_resource {
        "" => None,
        text => Some(Policy::parse_resource_policy(&document(text))?),
    };
    let ctx = context(row.ctx);
    let request = Request { action: row.action, resource: row.resource, principal_arn: row.principal, context: &ctx };
    let refs: Vec<&Policy> = identity.iter().collect();
    Ok(match &on_resource {
        Some(resource) => evaluate_with_resource_policy(&refs, Some(resource), &request).decision,
        None => evaluate(&refs, &request).decision,
    })
}

#[test]
fn evaluation_table() {
    assert!(ROWS.len() >= 60, "the table has {} rows", ROWS.len());
    let failures: Vec<String> = ROWS
        .iter()
        .filter_map(|row| match run(row) {
            Ok(got) if got == row.expect => None,
            Ok(got) => Some(format!(
                "  tests.rs:{}: expected {:?}, got {:?} ({} on {})",
                row.line, row.expect, got, row.action, row.resource
            )),
            Err(e) => Some(format!("  tests.rs:{}: the policy does not parse: {e}", row.line)),
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), ROWS.len(), failures.join("\n"));
}

#[test]
fn verdict_names_the_deciding_statement() {
    let allow =
        Policy::parse(&document(r#"{"Sid":"Read","Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#)).unwrap();
    let deny = Policy::parse(&document(
        r#"{"Effect":"Allow","Action":"s3:List*","Resource":"*"},{"Sid":"NoDelete","Effect":"Deny","Action":"s3:Delete*","Resource":"*"}"#,
    ))
    .unwrap();
    let ctx = Context::new();
    let req = |action| Request { action, resource: OBJ, principal_arn: Some(ALICE), context: &ctx };
    let verdict =
        |d, p, s, sid: Option<&str>| Verdict { decision: d, policy: p, statement: s, sid: sid.map(str::to_owned) };

    assert_eq!(
        evaluate(&[&allow, &deny], &req("s3:GetObject")),
        verdict(Decision::Allow, Some(0), Some(0), Some("Read"))
    );
    assert_eq!(
        evaluate(&[&allow, &deny], &req("s3:DeleteObject")),
        verdict(Decision::ExplicitDeny, Some(1), Some(1), Some("NoDelete"))
    );
    assert_eq!(evaluate(&[&allow, &deny], &req("s3:ListBucket")), verdict(Decision::Allow, Some(1), Some(0), None));
    assert_eq!(evaluate(&[&allow, &deny], &req("s3:PutObject")), verdict(Decision::ImplicitDeny, None, None, None));
    assert!(evaluate(&[&allow], &req("s3:GetObject")).is_allowed());
    assert!(!evaluate(&[&deny], &req("s3:DeleteObject")).is_allowed());

    // The resource-based policy counts as the one after the identity policies.
    let bucket = Policy::parse_resource_policy(&document(
        r#"{"Sid":"Public","Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"*"}"#,
    ))
    .unwrap();
    assert_eq!(
        evaluate_with_resource_policy(&[&allow, &deny], Some(&bucket), &req("s3:PutObject")),
        verdict(Decision::Allow, Some(2), Some(0), Some("Public"))
    );
    assert_eq!(
        evaluate_with_resource_policy(&[&allow], None, &req("s3:PutObject")),
        verdict(Decision::ImplicitDeny, None, None, None)
    );
}

#[test]
fn administrator_access_allows_everything() {
    let admin = Policy::administrator_access();
    let ctx = Context::new();
    for (action, resource) in [("s3:GetObject", OBJ), ("iam:CreateUser", "*"), ("execute-api:Invoke", API)] {
        let request = Request { action, resource, principal_arn: None, context: &ctx };
        assert!(evaluate(&[&admin], &request).is_allowed(), "{action} on {resource}");
    }
}

#[test]
fn policies_can_be_shared_across_threads() {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug>() {}
    shareable::<Policy>();
    shareable::<Context>();
}

#[test]
fn context_keys_are_case_insensitive() {
    let mut ctx = Context::new();
    ctx.set("aws:SourceIp", "192.0.2.1").set_many("aws:TagKeys", vec!["a".into(), "b".into()]);
    assert_eq!(ctx.get("AWS:SOURCEIP"), Some(&["192.0.2.1".to_owned()][..]));
    assert_eq!(ctx.get("aws:tagkeys").map(<[String]>::len), Some(2));
    ctx.set("aws:tagKeys", "c");
    assert_eq!(ctx.get("aws:TagKeys"), Some(&["c".to_owned()][..]));
    assert_eq!(ctx.get("aws:username"), None);
}

/// The request path skips building the context for policies that cannot read it; a policy
/// that can must say so, or its conditions would meet an empty context.
#[test]
fn policies_say_whether_they_read_the_request_context() {
    let cases = [
        (r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#, false),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}]}"#,
            true,
        ),
        (
            r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}]}"#,
            false,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            true,
        ),
    ];
    let wrong: Vec<_> =
        cases.iter().filter(|(doc, reads)| Policy::parse(doc).unwrap().reads_context() != *reads).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
