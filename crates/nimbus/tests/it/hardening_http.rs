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

// ---------------------------------------------------------------------------------------------
// Connection limits.

#[test]
fn slow_header_client_is_dropped_while_others_are_served() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--header-timeout", "2"]);
    let mut slow = connect(&n);
    // And one that connects and says nothing at all.
    let mut silent = connect(&n);
    let started = Instant::now();
    // A head that never ends: one byte a second.
    let trickle = b"GET /_nimbus/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    let mut served_meanwhile = 0;
    let mut got = Vec::new();
    for b in trickle {
        if slow.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        // Meanwhile a normal client on another connection is answered.
        let (status, body) = n.http("GET", "/_nimbus/health", b"", None);
        assert_eq!(status, 200, "{body}");
        served_meanwhile += 1;
        if closed_within(&mut slow, Duration::from_secs(1), &mut got) {
            closed_after = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(14) {
            break;
        }
    }
    let closed_after = closed_after.expect("a client trickling its request head was never dropped");
    assert!(
        closed_after >= Duration::from_millis(1500) && closed_after < Duration::from_secs(8),
        "dropped after {closed_after:?}, with --header-timeout 2"
    );
    assert!(served_meanwhile >= 1, "no other request was served while the slow one waited");
    assert!(closed_within(&mut silent, Duration::from_secs(1), &mut got), "a silent connection was never dropped");
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "the trickled head was never whole");
    let (status, _) = n.http("GET", "/_nimbus/health", b"", None);
    assert_eq!(status, 200, "the server still serves after dropping the slow client");
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--idle-timeout", "1", "--header-timeout", "10"]);
    let mut c = connect(&n);
    let req = head("GET", "/_nimbus/health", &[("host".into(), host(&n))]);
    c.write_all(&req).unwrap();
    let first = read_answer(&mut c, Duration::from_secs(10)).expect("an answer");
    assert_eq!(first.status, 200);
    // Within the idle timeout the connection is kept alive for the next request.
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&req).unwrap();
    let second = read_answer(&mut c, Duration::from_secs(10)).expect("the connection is kept alive");
    assert_eq!(second.status, 200);
    let idle_since = Instant::now();
    let mut got = Vec::new();
    assert!(closed_within(&mut c, Duration::from_secs(6), &mut got), "an idle keep-alive connection stayed open");
    let after = idle_since.elapsed();
    assert!(after >= Duration::from_millis(500), "closed after {after:?}, before the 1 s idle timeout");
    assert!(got.is_empty(), "nothing is sent on an idle close: {:?}", String::from_utf8_lossy(&got));
}

/// Sends the head of `method path`, then its 1000-byte body ten bytes a second (100 s in all);
/// returns the answer (if one came within 12 s), how long it took, and whether the server then
/// closed the connection.
fn trickle_body(
    n: &Nimbus,
    method: &str,
    path: &str,
    mut headers: Vec<(String, String)>,
) -> (Option<Raw>, Duration, bool) {
    headers.push(("content-length".into(), "1000".into()));
    let mut c = connect(n);
    c.write_all(&head(method, path, &headers)).unwrap();
    let started = Instant::now();
    let mut answer = None;
    while started.elapsed() < Duration::from_secs(12) {
        if c.write_all(&[b' '; 10]).is_err() {
            break;
        }
        if let Some(a) = read_answer(&mut c, Duration::from_secs(1)) {
            answer = Some(a);
            break;
        }
    }
    let took = started.elapsed();
    let closed = closed_within(&mut c, Duration::from_secs(5), &mut Vec::new());
    (answer, took, closed)
}

#[test]
fn a_client_that_stops_reading_a_download_is_dropped() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--idle-timeout", "1"]);
    let work = tempfile::tempdir().unwrap();
    // Larger than what the sockets' buffers on both sides can hold.
    const SIZE: usize = 24 << 20;
    let src = work.path().join("big.bin");
    noise_file(&src, SIZE);
    n.ok(&["store", "mb", "s3://big"]);
    n.ok(&["store", "cp", src.to_str().unwrap(), "s3://big/big.bin"]);
    let path = "/_nimbus/v1/buckets/big/objects/big.bin";
    let h = signed_headers(&n, &n.signer(), "GET", path, "", &sha256_hex(b""));
    let mut c = connect(&n);
    c.write_all(&head("GET", path, &h)).unwrap();
    let mut first = [0u8; 1024];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = c.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..got]).starts_with("HTTP/1.1 200"), "the download started");
    // Stop reading for a while: the server's writes stall and the connection is idle.
    std::thread::sleep(Duration::from_secs(4));
    let mut rest = Vec::new();
    closed_within(&mut c, Duration::from_secs(10), &mut rest);
    got += rest.len();
    assert!(got < SIZE, "the stalled download went on: {got} bytes of {SIZE} arrived after the pause");
    let (status, _) = n.http("GET", "/_nimbus/health", b"", None);
    assert_eq!(status, 200);
}

