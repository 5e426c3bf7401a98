//! Resource servers (the scopes tokens may carry) and app clients (who may ask for them), with
//! Cognito's naming rules and limits.
//!
//! A client's scopes always exist: replacing a resource server's scopes or deleting it removes
//! the vanished `identifier/scope` entries from every client in the same transaction. Client
//! secrets are random (52 lowercase letters and digits, ~268 bits), shown once, stored
//! sealed with the master key and bound to the client id.

use std::collections::BTreeSet;

use nimbus_core::clock;
use nimbus_meta::sqlx::{self, Any, Row, Transaction};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Oauth, OauthError};

/// Access-token validity when a client does not say (Cognito's default, one hour).
pub const DEFAULT_TOKEN_VALIDITY_S: u64 = 3600;
/// Shortest access-token validity a client may have (Cognito's: five minutes).
pub const MIN_TOKEN_VALIDITY_S: u64 = 300;
/// Longest access-token validity a client may have (Cognito's: one day).
pub const MAX_TOKEN_VALIDITY_S: u64 = 86_400;
/// Scopes per resource server and per client (Cognito allows 100 and 50; one limit here).
const MAX_SCOPES: usize = 100;

fn default_validity() -> u64 {
    DEFAULT_TOKEN_VALIDITY_S
}

/// A resource server: an API whose scopes clients may be granted, named `identifier/scope`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceServerSpec {
    /// Usually the API's URL (`https://api.example.com`) or a short word (`orders`).
    pub identifier: String,
    /// A display name.
    pub name: String,
    pub scopes: Vec<ScopeSpec>,
}

/// One scope of a resource server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScopeSpec {
    /// The scope's name within its resource server (`read`); tokens carry `identifier/name`.
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// What an app client is declared with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientSpec {
    /// Unique name of the client (the handle for delete and secret rotation).
    pub name: String,
    /// A chosen client id (1–128 of `[A-Za-z0-9_+]`); by default 26 random lowercase letters
    /// and digits, like Cognito's.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The `identifier/scope` values the client may ask for; each must exist.
    pub scopes: Vec<String>,
    /// Access-token validity in seconds, 300..=86400.
    #[serde(default = "default_validity")]
    pub token_validity_s: u64,
}

/// An app client as stored, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub name: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub token_validity_s: u64,
    pub created_ms: i64,
}

/// A client with its secret, returned only when the secret is made. Serialises as the
/// client's fields plus `client_secret` (the one answer that shows it); `Debug` hides it.
#[derive(Clone, Serialize)]
pub struct NewClient {
    #[serde(flatten)]
    pub info: ClientInfo,
    pub client_secret: String,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClient").field("info", &self.info).field("client_secret", &"***").finish()
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> OauthError {
    OauthError::Invalid { field: field.into(), reason: reason.into() }
}

/// Cognito's character rules, as predicates on one character.
fn printable_no_quote(c: char) -> bool {
    c.is_ascii_graphic() && c != '"' && c != '\\'
}
fn display_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ' ' || "+=,.@-".contains(c)
}
fn client_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '+'
}

fn check_text(field: &str, value: &str, max: usize, ok: fn(char) -> bool, rule: &str) -> Result<(), OauthError> {
    if value.is_empty() || value.chars().count() > max || !value.chars().all(ok) {
        return Err(invalid(field, format!("{value:?} is not valid: use 1 to {max} {rule}")));
    }
    Ok(())
}

