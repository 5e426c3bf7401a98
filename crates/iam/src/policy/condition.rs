//! Condition operators: compiling a statement's `Condition` block and deciding it.
//!
//! A block is `{ "Operator": { "key": value-or-list } }`. Several operators, and several keys
//! under one operator, are ANDed; several values of one key are ORed.
//!
//! What this implements, following AWS's "Condition operators", "…IfExists", "Null" and
//! "Set operators for multivalued context keys" documentation:
//!
//! - **Key absent** from the request context (or set to an empty list):
//!   - `…IfExists` forms: true;
//!   - `Null`: true for `"true"`, false for `"false"`;
//!   - `ForAllValues:`: true (the empty set is a subset of anything);
//!   - `ForAnyValue:`: false (no value can match);
//!   - otherwise false for positive operators and **true for negated ones** (`StringNotEquals`,
//!     `StringNotLike`, `NumericNotEquals`, `DateNotEquals`, `NotIpAddress`, `ArnNotEquals`,
//!     `ArnNotLike`, …): AWS documents that "if the policy condition requires that the key is
//!     not matched … and the right key is not present, the condition is true".
//! - **Key present**: each request value is tested against the policy values. For a positive
//!   operator a request value passes if it matches *any* policy value (OR); for a negated one
//!   it passes if it matches *none* (AWS's "NOR" rule for negated operators).
//!   - `ForAllValues:`: every request value must pass;
//!   - `ForAnyValue:`: at least one request value must pass;
//!   - no prefix, positive operator: at least one request value must pass (as ForAnyValue);
//!   - no prefix, negated operator: the negation of the positive operator, i.e. no request
//!     value may match any policy value. For a single-valued key this is the same as either
//!     prefix; for a multi-valued key without a prefix AWS documents no rule, and the
//!     negation is the reading that keeps `X` and `NotX` complementary.
//! - A request value that is not of the operator's type (a non-number under `Numeric…`, a
//!   non-date under `Date…`, a non-address under `IpAddress`) matches no policy value.
//! - A policy value whose variable has no value (and no default) matches nothing; AWS calls
//!   such a value "effectively null".
//!
//! Policy variables are substituted in the values of the `String…`, `Arn…` and `Bool`
//! operators (AWS: "Policy variables – Supported"); `Numeric…`, `Date…` and `IpAddress` values
//! are typed and validated when the policy is parsed, so they cannot hold variables.

use super::json::Json;
use super::pattern::Pattern;
use super::scalar::{Cidr, parse_date, parse_number};
use super::{Context, PolicyError};

/// One operator applied to one key: the unit of evaluation.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    family: Family,
    negated: bool,
    qualifier: Qualifier,
    if_exists: bool,
    /// The context key, lower-cased (keys are case-insensitive).
    key: String,
    values: Values,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// `request <op> policy`: `NumericLessThan` holds when the request's value is smaller.
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Plain,
    ForAnyValue,
    ForAllValues,
}

/// Policy values, compiled for their family.
#[derive(Debug, Clone)]
enum Values {
    Text(Vec<Pattern>),
    Arn(Vec<ArnPattern>),
    Number(Vec<f64>),
    Date(Vec<i128>),
    Ip(Vec<Cidr>),
    /// `true`: the key must be absent; `false`: present.
    Null(Vec<bool>),
}

/// Base operator names: (name, family, negated).
const OPERATORS: &[(&str, Family, bool)] = &[
    ("StringEquals", Family::StringEquals, false),
    ("StringNotEquals", Family::StringEquals, true),
    ("StringEqualsIgnoreCase", Family::StringEqualsIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Family::StringEqualsIgnoreCase, true),
    ("StringLike", Family::StringLike, false),
    ("StringNotLike", Family::StringLike, true),
    ("NumericEquals", Family::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Family::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Family::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Family::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Family::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Family::Numeric(Cmp::Ge), false),
    ("DateEquals", Family::Date(Cmp::Eq), false),
    ("DateNotEquals", Family::Date(Cmp::Eq), true),
    ("DateLessThan", Family::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Family::Date(Cmp::Le), false),
    ("DateGreaterThan", Family::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Family::Date(Cmp::Ge), false),
    ("Bool", Family::Bool, false),
    ("IpAddress", Family::Ip, false),
    ("NotIpAddress", Family::Ip, true),
    ("ArnEquals", Family::Arn, false),
    ("ArnLike", Family::Arn, false),
    ("ArnNotEquals", Family::Arn, true),
    ("ArnNotLike", Family::Arn, true),
    ("Null", Family::Null, false),
];

const FAMILIES: &str = "the operators are StringEquals, StringNotEquals, StringEqualsIgnoreCase, \
StringNotEqualsIgnoreCase, StringLike, StringNotLike, NumericEquals, NumericNotEquals, NumericLessThan, \
NumericLessThanEquals, NumericGreaterThan, NumericGreaterThanEquals, DateEquals, DateNotEquals, DateLessThan, \
DateLessThanEquals, DateGreaterThan, DateGreaterThanEquals, Bool, IpAddress, NotIpAddress, ArnEquals, ArnLike, \
ArnNotEquals, ArnNotLike and Null; each but Null may end in IfExists and start with ForAnyValue: or ForAllValues:";