#[test]
fn slow_upload_gets_408() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--body-timeout", "2"]);
    n.ok(&["store", "mb", "s3://uploads"]);
    let path = "/_nimbus/v1/buckets/uploads/objects/slow.bin";
    let headers = signed_headers(&n, &n.signer(), "PUT", path, "", UNSIGNED_PAYLOAD);
    let (answer, took, closed) = trickle_body(&n, "PUT", path, headers);
    let answer = answer.expect("a trickled upload was not answered");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.body.contains("RequestTimeout") && answer.body.contains("--body-timeout"), "{}", answer.body);
    assert!(took < Duration::from_secs(8), "answered after {took:?}, with --body-timeout 2");
    // The connection is not reused for a half-read body, and nothing partial was stored.
    assert!(closed, "the connection stays open after the 408");
    assert_eq!(n.json(&["store", "ls", "s3://uploads/"]), json!([]));
    assert_eq!(
        std::fs::read_dir(n.data_dir().join("objects/uploads")).unwrap().count(),
        0,
        "no blob or temporary file"
    );

    // A JSON body is read whole before it is parsed: the same limit, the same answer, whether
    // its hash is signed or (botocore's way) left to be computed from the body.
    let path = "/_nimbus/v1/model-groups";
    let mut signed = signed_headers(&n, &n.signer(), "POST", path, "", &sha256_hex(&[b' '; 1000]));
    signed.push(("content-type".into(), "application/json".into()));
    let amz_date = sigv4::amz_date(time_now());
    let mut unstated = vec![("host".to_string(), host(&n)), ("x-amz-date".to_string(), amz_date.clone())];
    let auth =
        authorization(&n.signer(), "POST", path, &unstated, &sha256_hex(&[b' '; 1000]), &amz_date[..8], &amz_date);
    unstated.push(("authorization".into(), auth));
    for headers in [signed, unstated] {
        let (answer, took, _) = trickle_body(&n, "POST", path, headers);
        let answer = answer.expect("a trickled JSON body was not answered");
        assert_eq!(answer.status, 408, "{answer:?}");
        assert!(answer.body.contains("RequestTimeout"), "{}", answer.body);
        assert!(took < Duration::from_secs(8), "answered after {took:?}, with --body-timeout 2");
    }
    assert_eq!(n.json(&["models", "list"]), json!([]));
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "fast.bin", "fast");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://uploads/fast.bin"]);
}

#[test]
fn connections_over_the_maximum_wait_and_are_served_after() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--max-connections", "2"]);
    let req = head("GET", "/_nimbus/health", &[("host".into(), host(&n))]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = connect(&n);
        c.write_all(&req).unwrap();
        assert_eq!(read_answer(&mut c, Duration::from_secs(10)).expect("served").status, 200);
        open.push(c);
    }
    // The kernel queues the third connection; the server does not take it while two are open.
    let mut third = connect(&n);
    third.write_all(&req).unwrap();
    assert!(
        read_answer(&mut third, Duration::from_millis(1500)).is_none(),
        "a third connection was served while --max-connections 2 were open"
    );
    drop(open.remove(0));
    let answer = read_answer(&mut third, Duration::from_secs(10)).expect("the waiting connection is served");
    assert_eq!(answer.status, 200);
    // The connection still open is served as before.
    open[0].write_all(&req).unwrap();
    assert_eq!(read_answer(&mut open[0], Duration::from_secs(10)).expect("served").status, 200);
}

// ---------------------------------------------------------------------------------------------
// The signature check and bodies.

#[test]
fn unsigned_request_is_refused_before_its_body_is_read() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://bkt"]);
    let path = "/_nimbus/v1/buckets/bkt/objects/k";
    let huge = ("content-length".to_string(), "100000000".to_string());
    // Each request declares 100 MB and sends none of it: the answer comes from the head alone.
    let check = |headers: Vec<(String, String)>, status: u16, text: &str| {
        let mut c = connect(&n);
        c.write_all(&head("PUT", path, &headers)).unwrap();
        let a = read_answer(&mut c, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no answer without the body ({text}): the server waits for the body"));
        assert_eq!(a.status, status, "{a:?}");
        assert!(a.body.contains(text), "{}", a.body);
    };
    check(vec![("host".into(), host(&n)), huge.clone()], 403, "Missing Authentication Token");
    let unknown = Signer { access_key_id: "AKIAUNKNOWNKEY000000".into(), ..n.signer() };
    let mut h = signed_headers(&n, &unknown, "PUT", path, "", UNSIGNED_PAYLOAD);
    h.push(huge.clone());
    check(h, 403, "AKIAUNKNOWNKEY000000");
    let wrong = Signer { secret: "not-the-secret".into(), ..n.signer() };
    let mut h = signed_headers(&n, &wrong, "PUT", path, "", UNSIGNED_PAYLOAD);
    h.push(huge.clone());
    check(h, 403, "signature we calculated does not match");
    let mut h = signed_headers(&n, &wrong, "PUT", path, "", &sha256_hex(b"whatever"));
    h.push(huge);
    check(h, 403, "signature we calculated does not match");
    let (code, _, err) = n.cli(&["store", "cp", "s3://bkt/k", n.data_dir().join("k").to_str().unwrap()]);
    assert_eq!(code, 2, "nothing was stored: {err}");
    assert!(err.contains("NoSuchKey"), "{err}");
}

