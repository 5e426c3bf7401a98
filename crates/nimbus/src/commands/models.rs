//! `nimbus models`: the registry from the command line.

use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{Global, ModelsCommand, Output};
use crate::client::{Client, encode_segment};
use crate::output::{self, cell};

fn group_path(group: &str) -> String {
    format!("/model-groups/{}", encode_segment(group))
}

/// A version named `GROUP/VERSION` or `GROUP VERSION` (every command takes both), as
/// `(group, version-or-selector)`; `None` when only a group was given.
fn version_ref(first: &str, second: Option<&str>) -> Result<(String, Option<String>), CliError> {
    match (first.split_once('/'), second) {
        (Some(_), Some(_)) => Err(CliError::Input(format!(
            "{first:?} already names a version; give GROUP/VERSION or GROUP VERSION, not both"
        ))),
        (Some((g, v)), None) => Ok((g.to_string(), Some(v.to_string()))),
        (None, v) => Ok((first.to_string(), v.map(str::to_string))),
    }
}

/// [`version_ref`] where the version is required and a number.
fn numbered(first: &str, second: Option<&str>) -> Result<(String, String), CliError> {
    match version_ref(first, second)? {
        (group, Some(v)) => Ok((group, version_arg(&v)?)),
        (group, None) => {
            Err(CliError::Input(format!("name the version: {group}/VERSION (or {group} VERSION), e.g. {group}/1")))
        }
    }
}

fn version_arg(text: &str) -> Result<String, CliError> {
    match text.parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v.to_string()),
        _ => Err(CliError::Input(format!("VERSION {text:?} is not a version number (1, 2, 3, ...)"))),
    }
}

pub async fn run(g: &Global, cmd: ModelsCommand) -> Result<(), CliError> {
    let client = Client::new(g)?;
    match cmd {
        ModelsCommand::List { group: None, .. } => {
            let v = client.json("GET", "/model-groups", &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    let aliases = g["aliases"]
                        .as_object()
                        .map(|m| m.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(","))
                        .unwrap_or_default();
                    vec![
                        cell(&g["name"]),
                        cell(&g["version_count"]),
                        cell(&g["latest_approved_version"]),
                        if aliases.is_empty() { "-".into() } else { aliases },
                        cell(&g["created_at"]),
                    ]
                })
                .collect();
            output::print(g.output, &v, &["GROUP", "VERSIONS", "LATEST APPROVED", "ALIASES", "CREATED"], rows);
        }
        ModelsCommand::List { group: Some(group), status } => {
            let query: Vec<(&str, &str)> = status.as_deref().map(|s| vec![("status", s)]).unwrap_or_default();
            let v = client.json("GET", &format!("{}/versions", group_path(&group)), &query, None).await?;
            let rows = v.as_array().into_iter().flatten().map(version_row).collect();
            output::print(g.output, &v, &["VERSION", "STATUS", "ALIASES", "METRICS", "CREATED", "BY"], rows);
        }
        ModelsCommand::Create { group, description } => {
            let v = client
                .json("POST", "/model-groups", &[], Some(json!({"name": group, "description": description})))
                .await?;
            describe_group(g.output, &v);
        }
        ModelsCommand::Describe { target, version } => {
            let (group, which) = version_ref(&target, version.as_deref())?;
            match which {
                None => {
                    let v = client.json("GET", &group_path(&group), &[], None).await?;
                    describe_group(g.output, &v);
                }
                Some(w) => {
                    let v = match w.parse::<i64>() {
                        Ok(n) => client.json("GET", &format!("{}/versions/{n}", group_path(&group)), &[], None).await?,
                        Err(_) => {
                            client
                                .json("GET", &format!("{}/resolve", group_path(&group)), &[("selector", &w)], None)
                                .await?
                        }
                    };
                    describe_version(g.output, &v);
                }
            }
        }
        ModelsCommand::Approve { group, version, description } => {
            let (group, version) = numbered(&group, version.as_deref())?;
            set_status(&client, g.output, &group, &version, "Approved", &description).await?;
        }
        ModelsCommand::Reject { group, version, description } => {
            let (group, version) = numbered(&group, version.as_deref())?;
            set_status(&client, g.output, &group, &version, "Rejected", &description).await?;
        }
        ModelsCommand::Alias { group, alias, version, delete } => {
            let path = format!("{}/aliases/{}", group_path(&group), encode_segment(&alias));
            match (version, delete) {
                (None, true) => {
                    client.json("DELETE", &path, &[], None).await?;
                    outln!("removed alias {alias} of {group}");
                }
                (Some(v), false) => {
                    let n: i64 = version_arg(&v)?.parse().expect("checked");
                    let out = client.json("PUT", &path, &[], Some(json!({"version": n}))).await?;
                    match g.output {
                        Output::Json => outln!("{}", serde_json::to_string_pretty(&out).expect("JSON")),
                        Output::Table => outln!("{group}@{alias} -> version {n}"),
                    }
                }
                (Some(_), true) => return Err(CliError::Input("give either VERSION or --delete, not both".into())),
                (None, false) => {
                    return Err(CliError::Input("give the VERSION the alias should point at, or --delete".into()));
                }
            }
        }
        ModelsCommand::Resolve { group, selector } => {
            let v = client
                .json("GET", &format!("{}/resolve", group_path(&group)), &[("selector", &selector)], None)
                .await?;
            match g.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&v).expect("JSON")),
                Output::Table => {
                    outln!("{group} {selector} -> version {} ({})", cell(&v["version"]), cell(&v["status"]))
                }
            }
        }
        ModelsCommand::Import { group, file, format, description, category, feature_names, classes, target } => {
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
            if format == "native" && (!category.is_empty() || feature_names.is_some() || classes.is_some()) {
                return Err(CliError::Input(
                    "--category, --feature-names and --classes apply to --format xgboost-json".into(),
                ));
            }
            let mut owned: Vec<(String, String)> = vec![("format".into(), format.clone())];
            for c in &category {
                let (feature, labels) = c.split_once('=').ok_or_else(|| {
                    CliError::Input(format!("--category {c:?} must be FEATURE=LABEL0,LABEL1,… (e.g. Sex=male,female)"))
                })?;
                owned.push((format!("category.{}", feature.trim()), labels.to_string()));
            }
            for (k, v) in [
                ("description", &description),
                ("feature_names", &feature_names),
                ("classes", &classes),
                ("target", &target),
            ] {
                if let Some(v) = v {
                    owned.push((k.to_string(), v.clone()));
                }
            }
            let query: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let answer = client
                .send("POST", &format!("{}/imports", group_path(&group)), &query, bytes, Some("application/json"))
                .await?;
            let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            match g.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&v).expect("JSON")),
                Output::Table => outln!(
                    "imported {} as {group} version {} ({}), artifact {}",
                    file.display(),
                    cell(&v["version"]),
                    cell(&v["status"]),
                    cell(&v["artifact"]["uri"])
                ),
            }
        }
        ModelsCommand::Export { target, version, format, output_file } => {
            let (group, version) = numbered(&target, version.as_deref())?;
            let group = group.as_str();
            let answer = client
                .send(
                    "GET",
                    &format!("{}/versions/{version}/export", group_path(group)),
                    &[("format", format.as_str())],
                    Vec::new(),
                    None,
                )
                .await?;
            match output_file {
                Some(path) => {
                    std::fs::write(&path, &answer.body)
                        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))?;
                    outln!(
                        "wrote {group} version {version} as {format} to {} ({} bytes)",
                        path.display(),
                        answer.body.len()
                    );
                }
                None => outln!("{}", String::from_utf8_lossy(&answer.body)),
            }
        }
        ModelsCommand::Events { group } => {
            let v = client.json("GET", &format!("{}/events", group_path(&group)), &[], None).await?;
            let rows = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![cell(&e["at"]), cell(&e["version"]), cell(&e["kind"]), cell(&e["actor"]), cell(&e["detail"])]
                })
                .collect();
            output::print(g.output, &v, &["AT", "VERSION", "EVENT", "BY", "DETAIL"], rows);
        }
    }
    Ok(())
}

