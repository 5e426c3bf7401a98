//! The admin API client: finds the endpoint and credentials, signs each request with SigV4
//! and turns error answers into [`CliError`]s.

use nimbus_iam::credentials;
use nimbus_iam::sigv4::Signer;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::CliError;
use crate::cli::Global;

/// Characters kept as they are in path segments and query values.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes one path segment; `/` is encoded too.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

/// Encodes an object key as one path segment (its `/` as `%2F`), so a key with empty, `.` or
/// `..` segments (`a//b`, `../x`) reaches the server as exactly that key: nothing on the way
/// can resolve or merge its segments.
pub fn encode_key(key: &str) -> String {
    encode_segment(key)
}

/// The admin API path (below `/_nimbus/v1`) of an object. The keys `.` and `..` have none: URL
/// parsers resolve such a segment even percent-encoded, so the request would name the bucket
/// instead (the server refuses to store them for the same reason).
pub fn object_path(bucket: &str, key: &str) -> Result<String, CliError> {
    if matches!(key, "." | "..") {
        return Err(CliError::Input(format!(
            "the object key {key:?} cannot be addressed: URL clients resolve '.' and '..' as path segments even \
             when percent-encoded; use another key"
        )));
    }
    Ok(format!("/buckets/{}/objects/{}", encode_segment(bucket), encode_key(key)))
}

/// An answer of the server.
pub struct Answer {
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// A signed client of one nimbus endpoint.
pub struct Client {
    base: String,
    host: String,
    http: reqwest::Client,
    signer: Signer,
}

impl Client {
    /// Builds a client from the global options, the environment and the data directory.
    pub fn new(g: &Global) -> Result<Client, CliError> {
        let dir_profile = credentials::read(&g.data_dir.join("credentials"), "default").ok().flatten();
        let endpoint = g
            .endpoint
            .clone()
            .or_else(|| std::fs::read_to_string(g.data_dir.join("endpoint")).ok().map(|s| s.trim().to_string()))
            .or_else(|| dir_profile.as_ref().and_then(|p| p.endpoint_url.clone()))
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| CliError::Input(format!("--endpoint {endpoint:?} is not a URL: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(CliError::Input(format!("--endpoint {endpoint:?} has no host"))),
        };

        let (key, secret, region) = if let Some(name) = &g.profile {
            let path = std::env::var("AWS_SHARED_CREDENTIALS_FILE").map(Into::into).unwrap_or_else(|_| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".aws/credentials")
            });
            let p = credentials::read(&path, name)
                .map_err(|e| CliError::Failure(e.to_string()))?
                .ok_or_else(|| CliError::Input(format!("profile {name:?} is not in {}", path.display())))?;
            (p.aws_access_key_id, p.aws_secret_access_key, p.region)
        } else if let (Ok(k), Ok(s)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
            (k, s, None)
        } else if let Some(p) = dir_profile {
            (p.aws_access_key_id, p.aws_secret_access_key, p.region)
        } else {
            return Err(CliError::Input(format!(
                "no credentials: pass --profile, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where {} exists (written by `nimbus serve` on its first start)",
                g.data_dir.join("credentials").display()
            )));
        };
        let region = std::env::var("NIMBUS_REGION")
            .ok()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or(region)
            .unwrap_or_else(|| "us-east-1".into());
        let mut http = reqwest::Client::builder();
        // Only for https: a bundle that plain HTTP does not need should not break it.
        if url.scheme() == "https" {
            for cert in extra_roots()? {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| CliError::Failure(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            base: endpoint.trim_end_matches('/').to_string(),
            host,
            http,
            signer: Signer { access_key_id: key, secret, region, service: "nimbus".into() },
        })
    }

    /// Sends a request signed for `service` to an absolute, encoded `path`; any status is
    /// returned as is.
    pub async fn signed(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, Answer), CliError> {
        let query: String = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers = vec![("host".to_string(), self.host.clone())];
        headers.extend(extra_headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let signer = Signer { service: service.to_string(), ..self.signer.clone() };
        signer.sign(method, path, &query, &mut headers, &body, time::OffsetDateTime::now_utc());
        let url =
            if query.is_empty() { format!("{}{path}", self.base) } else { format!("{}{path}?{query}", self.base) };
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| CliError::Failure(e.to_string()))?;
        let mut req = self.http.request(method, &url).body(body);
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| CliError::Failure(format!("reading the answer: {e}")))?.to_vec();
        Ok((status, Answer { headers, body }))
    }

