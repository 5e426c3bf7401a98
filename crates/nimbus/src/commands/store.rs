//! `nimbus store`: buckets and objects, with `s3://bucket/key` addresses as in the aws CLI.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::CliError;
use crate::cli::{Global, StoreCommand};
use crate::client::{Client, encode_segment, object_path};
use crate::output::{self, cell};

/// `s3://bucket[/key]` split into its parts.
fn parse_s3(text: &str) -> Result<(String, String), CliError> {
    let rest = text
        .strip_prefix("s3://")
        .ok_or_else(|| CliError::Input(format!("{text:?} is not an s3://bucket/key address")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(CliError::Input(format!("{text:?} names no bucket; use s3://bucket/key")));
    }
    Ok((bucket.to_string(), key.to_string()))
}

fn guess_content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "csv" => "text/csv",
        "json" => "application/json",
        "parquet" => "application/vnd.apache.parquet",
        "txt" | "log" => "text/plain",
        "py" => "text/x-python",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

pub async fn run(g: &Global, cmd: StoreCommand) -> Result<(), CliError> {
    let client = Client::new(g)?;
    match cmd {
        StoreCommand::Cp { src, dst, content_type } => cp(&client, g, &src, &dst, content_type).await,
        StoreCommand::Ls { target: None } => {
            let v = client.json("GET", "/buckets", &[], None).await?;
            let rows =
                v.as_array().into_iter().flatten().map(|b| vec![cell(&b["created_at"]), cell(&b["name"])]).collect();
            output::print(g.output, &v, &["CREATED", "BUCKET"], rows);
            Ok(())
        }
        StoreCommand::Ls { target: Some(t) } => {
            let (bucket, prefix) = parse_s3(&t)?;
            let mut all = Vec::new();
            let mut after = String::new();
            loop {
                let page = client
                    .json(
                        "GET",
                        &format!("/buckets/{}/objects", encode_segment(&bucket)),
                        &[("prefix", &prefix), ("start_after", &after)],
                        None,
                    )
                    .await?;
                all.extend(page["objects"].as_array().cloned().unwrap_or_default());
                match page["next_start_after"].as_str() {
                    Some(next) => after = next.to_string(),
                    None => break,
                }
            }
            let rows = all
                .iter()
                .map(|o| {
                    vec![
                        cell(&o["created_at"]),
                        cell(&o["size"]),
                        cell(&o["sha256"])[..12.min(cell(&o["sha256"]).len())].to_string(),
                        cell(&o["key"]),
                    ]
                })
                .collect();
            output::print(g.output, &Value::Array(all), &["CREATED", "SIZE", "SHA256", "KEY"], rows);
            Ok(())
        }
        StoreCommand::Rm { target } => {
            let (bucket, key) = parse_s3(&target)?;
            if key.is_empty() {
                return Err(CliError::Input(format!(
                    "{target:?} names no key; to remove a bucket use `nimbus store rb`"
                )));
            }
            client.json("DELETE", &object_path(&bucket, &key)?, &[], None).await?;
            outln!("delete: s3://{bucket}/{key}");
            Ok(())
        }
        StoreCommand::Mb { target } => {
            let (bucket, _) = parse_s3(&target)?;
            client.json("PUT", &format!("/buckets/{}", encode_segment(&bucket)), &[], None).await?;
            outln!("make_bucket: {bucket}");
            Ok(())
        }
        StoreCommand::Rb { target } => {
            let (bucket, _) = parse_s3(&target)?;
            client.json("DELETE", &format!("/buckets/{}", encode_segment(&bucket)), &[], None).await?;
            outln!("remove_bucket: {bucket}");
            Ok(())
        }
        StoreCommand::Fsck { repair } => fsck(&client, g, repair).await,
    }
}

async fn fsck(client: &Client, g: &Global, repair: bool) -> Result<(), CliError> {
    let query: &[(&str, &str)] = if repair { &[("repair", "true")] } else { &[] };
    let r = client.json("POST", "/store/fsck", query, None).await?;
    if g.output == crate::cli::Output::Json {
        outln!("{}", serde_json::to_string_pretty(&r).expect("JSON serialises"));
        return Ok(());
    }
    let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    let (orphans, temporary, damaged) = (list("orphans"), list("temporary"), list("damaged"));
    outln!("checked {} objects", cell(&r["objects"]));
    let done = if repair { "removed" } else { "found" };
    for o in &orphans {
        outln!("orphan blob ({done}): {}", cell(o));
    }
    for t in &temporary {
        outln!("unfinished write ({done}): {}", cell(t));
    }
    for d in &damaged {
        let what = format!("{} {}", cell(&d["problem"]), cell(&d["uri"]));
        match (d["held_by"].as_str(), d["removed"].as_bool() == Some(true)) {
            (Some(holder), _) => outln!("{what}: the artifact of {holder}; kept (restore its bytes, or register anew)"),
            (None, true) => outln!("{what}: its record was removed"),
            (None, false) if repair => outln!("{what}: kept"),
            (None, false) => outln!("{what}: `--repair` removes its record"),
        }
    }
    if orphans.is_empty() && temporary.is_empty() && damaged.is_empty() {
        outln!("everything is consistent");
    } else if !repair {
        outln!("run `nimbus store fsck --repair` to remove the orphans and unfinished writes");
    }
    Ok(())
}

async fn cp(client: &Client, g: &Global, src: &str, dst: &str, content_type: Option<String>) -> Result<(), CliError> {
    match (src.starts_with("s3://"), dst.starts_with("s3://")) {
        (false, true) => {
            let path = PathBuf::from(src);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(CliError::Input(format!("{src} is not a file"))),
                Err(e) => return Err(CliError::Input(format!("cannot read {src}: {e}"))),
            }
            let (bucket, mut key) = parse_s3(dst)?;
            if key.is_empty() || key.ends_with('/') {
                key.push_str(path.file_name().and_then(|n| n.to_str()).unwrap_or("file"));
            }
            let ct = content_type.unwrap_or_else(|| guess_content_type(&path).to_string());
            let answer = client.send_file("PUT", &object_path(&bucket, &key)?, &path, &ct).await?;
            let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            report(g, &v, &format!("upload: {src} to s3://{bucket}/{key}"));
            Ok(())
        }
        (true, false) => {
            let (bucket, key) = parse_s3(src)?;
            if key.is_empty() {
                return Err(CliError::Input(format!("{src:?} names no key; use s3://bucket/key")));
            }
            let mut path = PathBuf::from(dst);
            if path.is_dir() || dst.ends_with('/') {
                let name = key.rsplit('/').next().unwrap_or_default();
                if matches!(name, "" | "." | "..") {
                    return Err(CliError::Input(format!(
                        "the key {key:?} has no file name of its own; name the file to write, e.g. `nimbus store cp {src} ./object`"
                    )));
                }
                path = path.join(name);
            }
            let (_, size, sha) = client.download(&object_path(&bucket, &key)?, &path).await?;
            let v = serde_json::json!({"bucket": bucket, "key": key, "file": path.display().to_string(), "size": size, "sha256": sha});
            report(g, &v, &format!("download: s3://{bucket}/{key} to {}", path.display()));
            Ok(())
        }
        (true, true) => {
            let (sb, sk) = parse_s3(src)?;
            let (db, mut dk) = parse_s3(dst)?;
            if dk.is_empty() || dk.ends_with('/') {
                dk.push_str(sk.rsplit('/').next().unwrap_or("object"));
            }
            // Through a temporary file, so an object of any size streams both ways.
            let tmp = tempfile::NamedTempFile::new()
                .map_err(|e| CliError::Failure(format!("cannot make a temporary file: {e}")))?;
            let (headers, _, _) = client.download(&object_path(&sb, &sk)?, tmp.path()).await?;
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let put = client.send_file("PUT", &object_path(&db, &dk)?, tmp.path(), &ct).await?;
            let v: Value = serde_json::from_slice(&put.body).unwrap_or(Value::Null);
            report(g, &v, &format!("copy: s3://{sb}/{sk} to s3://{db}/{dk}"));
            Ok(())
        }
        (false, false) => Err(CliError::Input("one of SRC and DST must be an s3://bucket/key address".into())),
    }
}

fn report(g: &Global, v: &Value, line: &str) {
    match g.output {
        crate::cli::Output::Json => outln!("{}", serde_json::to_string_pretty(v).expect("JSON serialises")),
        crate::cli::Output::Table => outln!("{line}"),
    }
}