#[test]
fn a_json_body_over_one_mebibyte_is_413_request_too_large() {
    let n = Nimbus::start(&Backend::Sqlite);
    let path = "/_nimbus/v1/model-groups";
    let big = format!(r#"{{"name":"g","description":"{}"}}"#, "x".repeat(1_100_000));
    // Declared: refused from the head, before the body.
    let mut h = signed_headers(&n, &n.signer(), "POST", path, "", &sha256_hex(big.as_bytes()));
    h.push(("content-type".into(), "application/json".into()));
    let mut declared = h.clone();
    declared.push(("content-length".into(), big.len().to_string()));
    let mut c = connect(&n);
    c.write_all(&head("POST", path, &declared)).unwrap();
    let a = read_answer(&mut c, Duration::from_secs(5)).expect("a 413 from the head alone");
    assert_eq!(a.status, 413, "{a:?}");
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["code"], "RequestTooLarge", "{v}");
    assert!(v["message"].as_str().unwrap().contains("1048576"), "{v}");
    assert_eq!(a.header("x-amzn-errortype"), Some("RequestTooLarge"));
    // Undeclared (chunked): cut off once it grows past the limit.
    let mut chunked = h;
    chunked.push(("transfer-encoding".into(), "chunked".into()));
    let mut c = connect(&n);
    c.write_all(&head("POST", path, &chunked)).unwrap();
    let mut writer = c.try_clone().unwrap();
    let body = big.clone().into_bytes();
    let sender = std::thread::spawn(move || {
        for piece in body.chunks(64 * 1024) {
            if writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).is_err()
                || writer.write_all(piece).is_err()
                || writer.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let a = read_answer(&mut c, Duration::from_secs(10)).expect("a 413 for a chunked body past the limit");
    sender.join().unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.body.contains("RequestTooLarge"), "{}", a.body);
    assert_eq!(n.json(&["models", "list"]), json!([]), "nothing was created");
    // Through the CLI: a project whose pipeline declaration is too large names the code.
    let work = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/nimbus.toml");
    let toml = std::fs::read_to_string(example).unwrap().replacen(
        "description = \"Load from the store",
        &format!("description = \"{} Load from the store", "x".repeat(1_100_000)),
        1,
    );
    assert!(toml.len() > 1_100_000);
    std::fs::write(work.path().join("nimbus.toml"), toml).unwrap();
    std::fs::create_dir_all(work.path().join("data")).unwrap();
    for f in ["train.csv", "test.csv"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/data").join(f);
        std::fs::copy(from, work.path().join("data").join(f)).unwrap();
    }
    let err = refused(&n, &["apply", work.path().to_str().unwrap()], "RequestTooLarge");
    assert!(err.contains("over this route's limit of 1048576 bytes"), "{err}");
    assert!(err.contains("already changed: ") && !err.contains("pipeline titanic"), "{err}");
    // Just under the limit is accepted.
    let fits = format!(r#"{{"name":"g","description":"{}"}}"#, "x".repeat(1_000_000));
    let (status, body) = n.http("POST", path, fits.as_bytes(), Some(&n.signer()));
    assert!(status == 201 || status == 400, "a body under the limit is read and parsed: {status} {body}");
    assert_ne!(status, 413);
}

/// Sends a request with exactly `headers` (reqwest adds content-length for the body).
fn send(
    n: &Nimbus,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String, Option<String>) {
    let client = reqwest::blocking::Client::new();
    let mut req =
        client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", n.endpoint));
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().expect("server answers");
    let status = resp.status().as_u16();
    let kind = resp.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_string());
    (status, resp.text().unwrap_or_default(), kind)
}

#[test]
fn unsigned_payload_is_refused_on_json_admin_routes() {
    let n = Nimbus::start(&Backend::Sqlite);
    let signer = n.signer();
    let path = "/_nimbus/v1/model-groups";
    let mut h = signed_headers(&n, &signer, "POST", path, "", UNSIGNED_PAYLOAD);
    h.push(("content-type".into(), "application/json".into()));
    let (status, body, kind) = send(&n, "POST", path, &h, br#"{"name":"g"}"#.to_vec());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("UNSIGNED-PAYLOAD is accepted only for object uploads and downloads"), "{body}");
    assert_eq!(kind.as_deref(), Some("AuthFailure"));
    assert_eq!(n.json(&["models", "list"]), json!([]), "the unsigned body created nothing");
    // The same for a JSON route that takes no body at all.
    let h = signed_headers(&n, &signer, "GET", path, "", UNSIGNED_PAYLOAD);
    let (status, body, _) = send(&n, "GET", path, &h, Vec::new());
    assert_eq!(status, 403, "{body}");

    // An object upload and download may leave their payload unsigned, as S3 allows.
    n.ok(&["store", "mb", "s3://data"]);
    let obj = "/_nimbus/v1/buckets/data/objects/u.txt";
    let h = signed_headers(&n, &signer, "PUT", obj, "", UNSIGNED_PAYLOAD);
    let (status, body, _) = send(&n, "PUT", obj, &h, b"unsigned bytes".to_vec());
    assert_eq!(status, 200, "{body}");
    let h = signed_headers(&n, &signer, "GET", obj, "", UNSIGNED_PAYLOAD);
    let (status, body, _) = send(&n, "GET", obj, &h, Vec::new());
    assert_eq!((status, body.as_str()), (200, "unsigned bytes"));

    // A presigned URL leaves the payload unsigned too: good for a download, not for JSON.
    let a = raw(&n, "GET", &presign(&n, "GET", obj), &[("host".into(), host(&n))], b"");
    assert_eq!((a.status, a.body.as_str()), (200, "unsigned bytes"), "{a:?}");
    let a = raw(&n, "GET", &presign(&n, "GET", path), &[("host".into(), host(&n))], b"");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("A presigned URL is accepted only for object uploads and downloads"), "{}", a.body);
}

#[test]
fn an_upload_whose_bytes_differ_from_the_signed_hash_is_not_stored() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://data"]);
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "v1", "version one");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://data/obj"]);
    // The upload streams to disk as it is hashed, so the mismatch shows only at its end.
    let path = "/_nimbus/v1/buckets/data/objects/obj";
    let signed = vec![b'a'; 300_000];
    let mut sent = signed.clone();
    *sent.last_mut().unwrap() = b'b';
    let h = signed_headers(&n, &n.signer(), "PUT", path, "", &sha256_hex(&signed));
    let a = raw(&n, "PUT", path, &h, &sent);
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("XAmzContentSHA256Mismatch"), "{}", a.body);
    let back = work.path().join("back");
    n.ok(&["store", "cp", "s3://data/obj", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "version one", "the old object stays");
    let blobs = std::fs::read_dir(n.data_dir().join("objects/data")).unwrap().count();
    assert_eq!(blobs, 1, "the refused upload left no blob behind");
}

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

