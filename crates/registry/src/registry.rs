//! The registry service: every read and write of model groups, versions and aliases.

use std::collections::BTreeMap;

use nimbus_core::{clock, names};
use nimbus_meta::sqlx::{self, Any, Row, Transaction, any::AnyRow};
use nimbus_meta::{Db, WriteTx};
use tokio::sync::broadcast;

use crate::{ApprovalStatus, ModelEvent, ModelGroup, ModelVersion, NewVersion, RegistryError, RegistryEvent, Selector};

const VERSION_COLUMNS: &str = "group_name, version, artifact_uri, artifact_sha256, artifact_size, format, input_schema, \
    output_schema, metrics, parameters, lineage, tags, description, status, status_by, status_ms, status_description, \
    created_ms, created_by";

/// A registration committed by the caller, to announce with [`Registry::registered`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub group: String,
    pub version: i64,
    pub status: ApprovalStatus,
}

/// The model registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    events: broadcast::Sender<RegistryEvent>,
}

impl Registry {
    /// A registry over the metadata database.
    pub fn new(db: Db) -> Registry {
        let (events, _) = broadcast::channel(1024);
        Registry { db, events }
    }

    /// Receives every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    fn announce(&self, event: RegistryEvent) {
        tracing::info!(?event, "registry change");
        // No subscriber is fine: nothing is serving yet.
        let _ = self.events.send(event);
    }

    /// Creates a model group.
    pub async fn create_group(&self, name: &str, description: &str, actor: &str) -> Result<ModelGroup, RegistryError> {
        names::resource("model group", name)?;
        let mut tx = self.db.write().await?;
        let n = sqlx::query(
            "INSERT INTO model_groups (name, description, next_version, created_ms, created_by) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(clock::now_ms())
        .bind(actor)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Err(RegistryError::GroupExists(name.to_string()));
        }
        self.group(name).await
    }

    /// Creates the group unless it exists.
    pub async fn ensure_group(&self, name: &str, actor: &str) -> Result<ModelGroup, RegistryError> {
        match self.create_group(name, "", actor).await {
            Err(RegistryError::GroupExists(_)) => self.group(name).await,
            other => other,
        }
    }

    /// All groups, by name.
    pub async fn groups(&self) -> Result<Vec<ModelGroup>, RegistryError> {
        let rows = sqlx::query("SELECT name FROM model_groups ORDER BY name").fetch_all(self.db.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.group(&r.try_get::<String, _>("name")?).await?);
        }
        Ok(out)
    }

    /// One group with its summary.
    pub async fn group(&self, name: &str) -> Result<ModelGroup, RegistryError> {
        let row = sqlx::query(
            "SELECT name, description, created_ms, created_by, next_version FROM model_groups WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| RegistryError::GroupNotFound(name.to_string()))?;
        let latest: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM model_versions WHERE group_name = $1 AND status = 'Approved'")
                .bind(name)
                .fetch_one(self.db.pool())
                .await?
                .try_get("v")?;
        Ok(ModelGroup {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            created_ms: row.try_get("created_ms")?,
            created_by: row.try_get("created_by")?,
            version_count: row.try_get::<i64, _>("next_version")? - 1,
            latest_approved: latest,
            aliases: self.aliases(name).await?,
        })
    }

    async fn aliases(&self, group: &str) -> Result<BTreeMap<String, i64>, RegistryError> {
        let rows = sqlx::query("SELECT alias, version FROM model_aliases WHERE group_name = $1")
            .bind(group)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("alias")?, r.try_get("version")?))).collect()
    }

    /// Registers a new version. Its number is the group's next one, taken in the same
    /// transaction that inserts the row, so concurrent registrations never share a number
    /// and a failed one leaves no gap. The artifact is held from then on (it cannot be
    /// overwritten or deleted), so what is approved is what is served.
    pub async fn register(&self, group: &str, new: NewVersion, actor: &str) -> Result<ModelVersion, RegistryError> {
        let mut tx = self.db.write().await?;
        let registered = self.register_in(&mut tx, group, &new, actor).await?;
        tx.commit().await?;
        self.registered(registered).await
    }

    /// The work of [`Registry::register`] inside the caller's transaction, so the caller can
    /// commit more with it (a pipeline records its register step in the same commit). After
    /// the commit, pass the result to [`Registry::registered`].
    pub async fn register_in(
        &self,
        tx: &mut WriteTx,
        group: &str,
        new: &NewVersion,
        actor: &str,
    ) -> Result<Registered, RegistryError> {
        new.input_schema.validate("input_schema")?;
        new.output_schema.validate("output_schema")?;
        let Some((bucket, key)) = nimbus_store::parse_uri(&new.artifact_uri) else {
            return Err(RegistryError::InvalidField {
                field: "artifact_uri".into(),
                reason: format!("{:?} is not of the form s3://bucket/key", new.artifact_uri),
            });
        };
        if let Some((name, _)) = new.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(RegistryError::InvalidField {
                field: format!("metrics.{name}"),
                reason: "must be a finite number".into(),
            });
        }
        let status = new.status.unwrap_or(ApprovalStatus::PendingManualApproval);
        let now = clock::now_ms();
        let version: i64 = sqlx::query(
            "UPDATE model_groups SET next_version = next_version + 1 WHERE name = $1 RETURNING next_version - 1 AS v",
        )
        .bind(group)
        .fetch_optional(&mut *tx.tx)
        .await?
        .ok_or_else(|| RegistryError::GroupNotFound(group.to_string()))?
        .try_get("v")?;
        nimbus_store::holds::hold(
            &mut tx.tx,
            self.db.for_update(),
            bucket,
            key,
            &new.artifact_sha256,
            &format!("model group {group} version {version}"),
        )
        .await
        .map_err(|e| RegistryError::Artifact(e.to_string()))?;
        let json = |v: &dyn erased::Json| v.to_json();
        let approved_by = (status != ApprovalStatus::PendingManualApproval).then(|| actor.to_string());
        sqlx::query(&format!(
            "INSERT INTO model_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
        .bind(group)
        .bind(version)
        .bind(&new.artifact_uri)
        .bind(&new.artifact_sha256)
        .bind(new.artifact_size)
        .bind(&new.format)
        .bind(json(&new.input_schema))
        .bind(json(&new.output_schema))
        .bind(json(&new.metrics))
        .bind(json(&new.parameters))
        .bind(json(&new.lineage))
        .bind(json(&new.tags))
        .bind(&new.description)
        .bind(status.as_str())
        .bind(approved_by.clone())
        .bind(approved_by.as_ref().map(|_| now))
        .bind(None::<String>)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx.tx)
        .await?;
        record_event(&mut tx.tx, group, version, "Registered", status.as_str(), actor, now).await?;
        Ok(Registered { group: group.to_string(), version, status })
    }

    /// Announces a registration whose transaction has committed, and returns the version.
    pub async fn registered(&self, r: Registered) -> Result<ModelVersion, RegistryError> {
        self.announce(RegistryEvent::Registered { group: r.group.clone(), version: r.version, status: r.status });
        self.version(&r.group, r.version).await
    }

    /// Places the hold of every registered version on its artifact (for versions registered
    /// before holds existed). Idempotent; run at start-up.
    pub async fn hold_artifacts(&self) -> Result<usize, RegistryError> {
        let rows = sqlx::query("SELECT group_name, version, artifact_uri, artifact_sha256 FROM model_versions")
            .fetch_all(self.db.pool())
            .await?;
        let mut held = 0;
        for r in rows {
            let (group, version): (String, i64) = (r.try_get("group_name")?, r.try_get("version")?);
            let (uri, sha): (String, String) = (r.try_get("artifact_uri")?, r.try_get("artifact_sha256")?);
            let Some((bucket, key)) = nimbus_store::parse_uri(&uri) else { continue };
            let holder = format!("model group {group} version {version}");
            if nimbus_store::holds::holder(self.db.pool(), bucket, key).await?.is_some() {
                continue;
            }
            let mut tx = self.db.write().await?;
            match nimbus_store::holds::hold(&mut tx.tx, self.db.for_update(), bucket, key, &sha, &holder).await {
                Ok(()) => {
                    tx.commit().await?;
                    held += 1;
                }
                Err(e) => tracing::warn!(%group, version, "cannot hold the artifact: {e}"),
            }
        }
        Ok(held)
    }

    /// Versions of a group, newest first, optionally only those with `status`.
    pub async fn versions(
        &self,
        group: &str,
        status: Option<ApprovalStatus>,
    ) -> Result<Vec<ModelVersion>, RegistryError> {
        self.group(group).await?;
        let aliases = self.aliases(group).await?;
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE group_name = $1 AND ($2 = '' OR status = $2) ORDER BY version DESC"
        ))
        .bind(group)
        .bind(status.map(|s| s.as_str()).unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(|r| version_from_row(r, &aliases)).collect()
    }

    /// One version.
    pub async fn version(&self, group: &str, version: i64) -> Result<ModelVersion, RegistryError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE group_name = $1 AND version = $2"
        ))
        .bind(group)
        .bind(version)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some(r) => version_from_row(&r, &self.aliases(group).await?),
            None => {
                self.group(group).await?;
                Err(RegistryError::VersionNotFound { group: group.to_string(), version })
            }
        }
    }

    /// Approves or rejects a version. Allowed: pending → approved or rejected; approved →
    /// rejected (a rollback). A rejected version stays rejected, and setting the status a
    /// version already has is refused, so a double click is noticed.
    pub async fn set_status(
        &self,
        group: &str,
        version: i64,
        to: ApprovalStatus,
        description: &str,
        actor: &str,
    ) -> Result<ModelVersion, RegistryError> {
        let now = clock::now_ms();
        let mut tx = self.db.write().await?;
        let row = sqlx::query(&format!(
            "SELECT status FROM model_versions WHERE group_name = $1 AND version = $2{}",
            self.db.for_update()
        ))
        .bind(group)
        .bind(version)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            self.group(group).await?;
            return Err(RegistryError::VersionNotFound { group: group.to_string(), version });
        };
        let from = ApprovalStatus::parse(&row.try_get::<String, _>("status")?)
            .unwrap_or(ApprovalStatus::PendingManualApproval);
        let refuse =
            |reason: String| RegistryError::InvalidTransition { group: group.to_string(), version, to, reason };
        match (from, to) {
            (a, b) if a == b => return Err(refuse(format!("it is already {a}"))),
            (ApprovalStatus::Rejected, _) => {
                return Err(refuse(
                    "it was rejected, and a rejected version stays rejected; register a new version".into(),
                ));
            }
            (_, ApprovalStatus::PendingManualApproval) => {
                return Err(refuse("a version cannot go back to PendingManualApproval; reject it instead".into()));
            }
            _ => {}
        }
        sqlx::query(
            "UPDATE model_versions SET status = $1, status_by = $2, status_ms = $3, status_description = $4 \
             WHERE group_name = $5 AND version = $6",
        )
        .bind(to.as_str())
        .bind(actor)
        .bind(now)
        .bind(description)
        .bind(group)
        .bind(version)
        .execute(&mut *tx.tx)
        .await?;
        record_event(&mut tx.tx, group, version, to.as_str(), description, actor, now).await?;
        tx.commit().await?;
        self.announce(RegistryEvent::StatusChanged { group: group.to_string(), version, status: to });
        self.version(group, version).await
    }

    /// Points `alias` at `version` (creating or moving it) in one statement, so readers see
    /// the old or the new target, never none.
    pub async fn set_alias(
        &self,
        group: &str,
        alias: &str,
        version: i64,
        actor: &str,
    ) -> Result<ModelVersion, RegistryError> {
        names::alias(alias)?;
        let target = self.version(group, version).await?;
        if target.status == ApprovalStatus::Rejected {
            return Err(RegistryError::InvalidField {
                field: "version".into(),
                reason: format!(
                    "version {version} of {group:?} is Rejected; an alias must point at a version that may be served"
                ),
            });
        }
        let now = clock::now_ms();
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO model_aliases (group_name, alias, version, updated_ms, updated_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (group_name, alias) DO UPDATE SET version = excluded.version, updated_ms = excluded.updated_ms, \
             updated_by = excluded.updated_by",
        )
        .bind(group)
        .bind(alias)
        .bind(version)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx.tx)
        .await?;
        record_event(&mut tx.tx, group, version, "AliasSet", alias, actor, now).await?;
        tx.commit().await?;
        self.announce(RegistryEvent::AliasMoved {
            group: group.to_string(),
            alias: alias.to_string(),
            version: Some(version),
        });
        self.version(group, version).await
    }

    /// Removes an alias.
    pub async fn delete_alias(&self, group: &str, alias: &str, actor: &str) -> Result<(), RegistryError> {
        let now = clock::now_ms();
        let mut tx = self.db.write().await?;
        let row = sqlx::query("SELECT version FROM model_aliases WHERE group_name = $1 AND alias = $2")
            .bind(group)
            .bind(alias)
            .fetch_optional(&mut *tx.tx)
            .await?;
        let Some(row) = row else {
            drop(tx);
            self.group(group).await?;
            return Err(RegistryError::AliasNotFound { group: group.to_string(), alias: alias.to_string() });
        };
        let version: i64 = row.try_get("version")?;
        sqlx::query("DELETE FROM model_aliases WHERE group_name = $1 AND alias = $2")
            .bind(group)
            .bind(alias)
            .execute(&mut *tx.tx)
            .await?;
        record_event(&mut tx.tx, group, version, "AliasRemoved", alias, actor, now).await?;
        tx.commit().await?;
        self.announce(RegistryEvent::AliasMoved { group: group.to_string(), alias: alias.to_string(), version: None });
        Ok(())
    }

    /// The version a selector names right now.
    pub async fn resolve(&self, group: &str, selector: &Selector) -> Result<ModelVersion, RegistryError> {
        let unresolved = |reason: String| RegistryError::Unresolved {
            group: group.to_string(),
            selector: selector.to_string(),
            reason,
        };
        match selector {
            Selector::Version(v) => self.version(group, *v).await,
            Selector::LatestApproved => match self.group(group).await?.latest_approved {
                Some(v) => self.version(group, v).await,
                None => Err(unresolved("no version is Approved yet; approve one with `nimbus models approve`".into())),
            },
            Selector::Alias(alias) => {
                let target = self.group(group).await?.aliases.get(alias).copied();
                let Some(v) = target else {
                    return Err(unresolved(format!("there is no alias {alias:?}; set it with `nimbus models alias`")));
                };
                let version = self.version(group, v).await?;
                if version.status == ApprovalStatus::Rejected {
                    return Err(unresolved(format!("alias {alias:?} points at version {v}, which is Rejected")));
                }
                Ok(version)
            }
        }
    }

    /// The audit trail of a group, oldest first.
    pub async fn history(&self, group: &str) -> Result<Vec<ModelEvent>, RegistryError> {
        self.group(group).await?;
        let rows = sqlx::query(
            "SELECT group_name, version, kind, detail, actor, at_ms FROM model_events WHERE group_name = $1 ORDER BY at_ms, id",
        )
        .bind(group)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ModelEvent {
                    group: r.try_get("group_name")?,
                    version: r.try_get("version")?,
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                    actor: r.try_get("actor")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }
}

