//! The policy grammar: parsing and validating a JSON document into compiled statements.
//!
//! Everything is checked here, once, so that evaluation can trust what it is given: unknown
//! keys, wrong types, both or neither of `Action`/`NotAction`, malformed ARNs, CIDRs, numbers
//! and dates, unknown operators, duplicate Sids, duplicate JSON keys. Each error carries the
//! path of the offending element (`Statement[1].Condition.IpAddress.aws:SourceIp[0]`).

use std::collections::HashMap;

use super::condition::{self, Condition};
use super::json::Json;
use super::pattern::Pattern;
use super::{Policy, PolicyError};

/// AWS's limit for a customer managed policy, in characters not counting white space.
const MAX_CHARS: usize = 6144;

/// Which kind of policy a document is parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Attached to a user, group or role: the principal is implied, `Principal` is an error.
    Identity,
    /// Attached to a resource: every statement must say whom it is about.
    Resource,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub(super) sid: Option<String>,
    pub(super) effect: Effect,
    /// `None` in identity policies; always present in resource-based ones.
    pub(super) principal: Option<Principals>,
    pub(super) actions: Matcher,
    pub(super) resources: Matcher,
    /// ANDed.
    pub(super) conditions: Vec<Condition>,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: patterns, any of which matches.
#[derive(Debug, Clone)]
pub(super) struct Matcher {
    /// The `Not…` form: the statement applies to everything the patterns do not match.
    pub(super) negated: bool,
    pub(super) patterns: Vec<Pattern>,
}

/// `Principal`/`NotPrincipal`.
#[derive(Debug, Clone)]
pub(super) struct Principals {
    pub(super) negated: bool,
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    pub(super) anyone: bool,
    /// AWS ARNs, service names and federated providers, compared exactly with the caller's
    /// principal identifier. A bare account id is stored as that account's root ARN.
    pub(super) ids: Vec<String>,
}

/// Parses and validates a whole document.
pub(super) fn parse_policy(text: &str, kind: Kind) -> Result<Policy, PolicyError> {
    // Counted before parsing so an oversized upload costs no JSON work.
    let chars = text.chars().filter(|c| !c.is_whitespace()).count();
    if chars > MAX_CHARS {
        return Err(PolicyError::new(
            "policy",
            format!(
                "is {chars} characters long (not counting white space); the limit is {MAX_CHARS}, as for AWS managed policies"
            ),
        ));
    }
    let doc = Json::parse(text).map_err(|e| PolicyError::new("policy", format!("is not valid JSON: {e}")))?;
    let Json::Object(fields) = &doc else {
        return Err(PolicyError::new("policy", format!("must be a JSON object, found {}", doc.describe())));
    };
    let (mut version, mut statement) = (None, None);
    for (key, value) in fields {
        match key.as_str() {
            "Version" => version = Some(value),
            "Statement" => statement = Some(value),
            "Id" => {
                if !matches!(value, Json::String(_)) {
                    return Err(PolicyError::new("Id", format!("must be a string, found {}", value.describe())));
                }
            }
            other => return Err(unknown_key(other, other, &["Version", "Id", "Statement"], "a policy")),
        }
    }
    // Policy variables exist only in the 2012-10-17 language. AWS reads a document without
    // Version as 2008-10-17; nimbus reads it as the current language, the one every document
    // written today expects (AWS's own advice is to always say 2012-10-17).
    let variables = match version {
        None => true,
        Some(Json::String(v)) if v == "2012-10-17" => true,
        Some(Json::String(v)) if v == "2008-10-17" => false,
        Some(other) => {
            return Err(PolicyError::new(
                "Version",
                format!("must be \"2012-10-17\" or \"2008-10-17\", found {}", other.describe()),
            ));
        }
    };
    let statements: Vec<(String, &Json)> = match statement {
        None => return Err(PolicyError::new("policy", "has no Statement")),
        Some(Json::Array(items)) if items.is_empty() => {
            return Err(PolicyError::new("Statement", "must contain at least one statement"));
        }
        Some(Json::Array(items)) => items.iter().enumerate().map(|(i, s)| (format!("Statement[{i}]"), s)).collect(),
        Some(single @ Json::Object(_)) => vec![("Statement".to_owned(), single)],
        Some(other) => {
            return Err(PolicyError::new(
                "Statement",
                format!("must be an object or a list of objects, found {}", other.describe()),
            ));
        }
    };
    let mut sids: HashMap<&str, &str> = HashMap::new();
    let mut compiled = Vec::with_capacity(statements.len());
    for (path, value) in &statements {
        let statement = parse_statement(value, path, kind, variables)?;
        if let Some(Json::String(sid)) = field(value, "Sid") {
            // IAM refuses two statements with one Sid: a Verdict names its statement by Sid.
            if let Some(first) = sids.insert(sid, path) {
                return Err(PolicyError::new(
                    format!("{path}.Sid"),
                    format!("{sid:?} is already the Sid of {first}; Sids must be unique within a policy"),
                ));
            }
        }
        compiled.push(statement);
    }
    // Conservative: any `${` at all (even in a Sid) counts as a variable.
    let reads_context = (variables && text.contains("${")) || compiled.iter().any(|s| !s.conditions.is_empty());
    Ok(Policy { statements: compiled, reads_context })
}

