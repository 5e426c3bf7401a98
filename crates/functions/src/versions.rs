//! Published versions and aliases of functions, as Lambda has them.
//!
//! [`Functions::publish`] freezes a function's current declaration (`$LATEST`) as version N:
//! 1, 2, 3… per function, taken in the publishing transaction and never reused while the
//! function exists. A model function's version also pins its model: the frozen selector is the
//! registry version the selector named at publish time. Publishing a declaration equal to the
//! latest published one returns that version, as Lambda does. Versions are never changed.
//!
//! An alias names `$LATEST` or a version, and may send a share of invocations to one other
//! published version (Lambda's `RoutingConfig.AdditionalVersionWeights`).
//! [`Functions::resolve`] turns a qualifier into the [`Function`] that runs: each published
//! version is its own function at run time, with its own model or instances, logs and metrics.
//!
//! Rows live in `function_versions` and `function_aliases`; the server keeps them in memory in
//! a table swapped whole on every change, so resolving takes no lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use nimbus_core::clock;
use nimbus_meta::sqlx::{self, Row};
use rand::Rng;

use crate::function::Function;
use crate::spec::{FunctionKind, FunctionSpec};
use crate::{Functions, FunctionsError};

/// The qualifier of a function's current, editable declaration.
pub const LATEST: &str = "$LATEST";

/// Longest version or alias description, as Lambda allows.
const MAX_DESCRIPTION: usize = 256;

/// A published version: a frozen declaration and the function that runs it.
pub struct Version {
    pub number: i64,
    /// The hex SHA-256 of the frozen declaration's JSON.
    pub digest: String,
    pub description: String,
    pub created_ms: i64,
    pub created_by: String,
    /// The version at run time; its `spec` is the frozen declaration.
    pub function: Arc<Function>,
}

/// Where an alias sends invocations.
#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    pub name: String,
    /// `$LATEST` or a published version's number.
    pub version: String,
    /// One other published version and its share of invocations, in [0, 1).
    pub additional: Option<(i64, f64)>,
    pub description: String,
    pub updated_ms: i64,
}

/// The published versions and aliases of one function.
#[derive(Clone, Default)]
pub(crate) struct Published {
    pub(crate) versions: BTreeMap<i64, Arc<Version>>,
    pub(crate) aliases: BTreeMap<String, Alias>,
}

/// What a qualifier names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier<'a> {
    Latest,
    Version(i64),
    Alias(&'a str),
}

impl<'a> Qualifier<'a> {
    /// Reads `$LATEST`, a version number (from 1) or an alias name; the error says which
    /// forms there are.
    pub fn parse(q: &'a str) -> Result<Qualifier<'a>, String> {
        if q == LATEST {
            return Ok(Qualifier::Latest);
        }
        if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) {
            return match q.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(Qualifier::Version(n)),
                _ => Err(format!("qualifier {q:?}: version numbers start at 1")),
            };
        }
        nimbus_core::names::function_alias(q)
            .map_err(|e| format!("qualifier {q:?}: use $LATEST, a version number or an alias name ({})", e.rule))?;
        Ok(Qualifier::Alias(q))
    }
}

/// Splits a route's `NAME` or `NAME:QUALIFIER` into its parts.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once(':') {
        Some((name, q)) => (name, Some(q)),
        None => (target, None),
    }
}

/// The weight as stored: millionths, so the column stays an integer.
fn weight_ppm(weight: f64) -> i64 {
    (weight * 1e6).round() as i64
}

fn sql(e: sqlx::Error) -> FunctionsError {
    FunctionsError::Meta(e.into())
}

fn check_description(name: &str, description: &str) -> Result<(), FunctionsError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(FunctionsError::Invalid {
            name: name.to_string(),
            reason: format!("description: at most {MAX_DESCRIPTION} characters"),
        });
    }
    Ok(())
}