async fn record_event(
    tx: &mut Transaction<'static, Any>,
    group: &str,
    version: i64,
    kind: &str,
    detail: &str,
    actor: &str,
    at_ms: i64,
) -> Result<(), RegistryError> {
    // Ids sort by time first so the audit trail keeps its order within a millisecond.
    let id = format!("{at_ms:016}-{}", nimbus_core::new_id());
    sqlx::query("INSERT INTO model_events (id, group_name, version, kind, detail, actor, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(id)
        .bind(group)
        .bind(version)
        .bind(kind)
        .bind(detail)
        .bind(actor)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn version_from_row(r: &AnyRow, aliases: &BTreeMap<String, i64>) -> Result<ModelVersion, RegistryError> {
    fn parse<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &str) -> Result<T, RegistryError> {
        let text: String = r.try_get(col)?;
        serde_json::from_str(&text).map_err(|e| RegistryError::InvalidField {
            field: col.to_string(),
            reason: format!("stored value is damaged: {e}"),
        })
    }
    let version: i64 = r.try_get("version")?;
    let status: String = r.try_get("status")?;
    Ok(ModelVersion {
        group: r.try_get("group_name")?,
        version,
        artifact_uri: r.try_get("artifact_uri")?,
        artifact_sha256: r.try_get("artifact_sha256")?,
        artifact_size: r.try_get("artifact_size")?,
        format: r.try_get("format")?,
        input_schema: parse(r, "input_schema")?,
        output_schema: parse(r, "output_schema")?,
        metrics: parse(r, "metrics")?,
        parameters: parse(r, "parameters")?,
        lineage: parse(r, "lineage")?,
        tags: parse(r, "tags")?,
        description: r.try_get("description")?,
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::PendingManualApproval),
        status_by: r.try_get("status_by")?,
        status_ms: r.try_get("status_ms")?,
        status_description: r.try_get("status_description")?,
        created_ms: r.try_get("created_ms")?,
        created_by: r.try_get("created_by")?,
        aliases: aliases.iter().filter(|(_, v)| **v == version).map(|(a, _)| a.clone()).collect(),
    })
}

