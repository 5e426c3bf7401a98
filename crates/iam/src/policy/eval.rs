//! Evaluation: AWS's decision logic for the policies of a single account.
//!
//! 1. If any applicable statement of any policy says `Deny`, the request is explicitly denied.
//! 2. Otherwise, if any applicable statement says `Allow`, it is allowed.
//! 3. Otherwise it is implicitly denied.
//!
//! A statement applies when its action, resource, principal (resource-based policies only)
//! and conditions all match. For identity policies together with a resource-based policy of
//! the same account, AWS allows when either side allows and nothing denies: the same three
//! rules over the union of the statements.

use super::grammar::{Effect, Matcher, Principals, Statement};
use super::pattern::Pattern;
use super::{Decision, Policy, Request, Verdict};

/// Identity-policy evaluation.
pub fn evaluate(policies: &[&Policy], request: &Request<'_>) -> Verdict {
    decide(policies.iter().copied(), request)
}

/// Identity policies together with a resource-based policy of the same account.
///
/// The resource-based policy's statements apply only to the principals they name; in the
/// [`Verdict`] it has the index `identity.len()`.
pub fn evaluate_with_resource_policy(
    identity: &[&Policy],
    resource: Option<&Policy>,
    request: &Request<'_>,
) -> Verdict {
    decide(identity.iter().copied().chain(resource), request)
}

fn decide<'p>(policies: impl Iterator<Item = &'p Policy>, request: &Request<'_>) -> Verdict {
    // The first applicable Allow is remembered, but every Deny must still be looked for:
    // a Deny later in the list overrides it.
    let mut allowed: Option<(usize, usize, &Statement)> = None;
    for (p, policy) in policies.enumerate() {
        for (s, statement) in policy.statements.iter().enumerate() {
            if statement.effect == Effect::Allow && allowed.is_some() {
                continue; // cannot change the outcome
            }
            if !applies(statement, request) {
                continue;
            }
            match statement.effect {
                Effect::Deny => return verdict(Decision::ExplicitDeny, p, s, statement),
                Effect::Allow => allowed = Some((p, s, statement)),
            }
        }
    }
    match allowed {
        Some((p, s, statement)) => verdict(Decision::Allow, p, s, statement),
        None => Verdict { decision: Decision::ImplicitDeny, policy: None, statement: None, sid: None },
    }
}

fn verdict(decision: Decision, policy: usize, statement: usize, st: &Statement) -> Verdict {
    Verdict { decision, policy: Some(policy), statement: Some(statement), sid: st.sid.clone() }
}

/// Whether a statement applies to the request. Cheapest and most selective tests first: most
/// statements of most policies are ruled out by their action.
fn applies(statement: &Statement, request: &Request<'_>) -> bool {
    let ctx = request.context;
    matcher_applies(&statement.actions, |p| p.matches(request.action, ctx, true))
        && matcher_applies(&statement.resources, |p| p.matches(request.resource, ctx, false))
        && statement.principal.as_ref().is_none_or(|p| principal_applies(p, request.principal_arn))
        && statement.conditions.iter().all(|c| c.holds(ctx))
}

fn matcher_applies(matcher: &Matcher, test: impl Fn(&Pattern) -> bool) -> bool {
    matcher.patterns.iter().any(test) != matcher.negated
}

fn principal_applies(principals: &Principals, caller: Option<&str>) -> bool {
    let named = principals.anyone || caller.is_some_and(|arn| principals.ids.iter().any(|id| id == arn));
    named != principals.negated
}