/// The peak resident set of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_50_mb_upload_is_streamed_to_the_store() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    const SIZE: usize = 50 << 20;
    noise_file(&src, SIZE);
    n.ok(&["store", "mb", "s3://big"]);
    let before = peak_rss(n.pid());
    let up = n.json(&["store", "cp", src.to_str().unwrap(), "s3://big/big.bin"]);
    assert_eq!(up["size"], SIZE as u64);
    assert_eq!(up["sha256"], file_sha(&src));
    let back = work.path().join("back.bin");
    n.ok(&["store", "cp", "s3://big/big.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&back).unwrap().len(), SIZE as u64);
    assert_eq!(file_sha(&back), file_sha(&src), "the download is byte-identical");
    match (before, peak_rss(n.pid())) {
        (Some(before), Some(after)) => {
            // Buffered whole, the upload alone would add 50 MB (and a copy or two more); streamed,
            // what grows is the allocator's and the blocking pool's threads (about 15-20 MB).
            let grew = after.saturating_sub(before);
            eprintln!("the server's peak memory grew by {} MB", grew >> 20);
            assert!(grew < 35 << 20, "the server's peak memory grew by {} MB for a 50 MB upload", grew >> 20);
        }
        _ => eprintln!("skipping the memory check: no /proc/PID/status VmHWM here"),
    }
}

/// An XGBoost JSON model (binary:logistic, three float features) of `trees` full trees of
/// depth 5, as `booster.save_model("m.json")` writes one.
fn xgboost_model(trees: usize) -> Value {
    const INTERNAL: usize = 31;
    const NODES: usize = 63;
    let tree = |t: usize| {
        let internal = |i: usize| i < INTERNAL;
        let leaf_value = |i: usize| ((i + t) % 7) as f64 * 0.001 - 0.003;
        json!({
            "base_weights": (0..NODES).map(|i| if internal(i) { 0.0 } else { leaf_value(i) }).collect::<Vec<_>>(),
            "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
            "default_left": (0..NODES).map(|i| u8::from(internal(i))).collect::<Vec<_>>(),
            "id": t,
            "left_children": (0..NODES).map(|i| if internal(i) { 2 * i as i64 + 1 } else { -1 }).collect::<Vec<_>>(),
            "loss_changes": vec![0.0; NODES],
            "parents": (0..NODES).map(|i| if i == 0 { 2147483647 } else { (i as i64 - 1) / 2 }).collect::<Vec<_>>(),
            "right_children": (0..NODES).map(|i| if internal(i) { 2 * i as i64 + 2 } else { -1 }).collect::<Vec<_>>(),
            "split_conditions": (0..NODES)
                .map(|i| if internal(i) { ((i * 7 + t) % 50) as f64 + 0.5 } else { leaf_value(i) })
                .collect::<Vec<_>>(),
            "split_indices": (0..NODES).map(|i| if internal(i) { (i + t) % 3 } else { 0 }).collect::<Vec<_>>(),
            "split_type": vec![0; NODES],
            "sum_hessian": vec![1.0; NODES],
            "tree_param": {"num_deleted": "0", "num_feature": "3", "num_nodes": NODES.to_string(), "size_leaf_vector": "1"}
        })
    };
    json!({
        "learner": {
            "attributes": {},
            "feature_names": ["a", "b", "c"],
            "feature_types": ["float", "float", "float"],
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": trees.to_string()},
                    "iteration_indptr": (0..=trees).collect::<Vec<_>>(),
                    "tree_info": vec![0; trees],
                    "trees": (0..trees).map(tree).collect::<Vec<_>>()
                },
                "name": "gbtree"
            },
            "learner_model_param": {
                "base_score": "[5E-1]", "boost_from_average": "1", "num_class": "0", "num_feature": "3", "num_target": "1"
            },
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}
        },
        "version": [2, 1, 0]
    })
}

#[test]
fn models_import_of_a_5_mb_model_works() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("big-model.json");
    std::fs::write(&file, xgboost_model(2000).to_string()).unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 4_500_000, "the model file is {size} bytes; the test needs one over 4 MB");
    let out = n.ok(&["models", "import", "big", file.to_str().unwrap(), "--format", "xgboost-json"]);
    assert!(out.contains("big version 1"), "{out}");
    let v = n.json(&["models", "describe", "big/1"]);
    let names: Vec<&str> =
        v["input_schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    n.ok(&["models", "approve", "big/1"]);
    serve_group(&n, work.path(), "big", "big");
    let (status, body) = predict(&n, "big", &json!({"instances": [{"a": 1.0, "b": 20.0, "c": 40.0}]}));
    assert_eq!(status, 200, "{body}");
    // And it exports back whole.
    let exported = work.path().join("exported.json");
    n.ok(&["models", "export", "big/1", "--output-file", exported.to_str().unwrap()]);
    let doc: Value = serde_json::from_slice(&std::fs::read(&exported).unwrap()).unwrap();
    assert_eq!(doc["learner"]["gradient_booster"]["model"]["trees"].as_array().unwrap().len(), 2000);
}

// ---------------------------------------------------------------------------------------------
// SigV4: the path and the scope.

#[test]
fn a_path_that_normalisation_would_change_is_refused() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://bkt"]);
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "k", "the object k");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://bkt/k"]);
    let signer = n.signer();
    for path in [
        "/_nimbus/v1/buckets/bkt/objects/a//b",
        "/_nimbus/v1/buckets/bkt/objects/x/../k",
        "/_nimbus/v1/buckets/bkt/objects/./k",
        "/_nimbus/v1/buckets/bkt/objects/k/..",
        "/_nimbus/v1/buckets/x/../bkt/objects/k",
        "/_nimbus/v1//buckets",
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let body: &[u8] = if method == "PUT" { b"replaced" } else { b"" };
            let h = signed_headers(&n, &signer, method, path, "", &sha256_hex(body));
            let a = raw(&n, method, path, &h, body);
            assert_eq!(a.status, 400, "{method} {path}: {a:?}");
            let v: Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(v["code"], "InvalidPath", "{method} {path}: {v}");
        }
    }
    // Nothing was written or removed under any of those names.
    let keys: Vec<String> =
        n.json(&["store", "ls", "s3://bkt/"]).as_array().unwrap().iter().map(|o| o["key"].to_string()).collect();
    assert_eq!(keys, ["\"k\""]);
    let back = work.path().join("back");
    n.ok(&["store", "cp", "s3://bkt/k", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "the object k");
    // The same segments percent-encoded name keys of their own, and are accepted.
    let path = "/_nimbus/v1/buckets/bkt/objects/x%2F..%2Fk";
    let h = signed_headers(&n, &signer, "PUT", path, "", &sha256_hex(b"dots"));
    assert_eq!(raw(&n, "PUT", path, &h, b"dots").status, 200);
    let h = signed_headers(&n, &signer, "GET", path, "", &sha256_hex(b""));
    let a = raw(&n, "GET", path, &h, b"");
    assert_eq!((a.status, a.body.as_str()), (200, "dots"));
}