mod erased {
    /// Serialises any stored JSON column value.
    pub trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).expect("registry values serialise")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
        let store = nimbus_store::Store::local(db.clone(), &dir.path().join("objects")).unwrap();
        store.create_bucket("models").await.unwrap();
        store.put("models", "a", "model".into(), "application/json").await.unwrap();
        (dir, Registry::new(db))
    }

    /// SHA-256 of the artifact `s3://models/a` (the bytes `model`).
    const ARTIFACT_SHA256: &str = "9372c470eeadd5ecd9c3c74c2b3cb633f8e2f2fad799250a0f70d652b6b825e4";

    fn new_version() -> NewVersion {
        NewVersion {
            artifact_uri: "s3://models/a".into(),
            artifact_sha256: ARTIFACT_SHA256.into(),
            format: "nimbus-model".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn concurrent_registrations_get_distinct_contiguous_numbers() {
        let (_dir, r) = registry().await;
        r.create_group("g", "", "t").await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.register("g", new_version(), "t").await.unwrap().version })
            })
            .collect();
        let mut got: Vec<i64> = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort();
        assert_eq!(got, (1..=16).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn approval_rules_aliases_and_events() {
        let (_dir, r) = registry().await;
        let mut events = r.subscribe();
        r.create_group("g", "", "t").await.unwrap();
        r.register("g", new_version(), "t").await.unwrap();
        r.register("g", new_version(), "t").await.unwrap();
        assert!(matches!(r.resolve("g", &Selector::LatestApproved).await, Err(RegistryError::Unresolved { .. })));
        r.set_status("g", 1, ApprovalStatus::Approved, "ok", "alice").await.unwrap();
        assert!(matches!(
            r.set_status("g", 1, ApprovalStatus::Approved, "", "alice").await,
            Err(RegistryError::InvalidTransition { .. })
        ));
        r.set_status("g", 2, ApprovalStatus::Rejected, "bad", "alice").await.unwrap();
        assert!(matches!(
            r.set_status("g", 2, ApprovalStatus::Approved, "", "alice").await,
            Err(RegistryError::InvalidTransition { .. })
        ));
        assert_eq!(r.resolve("g", &Selector::LatestApproved).await.unwrap().version, 1);
        r.set_alias("g", "production", 1, "alice").await.unwrap();
        assert!(r.set_alias("g", "staging", 2, "alice").await.is_err());
        assert_eq!(r.resolve("g", &"@production".parse().unwrap()).await.unwrap().version, 1);
        assert!(matches!(r.version("g", 9).await, Err(RegistryError::VersionNotFound { .. })));
        assert!(matches!(r.version("nope", 1).await, Err(RegistryError::GroupNotFound(_))));
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push(e);
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(
            seen[4],
            RegistryEvent::AliasMoved { group: "g".into(), alias: "production".into(), version: Some(1) }
        );
        assert_eq!(r.history("g").await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn registering_holds_exactly_the_recorded_artifact() {
        let (dir, r) = registry().await;
        r.create_group("g", "", "t").await.unwrap();
        let wrong = NewVersion { artifact_sha256: "0".repeat(64), ..new_version() };
        let e = r.register("g", wrong, "t").await.unwrap_err();
        assert!(matches!(e, RegistryError::Artifact(ref m) if m.contains("not the")), "{e}");
        let missing = NewVersion { artifact_uri: "s3://models/none".into(), ..new_version() };
        assert!(matches!(r.register("g", missing, "t").await, Err(RegistryError::Artifact(_))));
        assert_eq!(r.group("g").await.unwrap().version_count, 0, "a refused registration takes no number");
        r.register("g", new_version(), "t").await.unwrap();
        let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
        let store = nimbus_store::Store::local(db, &dir.path().join("objects")).unwrap();
        let e = store.put("models", "a", "other".into(), "application/json").await.unwrap_err();
        assert!(e.to_string().contains("the artifact of model group g version 1"), "{e}");
        assert_eq!(r.hold_artifacts().await.unwrap(), 0, "already held");
    }
}