impl Functions {
    /// The function that runs for `qualifier`: `None` or `$LATEST` the current declaration, a
    /// number that published version, an alias one of its versions, picked at random by the
    /// alias's weight.
    pub fn resolve(&self, name: &str, qualifier: Option<&str>) -> Result<Arc<Function>, FunctionsError> {
        let latest = self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        let Some(q) = qualifier else { return Ok(latest) };
        let parsed =
            Qualifier::parse(q).map_err(|reason| FunctionsError::Invalid { name: name.to_string(), reason })?;
        let published = self.inner.published.load();
        let published = published.get(name);
        let version = |n: i64| {
            published
                .and_then(|p| p.versions.get(&n))
                .map(|v| v.function.clone())
                .ok_or_else(|| FunctionsError::VersionNotFound { function: name.to_string(), version: n })
        };
        match parsed {
            Qualifier::Latest => Ok(latest),
            Qualifier::Version(n) => version(n),
            Qualifier::Alias(alias) => {
                let a = published.and_then(|p| p.aliases.get(alias)).ok_or_else(|| FunctionsError::AliasNotFound {
                    function: name.to_string(),
                    alias: alias.to_string(),
                })?;
                if let Some((other, weight)) = a.additional
                    && rand::thread_rng().r#gen::<f64>() < weight
                {
                    return version(other);
                }
                match a.version.parse::<i64>() {
                    Ok(n) => version(n),
                    Err(_) => Ok(latest),
                }
            }
        }
    }

    /// [`Functions::resolve`] of a route's target, `NAME` or `NAME:QUALIFIER`.
    pub fn resolve_target(&self, target: &str) -> Result<Arc<Function>, FunctionsError> {
        let (name, qualifier) = split_target(target);
        self.resolve(name, qualifier)
    }

    /// Published version `number` of `name` (not an alias: what ran under one is a version).
    pub fn version(&self, name: &str, number: i64) -> Result<Arc<Version>, FunctionsError> {
        self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        self.inner
            .published
            .load()
            .get(name)
            .and_then(|p| p.versions.get(&number).cloned())
            .ok_or_else(|| FunctionsError::VersionNotFound { function: name.to_string(), version: number })
    }

