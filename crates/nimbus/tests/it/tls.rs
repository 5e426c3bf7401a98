//! HTTPS on the listener (`--tls-cert`/`--tls-key`), through the real binary: outside clients
//! (curl, reqwest, the nimbus CLI given a CA bundle) are served; clients that do not trust the
//! certificate, or speak plain HTTP to the HTTPS port, are not; a certificate or key that cannot
//! be used stops the start with a message naming the file; a connection that never starts its
//! handshake is dropped after the header timeout.
//!
//! The certificates are made by `openssl` in each test; without it the tests say so and pass.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Backend, Nimbus};

/// A self-signed RSA certificate for `127.0.0.1` and `localhost` in `dir`, made the way the
/// README suggests; `None`, with the reason printed, when `openssl` cannot be run.
fn self_signed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // Not a CA (`req -x509` makes one by default), or rustls clients, the CLI among them,
        // refuse it as a server's certificate.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match made {
        Ok(status) => {
            assert!(status.success(), "openssl req failed: {status}");
            Some((cert, key))
        }
        Err(e) => {
            eprintln!("skipping: cannot run openssl ({e})");
            None
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `curl --cacert CERT URL`: `Some((exit code, HTTP status or 000))`, or `None` without curl.
fn curl(cacert: Option<&Path>, url: &str) -> Option<(i32, String)> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"]);
    if let Some(c) = cacert {
        cmd.arg("--cacert").arg(c);
    }
    match cmd.arg(url).stderr(Stdio::null()).output() {
        Ok(out) => Some((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())),
        Err(e) => {
            eprintln!("skipping the curl checks: cannot run curl ({e})");
            None
        }
    }
}