    /// Sends a signed admin request. `path` is below `/_nimbus/v1` and already encoded.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<Answer, CliError> {
        let path = format!("/_nimbus/v1{path}");
        let ct: Vec<(&str, &str)> = content_type.map(|ct| ("content-type", ct)).into_iter().collect();
        let (status, answer) = self.signed("nimbus", method, &path, query, &ct, body).await?;
        if status.is_success() {
            return Ok(answer);
        }
        Err(error_of(status, &answer.body))
    }

    /// Uploads a file with a signed `x-amz-content-sha256`: the file is read once to hash it
    /// and then streamed, never held whole. `path` is below `/_nimbus/v1`.
    pub async fn send_file(
        &self,
        method: &str,
        path: &str,
        file: &std::path::Path,
        content_type: &str,
    ) -> Result<Answer, CliError> {
        let read_error = |e: std::io::Error| CliError::Input(format!("cannot read {}: {e}", file.display()));
        let (size, sha) = hash_file(file).await.map_err(read_error)?;
        let path = format!("/_nimbus/v1{path}");
        let mut headers = vec![("host".to_string(), self.host.clone()), ("content-type".into(), content_type.into())];
        self.signer.sign_hashed(method, &path, "", &mut headers, &sha, time::OffsetDateTime::now_utc());
        let f = tokio::fs::File::open(file).await.map_err(read_error)?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| CliError::Failure(e.to_string()))?;
        let mut req = self.http.request(method, format!("{}{path}", self.base)).body(reqwest::Body::from(f));
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            req = req.header(k, v);
        }
        req = req.header("content-length", size.to_string());
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| CliError::Failure(format!("reading the answer: {e}")))?.to_vec();
        if status.is_success() { Ok(Answer { headers, body }) } else { Err(error_of(status, &body)) }
    }

    /// Downloads to `file` through a temporary file beside it, hashing as it goes; the file
    /// appears only when every byte arrived and the SHA-256 equals the server's
    /// `x-nimbus-sha256`. Returns the headers, size and SHA-256.
    pub async fn download(
        &self,
        path: &str,
        file: &std::path::Path,
    ) -> Result<(reqwest::header::HeaderMap, u64, String), CliError> {
        use futures::StreamExt;
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let path = format!("/_nimbus/v1{path}");
        let mut headers = vec![("host".to_string(), self.host.clone())];
        self.signer.sign("GET", &path, "", &mut headers, b"", time::OffsetDateTime::now_utc());
        let mut req = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(error_of(status, &body));
        }
        let headers = resp.headers().clone();
        let expected = headers.get("x-nimbus-sha256").and_then(|v| v.to_str().ok()).map(str::to_string);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("download");
        let tmp = file.with_file_name(format!(".{name}.part"));
        let fail = |e: std::io::Error| CliError::Failure(format!("cannot write {}: {e}", file.display()));
        let mut out = tokio::fs::File::create(&tmp).await.map_err(fail)?;
        let (mut hash, mut size) = (sha2::Sha256::new(), 0u64);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(CliError::Failure(format!("the download broke off after {size} bytes: {e}")));
                }
            };
            hash.update(&chunk);
            size += chunk.len() as u64;
            if let Err(e) = out.write_all(&chunk).await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(fail(e));
            }
        }
        out.flush().await.map_err(fail)?;
        drop(out);
        let sha = hex::encode(hash.finalize());
        if expected.as_ref().is_some_and(|e| *e != sha) {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(CliError::Failure(format!(
                "the downloaded bytes hash to {sha}, not the {} the server recorded; nothing was written",
                expected.unwrap_or_default()
            )));
        }
        tokio::fs::rename(&tmp, file).await.map_err(fail)?;
        Ok((headers, size, sha))
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        // reqwest's own text stops at "error sending request"; the cause (refused, timed out, a
        // certificate not trusted) is the innermost error of the chain.
        let mut cause = std::error::Error::source(&e);
        let mut innermost = None;
        while let Some(c) = cause {
            innermost = Some(c.to_string());
            cause = c.source();
        }
        let detail = innermost.map_or_else(|| e.to_string(), |c| format!("{e}: {c}"));
        let hint = if detail.contains("CaUsedAsEndEntity") {
            "the server's certificate is a CA certificate, which rustls clients refuse as a server's; make it \
             with `-addext basicConstraints=critical,CA:FALSE` (see the README's TLS section)"
        } else if detail.contains("certificate") {
            "if the server's certificate is self-signed or from a private CA, set NIMBUS_CA_BUNDLE to its PEM file"
        } else {
            "is `nimbus serve` running there?"
        };
        CliError::Failure(format!("cannot reach nimbus at {}: {detail}; {hint}", self.base))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and parses the JSON answer (`null` for an empty one).
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let (bytes, ct) = match body {
            Some(v) => (serde_json::to_vec(&v).expect("JSON serialises"), Some("application/json")),
            None => (Vec::new(), None),
        };
        let answer = self.send(method, path, query, bytes, ct).await?;
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| CliError::Failure(format!("the server sent invalid JSON: {e}")))
    }
}

/// Certificates to trust besides the system's: the PEM bundle named by `$NIMBUS_CA_BUNDLE`, else
/// by `$AWS_CA_BUNDLE` (the AWS CLI's variable, so one setting serves both clients), for a server
/// whose certificate is self-signed or from a private CA.
fn extra_roots() -> Result<Vec<reqwest::Certificate>, CliError> {
    let Some((var, path)) = ["NIMBUS_CA_BUNDLE", "AWS_CA_BUNDLE"]
        .into_iter()
        .find_map(|var| std::env::var_os(var).filter(|p| !p.is_empty()).map(|p| (var, std::path::PathBuf::from(p))))
    else {
        return Ok(Vec::new());
    };
    let bad = |what: String| CliError::Input(format!("${var} {}: {what}", path.display()));
    let pem = std::fs::read(&path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(format!("not a PEM bundle: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate found (expected PEM 'CERTIFICATE' blocks)".into()));
    }
    Ok(certs)
}

/// The CLI error of an error answer: its message and stable code, `(HttpNNN)` when the answer
/// carries none; 4xx are the user's to fix (exit 2), the rest failures (exit 1).
fn error_of(status: reqwest::StatusCode, body: &[u8]) -> CliError {
    let err: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = err["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {status}"));
    let code = err["code"].as_str().map(str::to_string).unwrap_or_else(|| format!("Http{}", status.as_u16()));
    let message = format!("{message} ({code})");
    if status.is_client_error() { CliError::Input(message) } else { CliError::Failure(message) }
}

/// The size and SHA-256 of a file, read in chunks.
pub async fn hash_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hash.update(&buf[..n]);
    }
    Ok((size, hex::encode(hash.finalize())))
}
