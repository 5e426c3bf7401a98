//! The IAM policy language: parsing, validation and evaluation of AWS JSON policy documents.
//!
//! A document is parsed once, when it is uploaded or loaded ([`Policy::parse`] for identity
//! policies, [`Policy::parse_resource_policy`] for resource-based ones such as bucket policies).
//! Parsing validates the whole grammar and reports the first problem with a path into the
//! document ([`PolicyError`]). What comes out is precompiled: action and resource globs are
//! tokenised, condition values are already numbers, instants and CIDR blocks, condition keys are
//! lower-cased. [`evaluate`] and [`evaluate_with_resource_policy`] then run on the request path
//! of every authenticated request without touching JSON and without allocating.
//!
//! Semantics follow AWS's documentation for a single account:
//! - an explicit `Deny` in any applicable statement wins; otherwise any `Allow` allows;
//!   otherwise the request is implicitly denied;
//! - a resource-based policy's statement applies only to the principals it names, and with
//!   identity policies of the same account, either side may allow (nothing may deny);
//! - the condition rules (absent keys, `IfExists`, `Null`, the set prefixes, negated
//!   operators) are spelled out at the top of `condition.rs`.
//!
//! Nothing here knows about HTTP or the database: callers build a [`Context`] from the request
//! (`aws:SourceIp`, `aws:CurrentTime`, `aws:username`, `aws:PrincipalTag/<tag>`, `s3:prefix`, …)
//! and ask for a [`Verdict`].

mod condition;
mod eval;
mod grammar;
mod json;
#[cfg(test)]
mod parse_tests;
mod pattern;
mod scalar;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use eval::{evaluate, evaluate_with_resource_policy};

/// A parsed, validated and precompiled policy document.
///
/// Cheap to share: evaluation borrows it immutably, so one copy can serve every request.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<grammar::Statement>,
    /// Whether evaluation can read the request context (a `Condition` or a policy variable).
    reads_context: bool,
}

impl Policy {
    /// An identity policy (users, groups, roles): no Principal allowed.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        grammar::parse_policy(json, grammar::Kind::Identity)
    }

    /// A resource-based policy (bucket policies): Principal or NotPrincipal required.
    pub fn parse_resource_policy(json: &str) -> Result<Policy, PolicyError> {
        grammar::parse_policy(json, grammar::Kind::Resource)
    }

    /// Whether evaluating this policy can read the request context: it has a `Condition` or a
    /// policy variable. When no policy of a request does, the caller may skip building the
    /// context (the request path of most requests).
    pub fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// The AWS-managed `AdministratorAccess` document: Allow * on *.
    pub fn administrator_access() -> Policy {
        // The same document AWS publishes, parsed like any other so it cannot drift from the
        // grammar; the constant is covered by a test, so the expect cannot fire.
        const DOCUMENT: &str =
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        Policy::parse(DOCUMENT).expect("the AdministratorAccess document is valid")
    }
}

/// Why a policy document was rejected, and where.
///
/// `path` points into the document the way AWS's console does, e.g.
/// `Statement[2].Condition.StringEquals.aws:SourceIp`; problems with the document as a whole
/// (invalid JSON, too long) have the path `policy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    /// Where in the document the problem is.
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl PolicyError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError { path: path.into(), message: message.into() }
    }
}

/// The request context: condition keys (names compared case-insensitively) with one or more
/// string values.
///
/// A key set with an empty list of values is treated by evaluation as absent: AWS treats a
/// key that resolves to an empty data set the same way as a missing one.
#[derive(Debug, Clone, Default)]
pub struct Context {
    // Keys are stored lower-cased; the policy side lower-cases its keys when it is compiled,
    // so a lookup during evaluation needs no allocation.
    values: HashMap<String, Vec<String>>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets a single-valued key, replacing any previous values.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.to_lowercase(), vec![value.into()]);
        self
    }

    /// Sets a multi-valued key (such as `aws:TagKeys`), replacing any previous values.
    pub fn set_many(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.values.insert(key.to_lowercase(), values);
        self
    }

    /// The values of a key, if it was set.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values.get(&key.to_lowercase()).map(Vec::as_slice)
    }

    /// The values of an already lower-cased key; `None` when absent or empty.
    fn lookup(&self, lower_key: &str) -> Option<&[String]> {
        self.values.get(lower_key).map(Vec::as_slice).filter(|values| !values.is_empty())
    }

    /// The value of an already lower-cased key for a policy variable: AWS substitutes only
    /// single-valued keys, so a multi-valued one resolves to nothing.
    fn single(&self, lower_key: &str) -> Option<&str> {
        match self.lookup(lower_key) {
            Some([value]) => Some(value),
            _ => None,
        }
    }
}

/// One request to authorise.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `service:Action`, e.g. `s3:GetObject` or `execute-api:Invoke`.
    pub action: &'a str,
    /// The ARN of the resource acted upon.
    pub resource: &'a str,
    /// The caller's principal ARN; `None` for an anonymous request. Only resource-based
    /// policies look at it (through Principal/NotPrincipal).
    pub principal_arn: Option<&'a str>,
    /// The condition keys of the request, also the source of policy variables.
    pub context: &'a Context,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows the request and none denies it.
    Allow,
    /// A statement explicitly denies the request; nothing can override this.
    ExplicitDeny,
    /// No statement applies: denied by default.
    ImplicitDeny,
}

/// Which statement decided: index of the policy in the slice given, index of the statement,
/// its Sid.
///
/// With [`evaluate_with_resource_policy`], the resource-based policy counts as the policy
/// after the identity ones (its index is `identity.len()`). For an implicit deny all three
/// are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow, explicit deny or implicit deny.
    pub decision: Decision,
    /// Index of the deciding policy.
    pub policy: Option<usize>,
    /// Index of the deciding statement within that policy.
    pub statement: Option<usize>,
    /// The deciding statement's Sid, if it has one.
    pub sid: Option<String>,
}

impl Verdict {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}