/// Splits an operator name into its parts, or explains why it is not one.
fn operator(name: &str) -> Result<(Family, bool, Qualifier, bool), String> {
    let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Qualifier::ForAnyValue, rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Qualifier::ForAllValues, rest)
    } else {
        (Qualifier::Plain, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let Some(&(_, family, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base) else {
        let hint = OPERATORS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(base))
            .map(|(n, _, _)| format!(" (operator names are case-sensitive: did you mean {n}?)"))
            .unwrap_or_default();
        return Err(format!("unknown condition operator {name:?}{hint}; {FAMILIES}"));
    };
    if family == Family::Null && if_exists {
        return Err("Null has no IfExists form: it already tests whether the key exists".to_owned());
    }
    if family == Family::Null && qualifier != Qualifier::Plain {
        return Err("Null takes no ForAnyValue:/ForAllValues: prefix: it tests the key, not its values".to_owned());
    }
    Ok((family, negated, qualifier, if_exists))
}

/// Compiles a `Condition` element found at `path`. `variables` is whether policy variables
/// are substituted (Version 2012-10-17).
pub(super) fn compile_block(block: &Json, path: &str, variables: bool) -> Result<Vec<Condition>, PolicyError> {
    let Json::Object(operators) = block else {
        return Err(PolicyError::new(
            path,
            format!("must be an object {{\"Operator\": {{\"key\": value}}}}, found {}", block.describe()),
        ));
    };
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let op_path = format!("{path}.{name}");
        let (family, negated, qualifier, if_exists) = operator(name).map_err(|m| PolicyError::new(&op_path, m))?;
        let Json::Object(keys) = keys else {
            return Err(PolicyError::new(
                &op_path,
                format!("must be an object mapping condition keys to values, found {}", keys.describe()),
            ));
        };
        if keys.is_empty() {
            return Err(PolicyError::new(&op_path, "names no condition key"));
        }
        for (key, value) in keys {
            let key_path = format!("{op_path}.{key}");
            if !key.contains(':') || key.starts_with(':') || key.chars().any(char::is_whitespace) {
                return Err(PolicyError::new(
                    &key_path,
                    "is not a condition key: keys are \"prefix:name\", e.g. aws:SourceIp or s3:prefix",
                ));
            }
            let values = compile_values(family, value, &key_path, variables)?;
            conditions.push(Condition { family, negated, qualifier, if_exists, key: key.to_lowercase(), values });
        }
    }
    Ok(conditions)
}

/// The texts of a scalar or a non-empty list of scalars, each with its path.
fn scalars<'a>(value: &'a Json, path: &str) -> Result<Vec<(String, &'a str)>, PolicyError> {
    const WHAT: &str = "must be a string, a number, a boolean or a list of them";
    match value {
        Json::Array(items) if items.is_empty() => Err(PolicyError::new(path, "must not be an empty list")),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                match item.scalar_text() {
                    Some(text) => Ok((item_path, text)),
                    None => Err(PolicyError::new(item_path, format!("{WHAT}, found {}", item.describe()))),
                }
            })
            .collect(),
        scalar => match scalar.scalar_text() {
            Some(text) => Ok(vec![(path.to_owned(), text)]),
            None => Err(PolicyError::new(path, format!("{WHAT}, found {}", scalar.describe()))),
        },
    }
}

fn compile_values(family: Family, value: &Json, path: &str, variables: bool) -> Result<Values, PolicyError> {
    let items = scalars(value, path)?;
    // Collects one compiled value per item, or the first error at its own path.
    fn each<T>(items: &[(String, &str)], f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, PolicyError> {
        items.iter().map(|(path, text)| f(text).map_err(|m| PolicyError::new(path, m))).collect()
    }
    let true_or_false = |text: &str| match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("must be \"true\" or \"false\", found {text:?}")),
    };
    Ok(match family {
        Family::StringEquals | Family::StringEqualsIgnoreCase => {
            Values::Text(each(&items, |text| Pattern::compile(text, false, variables))?)
        }
        Family::StringLike => Values::Text(each(&items, |text| Pattern::compile(text, true, variables))?),
        Family::Bool => Values::Text(each(&items, |text| {
            let pattern = Pattern::compile(text, false, variables)?;
            // A variable's value is only known per request; a literal must be a boolean.
            if !pattern.has_variables() {
                true_or_false(text)?;
            }
            Ok(pattern)
        })?),
        Family::Numeric(_) => Values::Number(each(&items, |text| {
            parse_number(text)
                .ok_or_else(|| format!("{text:?} is not a number (Numeric operators take decimal numbers)"))
        })?),
        Family::Date(_) => Values::Date(each(&items, |text| {
            parse_date(text).ok_or_else(|| {
                format!("{text:?} is not a date: use ISO 8601 (2024-01-31, 2024-01-31T12:00:00Z) or epoch seconds")
            })
        })?),
        Family::Ip => Values::Ip(each(&items, Cidr::parse)?),
        Family::Arn => Values::Arn(each(&items, |text| ArnPattern::compile(text, variables))?),
        Family::Null => Values::Null(each(&items, true_or_false)?),
    })
}