async fn set_status(
    client: &Client,
    out: Output,
    group: &str,
    version: &str,
    status: &str,
    description: &str,
) -> Result<(), CliError> {
    let version = version_arg(version)?;
    let v = client
        .json(
            "PATCH",
            &format!("{}/versions/{version}", group_path(group)),
            &[],
            Some(json!({"status": status, "description": description})),
        )
        .await?;
    match out {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&v).expect("JSON")),
        Output::Table => {
            outln!("{group} version {version}: {} by {}", cell(&v["status"]), cell(&v["approval"]["by"]))
        }
    }
    Ok(())
}

fn metrics_summary(m: &Value) -> String {
    let s = m
        .as_object()
        .map(|o| {
            o.iter()
                .take(3)
                .map(|(k, v)| format!("{k}={}", v.as_f64().map(|f| format!("{f:.4}")).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if s.is_empty() { "-".into() } else { s }
}

fn version_row(v: &Value) -> Vec<String> {
    let aliases = v["aliases"].as_array().map(|a| a.iter().map(cell).collect::<Vec<_>>().join(",")).unwrap_or_default();
    vec![
        cell(&v["version"]),
        cell(&v["status"]),
        if aliases.is_empty() { "-".into() } else { aliases },
        metrics_summary(&v["metrics"]),
        cell(&v["created_at"]),
        cell(&v["created_by"]),
    ]
}

fn describe_group(out: Output, v: &Value) {
    let rows = [
        "name",
        "arn",
        "description",
        "version_count",
        "latest_approved_version",
        "aliases",
        "created_at",
        "created_by",
    ]
    .iter()
    .map(|k| vec![k.to_string(), cell(&v[k])])
    .collect();
    output::print(out, v, &["FIELD", "VALUE"], rows);
}

fn describe_version(out: Output, v: &Value) {
    let mut rows: Vec<Vec<String>> =
        ["group", "version", "arn", "status"].iter().map(|k| vec![k.to_string(), cell(&v[k])]).collect();
    rows.push(vec!["approved/rejected by".into(), cell(&v["approval"]["by"])]);
    rows.push(vec!["approval at".into(), cell(&v["approval"]["at"])]);
    rows.push(vec!["approval description".into(), cell(&v["approval"]["description"])]);
    for k in ["aliases", "description", "created_at", "created_by"] {
        rows.push(vec![k.to_string(), cell(&v[k])]);
    }
    for k in ["uri", "sha256", "size", "format"] {
        rows.push(vec![format!("artifact.{k}"), cell(&v["artifact"][k])]);
    }
    for k in ["metrics", "parameters", "tags", "lineage"] {
        rows.push(vec![k.to_string(), cell(&v[k])]);
    }
    let fields = v["input_schema"]["fields"]
        .as_array()
        .map(|f| f.iter().map(|x| format!("{}:{}", cell(&x["name"]), cell(&x["type"]))).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    rows.push(vec!["input_schema".into(), fields]);
    output::print(out, v, &["FIELD", "VALUE"], rows);
}