fn check_resource_server(spec: &ResourceServerSpec) -> Result<(), OauthError> {
    check_text(
        "identifier",
        &spec.identifier,
        256,
        printable_no_quote,
        "printable ASCII characters without spaces, quotes or backslashes (e.g. https://api.example.com or orders)",
    )?;
    check_text("name", &spec.name, 256, display_name_char, "letters, digits, spaces and _+=,.@-")?;
    if spec.scopes.len() > MAX_SCOPES {
        return Err(invalid(
            "scopes",
            format!("{} scopes; a resource server may have at most {MAX_SCOPES}", spec.scopes.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, s) in spec.scopes.iter().enumerate() {
        check_text(
            &format!("scopes[{i}].name"),
            &s.name,
            256,
            |c| printable_no_quote(c) && c != '/',
            "printable ASCII characters without spaces, slashes, quotes or backslashes (e.g. read)",
        )?;
        if s.description.chars().count() > 256 {
            return Err(invalid(format!("scopes[{i}].description"), "longer than 256 characters; shorten it"));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(invalid(format!("scopes[{i}].name"), format!("{:?} is listed twice; list it once", s.name)));
        }
    }
    Ok(())
}

/// Checks a client spec; returns its scopes without duplicates, in the given order.
fn check_client(spec: &ClientSpec) -> Result<Vec<String>, OauthError> {
    check_text("name", &spec.name, 128, display_name_char, "letters, digits, spaces and _+=,.@-")?;
    if let Some(id) = &spec.client_id {
        check_text("client_id", id, 128, client_id_char, "letters, digits, _ and + (or leave it out for a random id)")?;
    }
    if !(MIN_TOKEN_VALIDITY_S..=MAX_TOKEN_VALIDITY_S).contains(&spec.token_validity_s) {
        return Err(invalid(
            "token_validity_s",
            format!(
                "{} is out of range: give {MIN_TOKEN_VALIDITY_S} to {MAX_TOKEN_VALIDITY_S} seconds (default {DEFAULT_TOKEN_VALIDITY_S})",
                spec.token_validity_s
            ),
        ));
    }
    if spec.scopes.is_empty() {
        return Err(invalid(
            "scopes",
            "empty: a client-credentials client needs at least one scope, e.g. orders/read (declare it on a resource server first)",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(spec.scopes.len());
    for (i, s) in spec.scopes.iter().enumerate() {
        if split_scope(s).is_none() {
            return Err(invalid(format!("scopes[{i}]"), format!("{s:?} is not identifier/scope (e.g. orders/read)")));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    if out.len() > MAX_SCOPES {
        return Err(invalid("scopes", format!("{} scopes; a client may have at most {MAX_SCOPES}", out.len())));
    }
    Ok(out)
}

/// `identifier/scope` → (identifier, scope); identifiers may hold slashes, scope names not.
pub(crate) fn split_scope(full: &str) -> Option<(&str, &str)> {
    full.rsplit_once('/').filter(|(id, name)| !id.is_empty() && !name.is_empty())
}

fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

pub(crate) fn new_client_id() -> String {
    random_string(26)
}

pub(crate) fn new_client_secret() -> String {
    random_string(52)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> OauthError {
    OauthError::Corrupt(format!("{what}: {e}"))
}

fn client_from_row(row: &sqlx::any::AnyRow) -> Result<ClientInfo, OauthError> {
    let client_id: String = row.try_get("client_id")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(ClientInfo {
        name: row.try_get("name")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| corrupt(&format!("client {client_id} scopes"), e))?,
        token_validity_s: row.try_get::<i64, _>("token_validity_s")?.max(0) as u64,
        created_ms: row.try_get("created_ms")?,
        client_id,
    })
}

/// A client and its sealed secret, for the token endpoint.
pub(crate) struct StoredClient {
    pub info: ClientInfo,
    pub secret_sealed: String,
}

/// Every `identifier/scope` that exists now.
async fn existing_scopes(tx: &mut Transaction<'static, Any>) -> Result<BTreeSet<String>, OauthError> {
    let rows = sqlx::query("SELECT identifier, scopes FROM oauth_resource_servers").fetch_all(&mut **tx).await?;
    let mut out = BTreeSet::new();
    for row in rows {
        let id: String = row.try_get("identifier")?;
        let scopes: String = row.try_get("scopes")?;
        let scopes: Vec<ScopeSpec> =
            serde_json::from_str(&scopes).map_err(|e| corrupt(&format!("resource server {id} scopes"), e))?;
        out.extend(scopes.into_iter().map(|s| format!("{id}/{}", s.name)));
    }
    Ok(out)
}

fn check_scopes_exist(scopes: &[String], existing: &BTreeSet<String>) -> Result<(), OauthError> {
    for (i, s) in scopes.iter().enumerate() {
        if !existing.contains(s) {
            return Err(invalid(
                format!("scopes[{i}]"),
                format!("{s:?} is not a scope of any resource server; declare it on its resource server first"),
            ));
        }
    }
    Ok(())
}

/// Drops the client scopes `keep` refuses, in every client.
async fn prune_client_scopes(
    tx: &mut Transaction<'static, Any>,
    keep: impl Fn(&str) -> bool,
) -> Result<(), OauthError> {
    let rows = sqlx::query("SELECT client_id, scopes FROM oauth_clients").fetch_all(&mut **tx).await?;
    for row in rows {
        let id: String = row.try_get("client_id")?;
        let text: String = row.try_get("scopes")?;
        let scopes: Vec<String> =
            serde_json::from_str(&text).map_err(|e| corrupt(&format!("client {id} scopes"), e))?;
        let kept: Vec<&String> = scopes.iter().filter(|s| keep(s)).collect();
        if kept.len() != scopes.len() {
            sqlx::query("UPDATE oauth_clients SET scopes = $1 WHERE client_id = $2")
                .bind(serde_json::to_string(&kept).expect("strings serialise"))
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Oauth {
    /// Creates or replaces a resource server. Scopes it no longer has are taken away from
    /// every client. Returns whether anything changed.
    pub async fn put_resource_server(&self, spec: &ResourceServerSpec) -> Result<bool, OauthError> {
        check_resource_server(spec)?;
        let db = &self.inner.db;
        let mut tx = db.write().await?;
        let sql = format!("SELECT name, scopes FROM oauth_resource_servers WHERE identifier = $1{}", db.for_update());
        let old = sqlx::query(&sql).bind(&spec.identifier).fetch_optional(&mut *tx.tx).await?;
        let old_scopes: Option<Vec<ScopeSpec>> = match &old {
            None => None,
            Some(row) => {
                let text: String = row.try_get("scopes")?;
                let name: String = row.try_get("name")?;
                let scopes: Vec<ScopeSpec> = serde_json::from_str(&text)
                    .map_err(|e| corrupt(&format!("resource server {} scopes", spec.identifier), e))?;
                if name == spec.name && scopes == spec.scopes {
                    return Ok(false);
                }
                Some(scopes)
            }
        };
        sqlx::query(
            "INSERT INTO oauth_resource_servers (identifier, name, scopes, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (identifier) DO UPDATE SET name = excluded.name, scopes = excluded.scopes",
        )
        .bind(&spec.identifier)
        .bind(&spec.name)
        .bind(serde_json::to_string(&spec.scopes).expect("scopes serialise"))
        .bind(clock::now_ms())
        .execute(&mut *tx.tx)
        .await?;
        if let Some(old_scopes) = old_scopes {
            let kept: BTreeSet<&str> = spec.scopes.iter().map(|s| s.name.as_str()).collect();
            if old_scopes.iter().any(|s| !kept.contains(s.name.as_str())) {
                prune_client_scopes(&mut tx.tx, |s| match split_scope(s) {
                    Some((id, name)) if id == spec.identifier => kept.contains(name),
                    _ => true,
                })
                .await?;
            }
        }
        tx.commit().await?;
        self.refresh_scopes().await;
        Ok(true)
    }

    /// Every resource server, by identifier.
    pub async fn list_resource_servers(&self) -> Result<Vec<ResourceServerSpec>, OauthError> {
        let rows = sqlx::query("SELECT identifier, name, scopes FROM oauth_resource_servers ORDER BY identifier")
            .fetch_all(self.inner.db.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let identifier: String = row.try_get("identifier")?;
            let text: String = row.try_get("scopes")?;
            let scopes =
                serde_json::from_str(&text).map_err(|e| corrupt(&format!("resource server {identifier} scopes"), e))?;
            out.push(ResourceServerSpec { name: row.try_get("name")?, identifier, scopes });
        }
        Ok(out)
    }

    /// Deletes a resource server and takes its scopes away from every client. Returns whether
    /// it existed.
    pub async fn delete_resource_server(&self, identifier: &str) -> Result<bool, OauthError> {
        let mut tx = self.inner.db.write().await?;
        let n = sqlx::query("DELETE FROM oauth_resource_servers WHERE identifier = $1")
            .bind(identifier)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n > 0 {
            prune_client_scopes(&mut tx.tx, |s| split_scope(s).is_none_or(|(id, _)| id != identifier)).await?;
        }
        tx.commit().await?;
        self.refresh_scopes().await;
        Ok(n > 0)
    }

    /// Creates an app client; the answer holds its secret, which is shown this once.
    pub async fn create_client(&self, spec: &ClientSpec) -> Result<NewClient, OauthError> {
        let scopes = check_client(spec)?;
        let mut tx = self.inner.db.write().await?;
        let new = self.insert_client(&mut tx.tx, spec, scopes).await?;
        tx.commit().await?;
        Ok(new)
    }

    async fn insert_client(
        &self,
        tx: &mut Transaction<'static, Any>,
        spec: &ClientSpec,
        scopes: Vec<String>,
    ) -> Result<NewClient, OauthError> {
        check_scopes_exist(&scopes, &existing_scopes(tx).await?)?;
        if sqlx::query("SELECT client_id FROM oauth_clients WHERE name = $1")
            .bind(&spec.name)
            .fetch_optional(&mut **tx)
            .await?
            .is_some()
        {
            return Err(OauthError::Exists(format!(
                "an app client named {:?} exists; pick another name, or rotate its secret",
                spec.name
            )));
        }
        let client_id = match &spec.client_id {
            Some(id) => {
                let taken = sqlx::query("SELECT name FROM oauth_clients WHERE client_id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                if let Some(row) = taken {
                    let other: String = row.try_get("name")?;
                    return Err(OauthError::Exists(format!(
                        "client_id {id:?} belongs to the app client {other:?}; choose another id or leave it out"
                    )));
                }
                id.clone()
            }
            None => new_client_id(),
        };
        let secret = new_client_secret();
        let info = ClientInfo {
            name: spec.name.clone(),
            client_id,
            scopes,
            token_validity_s: spec.token_validity_s,
            created_ms: clock::now_ms(),
        };
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, name, secret_sealed, scopes, token_validity_s, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&info.client_id)
        .bind(&info.name)
        .bind(self.inner.key.seal(&secret, &info.client_id))
        .bind(serde_json::to_string(&info.scopes).expect("strings serialise"))
        .bind(info.token_validity_s as i64)
        .bind(info.created_ms)
        .execute(&mut **tx)
        .await?;
        Ok(NewClient { info, client_secret: secret })
    }

    /// Declares a client for `nimbus apply`: created when missing (then, and only then, the
    /// secret is returned), its scopes and token validity updated when they differ. An
    /// existing secret is never regenerated.
    pub async fn ensure_client(&self, spec: &ClientSpec) -> Result<(ClientInfo, Option<NewClient>), OauthError> {
        let scopes = check_client(spec)?;
        let db = &self.inner.db;
        let mut tx = db.write().await?;
        let sql = format!(
            "SELECT client_id, name, scopes, token_validity_s, created_ms FROM oauth_clients WHERE name = $1{}",
            db.for_update()
        );
        let Some(row) = sqlx::query(&sql).bind(&spec.name).fetch_optional(&mut *tx.tx).await? else {
            let new = self.insert_client(&mut tx.tx, spec, scopes).await?;
            tx.commit().await?;
            return Ok((new.info.clone(), Some(new)));
        };
        let mut info = client_from_row(&row)?;
        if let Some(id) = spec.client_id.as_ref().filter(|id| **id != info.client_id) {
            return Err(invalid(
                "client_id",
                format!(
                    "the app client {:?} has the id {:?}, not {id:?}; a client id cannot change: drop client_id, or delete the client to create it anew",
                    info.name, info.client_id
                ),
            ));
        }
        if info.scopes != scopes || info.token_validity_s != spec.token_validity_s {
            check_scopes_exist(&scopes, &existing_scopes(&mut tx.tx).await?)?;
            sqlx::query("UPDATE oauth_clients SET scopes = $1, token_validity_s = $2 WHERE client_id = $3")
                .bind(serde_json::to_string(&scopes).expect("strings serialise"))
                .bind(spec.token_validity_s as i64)
                .bind(&info.client_id)
                .execute(&mut *tx.tx)
                .await?;
            info.scopes = scopes;
            info.token_validity_s = spec.token_validity_s;
        }
        tx.commit().await?;
        Ok((info, None))
    }

    /// Every app client, by name, without secrets.
    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>, OauthError> {
        let rows = sqlx::query(
            "SELECT client_id, name, scopes, token_validity_s, created_ms FROM oauth_clients ORDER BY name",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Deletes an app client by name; its tokens stay valid until they expire.
    pub async fn delete_client(&self, name: &str) -> Result<bool, OauthError> {
        let n = self.inner.db.write_one(sqlx::query("DELETE FROM oauth_clients WHERE name = $1").bind(name)).await?;
        Ok(n > 0)
    }

    /// Gives a client a new secret (returned this once); the old one stops working at once.
    pub async fn rotate_client_secret(&self, name: &str) -> Result<NewClient, OauthError> {
        let db = &self.inner.db;
        let mut tx = db.write().await?;
        let sql = format!(
            "SELECT client_id, name, scopes, token_validity_s, created_ms FROM oauth_clients WHERE name = $1{}",
            db.for_update()
        );
        let row = sqlx::query(&sql).bind(name).fetch_optional(&mut *tx.tx).await?.ok_or_else(|| {
            OauthError::NotFound(format!("no app client named {name:?}; list the clients to see their names"))
        })?;
        let info = client_from_row(&row)?;
        let secret = new_client_secret();
        sqlx::query("UPDATE oauth_clients SET secret_sealed = $1 WHERE client_id = $2")
            .bind(self.inner.key.seal(&secret, &info.client_id))
            .bind(&info.client_id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(NewClient { info, client_secret: secret })
    }

    /// The client with this id, and its sealed secret.
    pub(crate) async fn stored_client(&self, client_id: &str) -> Result<Option<StoredClient>, OauthError> {
        let row = sqlx::query(
            "SELECT client_id, name, secret_sealed, scopes, token_validity_s, created_ms FROM oauth_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(self.inner.db.pool())
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                Ok(Some(StoredClient { info: client_from_row(&row)?, secret_sealed: row.try_get("secret_sealed")? }))
            }
        }
    }

    /// Every `identifier/scope`, for the discovery document.
    pub(crate) async fn all_scopes(&self) -> Result<Vec<String>, OauthError> {
        let mut out = Vec::new();
        for rs in self.list_resource_servers().await? {
            out.extend(rs.scopes.iter().map(|s| format!("{}/{}", rs.identifier, s.name)));
        }
        Ok(out)
    }
}