impl Condition {
    /// Whether the condition holds for the request context.
    pub(super) fn holds(&self, ctx: &Context) -> bool {
        let present = ctx.lookup(&self.key);
        if let Values::Null(wanted) = &self.values {
            let absent = present.is_none();
            return wanted.contains(&absent);
        }
        let Some(request) = present else {
            return self.if_exists
                || match self.qualifier {
                    Qualifier::ForAllValues => true,
                    Qualifier::ForAnyValue => false,
                    Qualifier::Plain => self.negated,
                };
        };
        let passes = |value: &String| self.matches_any(value, ctx) != self.negated;
        match self.qualifier {
            Qualifier::ForAllValues => request.iter().all(passes),
            Qualifier::ForAnyValue => request.iter().any(passes),
            Qualifier::Plain if self.negated => request.iter().all(passes),
            Qualifier::Plain => request.iter().any(passes),
        }
    }

    /// Whether one request value matches at least one policy value (the positive test).
    fn matches_any(&self, value: &str, ctx: &Context) -> bool {
        match (&self.values, self.family) {
            (Values::Text(patterns), Family::StringEqualsIgnoreCase) => {
                patterns.iter().any(|p| p.eq_ignore_case(value, ctx))
            }
            // Booleans compare case-insensitively (`True` is `true`); they are ASCII.
            (Values::Text(patterns), Family::Bool) => patterns.iter().any(|p| p.matches(value, ctx, true)),
            (Values::Text(patterns), _) => patterns.iter().any(|p| p.matches(value, ctx, false)),
            (Values::Arn(patterns), _) => patterns.iter().any(|p| p.matches(value, ctx)),
            (Values::Number(numbers), Family::Numeric(cmp)) => {
                parse_number(value).is_some_and(|v| numbers.iter().any(|&n| cmp.holds(v, n)))
            }
            (Values::Date(instants), Family::Date(cmp)) => {
                parse_date(value).is_some_and(|v| instants.iter().any(|&t| cmp.holds(v, t)))
            }
            (Values::Ip(blocks), _) => value.parse().is_ok_and(|ip| blocks.iter().any(|b| b.contains(ip))),
            _ => false,
        }
    }
}

/// An ARN pattern for the `Arn…` operators.
///
/// AWS checks "each of the six colon-delimited components of the ARN separately", each with
/// its own `*`/`?` wildcards, so `arn:aws:iam::*:role/x` cannot let the `*` swallow colons.
/// The sixth component (the resource) is the rest of the ARN, colons included. `ArnEquals`
/// and `ArnLike` behave alike: AWS documents them together.
#[derive(Debug, Clone)]
enum ArnPattern {
    /// The six components.
    Parts(Box<[Pattern; 6]>),
    /// A value whose components are only known once variables are substituted (such as
    /// `${aws:PrincipalArn}`), or `*`: matched as a whole.
    Whole(Pattern),
}

impl ArnPattern {
    fn compile(text: &str, variables: bool) -> Result<ArnPattern, String> {
        let parts = split_arn(text, variables);
        if let Ok(parts) = <[&str; 6]>::try_from(parts.as_slice())
            && parts[0] == "arn"
        {
            let compiled = parts.map(|part| Pattern::compile(part, true, variables));
            let [a, b, c, d, e, f] = compiled;
            return Ok(ArnPattern::Parts(Box::new([a?, b?, c?, d?, e?, f?])));
        }
        let whole = Pattern::compile(text, true, variables)?;
        if text == "*" || whole.has_variables() {
            return Ok(ArnPattern::Whole(whole));
        }
        Err(format!("{text:?} is not an ARN (arn:partition:service:region:account-id:resource)"))
    }

    fn matches(&self, value: &str, ctx: &Context) -> bool {
        match self {
            ArnPattern::Whole(pattern) => pattern.matches(value, ctx, false),
            ArnPattern::Parts(parts) => {
                let mut components = value.splitn(6, ':');
                parts.iter().all(|part| components.next().is_some_and(|c| part.matches(c, ctx, false)))
            }
        }
    }
}

/// Splits at the first five colons that are not inside a `${…}` variable.
fn split_arn(text: &str, variables: bool) -> Vec<&str> {
    let mut parts = Vec::with_capacity(6);
    let (mut start, mut in_var) = (0, false);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if parts.len() == 5 {
            break;
        }
        match b {
            b'$' if variables && bytes.get(i + 1) == Some(&b'{') => in_var = true,
            b'}' if in_var => in_var = false,
            b':' if !in_var => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}
