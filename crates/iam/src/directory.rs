//! The IAM directory: users, groups and their members, roles, managed policies, attachments
//! and inline policies, as AWS IAM names them.
//!
//! Every document is parsed with [`crate::policy::Policy::parse`] before it is stored, so a
//! stored policy always evaluates and an upload error points at the statement and key. Every
//! change commits and then empties the caches ([`crate::keys::Caches::invalidate`]), so the
//! next request is judged by the new state.

use nimbus_core::{clock, names};
use nimbus_meta::sqlx::{self, Row};

use crate::policy::Policy;
use crate::{Iam, IamError};

/// The built-in managed policy that allows every action on every resource.
pub const ADMINISTRATOR_ACCESS: &str = "AdministratorAccess";

/// What a policy can be attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Group,
    Role,
}

impl PrincipalKind {
    /// The name stored in `principal_kind` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::Role => "role",
        }
    }

    /// Parses `user`, `group` or `role`.
    pub fn parse(text: &str) -> Option<PrincipalKind> {
        match text {
            "user" => Some(PrincipalKind::User),
            "group" => Some(PrincipalKind::Group),
            "role" => Some(PrincipalKind::Role),
            _ => None,
        }
    }

    fn table(self) -> &'static str {
        match self {
            PrincipalKind::User => "users",
            PrincipalKind::Group => "iam_groups",
            PrincipalKind::Role => "iam_roles",
        }
    }
}

/// A user as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub arn: String,
    pub groups: Vec<String>,
    pub policies: Vec<String>,
    pub inline_policies: Vec<String>,
    pub tags: std::collections::BTreeMap<String, String>,
    pub created_ms: i64,
}

/// A group as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub arn: String,
    pub members: Vec<String>,
    pub policies: Vec<String>,
    pub inline_policies: Vec<String>,
}

/// A role as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    pub arn: String,
    pub description: String,
    pub trust_policy: String,
    pub policies: Vec<String>,
    pub inline_policies: Vec<String>,
}

/// A managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub name: String,
    pub arn: String,
    pub document: String,
    pub description: String,
    pub builtin: bool,
    /// Who holds it: `user/NAME`, `group/NAME`, `role/NAME`.
    pub attached_to: Vec<String>,
}

/// One attachment of a managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub kind: PrincipalKind,
    pub name: String,
    pub policy: String,
}

