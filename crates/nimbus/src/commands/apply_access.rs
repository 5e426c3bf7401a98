//! The access-control part of `nimbus apply`: IAM policies, groups, users and roles, usage
//! plans, API keys and the OAuth2 resource servers and app clients, each created or brought
//! in line idempotently. Secrets (new API key values, client secrets) are printed once, when
//! created, and handed back to the caller (`nimbus up` prints its curl with the key).

use serde_json::{Value, json};

use crate::CliError;
use crate::client::{Client, encode_segment};
use crate::output::cell;
use crate::project::{PrincipalDecl, Project};

/// Secrets created by this apply, by name.
#[derive(Debug, Default)]
pub struct Created {
    /// `(api key name, value)`
    pub api_keys: Vec<(String, String)>,
}

async fn get_opt(client: &Client, path: &str) -> Result<Option<Value>, CliError> {
    match client.json("GET", path, &[], None).await {
        Ok(v) => Ok(Some(v)),
        Err(CliError::Input(m)) if m.contains("NotFound") || m.contains("NoSuchEntity") => Ok(None),
        Err(e) => Err(e),
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// Applies `[iam.*]` (before functions and APIs, so roles exist when they are named).
pub async fn apply_iam(
    client: &Client,
    project: &Project,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<(), CliError> {
    let verb = |doing: &str| if dry_run { format!("would {doing}") } else { doing.to_string() };
    let iam = &project.iam;
    let policies = client.json("GET", "/iam/policies", &[], None).await?;
    for (name, decl) in &iam.policies {
        let doc = project.policy_document(name, decl)?;
        let current = policies.as_array().and_then(|a| a.iter().find(|p| p["name"] == name.as_str()));
        let wanted: Value = serde_json::from_str(&doc).expect("checked when loaded");
        let what = match current {
            Some(p) if p["document"] == wanted => "unchanged".to_string(),
            Some(_) => verb("update"),
            None => verb("create"),
        };
        if !dry_run && what != "unchanged" {
            let body = json!({ "document": doc, "description": decl.description });
            client.json("PUT", &format!("/iam/policies/{}", encode_segment(name)), &[], Some(body)).await?;
        }
        say(format!("policy   {name}: {what}"));
    }
    let groups = client.json("GET", "/iam/groups", &[], None).await?;
    for (name, decl) in &iam.groups {
        let current = groups.as_array().and_then(|a| a.iter().find(|g| g["name"] == name.as_str())).cloned();
        let created = current.is_none();
        if created && !dry_run {
            client.json("PUT", &format!("/iam/groups/{}", encode_segment(name)), &[], None).await?;
        }
        let changes = attach(client, "groups", name, decl, current.as_ref(), dry_run).await?;
        say(format!("group    {name}: {}", outcome(created, changes, dry_run)));
    }
    let users = client.json("GET", "/iam/users", &[], None).await?;
    for (name, decl) in &iam.users {
        let current = users.as_array().and_then(|a| a.iter().find(|u| u["name"] == name.as_str())).cloned();
        let created = current.is_none();
        let seg = encode_segment(name);
        if created && !dry_run {
            client.json("PUT", &format!("/iam/users/{seg}"), &[], Some(json!({ "tags": decl.tags }))).await?;
        }
        let mut changes = attach(client, "users", name, decl, current.as_ref(), dry_run).await?;
        let have_groups = current.as_ref().map(|u| names(&u["groups"])).unwrap_or_default();
        for g in decl.groups.iter().filter(|g| !have_groups.contains(g)) {
            if !dry_run {
                client.json("PUT", &format!("/iam/groups/{}/members/{seg}", encode_segment(g)), &[], None).await?;
            }
            changes += 1;
        }
        for g in have_groups.iter().filter(|g| !decl.groups.contains(g)) {
            if !dry_run {
                client.json("DELETE", &format!("/iam/groups/{}/members/{seg}", encode_segment(g)), &[], None).await?;
            }
            changes += 1;
        }
        if !created && current.as_ref().is_some_and(|u| u["tags"] != json!(decl.tags)) {
            if !dry_run {
                client.json("PUT", &format!("/iam/users/{seg}/tags"), &[], Some(json!(decl.tags))).await?;
            }
            changes += 1;
        }
        say(format!("user     {name}: {}", outcome(created, changes, dry_run)));
    }
    let roles = client.json("GET", "/iam/roles", &[], None).await?;
    for (name, decl) in &iam.roles {
        let current = roles.as_array().and_then(|a| a.iter().find(|r| r["name"] == name.as_str())).cloned();
        let created = current.is_none();
        if created && !dry_run {
            let body = json!({ "trust_policy": decl.trust_policy, "description": decl.description });
            client.json("PUT", &format!("/iam/roles/{}", encode_segment(name)), &[], Some(body)).await?;
        }
        let changes = attach(client, "roles", name, decl, current.as_ref(), dry_run).await?;
        say(format!("role     {name}: {}", outcome(created, changes, dry_run)));
    }
    Ok(())
}

fn outcome(created: bool, changes: usize, dry_run: bool) -> String {
    let w = if dry_run { "would " } else { "" };
    match (created, changes) {
        (true, _) => format!("{w}create"),
        (false, 0) => "unchanged".into(),
        (false, n) => format!("{w}update ({n} change{})", if n == 1 { "" } else { "s" }),
    }
}

/// Makes the managed and inline policies of a group, user or role match the declaration.
async fn attach(
    client: &Client,
    kind: &str,
    name: &str,
    decl: &PrincipalDecl,
    current: Option<&Value>,
    dry_run: bool,
) -> Result<usize, CliError> {
    let base = format!("/iam/{kind}/{}", encode_segment(name));
    let have = current.map(|c| names(&c["policies"])).unwrap_or_default();
    let have_inline = current.map(|c| names(&c["inline_policies"])).unwrap_or_default();
    let mut changes = 0;
    for p in decl.policies.iter().filter(|p| !have.contains(p)) {
        if !dry_run {
            client.json("PUT", &format!("{base}/attached-policies/{}", encode_segment(p)), &[], None).await?;
        }
        changes += 1;
    }
    for p in have.iter().filter(|p| !decl.policies.contains(p)) {
        if !dry_run {
            client.json("DELETE", &format!("{base}/attached-policies/{}", encode_segment(p)), &[], None).await?;
        }
        changes += 1;
    }
    for (p, doc) in &decl.inline_policies {
        let path = format!("{base}/policies/{}", encode_segment(p));
        // Inline documents are compared by reading them back (users only have a GET).
        let same = kind == "users"
            && have_inline.contains(p)
            && get_opt(client, &path).await?.is_some_and(|v| v["document"] == *doc);
        if !same {
            if !dry_run {
                client.json("PUT", &path, &[], Some(json!({ "document": doc.to_string() }))).await?;
            }
            changes += 1;
        }
    }
    for p in have_inline.iter().filter(|p| !decl.inline_policies.contains_key(*p)) {
        if !dry_run {
            client.json("DELETE", &format!("{base}/policies/{}", encode_segment(p)), &[], None).await?;
        }
        changes += 1;
    }
    Ok(changes)
}

/// Applies usage plans, API keys and the OAuth2 declarations (after the APIs they name).
pub async fn apply_access(
    client: &Client,
    project: &Project,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> Result<Created, CliError> {
    let verb = |doing: &str| if dry_run { format!("would {doing}") } else { doing.to_string() };
    let mut created = Created::default();
    let plans = client.json("GET", "/usage-plans", &[], None).await?;
    for (name, spec) in &project.usage_plans {
        let wanted = serde_json::to_value(spec).expect("specs serialise");
        let current = plans.as_array().and_then(|a| a.iter().find(|p| p["name"] == name.as_str()));
        let what = match current {
            Some(p) if p["spec"] == wanted => "unchanged".to_string(),
            Some(_) => verb("update"),
            None => verb("create"),
        };
        if !dry_run && what != "unchanged" {
            client.json("PUT", &format!("/usage-plans/{}", encode_segment(name)), &[], Some(wanted)).await?;
        }
        let throttle = spec.throttle.map(|t| format!("{} req/s, burst {}", t.rate, t.burst));
        let quota = spec.quota.map(|q| format!("{} per {}", q.limit, cell(&json!(q.period))));
        let limits = [throttle, quota].into_iter().flatten().collect::<Vec<_>>().join("; ");
        say(format!("plan     {name}: {what} ({})", if limits.is_empty() { "no limits".into() } else { limits }));
    }
    let keys = client.json("GET", "/api-keys", &[], None).await?;
    for (name, decl) in &project.api_keys {
        let current = keys.as_array().and_then(|a| a.iter().find(|k| k["name"] == name.as_str()));
        match current {
            None => {
                if dry_run {
                    say(format!("api key  {name}: would create"));
                    continue;
                }
                let v = client
                    .json("POST", "/api-keys", &[], Some(json!({ "name": name, "usage_plan": decl.usage_plan })))
                    .await?;
                let value = v["value"].as_str().unwrap_or_default().to_string();
                say(format!("api key  {name}: create (value {value}: shown once, send it as x-api-key)"));
                created.api_keys.push((name.clone(), value));
            }
            Some(k) if k["usage_plan"].as_str() != decl.usage_plan.as_deref() => {
                if !dry_run {
                    let body = json!({ "usage_plan": decl.usage_plan.clone().unwrap_or_default() });
                    client.json("PATCH", &format!("/api-keys/{}", encode_segment(name)), &[], Some(body)).await?;
                }
                say(format!("api key  {name}: {}", verb("update (usage plan)")));
            }
            Some(_) => say(format!("api key  {name}: unchanged")),
        }
    }
    let servers = client.json("GET", "/auth/resource-servers", &[], None).await?;
    for (id, decl) in &project.auth.resource_servers {
        let spec =
            json!({ "identifier": id, "name": decl.name.clone().unwrap_or_else(|| id.clone()), "scopes": decl.scopes });
        let current = servers.as_array().and_then(|a| a.iter().find(|r| r["identifier"] == id.as_str()));
        let what = match current {
            Some(c) if *c == spec => "unchanged".to_string(),
            Some(_) => verb("update"),
            None => verb("create"),
        };
        if !dry_run && what != "unchanged" {
            client.json("PUT", &format!("/auth/resource-servers/{}", encode_segment(id)), &[], Some(spec)).await?;
        }
        say(format!("scopes   {id}: {what}"));
    }
    for (name, decl) in &project.auth.clients {
        if dry_run {
            say(format!("client   {name}: would create or update"));
            continue;
        }
        let mut body = json!({ "name": name, "client_id": decl.client_id, "scopes": decl.scopes });
        if let Some(v) = decl.token_validity_s {
            body["token_validity_s"] = json!(v);
        }
        let v = client.json("PUT", &format!("/auth/clients/{}", encode_segment(name)), &[], Some(body)).await?;
        let id = v["client_id"].as_str().unwrap_or_default();
        match v["client_secret"].as_str() {
            Some(secret) => say(format!("client   {name}: create (client id {id}, secret {secret}: shown once)")),
            None => say(format!("client   {name}: unchanged (client id {id})")),
        }
    }
    Ok(created)
}