fn field<'a>(statement: &'a Json, name: &str) -> Option<&'a Json> {
    match statement {
        Json::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

const STATEMENT_KEYS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];

fn parse_statement(value: &Json, path: &str, kind: Kind, variables: bool) -> Result<Statement, PolicyError> {
    let Json::Object(entries) = value else {
        return Err(PolicyError::new(path, format!("a statement must be an object, found {}", value.describe())));
    };
    for (key, _) in entries {
        if !STATEMENT_KEYS.contains(&key.as_str()) {
            return Err(unknown_key(&format!("{path}.{key}"), key, STATEMENT_KEYS, "a statement"));
        }
    }
    let get = |name: &str| entries.iter().find(|(k, _)| k == name).map(|(_, v)| v);

    let sid = match get("Sid") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(PolicyError::new(
                format!("{path}.Sid"),
                format!("must be a string, found {}", other.describe()),
            ));
        }
    };
    let effect = match get("Effect") {
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::new(
                format!("{path}.Effect"),
                format!("must be \"Allow\" or \"Deny\", found {}", other.describe()),
            ));
        }
        None => return Err(PolicyError::new(path, "has no Effect (\"Allow\" or \"Deny\")")),
    };

    let principal = match (get("Principal"), get("NotPrincipal"), kind) {
        (Some(_), Some(_), _) => return Err(PolicyError::new(path, "has both Principal and NotPrincipal; keep one")),
        (Some(_), None, Kind::Identity) | (None, Some(_), Kind::Identity) => {
            let name = if get("Principal").is_some() { "Principal" } else { "NotPrincipal" };
            return Err(PolicyError::new(
                format!("{path}.{name}"),
                "is not allowed in an identity policy (the principal is whoever the policy is attached to); \
                 Principal belongs in resource-based policies",
            ));
        }
        (None, None, Kind::Resource) => {
            return Err(PolicyError::new(path, "a resource-based policy statement needs Principal or NotPrincipal"));
        }
        (None, None, Kind::Identity) => None,
        (Some(p), None, Kind::Resource) => Some(parse_principals(p, &format!("{path}.Principal"), false)?),
        (None, Some(p), Kind::Resource) => Some(parse_principals(p, &format!("{path}.NotPrincipal"), true)?),
    };

    let actions = matcher(get("Action"), get("NotAction"), path, ("Action", "NotAction"), compile_action)?;
    let resources = matcher(get("Resource"), get("NotResource"), path, ("Resource", "NotResource"), |text| {
        if text != "*" && !(text.starts_with("arn:") && text.split(':').count() >= 6) {
            return Err(format!(
                "{text:?} is neither \"*\" nor an ARN (arn:partition:service:region:account-id:resource)"
            ));
        }
        Pattern::compile(text, true, variables)
    })?;
    let conditions = match get("Condition") {
        None => Vec::new(),
        Some(block) => condition::compile_block(block, &format!("{path}.Condition"), variables)?,
    };
    Ok(Statement { sid, effect, principal, actions, resources, conditions })
}

/// An action is `*` or `service:action`; the service is lower-case letters, digits and `-`
/// (wildcards allowed, as AWS does), the action has no colon. Matched case-insensitively.
fn compile_action(text: &str) -> Result<Pattern, String> {
    let valid = text == "*"
        || text.split_once(':').is_some_and(|(service, action)| {
            !service.is_empty()
                && service.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '*' | '?'))
                && !action.is_empty()
                && !action.contains(':')
                && !action.chars().any(char::is_whitespace)
        });
    if !valid {
        return Err(format!("{text:?} is neither \"*\" nor \"service:Action\" (e.g. \"s3:GetObject\", \"s3:Get*\")"));
    }
    // Actions never take policy variables.
    Pattern::compile(text, true, false)
}