/// Attaches inside a transaction (bootstrap and admin creation); ignores a repeat.
pub(crate) async fn attach_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    kind: &str,
    name: &str,
    policy: &str,
) -> Result<(), IamError> {
    sqlx::query(
        "INSERT INTO iam_attachments (principal_kind, principal_name, policy_name) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(kind)
    .bind(name)
    .bind(policy)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn parse_document(name: &str, document: &str) -> Result<Policy, IamError> {
    Policy::parse(document).map_err(|error| IamError::Policy { name: name.to_string(), error })
}

impl Iam {
    async fn names(&self, sql: &str, bind: &str) -> Result<Vec<String>, IamError> {
        let rows = sqlx::query(sql).bind(bind).fetch_all(self.db.pool()).await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
    }

    async fn attached(&self, kind: PrincipalKind, name: &str) -> Result<(Vec<String>, Vec<String>), IamError> {
        let managed = sqlx::query(
            "SELECT policy_name FROM iam_attachments WHERE principal_kind = $1 AND principal_name = $2 ORDER BY policy_name",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(self.db.pool())
        .await?;
        let inline = sqlx::query(
            "SELECT policy_name FROM iam_inline_policies WHERE principal_kind = $1 AND principal_name = $2 ORDER BY policy_name",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(self.db.pool())
        .await?;
        let col = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<String>, IamError> {
            rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
        };
        Ok((col(managed)?, col(inline)?))
    }

    async fn require(&self, kind: PrincipalKind, name: &str) -> Result<(), IamError> {
        let sql = format!("SELECT name FROM {} WHERE name = $1", kind.table());
        match sqlx::query(&sql).bind(name).fetch_optional(self.db.pool()).await? {
            Some(_) => Ok(()),
            None => Err(IamError::NotFound { kind: kind.as_str(), name: name.to_string() }),
        }
    }

    /// Every user with its groups and policies.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, IamError> {
        let rows = sqlx::query("SELECT name, arn, tags, created_ms FROM users ORDER BY name")
            .fetch_all(self.db.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            let (policies, inline_policies) = self.attached(PrincipalKind::User, &name).await?;
            let groups = self
                .names("SELECT group_name FROM iam_group_members WHERE user_name = $1 ORDER BY group_name", &name)
                .await?;
            let tags: String = r.try_get("tags")?;
            out.push(UserInfo {
                arn: r.try_get("arn")?,
                tags: serde_json::from_str(&tags).unwrap_or_default(),
                created_ms: r.try_get("created_ms")?,
                name,
                groups,
                policies,
                inline_policies,
            });
        }
        Ok(out)
    }

    /// Deletes a user with its access keys, group memberships and policies. Requests signed
    /// with its keys are refused from the next one on.
    pub async fn delete_user(&self, name: &str) -> Result<bool, IamError> {
        let mut tx = self.db.write().await?;
        for sql in [
            "DELETE FROM access_keys WHERE user_name = $1",
            "DELETE FROM iam_group_members WHERE user_name = $1",
            "DELETE FROM iam_attachments WHERE principal_kind = 'user' AND principal_name = $1",
            "DELETE FROM iam_inline_policies WHERE principal_kind = 'user' AND principal_name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx.tx).await?;
        }
        let n = sqlx::query("DELETE FROM users WHERE name = $1").bind(name).execute(&mut *tx.tx).await?.rows_affected();
        tx.commit().await?;
        self.caches.invalidate();
        Ok(n > 0)
    }

    /// Replaces a user's tags (the values of `aws:PrincipalTag/…`).
    pub async fn set_user_tags(
        &self,
        name: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), IamError> {
        let mut tx = self.db.write().await?;
        let n = sqlx::query("UPDATE users SET tags = $1 WHERE name = $2")
            .bind(serde_json::to_string(tags).expect("a map of strings serialises"))
            .bind(name)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(IamError::UserNotFound(name.to_string()));
        }
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// Creates a group.
    pub async fn create_group(&self, name: &str) -> Result<(), IamError> {
        names::resource("group", name)?;
        let mut tx = self.db.write().await?;
        let n = sqlx::query(
            "INSERT INTO iam_groups (name, arn, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(format!("arn:aws:iam::{}:group/{name}", self.partition.account))
        .bind(clock::now_ms())
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(IamError::Exists { kind: "group", name: name.to_string() });
        }
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// Deletes a group, its memberships and its policies.
    pub async fn delete_group(&self, name: &str) -> Result<bool, IamError> {
        let mut tx = self.db.write().await?;
        for sql in [
            "DELETE FROM iam_group_members WHERE group_name = $1",
            "DELETE FROM iam_attachments WHERE principal_kind = 'group' AND principal_name = $1",
            "DELETE FROM iam_inline_policies WHERE principal_kind = 'group' AND principal_name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx.tx).await?;
        }
        let n = sqlx::query("DELETE FROM iam_groups WHERE name = $1")
            .bind(name)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.caches.invalidate();
        Ok(n > 0)
    }

    /// Every group with its members and policies.
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>, IamError> {
        let rows = sqlx::query("SELECT name, arn FROM iam_groups ORDER BY name").fetch_all(self.db.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            let (policies, inline_policies) = self.attached(PrincipalKind::Group, &name).await?;
            let members = self
                .names("SELECT user_name FROM iam_group_members WHERE group_name = $1 ORDER BY user_name", &name)
                .await?;
            out.push(GroupInfo { arn: r.try_get("arn")?, name, members, policies, inline_policies });
        }
        Ok(out)
    }

    /// Adds (`member = true`) or removes a user from a group.
    pub async fn set_group_member(&self, group: &str, user: &str, member: bool) -> Result<(), IamError> {
        self.require(PrincipalKind::Group, group).await?;
        self.require(PrincipalKind::User, user).await?;
        let mut tx = self.db.write().await?;
        let sql = if member {
            "INSERT INTO iam_group_members (group_name, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM iam_group_members WHERE group_name = $1 AND user_name = $2"
        };
        sqlx::query(sql).bind(group).bind(user).execute(&mut *tx.tx).await?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// Creates a role with its trust policy (who may assume it: a resource policy with
    /// `Principal`).
    pub async fn create_role(&self, name: &str, trust_policy: &str, description: &str) -> Result<(), IamError> {
        names::resource("role", name)?;
        Policy::parse_resource_policy(trust_policy)
            .map_err(|error| IamError::Policy { name: format!("{name} trust policy"), error })?;
        let mut tx = self.db.write().await?;
        let n = sqlx::query(
            "INSERT INTO iam_roles (name, arn, trust_policy, tags, description, created_ms) \
             VALUES ($1, $2, $3, '{}', $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(format!("arn:aws:iam::{}:role/{name}", self.partition.account))
        .bind(trust_policy)
        .bind(description)
        .bind(clock::now_ms())
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(IamError::Exists { kind: "role", name: name.to_string() });
        }
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// Deletes a role and its policies.
    pub async fn delete_role(&self, name: &str) -> Result<bool, IamError> {
        let mut tx = self.db.write().await?;
        for sql in [
            "DELETE FROM iam_attachments WHERE principal_kind = 'role' AND principal_name = $1",
            "DELETE FROM iam_inline_policies WHERE principal_kind = 'role' AND principal_name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx.tx).await?;
        }
        let n =
            sqlx::query("DELETE FROM iam_roles WHERE name = $1").bind(name).execute(&mut *tx.tx).await?.rows_affected();
        tx.commit().await?;
        self.caches.invalidate();
        Ok(n > 0)
    }

    /// Every role.
    pub async fn list_roles(&self) -> Result<Vec<RoleInfo>, IamError> {
        let rows = sqlx::query("SELECT name, arn, trust_policy, description FROM iam_roles ORDER BY name")
            .fetch_all(self.db.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            let (policies, inline_policies) = self.attached(PrincipalKind::Role, &name).await?;
            out.push(RoleInfo {
                arn: r.try_get("arn")?,
                trust_policy: r.try_get("trust_policy")?,
                description: r.try_get("description")?,
                name,
                policies,
                inline_policies,
            });
        }
        Ok(out)
    }

    /// Creates or replaces a managed policy (validated first). Returns whether the stored
    /// document changed. The built-in `AdministratorAccess` cannot be replaced.
    pub async fn put_policy(&self, name: &str, document: &str, description: &str) -> Result<bool, IamError> {
        names::resource("policy", name)?;
        parse_document(name, document)?;
        let mut tx = self.db.write().await?;
        let old = sqlx::query("SELECT document, builtin FROM iam_policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx.tx)
            .await?;
        if let Some(old) = &old {
            if old.try_get::<i64, _>("builtin")? != 0 {
                return Err(IamError::Conflict(format!(
                    "policy {name} is built in and cannot be changed; create a policy of another name"
                )));
            }
            if old.try_get::<String, _>("document")? == document {
                return Ok(false);
            }
        }
        let now = clock::now_ms();
        sqlx::query(
            "INSERT INTO iam_policies (name, arn, document, description, builtin, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, 0, $5, $5) \
             ON CONFLICT (name) DO UPDATE SET document = $3, description = $4, updated_ms = $5",
        )
        .bind(name)
        .bind(format!("arn:aws:iam::{}:policy/{name}", self.partition.account))
        .bind(document)
        .bind(description)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(true)
    }

    /// Every managed policy with who holds it.
    pub async fn list_policies(&self) -> Result<Vec<ManagedPolicy>, IamError> {
        let rows = sqlx::query("SELECT name, arn, document, description, builtin FROM iam_policies ORDER BY name")
            .fetch_all(self.db.pool())
            .await?;
        let holders = sqlx::query(
            "SELECT policy_name, principal_kind, principal_name FROM iam_attachments ORDER BY principal_kind, principal_name",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            let mut attached_to = Vec::new();
            for h in &holders {
                if h.try_get::<String, _>("policy_name")? == name {
                    attached_to.push(format!(
                        "{}/{}",
                        h.try_get::<String, _>("principal_kind")?,
                        h.try_get::<String, _>("principal_name")?
                    ));
                }
            }
            out.push(ManagedPolicy {
                arn: r.try_get("arn")?,
                document: r.try_get("document")?,
                description: r.try_get("description")?,
                builtin: r.try_get::<i64, _>("builtin")? != 0,
                name,
                attached_to,
            });
        }
        Ok(out)
    }

    /// Deletes a managed policy. As IAM, a policy still attached is not deleted (409 naming
    /// the holders), nor the built-in one.
    pub async fn delete_policy(&self, name: &str) -> Result<bool, IamError> {
        let Some(policy) = self.list_policies().await?.into_iter().find(|p| p.name == name) else {
            return Ok(false);
        };
        if policy.builtin {
            return Err(IamError::Conflict(format!("policy {name} is built in and cannot be deleted")));
        }
        if !policy.attached_to.is_empty() {
            return Err(IamError::Conflict(format!(
                "policy {name} is attached to {}; detach it first",
                policy.attached_to.join(", ")
            )));
        }
        let mut tx = self.db.write().await?;
        sqlx::query("DELETE FROM iam_policies WHERE name = $1").bind(name).execute(&mut *tx.tx).await?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(true)
    }

    /// Attaches (`attach = true`) or detaches a managed policy.
    pub async fn set_attachment(&self, a: &Attachment, attach: bool) -> Result<(), IamError> {
        self.require(a.kind, &a.name).await?;
        if attach && !self.list_policies().await?.iter().any(|p| p.name == a.policy) {
            return Err(IamError::NotFound { kind: "policy", name: a.policy.clone() });
        }
        let mut tx = self.db.write().await?;
        if attach {
            attach_in(&mut tx.tx, a.kind.as_str(), &a.name, &a.policy).await?;
        } else {
            sqlx::query(
                "DELETE FROM iam_attachments WHERE principal_kind = $1 AND principal_name = $2 AND policy_name = $3",
            )
            .bind(a.kind.as_str())
            .bind(&a.name)
            .bind(&a.policy)
            .execute(&mut *tx.tx)
            .await?;
        }
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// Creates or replaces an inline policy of a user, group or role (validated first).
    pub async fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        names::resource("policy", policy_name)?;
        parse_document(policy_name, document)?;
        self.require(kind, name).await?;
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO iam_inline_policies (principal_kind, principal_name, policy_name, document) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (principal_kind, principal_name, policy_name) DO UPDATE SET document = $4",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(policy_name)
        .bind(document)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// The document of an inline policy.
    pub async fn inline_policy(
        &self,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
    ) -> Result<Option<String>, IamError> {
        let row = sqlx::query(
            "SELECT document FROM iam_inline_policies WHERE principal_kind = $1 AND principal_name = $2 AND policy_name = $3",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(policy_name)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| r.try_get("document")).transpose()?)
    }

    /// Deletes an inline policy. Returns whether it existed.
    pub async fn delete_inline_policy(
        &self,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
    ) -> Result<bool, IamError> {
        let mut tx = self.db.write().await?;
        let n = sqlx::query(
            "DELETE FROM iam_inline_policies WHERE principal_kind = $1 AND principal_name = $2 AND policy_name = $3",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(policy_name)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        self.caches.invalidate();
        Ok(n > 0)
    }
}