#[test]
fn credential_scope_date_must_equal_x_amz_date() {
    let n = Nimbus::start(&Backend::Sqlite);
    let s = n.signer();
    let path = "/_nimbus/v1/model-groups";
    // A signature that is right for its scope (yesterday's key) but whose X-Amz-Date is now:
    // only the date check refuses it.
    let now = time_now();
    let amz_date = sigv4::amz_date(now);
    let scope_date = &sigv4::amz_date(now - time::Duration::days(1))[..8];
    let payload = sha256_hex(b"");
    let headers = vec![
        ("host".to_string(), host(&n)),
        ("x-amz-content-sha256".to_string(), payload.clone()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    let mut tampered = headers.clone();
    tampered.push(("authorization".into(), authorization(&s, "GET", path, &headers, &payload, scope_date, &amz_date)));
    let a = raw(&n, "GET", path, &tampered, b"");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("does not match X-Amz-Date"), "{}", a.body);

    // The same construction with the scope date of X-Amz-Date is accepted: the helper signs right.
    let mut good = headers.clone();
    good.push(("authorization".into(), authorization(&s, "GET", path, &headers, &payload, &amz_date[..8], &amz_date)));
    let a = raw(&n, "GET", path, &good, b"");
    assert_eq!(a.status, 200, "{a:?}");
}

#[test]
fn botocore_signed_empty_query_keys_and_dot_escapes_are_accepted() {
    let Ok(python) = std::env::var("NIMBUS_TEST_PYTHON") else {
        eprintln!("skipping the botocore path test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let n = Nimbus::start(&Backend::Sqlite);
    let (id, secret) = n.credentials();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/botocore_paths.py");
    let out = Command::new(python).arg(script).args([&n.endpoint, &id, &secret]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "botocore checks failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    // What botocore stored under the dotted key is the key it named.
    let keys: Vec<String> = n
        .json(&["store", "ls", "s3://botocore/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert!(keys.contains(&"a/../b".to_string()), "{keys:?}");
}

// ---------------------------------------------------------------------------------------------
// Approval integrity.

#[test]
fn overwriting_a_registered_artifact_is_refused_naming_the_version() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let model = fixture_bundle();
    let other = write_file(work.path(), "other.json", &bundle(0.1));

    // An imported model lives in a system bucket: no write reaches it at all.
    n.ok(&["models", "import", "imported", model.to_str().unwrap()]);
    let uri = n.json(&["models", "describe", "imported/1"])["artifact"]["uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("s3://nimbus-models/"), "{uri}");
    refused(&n, &["store", "cp", other.to_str().unwrap(), &uri], "SystemBucket");
    refused(&n, &["store", "rm", &uri], "SystemBucket");

    // A version registered from the user's own bucket holds its artifact there.
    n.ok(&["store", "mb", "s3://data"]);
    n.ok(&["store", "cp", model.to_str().unwrap(), "s3://data/model.json"]);
    n.ok(&["models", "create", "held"]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    let register = json!({
        "artifact_uri": "s3://data/model.json",
        "format": "nimbus-model",
        "input_schema": manifest["input_schema"],
        "output_schema": manifest["output_schema"],
    });
    let (status, body) =
        n.http("POST", "/_nimbus/v1/model-groups/held/versions", register.to_string().as_bytes(), Some(&n.signer()));
    assert_eq!(status, 201, "{body}");
    n.ok(&["models", "approve", "held/1"]);
    serve_group(&n, work.path(), "heldfn", "held");
    let (status, before) = predict(&n, "heldfn", &serde_json::from_str(TITANIC_ROW).unwrap());
    assert_eq!(status, 200, "{before}");

    for args in [
        vec!["store", "cp", other.to_str().unwrap(), "s3://data/model.json"],
        vec!["store", "cp", "s3://data/model.json", "s3://data/model.json"],
        vec!["store", "rm", "s3://data/model.json"],
    ] {
        let err = refused(&n, &args, "ObjectHeld");
        assert!(err.contains("model group held version 1"), "{args:?}: {err}");
    }
    // The bytes and the answers are the original's.
    let back = work.path().join("back.json");
    n.ok(&["store", "cp", "s3://data/model.json", back.to_str().unwrap()]);
    assert_eq!(file_sha(&back), file_sha(&model));
    let exported = work.path().join("exported.json");
    n.ok(&["models", "export", "held/1", "--format", "native", "--output-file", exported.to_str().unwrap()]);
    assert_eq!(file_sha(&exported), file_sha(&model));
    let (status, after) = predict(&n, "heldfn", &serde_json::from_str(TITANIC_ROW).unwrap());
    assert_eq!((status, after), (200, before));
    // Other keys of the bucket stay writable.
    n.ok(&["store", "cp", other.to_str().unwrap(), "s3://data/other.json"]);
    n.ok(&["store", "rm", "s3://data/other.json"]);
}

#[test]
fn concurrent_imports_of_the_same_file_all_register() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    // A large file widens the window between an import's look for the stored file and its
    // write, in which another import of the same file registers (and holds) it.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(fixture_bundle()).unwrap()).unwrap();
    doc["description"] = json!("x".repeat(1 << 20));
    let file = work.path().join("same.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    for round in 0..2 {
        let group = format!("same{round}");
        let imports: Vec<_> = (0..6)
            .map(|_| {
                let (dir, endpoint, file, group) =
                    (n.data_dir().to_path_buf(), n.endpoint.clone(), file.clone(), group.clone());
                std::thread::spawn(move || {
                    Command::new(env!("CARGO_BIN_EXE_nimbus"))
                        .args(["models", "import", &group])
                        .arg(file)
                        .env("NIMBUS_DATA_DIR", dir)
                        .env("NIMBUS_ENDPOINT", endpoint)
                        .output()
                        .unwrap()
                })
            })
            .collect();
        for out in imports.into_iter().map(|h| h.join().unwrap()) {
            assert!(out.status.success(), "{group}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let versions = n.json(&["models", "list", &group]);
        assert_eq!(versions.as_array().unwrap().len(), 6, "{versions}");
        let uris: std::collections::BTreeSet<&str> =
            versions.as_array().unwrap().iter().map(|v| v["artifact"]["uri"].as_str().unwrap()).collect();
        assert_eq!(uris.len(), 1, "one stored file for one imported file: {uris:?}");
    }
}

#[test]
fn system_buckets_refuse_writes() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "x", "x");
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    refused(&n, &["store", "cp", f.to_str().unwrap(), "s3://nimbus-pipelines/x"], "SystemBucket");
    refused(&n, &["store", "cp", f.to_str().unwrap(), "s3://nimbus-models/x"], "SystemBucket");
    refused(&n, &["store", "mb", "s3://nimbus-mine"], "SystemBucket");
    refused(&n, &["store", "rb", "s3://nimbus-models"], "SystemBucket");
    let listed = n.json(&["store", "ls", "s3://nimbus-models/"]);
    let keys: Vec<&str> = listed.as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 1, "a system bucket is readable: {keys:?}");
    assert!(keys[0].starts_with("g/sha256-"), "{keys:?}");
    refused(&n, &["store", "rm", &format!("s3://nimbus-models/{}", keys[0])], "SystemBucket");
    // Reading is allowed.
    let back = work.path().join("back.json");
    n.ok(&["store", "cp", &format!("s3://nimbus-models/{}", keys[0]), back.to_str().unwrap()]);
}

// ---------------------------------------------------------------------------------------------
// Storage.

/// The blob file of `s3://bucket/key`: the one under `objects/bucket` holding exactly `bytes`.
fn blob_of(n: &Nimbus, bucket: &str, bytes: &[u8]) -> PathBuf {
    let dir = n.data_dir().join("objects").join(bucket);
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == bytes))
        .collect();
    assert_eq!(found.len(), 1, "one blob in {} holds those bytes: {found:?}", dir.display());
    found[0].clone()
}

/// Makes a file look older than fsck's grace period for writes in flight.
fn age(path: &Path) {
    let status = Command::new("touch").args(["-d", "2 hours ago"]).arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn store_fsck_reports_and_repairs() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    n.ok(&["store", "mb", "s3://data"]);
    let fine = write_file(work.path(), "fine.txt", "fine bytes");
    let damaged = write_file(work.path(), "damaged.txt", "will be damaged");
    let model_text = bundle(0.8);
    let model = write_file(work.path(), "model.json", &model_text);
    for f in [&fine, &damaged, &model] {
        n.ok(&["store", "cp", f.to_str().unwrap(), "s3://data/"]);
    }
    n.ok(&["models", "create", "g"]);
    let manifest: Value = serde_json::from_str(&model_text).unwrap();
    let register = json!({"artifact_uri": "s3://data/model.json", "format": "nimbus-model",
        "input_schema": manifest["input_schema"], "output_schema": manifest["output_schema"]});
    let (status, body) =
        n.http("POST", "/_nimbus/v1/model-groups/g/versions", register.to_string().as_bytes(), Some(&n.signer()));
    assert_eq!(status, 201, "{body}");

    assert_eq!(n.json(&["store", "fsck"])["damaged"], json!([]), "a fresh store is consistent");
    // A crash's leftovers, and a failing disk.
    let objects = n.data_dir().join("objects");
    let orphan = objects.join("data").join("0b7e9b2c-orphan");
    std::fs::write(&orphan, b"left by a crash").unwrap();
    age(&orphan);
    let unfinished = objects.join("data").join(".tmp-3f1d2c4b");
    std::fs::write(&unfinished, b"half a write").unwrap();
    age(&unfinished);
    let young = objects.join("data").join("young-orphan");
    std::fs::write(&young, b"a write in flight, perhaps").unwrap();
    std::fs::write(blob_of(&n, "data", b"will be damaged"), b"WILL BE DAMAGED").unwrap();
    std::fs::write(blob_of(&n, "data", model_text.as_bytes()), model_text.replace("auc", "AUC")).unwrap();

    let report = n.json(&["store", "fsck"]);
    assert_eq!(report["objects"], 3, "{report}");
    assert_eq!(report["orphans"], json!(["data/0b7e9b2c-orphan"]), "{report}");
    let problems: Vec<(String, Value)> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["uri"].as_str().unwrap().to_string(), d["held_by"].clone()))
        .collect();
    assert_eq!(
        problems,
        [
            ("s3://data/damaged.txt".to_string(), Value::Null),
            ("s3://data/model.json".to_string(), json!("model group g version 1"))
        ],
        "{report}"
    );
    assert_eq!(report["temporary"], json!(["data/.tmp-3f1d2c4b"]), "{report}");
    assert!(orphan.exists() && unfinished.exists(), "fsck without --repair changes nothing");
    // Damaged bytes are never handed out as if whole.
    let out = work.path().join("damaged-back.txt");
    let (code, _, err) = n.cli(&["store", "cp", "s3://data/damaged.txt", out.to_str().unwrap()]);
    assert_ne!(code, 0, "a damaged object downloaded: {err}");
    assert!(!out.exists(), "a damaged download left a file");
    let text = n.ok(&["store", "fsck"]);
    assert!(text.contains("orphan blob (found): data/0b7e9b2c-orphan"), "{text}");
    assert!(text.contains("damaged s3://data/model.json: the artifact of model group g version 1; kept"), "{text}");

    let repaired = n.json(&["store", "fsck", "--repair"]);
    let removed: Vec<(&str, bool)> = repaired["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["uri"].as_str().unwrap(), d["removed"].as_bool().unwrap()))
        .collect();
    assert_eq!(removed, [("s3://data/damaged.txt", true), ("s3://data/model.json", false)], "{repaired}");
    assert!(!orphan.exists() && !unfinished.exists(), "the orphan and the unfinished write were removed");
    assert!(young.exists(), "a file younger than the grace period may be a write in flight");
    let keys: Vec<String> = n
        .json(&["store", "ls", "s3://data/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["fine.txt", "model.json"], "the registered artifact is never removed");
    let again = n.json(&["store", "fsck"]);
    assert_eq!((again["objects"].clone(), again["orphans"].clone()), (json!(2), json!([])), "{again}");
    assert_eq!(again["damaged"].as_array().unwrap().len(), 1, "only the held artifact is left to restore: {again}");
    let back = work.path().join("fine-back.txt");
    n.ok(&["store", "cp", "s3://data/fine.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "fine bytes");
}

#[test]
fn admin_reset_key_recovers_a_lost_secret() {
    let mut n = Nimbus::start(&Backend::Sqlite);
    let old = n.signer();
    let (status, _) = n.http("GET", "/_nimbus/v1/whoami", b"", Some(&old));
    assert_eq!(status, 200);
    assert!(n.stop());
    // The secret is lost.
    std::fs::remove_file(n.data_dir().join("credentials")).unwrap();
    let dir = n.data_dir().to_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["admin", "reset-key", "--data-dir", &dir])
        .env_remove("NIMBUS_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("retired 1 old one(s)"), "{stdout}");
    n.start_again();
    let new = n.signer();
    assert_ne!(new.access_key_id, old.access_key_id);
    assert!(stdout.contains(&new.access_key_id) && stdout.contains(&new.secret), "{stdout}");
    let who = n.json(&["whoami"]);
    assert_eq!(who["access_key_id"], new.access_key_id.as_str(), "{who}");
    let (status, body) = n.http("GET", "/_nimbus/v1/whoami", b"", Some(&old));
    assert_eq!(status, 403, "the old key is retired: {body}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(n.data_dir().join("credentials")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Without a data directory it says what is missing rather than making one.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["admin", "reset-key", "--data-dir", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no meta.db"));
}

#[cfg(unix)]
fn modes_under(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let meta = e.metadata().unwrap();
        out.push((e.path(), meta.permissions().mode() & 0o777, meta.is_dir()));
        if meta.is_dir() {
            modes_under(&e.path(), out);
        }
    }
}

#[cfg(unix)]
#[test]
fn data_dir_is_0700_and_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mut n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    n.ok(&["store", "mb", "s3://data"]);
    let f = write_file(work.path(), "f.txt", "bytes");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://data/f.txt"]);
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    let check = |n: &Nimbus| {
        let mode = std::fs::metadata(n.data_dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory");
        let mut all = Vec::new();
        modes_under(n.data_dir(), &mut all);
        assert!(all.iter().any(|(p, _, _)| p.ends_with("meta.db")), "{all:?}");
        assert!(all.iter().filter(|(p, _, d)| !d && p.starts_with(n.data_dir().join("objects"))).count() >= 2);
        for (path, mode, is_dir) in all {
            let want = if is_dir { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{} is {mode:o}", path.display());
        }
    };
    check(&n);
    // Loosened by hand, tightened again on the next start.
    assert!(n.stop());
    std::fs::set_permissions(n.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(n.data_dir().join("meta.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    n.start_again();
    check(&n);
}

// ---------------------------------------------------------------------------------------------
// Small things.

/// A server with model function `f` (group `g`, version 1 pending) behind API `web`, and a
/// second function `hidden-fn`.
fn with_functions() -> (Nimbus, tempfile::TempDir) {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    let dir = work.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = "[functions.f]\nkind = \"model\"\nmodel_group = \"g\"\n\n\
                [functions.hidden-fn]\nkind = \"model\"\nmodel_group = \"g\"\n\n\
                [apis.web.routes]\n\"POST /predict\" = { function = \"f\" }\n[apis.web.stages.prod]\n";
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    (n, work)
}

#[test]
fn since_with_a_multibyte_character_is_a_clear_400() {
    let (n, _work) = with_functions();
    let s = n.signer();
    let (status, body) = n.http("GET", "/_nimbus/v1/functions/f/logs?since=1m", b"", Some(&s));
    assert_eq!(status, 200, "{body}");
    for since in ["1%C3%A9", "%C3%A9", "1%E2%82%AC", "10%C3%A9m", "%F0%9F%98%80s"] {
        let (status, body) = n.http("GET", &format!("/_nimbus/v1/functions/f/logs?since={since}"), b"", Some(&s));
        assert_eq!(status, 400, "since={since}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "InvalidField", "{v}");
        assert!(v["message"].as_str().unwrap().contains("since"), "{v}");
    }
    let (code, _, err) = n.cli(&["logs", "f", "--since", "1é"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("since") && !err.contains("panicked"), "{err}");
    let (status, _) = n.http("GET", "/_nimbus/v1/functions/f/logs", b"", Some(&s));
    assert_eq!(status, 200, "the server is still well");
}

#[test]
fn a_bad_log_limit_is_a_json_400_with_a_code() {
    let (n, _work) = with_functions();
    for logs in ["/_nimbus/v1/functions/f/logs", "/_nimbus/v1/apis/web/logs"] {
        let (status, body) = n.http("GET", &format!("{logs}?limit=5"), b"", Some(&n.signer()));
        assert_eq!(status, 200, "{logs}: {body}");
        for bad in ["abc", "-1", "1%C3%A9", "99999999999999999999999"] {
            let (status, body) = n.http("GET", &format!("{logs}?limit={bad}"), b"", Some(&n.signer()));
            assert_eq!(status, 400, "{logs}?limit={bad}: {body}");
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("{logs}?limit={bad}: not the admin API's JSON error: {body}"));
            assert_eq!(v["code"], "InvalidField", "{v}");
            assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
        }
    }
}

#[test]
fn v2_without_a_signature_lists_no_function_names() {
    let (n, _work) = with_functions();
    let dir = n.data_dir().to_str().unwrap().to_string();
    for path in [
        "/v2",
        "/v2/",
        "/v2/models",
        "/v2/models/",
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/nope/versions/1",
        "/v2/models/f",
        "/v2/models/f/ready",
        "/v2/models/f/versions/1",
        "/v2/models/f/versions/x",
        "/v2/repository/index",
    ] {
        let (status, body) = n.http("GET", path, b"", None);
        assert!(!body.contains("hidden-fn"), "{path} ({status}) names another function: {body}");
        assert!(!body.contains(&dir) && !body.contains("nimbus-models") && !body.contains("s3://"), "{path}: {body}");
        if !path.starts_with("/v2/models/f") {
            assert!(!body.contains("\"f\""), "{path} ({status}) names a function it was not asked about: {body}");
        }
    }
    let (status, body) = n.http("POST", "/v2/models/nope/infer", b"{}", None);
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("hidden-fn") && !body.contains("\"f\""), "{body}");
}

#[test]
fn help_does_not_print_the_database_password() {
    for args in [&["serve", "--help"][..], &["up", "--help"], &["admin", "reset-key", "--help"], &["serve", "-h"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
            .args(args)
            .env("NIMBUS_DATABASE_URL", "postgres://u:pa55-w0rd-xyz@h/db")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(text.contains("NIMBUS_DATABASE_URL"), "{args:?}: the help names the variable: {text}");
        assert!(!text.contains("pa55-w0rd-xyz"), "{args:?} printed the password: {text}");
    }
    // Nor does the error of a database URL that cannot be opened.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NIMBUS_DATABASE_URL", "mysql://u:pa55-w0rd-xyz@h/db")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("mysql://u:***@h/db") && !text.contains("pa55-w0rd-xyz"), "{text}");
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    n.ok(&["store", "mb", "s3://data"]);
    let cases: &[&[&str]] = &[
        &["models", "list"],
        &["models", "list", "--output", "json"],
        &["models", "describe", "g/1"],
        &["models", "export", "g/1", "--format", "native"],
        &["store", "ls"],
        &["store", "fsck"],
        &["whoami"],
        &["--help"],
        &["--version"],
    ];
    for args in cases {
        // A pipe whose reading end is closed before the command writes a byte: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
            .args(*args)
            .env("NIMBUS_DATA_DIR", n.data_dir())
            .env("NIMBUS_ENDPOINT", &n.endpoint)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "nimbus {args:?} into a closed pipe: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "nimbus {args:?}: {err}");
    }
}

#[test]
fn every_key_the_store_accepts_round_trips() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    n.ok(&["store", "mb", "s3://keys"]);
    let keys = [
        "../../evil",
        "...",
        ".hidden",
        "a//b",
        "./x",
        "x/./y",
        "a b",
        "ü/ß",
        "a%2Fb",
        "%2e%2e",
        "x?y#z",
        "plus+sign&amp=1",
        "semi;colon,comma",
        "/leading",
        "tab\there",
        "100%",
        "back\\slash",
        "emoji-😀",
        "trailing.",
        "-dash",
        "quote\"s'",
        &"k".repeat(1024),
    ];
    for (i, key) in keys.iter().enumerate() {
        let f = write_file(work.path(), &format!("in-{i}"), &format!("object {i}: {key}"));
        let up = n.json(&["store", "cp", f.to_str().unwrap(), &format!("s3://keys/{key}")]);
        assert_eq!(up["key"], *key, "upload of {key:?}");
    }
    let listed: Vec<String> = n
        .json(&["store", "ls", "s3://keys/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    let only: Vec<String> = n
        .json(&["store", "ls", "s3://keys/ü/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(only, ["ü/ß"]);
    for (i, key) in keys.iter().enumerate() {
        let back = work.path().join(format!("out-{i}"));
        n.ok(&["store", "cp", &format!("s3://keys/{key}"), back.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&back).unwrap(), format!("object {i}: {key}"), "download of {key:?}");
    }
    // Nothing escaped the store's directory.
    assert!(!n.data_dir().join("evil").exists() && !n.data_dir().parent().unwrap().join("evil").exists());
    for key in keys {
        n.ok(&["store", "rm", &format!("s3://keys/{key}")]);
    }
    assert_eq!(n.json(&["store", "ls", "s3://keys/"]), json!([]));

    // The two keys no URL can address are refused on both sides, not stored out of reach.
    let f = write_file(work.path(), "dots", "dots");
    for key in [".", ".."] {
        let err = refused(&n, &["store", "cp", f.to_str().unwrap(), &format!("s3://keys/{key}")], "");
        assert!(err.contains("cannot be addressed"), "{err}");
        let path =
            if key == "." { "/_nimbus/v1/buckets/keys/objects/%2E" } else { "/_nimbus/v1/buckets/keys/objects/%2E%2E" };
        let h = signed_headers(&n, &n.signer(), "PUT", path, "", &sha256_hex(b"dots"));
        let a = raw(&n, "PUT", path, &h, b"dots");
        assert_eq!(a.status, 400, "{key}: {a:?}");
        assert!(a.body.contains("InvalidName") && a.body.contains("'.' or '..'"), "{}", a.body);
    }
    n.ok(&["store", "rb", "s3://keys"]);
}

#[test]
fn every_version_command_takes_group_slash_version() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let one = write_file(work.path(), "one.json", &bundle(0.8));
    let two = write_file(work.path(), "two.json", &bundle(0.9));
    n.ok(&["models", "import", "g", one.to_str().unwrap()]);
    n.ok(&["models", "import", "g", two.to_str().unwrap()]);
    assert_eq!(n.json(&["models", "describe", "g/1"])["version"], 1);
    assert_eq!(n.json(&["models", "describe", "g/2"])["metrics"]["auc"], 0.9);
    n.ok(&["models", "approve", "g/1", "--description", "good enough"]);
    n.ok(&["models", "reject", "g/2"]);
    let versions = n.json(&["models", "list", "g"]);
    let status: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert!(status.contains(&"Approved") && status.contains(&"Rejected"), "{versions}");
    assert_eq!(n.json(&["models", "describe", "g/latest-approved"])["version"], 1);
    let file = work.path().join("g1.json");
    n.ok(&["models", "export", "g/1", "--format", "native", "--output-file", file.to_str().unwrap()]);
    assert_eq!(file_sha(&file), file_sha(&one));
    // The two-word form still works; naming the version twice, or not at all, is a usage error.
    assert_eq!(n.json(&["models", "describe", "g", "2"])["version"], 2);
    let (code, _, err) = n.cli(&["models", "approve", "g/2", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GROUP/VERSION or GROUP VERSION"), "{err}");
    for cmd in ["approve", "reject", "export"] {
        let (code, _, err) = n.cli(&["models", cmd, "g"]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("g/VERSION"), "{cmd}: {err}");
    }
}