/// A reqwest client that trusts `cert` besides the system's roots.
fn trusting(cert: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs the CLI against the server of `n` through its data directory (whose endpoint file
/// names the https URL), with the environment `env`; returns (exit code, stdout, stderr).
fn cli_with(n: &Nimbus, env: &[(&str, &Path)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nimbus"));
    cmd.args(args)
        .env("NIMBUS_DATA_DIR", n.data_dir())
        .env_remove("NIMBUS_ENDPOINT")
        .env_remove("NIMBUS_CA_BUNDLE")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `nimbus serve` with `flags` on a fresh data directory (inside `dir`) that is expected
/// not to start; returns (exit code, stderr, whether the data directory was created).
fn serve_failing(dir: &Path, flags: &[&str]) -> (i32, String, bool) {
    let data = dir.join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("nimbus serve {flags:?} started instead of failing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code().unwrap_or(-1), err, data.exists())
}

#[test]
fn https_is_served_to_clients_that_trust_the_certificate_and_only_to_them() {
    let certs = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(certs.path()) else { return };
    let n = Nimbus::start_with(&Backend::Sqlite, &["--tls-cert", path(&cert), "--tls-key", path(&key)]);
    // The start line, the endpoint file and the credentials file all say https.
    assert!(n.endpoint.starts_with("https://127.0.0.1:"), "{:?}", n.first_stdout);
    let endpoint_file = std::fs::read_to_string(n.data_dir().join("endpoint")).unwrap();
    assert_eq!(endpoint_file.trim(), n.endpoint);
    let credentials = std::fs::read_to_string(n.data_dir().join("credentials")).unwrap();
    assert!(credentials.contains(&format!("endpoint_url = {}\n", n.endpoint)), "{credentials}");
    let health = format!("{}/_nimbus/health", n.endpoint);

    // An outside client.
    if let Some((code, status)) = curl(Some(&cert), &health) {
        assert_eq!((code, status.as_str()), (0, "200"), "curl --cacert");
        let (code, _) = curl(None, &health).unwrap();
        assert_ne!(code, 0, "curl trusted a self-signed certificate it was not given");
    }

    // reqwest (rustls, as the CLI uses it) with the certificate as a root.
    let resp = trusting(&cert).get(&health).send().expect("a client trusting the certificate is served");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().unwrap().contains("ok"));

    // A client that does not trust it is refused in the handshake.
    let untrusting = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let refused = untrusting.get(&health).send().expect_err("an untrusted certificate was accepted");
    assert!(refused.is_connect(), "{refused:?}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = health.replacen("https://", "http://", 1);
    assert!(untrusting.get(&plain).send().is_err(), "plain HTTP got an answer on the TLS port");

    // The CLI, told of the certificate by either variable, through the endpoint file.
    for var in ["NIMBUS_CA_BUNDLE", "AWS_CA_BUNDLE"] {
        let (code, out, err) = cli_with(&n, &[(var, &cert)], &["whoami"]);
        assert_eq!(code, 0, "nimbus whoami with {var}: {err}");
        assert!(out.contains(&n.credentials().0), "{out}");
    }
    let (code, _, err) = cli_with(&n, &[], &["whoami"]);
    assert_eq!(code, 1, "the CLI trusted a certificate it was not given: {err}");
    assert!(err.contains(&format!("cannot reach nimbus at {}", n.endpoint)), "{err}");
    assert!(err.contains("invalid peer certificate") && err.contains("set NIMBUS_CA_BUNDLE"), "{err}");
    let (code, _, err) = cli_with(&n, &[("NIMBUS_CA_BUNDLE", &key)], &["whoami"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("$NIMBUS_CA_BUNDLE {}: no certificate found", key.display())), "{err}");

    assert!(n.server_log().contains("TLS handshake failed"), "handshake failures are logged at debug level");
}

#[test]
fn an_rsa_pkcs1_key_is_accepted_and_unusable_files_stop_the_start_naming_the_file() {
    let certs = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(certs.path()) else { return };

    // The traditional RSA form (`RSA PRIVATE KEY`) of the same key.
    let pkcs1 = certs.path().join("key-pkcs1.pem");
    let status = Command::new("openssl")
        .args(["rsa", "-traditional", "-in", path(&key), "-out", path(&pkcs1)])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read_to_string(&pkcs1).unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let n = Nimbus::start_with(&Backend::Sqlite, &["--tls-cert", path(&cert), "--tls-key", path(&pkcs1)]);
    let resp = trusting(&cert).get(format!("{}/_nimbus/health", n.endpoint)).send().unwrap();
    assert_eq!(resp.status(), 200);
    drop(n);

    let not_a_key = certs.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let other = tempfile::tempdir().unwrap();
    let Some((_, other_key)) = self_signed(other.path()) else { return };
    let missing = certs.path().join("missing.pem");
    let cases: Vec<(&Path, &Path, String)> = vec![
        (
            &cert,
            &not_a_key,
            format!(
                "--tls-key {}: no private key found (expected a PEM 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY' block)",
                not_a_key.display()
            ),
        ),
        (&cert, &missing, format!("--tls-key {}: cannot read the file", missing.display())),
        (&key, &cert, format!("--tls-cert {}: the file holds a private key, not a certificate", key.display())),
        (
            &cert,
            &other_key,
            format!(
                "--tls-key {}: this private key does not belong to the certificate in --tls-cert {}",
                other_key.display(),
                cert.display()
            ),
        ),
    ];
    for (c, k, want) in cases {
        let run = tempfile::tempdir().unwrap();
        let (code, err, created) = serve_failing(run.path(), &["--tls-cert", path(c), "--tls-key", path(k)]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&want), "expected {want:?} in {err:?}");
        assert!(!err.contains("BEGIN"), "the message quotes a file: {err}");
        assert!(!created, "a start that cannot serve TLS created its data directory");
    }

    // One flag without the other is a usage error naming the missing one.
    let run = tempfile::tempdir().unwrap();
    let (code, err, _) = serve_failing(run.path(), &["--tls-cert", path(&cert)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    let (code, err, _) = serve_failing(run.path(), &["--tls-key", path(&key)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
}

#[test]
fn a_connection_that_never_sends_a_client_hello_is_closed_after_the_header_timeout() {
    let certs = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(certs.path()) else { return };
    let n = Nimbus::start_with(
        &Backend::Sqlite,
        &["--tls-cert", path(&cert), "--tls-key", path(&key), "--header-timeout", "1"],
    );
    let addr = n.endpoint.trim_start_matches("https://").to_string();
    let client = trusting(&cert);
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).unwrap();
    // Meanwhile another client is served, and the silent connection is still open after: it
    // waits in its own task, not in the accept loop.
    let resp = client.get(format!("{}/_nimbus/health", n.endpoint)).send().unwrap();
    assert_eq!(resp.status(), 200);
    silent.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let open = matches!(silent.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(open, "the silent connection was closed before another client was served");
    silent.set_nonblocking(false).unwrap();

    silent.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut got = Vec::new();
    if let Err(e) = silent.read_to_end(&mut got) {
        let timed_out = matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
        assert!(!timed_out, "the silent connection was never closed");
    }
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(5),
        "closed after {after:?}, with --header-timeout 1"
    );
    assert!(got.is_empty(), "the server sent {got:?} to a client that never said hello");
    // The server closes the socket and then writes its log line: wait for the line a little.
    let logged = || n.server_log().contains("did not finish its TLS handshake within the header timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(logged(), "{}", n.server_log());
}