    /// The published versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Arc<Version>>, FunctionsError> {
        self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        Ok(self.inner.published.load().get(name).map(|p| p.versions.values().cloned().collect()).unwrap_or_default())
    }

    /// The aliases of `name`, by name.
    pub fn aliases(&self, name: &str) -> Result<Vec<Alias>, FunctionsError> {
        self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        Ok(self.inner.published.load().get(name).map(|p| p.aliases.values().cloned().collect()).unwrap_or_default())
    }

    /// Freezes the current declaration of `name` as its next version. Returns the version and
    /// whether it is new: when the latest published version has this very declaration, that
    /// version is returned instead, as Lambda does.
    pub async fn publish(
        &self,
        name: &str,
        description: &str,
        actor: &str,
    ) -> Result<(Arc<Version>, bool), FunctionsError> {
        check_description(name, description)?;
        // The declaration cannot change while it is frozen, and numbers are taken one at a time.
        let _one_at_a_time = self.inner.put_lock.lock().await;
        let latest = self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        let mut spec = latest.spec.clone();
        if spec.kind == FunctionKind::Model {
            let model = latest.resolve().await.map_err(|e| FunctionsError::NotPublishable {
                name: name.to_string(),
                reason: format!(
                    "a version pins the model its selector names now, and {} names none ({e}); approve one with \
                     `nimbus models approve {} VERSION`",
                    spec.selector,
                    latest.group()
                ),
            })?;
            spec.selector = model.version.to_string();
        }
        let text = serde_json::to_string(&spec).expect("declarations serialise");
        let digest = nimbus_meta::spec_digest(&text);
        let mut tx = self.inner.db.write().await?;
        let last = sqlx::query(
            "SELECT version, digest FROM function_versions WHERE function_name = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx.tx)
        .await
        .map_err(sql)?;
        let last: Option<(i64, String)> = match last {
            Some(r) => Some((r.try_get("version").map_err(sql)?, r.try_get("digest").map_err(sql)?)),
            None => None,
        };
        if let Some((number, _)) = last.as_ref().filter(|(_, d)| *d == digest) {
            drop(tx);
            return Ok((self.version(name, *number)?, false));
        }
        let number = last.map_or(1, |(n, _)| n + 1);
        let now = clock::now_ms();
        sqlx::query(
            "INSERT INTO function_versions (function_name, version, spec, digest, description, created_ms, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(name)
        .bind(number)
        .bind(text.as_str())
        .bind(digest.as_str())
        .bind(description)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx.tx)
        .await
        .map_err(sql)?;
        let function = Arc::new(self.build(name, Some(number), spec)?);
        tx.commit().await?;
        let version = Arc::new(Version {
            number,
            digest,
            description: description.to_string(),
            created_ms: now,
            created_by: actor.to_string(),
            function,
        });
        self.change_published(name, |p| {
            p.versions.insert(number, version.clone());
        });
        Ok((version, true))
    }

    /// Creates or replaces alias `alias` of `name`: it sends invocations to `version`
    /// (`$LATEST` or a published number) and, with `additional`, the given share of them to
    /// that other published version.
    pub async fn put_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        additional: Option<(i64, f64)>,
        description: &str,
    ) -> Result<Alias, FunctionsError> {
        let invalid = |reason: String| FunctionsError::Invalid { name: name.to_string(), reason };
        check_description(name, description)?;
        nimbus_core::names::function_alias(alias).map_err(|e| invalid(format!("alias: {e}")))?;
        let _one_at_a_time = self.inner.put_lock.lock().await;
        self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        let exists = |n: i64| {
            self.version(name, n)
                .map(|_| ())
                .map_err(|_| FunctionsError::VersionNotFound { function: name.to_string(), version: n })
        };
        let primary = match Qualifier::parse(version).map_err(|e| invalid(format!("version: {e}")))? {
            Qualifier::Latest => None,
            Qualifier::Version(n) => {
                exists(n)?;
                Some(n)
            }
            Qualifier::Alias(_) => {
                return Err(invalid(format!(
                    "version: {version:?} is not $LATEST or a version number; an alias points at a version, not at another alias"
                )));
            }
        };
        if let Some((other, weight)) = additional {
            if !(weight.is_finite() && (0.0..1.0).contains(&weight) && weight_ppm(weight) < 1_000_000) {
                return Err(invalid(format!(
                    "weights: the weight of version {other} must be from 0 to below 1, got {weight}"
                )));
            }
            let Some(primary) = primary else {
                return Err(invalid(
                    "weights: an alias that points at $LATEST cannot route to another version; point it at a published version"
                        .into(),
                ));
            };
            if other == primary {
                return Err(invalid(format!("weights: version {other} is the alias's own version; name another one")));
            }
            exists(other)?;
        }
        let stored = Alias {
            name: alias.to_string(),
            version: primary.map_or_else(|| LATEST.to_string(), |n| n.to_string()),
            additional: additional.map(|(v, w)| (v, weight_ppm(w) as f64 / 1e6)),
            description: description.to_string(),
            updated_ms: clock::now_ms(),
        };
        self.inner
            .db
            .write_one(
                sqlx::query(
                    "INSERT INTO function_aliases (function_name, alias, version, additional_version, \
                     additional_weight, description, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (function_name, alias) DO UPDATE SET version = excluded.version, \
                     additional_version = excluded.additional_version, additional_weight = excluded.additional_weight, \
                     description = excluded.description, updated_ms = excluded.updated_ms",
                )
                .bind(name.to_string())
                .bind(alias.to_string())
                .bind(stored.version.clone())
                .bind(additional.map(|(v, _)| v))
                .bind(additional.map_or(0, |(_, w)| weight_ppm(w)))
                .bind(description.to_string())
                .bind(stored.updated_ms),
            )
            .await?;
        self.change_published(name, |p| {
            p.aliases.insert(alias.to_string(), stored.clone());
        });
        Ok(stored)
    }

    /// Deletes alias `alias` of `name`.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), FunctionsError> {
        let _one_at_a_time = self.inner.put_lock.lock().await;
        self.get(name).ok_or_else(|| FunctionsError::NotFound(name.to_string()))?;
        let n = self
            .inner
            .db
            .write_one(
                sqlx::query("DELETE FROM function_aliases WHERE function_name = $1 AND alias = $2")
                    .bind(name.to_string())
                    .bind(alias.to_string()),
            )
            .await?;
        if n == 0 {
            return Err(FunctionsError::AliasNotFound { function: name.to_string(), alias: alias.to_string() });
        }
        self.change_published(name, |p| {
            p.aliases.remove(alias);
        });
        Ok(())
    }

    /// Replaces the published entry of `name` with a changed copy.
    fn change_published(&self, name: &str, change: impl Fn(&mut Published)) {
        self.inner.published.rcu(|table| {
            let mut table = std::collections::HashMap::clone(table);
            let mut p = table.get(name).map(|p| Published::clone(p)).unwrap_or_default();
            change(&mut p);
            table.insert(name.to_string(), Arc::new(p));
            table
        });
    }

    /// Reads every stored version and alias; a damaged row is logged and left out.
    pub(crate) async fn load_published(
        &self,
    ) -> Result<std::collections::HashMap<String, Arc<Published>>, FunctionsError> {
        let mut all: std::collections::HashMap<String, Published> = std::collections::HashMap::new();
        let pool = self.inner.db.pool();
        let rows = sqlx::query(
            "SELECT function_name, version, spec, digest, description, created_ms, created_by FROM function_versions \
             ORDER BY function_name, version",
        )
        .fetch_all(pool)
        .await
        .map_err(sql)?;
        for r in rows {
            let name: String = r.try_get("function_name").map_err(sql)?;
            let number: i64 = r.try_get("version").map_err(sql)?;
            let text: String = r.try_get("spec").map_err(sql)?;
            let function = serde_json::from_str::<FunctionSpec>(&text)
                .map_err(|e| e.to_string())
                .and_then(|spec| self.build(&name, Some(number), spec).map_err(|e| e.to_string()));
            let function = match function {
                Ok(f) => Arc::new(f),
                Err(e) => {
                    tracing::error!(function = %name, version = number, "stored version is damaged, not deployed: {e}");
                    continue;
                }
            };
            let version = Version {
                number,
                digest: r.try_get("digest").map_err(sql)?,
                description: r.try_get("description").map_err(sql)?,
                created_ms: r.try_get("created_ms").map_err(sql)?,
                created_by: r.try_get("created_by").map_err(sql)?,
                function,
            };
            all.entry(name).or_default().versions.insert(number, Arc::new(version));
        }
        let rows = sqlx::query(
            "SELECT function_name, alias, version, additional_version, additional_weight, description, updated_ms \
             FROM function_aliases",
        )
        .fetch_all(pool)
        .await
        .map_err(sql)?;
        for r in rows {
            let name: String = r.try_get("function_name").map_err(sql)?;
            let additional: Option<i64> = r.try_get("additional_version").map_err(sql)?;
            let ppm: i64 = r.try_get("additional_weight").map_err(sql)?;
            let alias = Alias {
                name: r.try_get("alias").map_err(sql)?,
                version: r.try_get("version").map_err(sql)?,
                additional: additional.map(|v| (v, ppm as f64 / 1e6)),
                description: r.try_get("description").map_err(sql)?,
                updated_ms: r.try_get("updated_ms").map_err(sql)?,
            };
            all.entry(name).or_default().aliases.insert(alias.name.clone(), alias);
        }
        Ok(all.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }

    /// Every running function: each `$LATEST` and each published version.
    pub(crate) fn everything(&self) -> Vec<Arc<Function>> {
        let mut all: Vec<Arc<Function>> = self.inner.table.load().values().cloned().collect();
        for p in self.inner.published.load().values() {
            all.extend(p.versions.values().map(|v| v.function.clone()));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::functions;

    fn spec(json: serde_json::Value) -> FunctionSpec {
        serde_json::from_value(json).unwrap()
    }

    /// A process function: nothing is started until it is invoked, so no sandbox is needed.
    fn process(memory_mb: u32) -> FunctionSpec {
        spec(serde_json::json!({
            "kind": "process", "command": ["python3", "-m", "awslambdaric"], "handler": "app.handler",
            "memory_mb": memory_mb, "secrets": {"TOKEN": "s3cret"}
        }))
    }

    #[test]
    fn qualifiers_are_latest_numbers_or_alias_names() {
        assert_eq!(Qualifier::parse("$LATEST"), Ok(Qualifier::Latest));
        assert_eq!(Qualifier::parse("3"), Ok(Qualifier::Version(3)));
        assert_eq!(Qualifier::parse("live"), Ok(Qualifier::Alias("live")));
        for bad in ["0", "", "a b", "$latest", "x:y", "99999999999999999999"] {
            assert!(Qualifier::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_target("predict:live"), ("predict", Some("live")));
        assert_eq!(split_target("predict"), ("predict", None));
    }

    #[tokio::test]
    async fn publishing_an_unchanged_declaration_returns_the_same_version_and_a_change_the_next() {
        let (_dir, f) = functions().await;
        f.put("hello", process(256), "t").await.unwrap();
        let (v1, created) = f.publish("hello", "first", "alice").await.unwrap();
        assert!(created);
        assert_eq!((v1.number, v1.description.as_str(), v1.created_by.as_str()), (1, "first", "alice"));
        let (again, created) = f.publish("hello", "again", "bob").await.unwrap();
        assert!(!created, "the latest version has this declaration");
        assert_eq!((again.number, again.description.as_str()), (1, "first"));

        f.put("hello", process(512), "t").await.unwrap();
        let (v2, created) = f.publish("hello", "", "t").await.unwrap();
        assert!(created);
        assert_eq!(v2.number, 2);
        // Each version runs as its own function, frozen as published.
        let one = f.resolve("hello", Some("1")).unwrap();
        assert_eq!((one.version.as_str(), one.spec.memory_mb), ("1", 256));
        assert_eq!(one.arn, "arn:aws:lambda:us-east-1:000000000000:function:hello:1");
        assert_eq!(one.spec.secrets["TOKEN"], "sealed:hello:s3cret", "secrets stay sealed as stored");
        assert_eq!(f.resolve("hello", Some("2")).unwrap().spec.memory_mb, 512);
        assert_eq!(f.resolve("hello", None).unwrap().version, LATEST);
        assert_eq!(f.resolve("hello", Some("$LATEST")).unwrap().version, LATEST);
        let e = f.resolve("hello", Some("9")).err().unwrap();
        assert!(matches!(e, FunctionsError::VersionNotFound { version: 9, .. }), "{e}");

        // Back to the first declaration: a new version, since the latest one differs.
        f.put("hello", process(256), "t").await.unwrap();
        assert_eq!(f.publish("hello", "", "t").await.unwrap().0.number, 3);

        // Versions and aliases are read back on open, and deleting the function removes them.
        f.put_alias("hello", "live", "1", Some((2, 0.25)), "").await.unwrap();
        let reopened = crate::Functions::open(
            f.inner.db.clone(),
            f.inner.store.clone(),
            f.inner.registry.clone(),
            f.inner.partition.clone(),
            f.inner.host.clone(),
        )
        .await
        .unwrap();
        let numbers: Vec<i64> = reopened.versions("hello").unwrap().iter().map(|v| v.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(reopened.aliases("hello").unwrap()[0].additional, Some((2, 0.25)));
        f.delete("hello").await.unwrap();
        f.put("hello", process(256), "t").await.unwrap();
        assert!(f.versions("hello").unwrap().is_empty() && f.aliases("hello").unwrap().is_empty());
        assert_eq!(f.publish("hello", "", "t").await.unwrap().0.number, 1, "a new function starts again at 1");
    }

    #[tokio::test]
    async fn an_alias_routes_by_its_weight() {
        let (_dir, f) = functions().await;
        f.put("hello", process(256), "t").await.unwrap();
        f.publish("hello", "", "t").await.unwrap();
        f.put("hello", process(512), "t").await.unwrap();
        f.publish("hello", "", "t").await.unwrap();
        f.put_alias("hello", "live", "1", Some((2, 0.2)), "canary").await.unwrap();
        let n = 10_000;
        let twos = (0..n).filter(|_| f.resolve("hello", Some("live")).unwrap().version == "2").count();
        // Binomial(10000, 0.2): the standard deviation is 40; 6 of them is never crossed by chance.
        assert!((2000 - 240..=2000 + 240).contains(&twos), "{twos} of {n} went to version 2");
        assert_eq!(f.resolve_target("hello:live").unwrap().name, "hello");

        // Without a weight, all of it; an alias at $LATEST; a changed alias; a deleted one.
        f.put_alias("hello", "live", "2", None, "").await.unwrap();
        assert!((0..100).all(|_| f.resolve("hello", Some("live")).unwrap().version == "2"));
        f.put_alias("hello", "edge", "$LATEST", None, "").await.unwrap();
        assert_eq!(f.resolve_target("hello:edge").unwrap().version, LATEST);
        f.delete_alias("hello", "edge").await.unwrap();
        let e = f.resolve_target("hello:edge").err().unwrap();
        assert!(matches!(e, FunctionsError::AliasNotFound { ref alias, .. } if alias == "edge"), "{e}");
        let e = f.delete_alias("hello", "edge").await.err().unwrap();
        assert!(matches!(e, FunctionsError::AliasNotFound { .. }), "{e}");
    }

    #[tokio::test]
    async fn alias_names_versions_and_weights_are_checked() {
        let (_dir, f) = functions().await;
        f.put("hello", process(256), "t").await.unwrap();
        f.publish("hello", "", "t").await.unwrap();
        f.put("hello", process(512), "t").await.unwrap();
        f.publish("hello", "", "t").await.unwrap();
        /// Alias, version, weighted version, the start of the refusal.
        type Case<'a> = (&'a str, &'a str, Option<(i64, f64)>, &'a str);
        let cases: [Case; 9] = [
            ("12", "1", None, "alias: invalid function alias name \"12\""),
            ("bad name", "1", None, "alias: invalid function alias name"),
            ("live", "latest", None, "version: \"latest\" is not $LATEST or a version number"),
            ("live", "0", None, "version: qualifier \"0\": version numbers start at 1"),
            ("live", "1", Some((2, 1.0)), "weights: the weight of version 2 must be from 0 to below 1, got 1"),
            ("live", "1", Some((2, -0.1)), "weights: the weight of version 2 must be from 0 to below 1"),
            ("live", "1", Some((2, f64::NAN)), "weights: the weight of version 2 must be from 0 to below 1"),
            ("live", "$LATEST", Some((2, 0.1)), "weights: an alias that points at $LATEST cannot route"),
            ("live", "1", Some((1, 0.1)), "weights: version 1 is the alias's own version"),
        ];
        let mut failures = Vec::new();
        for (alias, version, weights, want) in cases {
            match f.put_alias("hello", alias, version, weights, "").await {
                Err(FunctionsError::Invalid { reason, .. }) if reason.starts_with(want) => {}
                other => failures.push(format!("{alias} {version} {weights:?}: {:?}", other.map(|a| a.name))),
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        let e = f.put_alias("hello", "live", "7", None, "").await.err().unwrap();
        assert!(matches!(e, FunctionsError::VersionNotFound { version: 7, .. }), "{e}");
        let e = f.put_alias("hello", "live", "1", Some((5, 0.1)), "").await.err().unwrap();
        assert!(matches!(e, FunctionsError::VersionNotFound { version: 5, .. }), "{e}");
        let e = f.put_alias("nope", "live", "1", None, "").await.err().unwrap();
        assert!(matches!(e, FunctionsError::NotFound(_)), "{e}");
        assert!(f.aliases("hello").unwrap().is_empty(), "nothing refused was stored");
        let ok = f.put_alias("hello", "Live_2", "1", Some((2, 0.0)), "").await.unwrap();
        assert_eq!(ok.additional, Some((2, 0.0)));
    }

    #[tokio::test]
    async fn a_model_version_pins_the_model_its_selector_names_at_publish_time() {
        let (_dir, f) = functions().await;
        let registry = f.inner.registry.clone();
        registry.create_group("g", "", "t").await.unwrap();
        let model: FunctionSpec = spec(serde_json::json!({"kind": "model", "model_group": "g"}));
        f.put("predict", model, "t").await.unwrap();
        let e = f.publish("predict", "", "t").await.err().expect("nothing approved");
        let FunctionsError::NotPublishable { reason, .. } = &e else { panic!("{e}") };
        assert!(reason.contains("latest-approved names none") && reason.contains("nimbus models approve g"), "{e}");
        assert!(f.versions("predict").unwrap().is_empty());

        for _ in 0..2 {
            register(&f, "g").await;
        }
        registry.set_status("g", 1, nimbus_registry::ApprovalStatus::Approved, "", "t").await.unwrap();
        let (v1, _) = f.publish("predict", "", "t").await.unwrap();
        assert_eq!(v1.function.spec.selector, "1");
        assert_eq!(v1.function.selector(), Some(&nimbus_registry::Selector::Version(1)));
        assert_eq!(f.publish("predict", "", "t").await.unwrap().0.number, 1, "the same model: unchanged");
        registry.set_status("g", 2, nimbus_registry::ApprovalStatus::Approved, "", "t").await.unwrap();
        let (v2, created) = f.publish("predict", "", "t").await.unwrap();
        assert!(created);
        assert_eq!((v2.number, v2.function.spec.selector.as_str()), (2, "2"));
        // Version 1 still names model version 1, whatever is approved since.
        assert_eq!(f.resolve("predict", Some("1")).unwrap().resolve().await.unwrap().version, 1);
        assert_eq!(f.resolve("predict", None).unwrap().spec.selector, "latest-approved", "$LATEST is unchanged");
    }

    #[tokio::test]
    async fn published_versions_are_counted_under_their_own_label_and_queued_events_keep_their_qualifier() {
        let (_dir, f) = functions().await;
        // Version 1 pins a registered model whose artifact is no model: every invocation fails
        // to load it, which is all the counters need.
        let registry = f.inner.registry.clone();
        registry.create_group("g", "", "t").await.unwrap();
        register(&f, "g").await;
        registry.set_status("g", 1, nimbus_registry::ApprovalStatus::Approved, "", "t").await.unwrap();
        let model = spec(serde_json::json!({"kind": "model", "model_group": "g", "async_retries": 0}));
        f.put("predict", model, "t").await.unwrap();
        f.publish("predict", "", "t").await.unwrap();
        let one = f.resolve("predict", Some("1")).unwrap();
        assert!(one.invoke(&crate::Call::new(), None, b"{}").await.is_err());
        let mut text = String::new();
        f.render_metrics(&mut text);
        assert!(text.contains("nimbus_function_invocations_total{function=\"predict\"} 0\n"), "{text}");
        assert!(text.contains("nimbus_function_invocations_total{function=\"predict\",version=\"1\"} 1\n"), "{text}");
        assert!(
            text.contains("nimbus_function_duration_seconds_count{function=\"predict\",version=\"1\"} 1"),
            "{text}"
        );

        // An event for version 1 runs there; one for a version that does not exist fails as such.
        f.start_queue("me".into()).await.unwrap();
        f.enqueue("predict", "1", b"{}").await.unwrap();
        f.enqueue("predict", "9", b"{}").await.unwrap();
        let started = std::time::Instant::now();
        let failures = loop {
            let failures = f.failures("predict", 10).await.unwrap();
            if failures.len() == 2 {
                break failures;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "the events never failed: {failures:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let missing = failures.iter().find(|e| e.qualifier == "9").unwrap();
        assert_eq!(missing.error["errorType"], "ResourceNotFoundException");
        assert!(missing.error["errorMessage"].as_str().unwrap().contains("has no version 9"), "{:?}", missing.error);
        assert_eq!(one.metrics.invocations.load(std::sync::atomic::Ordering::Relaxed), 2, "the event ran on version 1");
        assert_eq!(f.get("predict").unwrap().metrics.invocations.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    /// Registers a version (status PendingManualApproval) of a model that is never loaded.
    async fn register(f: &Functions, group: &str) -> i64 {
        let store = &f.inner.store;
        store.ensure_bucket("models").await.unwrap();
        let key = format!("{group}/{}.json", nimbus_core::new_id());
        let object = store.put("models", &key, "{}".into(), "application/json").await.unwrap();
        let version = nimbus_registry::NewVersion {
            artifact_uri: object.uri(),
            artifact_sha256: object.sha256.clone(),
            artifact_size: object.size,
            format: "nimbus-model".into(),
            input_schema: Default::default(),
            output_schema: Default::default(),
            metrics: Default::default(),
            parameters: Default::default(),
            lineage: Default::default(),
            tags: Default::default(),
            description: String::new(),
            status: None,
        };
        f.inner.registry.register(group, version, "t").await.unwrap().version
    }
}
