//! The hardening of the listener, the signature check, body limits, approval integrity and the
//! store, through the real binary: slow and idle clients are dropped while others are served;
//! unsigned requests are refused before their body is read; a path is signed as it is routed;
//! registered artifacts cannot change; fsck repairs what a crash leaves; the CLI's edges
//! (closed stdout, odd keys, GROUP/VERSION) hold.
//!
//! Raw `TcpStream`s stand in for misbehaving clients, because an HTTP client library would
//! normalise paths (`..`, `.`), send bodies whole and retry on its own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nimbus_iam::sigv4::{self, Signer, UNSIGNED_PAYLOAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{Backend, Nimbus, bundle, time_now, write_file};

mod connections;
mod edges;
mod integrity;
mod signing;

// ---------------------------------------------------------------------------------------------
// Helpers: raw HTTP, signing, files.

fn host(n: &Nimbus) -> String {
    n.endpoint.trim_start_matches("http://").to_string()
}

fn connect(n: &Nimbus) -> TcpStream {
    let s = TcpStream::connect(host(n)).expect("the server accepts connections");
    s.set_nodelay(true).unwrap();
    s
}

/// An answer read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The head of a request: request line, `headers`, and the blank line.
fn head(method: &str, target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Reads one answer (head and a `content-length` body) from `s`, waiting at most `wait`.
/// `None` when nothing complete arrived in time or the connection closed first.
fn read_answer(s: &mut TcpStream, wait: Duration) -> Option<Raw> {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                return Some(Raw { status, headers, body });
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(200)))).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

/// One request on a fresh connection; the answer must come within 30 s.
fn raw(n: &Nimbus, method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Raw {
    let mut s = connect(n);
    let mut h = headers.to_vec();
    if !h.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) && !body.is_empty() {
        h.push(("content-length".into(), body.len().to_string()));
    }
    s.write_all(&head(method, target, &h)).unwrap();
    s.write_all(body).unwrap();
    read_answer(&mut s, Duration::from_secs(30)).unwrap_or_else(|| panic!("no answer to {method} {target}"))
}

/// Whether the peer has closed `s` (end of stream or reset) within `wait`; bytes that arrive
/// meanwhile are appended to `got`.
fn closed_within(s: &mut TcpStream, wait: Duration, got: &mut Vec<u8>) -> bool {
    let deadline = Instant::now() + wait;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(k) => got.extend_from_slice(&chunk[..k]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// `host` plus SigV4 headers for a request whose payload hash (or `UNSIGNED-PAYLOAD`) is given.
fn signed_headers(
    n: &Nimbus,
    signer: &Signer,
    method: &str,
    path: &str,
    query: &str,
    hash: &str,
) -> Vec<(String, String)> {
    let mut h = vec![("host".to_string(), host(n))];
    signer.sign_hashed(method, path, query, &mut h, hash, time_now());
    h
}

/// A SigV4 `Authorization` header computed by hand, so a test can sign what [`Signer`] never
/// would: every header in `headers` signed, the credential scope dated `scope_date`, the
/// string to sign dated `amz_date`, and `payload_hash` without stating it in a header.
fn authorization(
    s: &Signer,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    scope_date: &str,
    amz_date: &str,
) -> String {
    let mut names: Vec<String> = headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    names.sort();
    let canonical = sigv4::canonical_headers(headers, &names).unwrap();
    let uri = sigv4::canonical_uri(path, sigv4::UriMode::Normalized);
    let creq = sigv4::canonical_request(method, &uri, "", &canonical, &names.join(";"), payload_hash);
    let scope = format!("{scope_date}/{}/{}/aws4_request", s.region, s.service);
    let sts = sigv4::string_to_sign(amz_date, &scope, &creq);
    let key = sigv4::signing_key(&s.secret, scope_date, &s.region, &s.service);
    let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        s.access_key_id,
        names.join(";")
    )
}

/// A presigned URL (path and query) for `method path`, valid for five minutes.
fn presign(n: &Nimbus, method: &str, path: &str) -> String {
    let s = n.signer();
    let amz_date = sigv4::amz_date(time_now());
    let scope = format!("{}/{}/{}/aws4_request", &amz_date[..8], s.region, s.service);
    let credential = format!("{}/{scope}", s.access_key_id).replace('/', "%2F");
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={amz_date}&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    );
    let headers = [("host".to_string(), host(n))];
    let canonical = sigv4::canonical_headers(&headers, &["host".to_string()]).unwrap();
    let uri = sigv4::canonical_uri(path, sigv4::UriMode::Normalized);
    let creq =
        sigv4::canonical_request(method, &uri, &sigv4::canonical_query(&query), &canonical, "host", UNSIGNED_PAYLOAD);
    let sts = sigv4::string_to_sign(&amz_date, &scope, &creq);
    let key = sigv4::signing_key(&s.secret, &amz_date[..8], &s.region, &s.service);
    format!("{path}?{query}&X-Amz-Signature={}", hex::encode(hmac_sha256(&key, sts.as_bytes())))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(data.iter().copied()).collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.iter().copied()).collect();
    Sha256::digest(&outer).into()
}

/// The CLI's stderr must carry the stable code, in the `(Code)` form the CLI prints.
fn refused(n: &Nimbus, args: &[&str], code: &str) -> String {
    let (status, _, err) = n.cli(args);
    assert_eq!(status, 2, "nimbus {args:?} should be refused with {code}: {err}");
    assert!(code.is_empty() || err.contains(&format!("({code})")), "nimbus {args:?}: {err}");
    err
}

fn file_sha(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// Declares function `name` serving group `group` behind API `name` (stage prod), applied.
fn serve_group(n: &Nimbus, work: &Path, name: &str, group: &str) {
    let dir = work.join(format!("serve-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[functions.{name}]\nkind = \"model\"\nmodel_group = \"{group}\"\n\n[apis.{name}.routes]\n\"POST /predict\" = {{ function = \"{name}\" }}\n[apis.{name}.stages.prod]\n"
    );
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
}

fn predict(n: &Nimbus, api: &str, body: &Value) -> (u16, String) {
    n.http("POST", &format!("/{api}/prod/predict"), body.to_string().as_bytes(), None)
}

/// A native bundle the server can serve (Titanic features), from the ml crate's fixtures.
fn fixture_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ml/tests/fixtures/native_bundle_v1.json")
}

const TITANIC_ROW: &str = r#"{"instances":[{"Pclass":3,"Sex":"male","Age":22}]}"#;

/// A deterministic, incompressible file of `size` bytes.
fn noise_file(path: &Path, size: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let k = left.min(block.len());
        out.write_all(&block[..k]).unwrap();
        left -= k;
    }
    out.flush().unwrap();
}
