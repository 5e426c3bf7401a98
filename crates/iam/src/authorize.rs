//! Authorisation of an authenticated principal: the policies it holds (its own managed and
//! inline policies and those of its groups), the request context AWS defines, and the
//! verdict of [`crate::policy::evaluate`].
//!
//! A user's policies are parsed once and cached until the next change to the directory
//! ([`crate::keys::Caches`]); the request path then costs one map lookup and the evaluation.

use std::net::IpAddr;
use std::sync::Arc;

use nimbus_core::clock;
use nimbus_meta::sqlx::{self, Row};

use crate::policy::{self, Context, Decision, Policy, Verdict};
use crate::{Iam, IamError, Principal};

/// What a user holds: every policy that applies to it, and its tags.
#[derive(Debug)]
pub(crate) struct Grants {
    /// `(where it comes from, the policy)`: `AdministratorAccess`, `user/bob/inline-name`, …
    policies: Vec<(String, Policy)>,
    tags: Vec<(String, String)>,
}

/// Facts about the request that conditions may test, beyond who sent it.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    /// `aws:SourceIp`.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`: the request came over TLS.
    pub secure: bool,
    /// Further keys of the service (`s3:prefix`, …).
    pub extra: Vec<(String, String)>,
}

/// The outcome of an authorisation, with what the log and a denial need.
#[derive(Clone, Debug)]
pub struct Authorization {
    pub verdict: Verdict,
    /// Where the deciding statement lives (`AdministratorAccess`, `user/bob/inline`), if any.
    pub decided_by: Option<String>,
}

impl Authorization {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        self.verdict.is_allowed()
    }

    /// AWS's wording of a denial, naming the principal, action and resource.
    pub fn denial(&self, principal_arn: &str, action: &str, resource: &str) -> String {
        let because = match self.verdict.decision {
            Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
            _ => format!("because no identity-based policy allows the {action} action"),
        };
        format!("User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {because}")
    }

    /// One phrase for the access log: `allow by AdministratorAccess`, `deny (no allow)`, …
    pub fn reason(&self) -> String {
        let by = self.decided_by.as_deref().unwrap_or("-");
        let sid = self.verdict.sid.as_deref().map(|s| format!(" sid {s}")).unwrap_or_default();
        match self.verdict.decision {
            Decision::Allow => format!("allow by {by}{sid}"),
            Decision::ExplicitDeny => format!("explicit deny by {by}{sid}"),
            Decision::ImplicitDeny => "deny: no statement allows it".to_string(),
        }
    }
}

impl Iam {
    /// Decides whether `principal` may perform `action` on `resource`.
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        facts: &RequestFacts,
    ) -> Result<Authorization, IamError> {
        let grants = self.grants(&principal.user).await?;
        let mut context = Context::new();
        // Most requests meet only policies without conditions or variables: they never read
        // the context, so it is not built (a dozen allocations saved per request).
        if grants.policies.iter().any(|(_, p)| p.reads_context()) {
            self.fill_context(&mut context, principal, &grants, facts);
        }
        let policies: Vec<&Policy> = grants.policies.iter().map(|(_, p)| p).collect();
        let request =
            policy::Request { action, resource, principal_arn: Some(principal.arn.as_str()), context: &context };
        let verdict = policy::evaluate(&policies, &request);
        let decided_by = verdict.policy.and_then(|i| grants.policies.get(i)).map(|(name, _)| name.clone());
        Ok(Authorization { verdict, decided_by })
    }

    /// The AWS request context of a request by `principal`.
    fn fill_context(&self, context: &mut Context, principal: &Principal, grants: &Grants, facts: &RequestFacts) {
        context
            .set("aws:username", principal.user.as_str())
            .set("aws:userid", principal.access_key_id.as_str())
            .set("aws:PrincipalArn", principal.arn.as_str())
            .set("aws:PrincipalType", "User")
            .set("aws:PrincipalAccount", self.partition.account.as_str())
            .set("aws:SecureTransport", if facts.secure { "true" } else { "false" });
        let now = clock::now_ms();
        context.set("aws:CurrentTime", clock::rfc3339(now)).set("aws:EpochTime", (now / 1000).to_string());
        if let Some(ip) = facts.source_ip {
            context.set("aws:SourceIp", ip.to_string());
        }
        for (k, v) in &grants.tags {
            context.set(&format!("aws:PrincipalTag/{k}"), v.as_str());
        }
        for (k, v) in &facts.extra {
            context.set(k, v.as_str());
        }
    }

    async fn grants(&self, user: &str) -> Result<Arc<Grants>, IamError> {
        if let Some(g) = self.caches.grants.read().expect("cache lock").get(user) {
            return Ok(g.clone());
        }
        let generation = self.caches.generation();
        let grants = Arc::new(self.load_grants(user).await?);
        let mut cache = self.caches.grants.write().expect("cache lock");
        if self.caches.generation() == generation {
            cache.insert(user.to_string(), grants.clone());
        }
        Ok(grants)
    }

    async fn load_grants(&self, user: &str) -> Result<Grants, IamError> {
        let pool = self.db.pool();
        // The user's own and its groups' managed policies, then the inline ones.
        let managed = sqlx::query(
            "SELECT DISTINCT p.name, p.document FROM iam_policies p JOIN iam_attachments a ON a.policy_name = p.name \
             WHERE (a.principal_kind = 'user' AND a.principal_name = $1) \
                OR (a.principal_kind = 'group' AND a.principal_name IN \
                    (SELECT group_name FROM iam_group_members WHERE user_name = $1)) \
             ORDER BY p.name",
        )
        .bind(user)
        .fetch_all(pool)
        .await?;
        let inline = sqlx::query(
            "SELECT principal_kind, principal_name, policy_name, document FROM iam_inline_policies \
             WHERE (principal_kind = 'user' AND principal_name = $1) \
                OR (principal_kind = 'group' AND principal_name IN \
                    (SELECT group_name FROM iam_group_members WHERE user_name = $1)) \
             ORDER BY principal_kind, principal_name, policy_name",
        )
        .bind(user)
        .fetch_all(pool)
        .await?;
        let mut policies = Vec::with_capacity(managed.len() + inline.len());
        for r in managed {
            let name: String = r.try_get("name")?;
            let doc: String = r.try_get("document")?;
            policies.push((name.clone(), parse_stored(&name, &doc)?));
        }
        for r in inline {
            let name = format!(
                "{}/{}/{}",
                r.try_get::<String, _>("principal_kind")?,
                r.try_get::<String, _>("principal_name")?,
                r.try_get::<String, _>("policy_name")?
            );
            let doc: String = r.try_get("document")?;
            policies.push((name.clone(), parse_stored(&name, &doc)?));
        }
        let tags = sqlx::query("SELECT tags FROM users WHERE name = $1").bind(user).fetch_optional(pool).await?;
        let tags: std::collections::BTreeMap<String, String> = match tags {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>("tags")?).unwrap_or_default(),
            None => Default::default(),
        };
        Ok(Grants { policies, tags: tags.into_iter().collect() })
    }
}

/// Stored documents were validated on upload; one that no longer parses (a document from a
/// newer version) is an error, never silently skipped — skipping a Deny would widen access.
fn parse_stored(name: &str, doc: &str) -> Result<Policy, IamError> {
    Policy::parse(doc).map_err(|error| IamError::Policy { name: name.to_string(), error })
}
