//! Table tests of parsing: every malformed document names the place and the problem.
//!
//! Each row gives the kind of policy, the document, the expected error path and a fragment
//! the message must contain; [`parse_error_table`] reports every failing row at once.

use super::*;

#[derive(Clone, Copy)]
enum As {
    Identity,
    Resource,
}

/// `(line, kind, document, path, message fragment)`.
type ErrRow = (u32, As, &'static str, &'static str, &'static str);

macro_rules! bad {
    ($kind:ident, $doc:expr, $path:expr, $fragment:expr $(,)?) => {
        (line!(), As::$kind, $doc, $path, $fragment)
    };
}

#[rustfmt::skip]
const ERRORS: &[ErrRow] = &[
    // Effect is case-sensitive: exactly "Allow" or "Deny".
    bad!(Identity, r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#, "Statement[0].Effect", r#"must be "Allow" or "Deny", found "allow""#),
    // Effect is required.
    bad!(Identity, r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#, "Statement[0]", "has no Effect"),
    // Action and NotAction are exclusive.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}]}"#, "Statement[1]", "has both Action and NotAction; keep one"),
    // One of them is required.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#, "Statement[0]", "needs Action or NotAction"),
    // Resource and NotResource are exclusive, and one is required.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}]}"#, "Statement[0]", "has both Resource and NotResource"),
    bad!(Resource, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*"}]}"#, "Statement[0]", "needs Resource or NotResource"),
    // An empty Action list is an error, not "no action".
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#, "Statement[0].Action", "must not be an empty list"),
    // An action is "*" or "service:Action".
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":["s3:GetObject","GetObject"],"Resource":"*"}]}"#, "Statement[0].Action[1]", r#""GetObject" is neither "*" nor "service:Action""#),
    // A resource is "*" or an ARN of at least six parts.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"bucket/*"}]}"#, "Statement[0].Resource", r#""bucket/*" is neither "*" nor an ARN"#),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3"}]}"#, "Statement[0].Resource", "nor an ARN"),
    // Unknown keys are errors, with a hint when only the case is wrong.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","action":"*","Resource":"*"}]}"#, "Statement[0].action", "did you mean Action?"),
    bad!(Identity, r#"{"Version":"2012-10-17","Statements":[]}"#, "Statements", "unknown key"),
    // Identity policies have no Principal...
    bad!(Identity, r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#, "Statement.Principal", "not allowed in an identity policy"),
    // ...resource-based ones must have one.
    bad!(Resource, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#, "Statement[0]", "needs Principal or NotPrincipal"),
    bad!(Resource, r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"*","Resource":"*"}]}"#, "Statement[0]", "has both Principal and NotPrincipal"),
    bad!(Resource, r#"{"Statement":[{"Effect":"Allow","Principal":{"User":"alice"},"Action":"*","Resource":"*"}]}"#, "Statement[0].Principal.User", "unknown key"),
    bad!(Resource, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"*","Resource":"*"}]}"#, "Statement[0].Principal.AWS", "neither \"*\", an account id nor an ARN"),
    bad!(Resource, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/*"},"Action":"*","Resource":"*"}]}"#, "Statement[0].Principal.AWS", "cannot contain wildcards"),
    // Version is one of the two dates.
    bad!(Identity, r#"{"Version":"2012-10-18","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#, "Version", r#"must be "2012-10-17" or "2008-10-17""#),
    // Statement is required and not empty.
    bad!(Identity, r#"{"Version":"2012-10-17"}"#, "policy", "has no Statement"),
    bad!(Identity, r#"{"Statement":[]}"#, "Statement", "at least one statement"),
    // Sids are unique within a policy.
    bad!(Identity, r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#, "Statement[1].Sid", "already the Sid of Statement[0]"),
    // A malformed CIDR points at the value.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}]}"#, "Statement[2].Condition.IpAddress.aws:SourceIp", "prefix length must be 0 to 32"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.300"]}}}]}"#, "Statement[0].Condition.NotIpAddress.aws:SourceIp[1]", "is not an IP address"),
    // Numeric operators take numbers.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}]}"#, "Statement[0].Condition.NumericLessThan.s3:max-keys", r#""ten" is not a number"#),
    // Date operators take dates.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2025-13-01"}}}]}"#, "Statement[0].Condition.DateLessThan.aws:CurrentTime", "is not a date"),
    // Unknown operators are named, with the list of families.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqual":{"aws:username":"a"}}}]}"#, "Statement[0].Condition.StringEqual", "unknown condition operator \"StringEqual\"; the operators are StringEquals"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"stringequals":{"aws:username":"a"}}}]}"#, "Statement[0].Condition.stringequals", "did you mean StringEquals?"),
    // Null has no IfExists form.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}]}"#, "Statement[0].Condition.NullIfExists", "Null has no IfExists form"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:username":"yes"}}}]}"#, "Statement[0].Condition.Null.aws:username", r#"must be "true" or "false""#),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"1"}}}]}"#, "Statement[0].Condition.Bool.aws:SecureTransport", r#"must be "true" or "false""#),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"bucket"}}}]}"#, "Statement[0].Condition.ArnLike.aws:SourceArn", "is not an ARN"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"username":"a"}}}]}"#, "Statement[0].Condition.StringEquals.username", "is not a condition key"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":[]}}}]}"#, "Statement[0].Condition.StringEquals.aws:username", "must not be an empty list"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":{"a":1}}}}]}"#, "Statement[0].Condition.StringEquals.aws:username", "found an object"),
    // A policy variable must be closed.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::home/${aws:username/*"}]}"#, "Statement[0].Resource", "unterminated policy variable"),
    // Not JSON, duplicate keys, not an object.
    bad!(Identity, r#"{"Statement":[{"Effect":"Allow",}]}"#, "policy", "is not valid JSON"),
    bad!(Identity, r#"{"Statement":[{"Effect":"Deny","Effect":"Allow","Action":"*","Resource":"*"}]}"#, "policy", "duplicate key \"Effect\""),
    bad!(Identity, r#"["Allow"]"#, "policy", "must be a JSON object"),
];

fn parse(kind: As, doc: &str) -> Result<Policy, PolicyError> {
    match kind {
        As::Identity => Policy::parse(doc),
        As::Resource => Policy::parse_resource_policy(doc),
    }
}

#[test]
fn parse_error_table() {
    assert!(ERRORS.len() >= 15, "the table has {} rows", ERRORS.len());
    let failures: Vec<String> = ERRORS
        .iter()
        .filter_map(|&(line, kind, doc, path, fragment)| match parse(kind, doc) {
            Ok(_) => Some(format!("  parse_tests.rs:{line}: parsed, expected an error at {path}")),
            Err(e) if e.path == path && e.message.contains(fragment) => None,
            Err(e) => Some(format!("  parse_tests.rs:{line}: expected {path}: …{fragment}…, got {e}")),
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), ERRORS.len(), failures.join("\n"));
}

#[test]
fn error_display_is_path_then_message() {
    let e = Policy::parse(r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#).unwrap_err();
    assert_eq!(e.to_string(), r#"Statement[0].Effect: must be "Allow" or "Deny", found "allow""#);
    let _: &dyn std::error::Error = &e;
}

#[test]
fn documents_over_the_managed_policy_limit_are_refused() {
    // White space does not count, as for AWS: a padded small document passes...
    let padded = format!(r#"{{"Statement":{{"Effect":"Allow","Action":"*",{}"Resource":"*"}}}}"#, " ".repeat(10_000));
    assert!(Policy::parse(&padded).is_ok());
    // ...and a document of 6145 significant characters does not.
    let actions: Vec<String> = (0..600).map(|i| format!("\"s3:Get{i:04}\"")).collect();
    let long = format!(r#"{{"Statement":{{"Effect":"Allow","Action":[{}],"Resource":"*"}}}}"#, actions.join(","));
    let e = Policy::parse(&long).unwrap_err();
    assert_eq!(e.path, "policy");
    assert!(e.message.contains("the limit is 6144"), "{e}");
}

#[test]
fn valid_documents_parse() {
    for doc in [
        // Version and Id are optional; Statement may be a single object.
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        r#"{"Version":"2008-10-17","Id":"x","Statement":[{"Sid":"1","Effect":"Deny","NotAction":["iam:*"],"NotResource":"*"}]}"#,
        // Every operator family, IfExists and set prefixes, variables with defaults and escapes.
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::${aws:username, 'it''s'}/${*}${?}${$}","Condition":{
            "ForAllValues:StringLikeIfExists":{"aws:TagKeys":["a*","b?"]},"NumericGreaterThanEquals":{"s3:max-keys":[1,"2.5","-3"]},
            "DateLessThan":{"aws:CurrentTime":["2025-01-01","2025-01-01T10:00Z","2025-01-01T10:00:00.5+01:00",1700000000]},
            "IpAddress":{"aws:SourceIp":["0.0.0.0/0","::/0","2001:db8::1"]},"ArnLike":{"aws:SourceArn":["*","${aws:PrincipalArn}"]},
            "Bool":{"aws:SecureTransport":["True","${aws:ViaTls}"]},"Null":{"aws:TokenIssueTime":false}}}]}"#,
    ] {
        if let Err(e) = Policy::parse(doc) {
            panic!("{e}\n{doc}");
        }
    }
    for doc in [
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::1:user/a"],"Service":"lambda.amazonaws.com"},"Action":"s3:*","Resource":"*"}]}"#,
        r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"Federated":"cognito-identity.amazonaws.com"},"Action":"s3:*","NotResource":"arn:aws:s3:::b/*"}]}"#,
    ] {
        if let Err(e) = Policy::parse_resource_policy(doc) {
            panic!("{e}\n{doc}");
        }
    }
}
