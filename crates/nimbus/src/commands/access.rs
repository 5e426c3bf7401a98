//! `nimbus iam …`, `nimbus keys …`, `nimbus auth …`: access control over the admin API.
//! Secrets (access-key secrets, API key values, client secrets) are printed once, when made.

use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{
    AccessKeysCommand, AuthClientsCommand, AuthCommand, Global, IamCommand, IamGroupsCommand, IamPoliciesCommand,
    IamRolesCommand, IamUsersCommand, KeysCommand, PolicyHolder,
};
use crate::client::{Client, encode_segment as seg};
use crate::output::{cell, print};

fn read_json(path: &std::path::Path) -> Result<Value, CliError> {
    let text = if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| CliError::Input(format!("standard input: {e}")))?
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?
    };
    serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{}: not JSON: {e}", path.display())))
}

fn holder(h: &PolicyHolder) -> String {
    match (&h.user, &h.group, &h.role) {
        (Some(u), _, _) => format!("/iam/users/{}", seg(u)),
        (_, Some(g), _) => format!("/iam/groups/{}", seg(g)),
        (_, _, Some(r)) => format!("/iam/roles/{}", seg(r)),
        _ => unreachable!("clap requires one of --user, --group, --role"),
    }
}

/// A table cell: lists of names joined by commas (`-` when empty), anything else as `cell`.
fn table_cell(v: &Value) -> String {
    match v.as_array() {
        Some(items) if items.is_empty() => "-".into(),
        Some(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        None => cell(v),
    }
}

fn list(v: &Value, g: &Global, headers: &[&str], fields: &[&str]) {
    let rows = v
        .as_array()
        .map(|a| a.iter().map(|item| fields.iter().map(|f| table_cell(&item[*f])).collect()).collect())
        .unwrap_or_default();
    print(g.output, v, headers, rows);
}

pub async fn iam(g: &Global, cmd: IamCommand) -> Result<(), CliError> {
    let c = Client::new(g)?;
    match cmd {
        IamCommand::Users(cmd) => match cmd {
            IamUsersCommand::List => {
                let v = c.json("GET", "/iam/users", &[], None).await?;
                list(
                    &v,
                    g,
                    &["USER", "GROUPS", "POLICIES", "INLINE"],
                    &["name", "groups", "policies", "inline_policies"],
                );
            }
            IamUsersCommand::Create { name, tag } => {
                let mut tags = serde_json::Map::new();
                for t in &tag {
                    let (k, v) =
                        t.split_once('=').ok_or_else(|| CliError::Input(format!("--tag {t:?}: write KEY=VALUE")))?;
                    tags.insert(k.to_string(), Value::String(v.to_string()));
                }
                let v =
                    c.json("PUT", &format!("/iam/users/{}", seg(&name)), &[], Some(json!({ "tags": tags }))).await?;
                outln!(
                    "created user {} ({}); it holds no permission until a policy is attached",
                    name,
                    cell(&v["arn"])
                );
            }
            IamUsersCommand::Delete { name } => {
                c.json("DELETE", &format!("/iam/users/{}", seg(&name)), &[], None).await?;
                outln!("deleted user {name} with its access keys and policies");
            }
        },
        IamCommand::AccessKeys(cmd) => {
            let key_path = |user: &str, id: &str| format!("/iam/users/{}/access-keys/{}", seg(user), seg(id));
            match cmd {
                AccessKeysCommand::List { user } => {
                    let v = c.json("GET", &format!("/iam/users/{}/access-keys", seg(&user)), &[], None).await?;
                    list(&v, g, &["ACCESS KEY", "STATUS", "CREATED"], &["access_key_id", "status", "created_at"]);
                }
                AccessKeysCommand::Create { user } => {
                    let v = c.json("POST", &format!("/iam/users/{}/access-keys", seg(&user)), &[], None).await?;
                    print_new_key(g, &v);
                }
                AccessKeysCommand::Deactivate { user, access_key_id } => {
                    let body = json!({ "status": "Inactive" });
                    c.json("PATCH", &key_path(&user, &access_key_id), &[], Some(body)).await?;
                    outln!("{access_key_id} is Inactive: requests signed with it are refused");
                }
                AccessKeysCommand::Activate { user, access_key_id } => {
                    c.json("PATCH", &key_path(&user, &access_key_id), &[], Some(json!({ "status": "Active" }))).await?;
                    outln!("{access_key_id} is Active");
                }
                AccessKeysCommand::Delete { user, access_key_id } => {
                    c.json("DELETE", &key_path(&user, &access_key_id), &[], None).await?;
                    outln!("deleted {access_key_id}");
                }
                AccessKeysCommand::Rotate { user, access_key_id } => {
                    let v = c.json("POST", &format!("{}/rotate", key_path(&user, &access_key_id)), &[], None).await?;
                    print_new_key(g, &v);
                    outln!("{access_key_id} is now Inactive");
                }
            }
        }
        IamCommand::Groups(cmd) => match cmd {
            IamGroupsCommand::List => {
                let v = c.json("GET", "/iam/groups", &[], None).await?;
                list(&v, g, &["GROUP", "MEMBERS", "POLICIES"], &["name", "members", "policies"]);
            }
            IamGroupsCommand::Create { name } => {
                c.json("PUT", &format!("/iam/groups/{}", seg(&name)), &[], None).await?;
                outln!("created group {name}");
            }
            IamGroupsCommand::Delete { name } => {
                c.json("DELETE", &format!("/iam/groups/{}", seg(&name)), &[], None).await?;
                outln!("deleted group {name}");
            }
            IamGroupsCommand::AddUser { group, user } => {
                c.json("PUT", &format!("/iam/groups/{}/members/{}", seg(&group), seg(&user)), &[], None).await?;
                outln!("{user} is in group {group}");
            }
            IamGroupsCommand::RemoveUser { group, user } => {
                c.json("DELETE", &format!("/iam/groups/{}/members/{}", seg(&group), seg(&user)), &[], None).await?;
                outln!("{user} left group {group}");
            }
        },
        IamCommand::Roles(cmd) => match cmd {
            IamRolesCommand::List => {
                let v = c.json("GET", "/iam/roles", &[], None).await?;
                list(&v, g, &["ROLE", "ARN", "POLICIES"], &["name", "arn", "policies"]);
            }
            IamRolesCommand::Create { name, trust_policy, description } => {
                let body = json!({ "trust_policy": read_json(&trust_policy)?, "description": description });
                c.json("PUT", &format!("/iam/roles/{}", seg(&name)), &[], Some(body)).await?;
                outln!("created role {name}");
            }
            IamRolesCommand::Delete { name } => {
                c.json("DELETE", &format!("/iam/roles/{}", seg(&name)), &[], None).await?;
                outln!("deleted role {name}");
            }
        },
        IamCommand::Policies(cmd) => match cmd {
            IamPoliciesCommand::List => {
                let v = c.json("GET", "/iam/policies", &[], None).await?;
                list(&v, g, &["POLICY", "ATTACHED TO", "DESCRIPTION"], &["name", "attached_to", "description"]);
            }
            IamPoliciesCommand::Get { name } => {
                let v = c.json("GET", &format!("/iam/policies/{}", seg(&name)), &[], None).await?;
                outln!("{}", serde_json::to_string_pretty(&v["document"]).unwrap_or_default());
            }
            IamPoliciesCommand::Put { name, file, description } => {
                let doc = read_json(&file)?;
                let body = json!({ "document": doc.to_string(), "description": description });
                let v = c.json("PUT", &format!("/iam/policies/{}", seg(&name)), &[], Some(body)).await?;
                outln!("policy {name}: {}", if v["changed"] == true { "stored" } else { "unchanged" });
            }
            IamPoliciesCommand::Delete { name } => {
                c.json("DELETE", &format!("/iam/policies/{}", seg(&name)), &[], None).await?;
                outln!("deleted policy {name}");
            }
            IamPoliciesCommand::Attach { name, to } => {
                c.json("PUT", &format!("{}/attached-policies/{}", holder(&to), seg(&name)), &[], None).await?;
                outln!("attached {name}; it applies from the next request on");
            }
            IamPoliciesCommand::Detach { name, from } => {
                c.json("DELETE", &format!("{}/attached-policies/{}", holder(&from), seg(&name)), &[], None).await?;
                outln!("detached {name}; it no longer applies from the next request on");
            }
            IamPoliciesCommand::PutInline { name, file, of } => {
                let body = json!({ "document": read_json(&file)?.to_string() });
                c.json("PUT", &format!("{}/policies/{}", holder(&of), seg(&name)), &[], Some(body)).await?;
                outln!("inline policy {name} stored");
            }
            IamPoliciesCommand::DeleteInline { name, of } => {
                c.json("DELETE", &format!("{}/policies/{}", holder(&of), seg(&name)), &[], None).await?;
                outln!("inline policy {name} deleted");
            }
        },
    }
    Ok(())
}

fn print_new_key(g: &Global, v: &Value) {
    if g.output == crate::cli::Output::Json {
        outln!("{v}");
        return;
    }
    outln!("created an access key for {} (the secret is shown once: keep it now)", cell(&v["user"]));
    outln!("  aws_access_key_id     = {}", cell(&v["access_key_id"]));
    outln!("  aws_secret_access_key = {}", cell(&v["secret_access_key"]));
}

pub async fn keys(g: &Global, cmd: KeysCommand) -> Result<(), CliError> {
    let c = Client::new(g)?;
    match cmd {
        KeysCommand::Create { name, usage_plan } => {
            let v = c.json("POST", "/api-keys", &[], Some(json!({ "name": name, "usage_plan": usage_plan }))).await?;
            if g.output == crate::cli::Output::Json {
                outln!("{v}");
            } else {
                outln!("created API key {name} (the value is shown once; send it as x-api-key):");
                outln!("  {}", cell(&v["value"]));
            }
        }
        KeysCommand::List => {
            let v = c.json("GET", "/api-keys", &[], None).await?;
            list(&v, g, &["KEY", "USAGE PLAN", "ENABLED", "CREATED"], &["name", "usage_plan", "enabled", "created_at"]);
        }
        KeysCommand::Disable { name } => {
            c.json("PATCH", &format!("/api-keys/{}", seg(&name)), &[], Some(json!({ "enabled": false }))).await?;
            outln!("API key {name} is disabled: refused from the next request on");
        }
        KeysCommand::Enable { name } => {
            c.json("PATCH", &format!("/api-keys/{}", seg(&name)), &[], Some(json!({ "enabled": true }))).await?;
            outln!("API key {name} is enabled");
        }
        KeysCommand::Delete { name } => {
            c.json("DELETE", &format!("/api-keys/{}", seg(&name)), &[], None).await?;
            outln!("deleted API key {name}");
        }
        KeysCommand::Usage { name } => {
            let v = c.json("GET", &format!("/api-keys/{}/usage", seg(&name)), &[], None).await?;
            let q = &v["quota"];
            if q.is_null() {
                print(g.output, &v, &["KEY", "QUOTA"], vec![vec![name, "none (its plan has no quota)".into()]]);
            } else {
                let row = ["limit", "used", "remaining", "period_start", "period_end"].iter().map(|k| cell(&q[*k]));
                let mut cells = vec![name];
                cells.extend(row);
                print(g.output, &v, &["KEY", "LIMIT", "USED", "LEFT", "PERIOD START", "PERIOD END"], vec![cells]);
            }
        }
        KeysCommand::Plans => {
            let v = c.json("GET", "/usage-plans", &[], None).await?;
            let rows = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            let s = &p["spec"];
                            let throttle = match &s["throttle"] {
                                Value::Null => "-".to_string(),
                                t => format!("{}/s, burst {}", cell(&t["rate"]), cell(&t["burst"])),
                            };
                            let quota = match &s["quota"] {
                                Value::Null => "-".to_string(),
                                q => format!("{} per {}", cell(&q["limit"]), cell(&q["period"])),
                            };
                            let stages: Vec<String> = s["stages"]
                                .as_array()
                                .map(|a| {
                                    a.iter().map(|st| format!("{}/{}", cell(&st["api"]), cell(&st["stage"]))).collect()
                                })
                                .unwrap_or_default();
                            vec![cell(&p["name"]), throttle, quota, stages.join(", ")]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(g.output, &v, &["PLAN", "THROTTLE", "QUOTA", "STAGES"], rows);
        }
    }
    Ok(())
}

pub async fn auth(g: &Global, cmd: AuthCommand) -> Result<(), CliError> {
    let c = Client::new(g)?;
    match cmd {
        AuthCommand::Clients(cmd) => match cmd {
            AuthClientsCommand::List => {
                let v = c.json("GET", "/auth/clients", &[], None).await?;
                list(&v, g, &["CLIENT", "CLIENT ID", "SCOPES"], &["name", "client_id", "scopes"]);
            }
            AuthClientsCommand::Create { name, scopes, client_id } => {
                let body = json!({ "name": name, "scopes": scopes, "client_id": client_id });
                let v = c.json("PUT", &format!("/auth/clients/{}", seg(&name)), &[], Some(body)).await?;
                print_client(g, &v);
            }
            AuthClientsCommand::Delete { name } => {
                c.json("DELETE", &format!("/auth/clients/{}", seg(&name)), &[], None).await?;
                outln!("deleted app client {name}");
            }
            AuthClientsCommand::RotateSecret { name } => {
                let v = c.json("POST", &format!("/auth/clients/{}/rotate-secret", seg(&name)), &[], None).await?;
                print_client(g, &v);
            }
        },
        AuthCommand::ResourceServers => {
            let v = c.json("GET", "/auth/resource-servers", &[], None).await?;
            list(&v, g, &["IDENTIFIER", "NAME", "SCOPES"], &["identifier", "name", "scopes"]);
        }
        AuthCommand::RotateSigningKey => {
            let v = c.json("POST", "/auth/signing-keys/rotate", &[], None).await?;
            outln!("new signing key {}; tokens signed by the old key stay valid until they expire", cell(&v["kid"]));
        }
    }
    Ok(())
}

fn print_client(g: &Global, v: &Value) {
    if g.output == crate::cli::Output::Json {
        outln!("{v}");
        return;
    }
    outln!("app client {}: client id {}", cell(&v["name"]), cell(&v["client_id"]));
    match v["client_secret"].as_str() {
        Some(secret) => outln!("  client secret {secret} (shown once: keep it now)"),
        None => outln!("  (existing client: its secret is unchanged and not shown; rotate-secret makes a new one)"),
    }
}