/// Compiles exactly one of a `X`/`NotX` pair.
fn matcher(
    plain: Option<&Json>,
    not: Option<&Json>,
    path: &str,
    (name, not_name): (&str, &str),
    compile: impl Fn(&str) -> Result<Pattern, String>,
) -> Result<Matcher, PolicyError> {
    let (value, negated, name) = match (plain, not) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::new(path, format!("has both {name} and {not_name}; keep one")));
        }
        (None, None) => return Err(PolicyError::new(path, format!("needs {name} or {not_name}"))),
        (Some(v), None) => (v, false, name),
        (None, Some(v)) => (v, true, not_name),
    };
    let at = format!("{path}.{name}");
    let patterns = strings(value, &at)?
        .into_iter()
        .map(|(item_path, text)| compile(text).map_err(|m| PolicyError::new(item_path, m)))
        .collect::<Result<_, _>>()?;
    Ok(Matcher { negated, patterns })
}

/// A string or a non-empty list of strings, each with its path.
fn strings<'a>(value: &'a Json, path: &str) -> Result<Vec<(String, &'a str)>, PolicyError> {
    match value {
        Json::String(s) => Ok(vec![(path.to_owned(), s.as_str())]),
        Json::Array(items) if items.is_empty() => Err(PolicyError::new(path, "must not be an empty list")),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::String(s) => Ok((format!("{path}[{i}]"), s.as_str())),
                other => Err(PolicyError::new(
                    format!("{path}[{i}]"),
                    format!("must be a string, found {}", other.describe()),
                )),
            })
            .collect(),
        other => {
            Err(PolicyError::new(path, format!("must be a string or a list of strings, found {}", other.describe())))
        }
    }
}

fn parse_principals(value: &Json, path: &str, negated: bool) -> Result<Principals, PolicyError> {
    let mut principals = Principals { negated, anyone: false, ids: Vec::new() };
    let entries = match value {
        Json::String(s) if s == "*" => {
            principals.anyone = true;
            return Ok(principals);
        }
        Json::Object(entries) if !entries.is_empty() => entries,
        other => {
            return Err(PolicyError::new(
                path,
                format!(
                    "must be \"*\" or an object such as {{\"AWS\": \"arn:aws:iam::123456789012:user/alice\"}}, found {}",
                    other.describe()
                ),
            ));
        }
    };
    for (kind, ids) in entries {
        let kind_path = format!("{path}.{kind}");
        if !matches!(kind.as_str(), "AWS" | "Service" | "Federated") {
            return Err(unknown_key(&kind_path, kind, &["AWS", "Service", "Federated"], "a principal"));
        }
        for (id_path, id) in strings(ids, &kind_path)? {
            let fail = |m: String| Err(PolicyError::new(&id_path, m));
            if kind == "AWS" && id == "*" {
                principals.anyone = true;
            } else if kind == "AWS" && id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
                // AWS's shorthand for the account: its root user.
                principals.ids.push(format!("arn:aws:iam::{id}:root"));
            } else if kind == "AWS" && !(id.starts_with("arn:") && id.split(':').count() >= 6) {
                return fail(format!("{id:?} is neither \"*\", an account id nor an ARN"));
            } else if id.contains(['*', '?']) {
                // Principals are matched exactly: AWS has no partial wildcards here, and a
                // pattern that silently never matched would be worse than an error.
                return fail(format!("{id:?}: a principal cannot contain wildcards (only \"*\" alone, for everyone)"));
            } else if id.is_empty() || id.chars().any(char::is_whitespace) {
                return fail(format!("{id:?} is not a {kind} principal"));
            } else {
                principals.ids.push(id.to_owned());
            }
        }
    }
    Ok(principals)
}

fn unknown_key(path: &str, key: &str, known: &[&str], what: &str) -> PolicyError {
    // Element names are case-sensitive in AWS; a wrong case is the commonest slip, so say so.
    let hint = known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(key))
        .map(|k| format!(" (names are case-sensitive: did you mean {k}?)"))
        .unwrap_or_default();
    PolicyError::new(path, format!("unknown key{hint}; {what} has {}", known.join(", ")))
}
