//! Starts `nimbus serve` in a temporary data directory and talks to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nimbus_iam::sigv4::Signer;
use serde_json::Value;

/// A metadata backend the server can run on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres(String),
}

/// The backends this run covers: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var("NIMBUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push(Backend::Postgres(url)),
        _ => eprintln!("skipping the PostgreSQL run: NIMBUS_TEST_POSTGRES_URL is not set"),
    }
    out
}

/// Makes a fresh, uniquely named database on the server of `url`; returns its name and URL.
fn fresh_postgres_database(url: &str) -> (String, String) {
    let name = format!("nimbus_it_{}", unique_suffix());
    let status = Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "cannot create database {name} on {url}");
    let mut u = url::Url::parse(url).expect("NIMBUS_TEST_POSTGRES_URL is a URL");
    u.set_path(&format!("/{name}"));
    (name, u.to_string())
}

fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{}_{n}", nanos % 1_000_000_000_000, std::process::id())
}

/// A running server and everything needed to talk to it.
pub struct Nimbus {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    database: Option<String>,
    /// `(server URL, database name)` of a database this test made, dropped at the end.
    made_database: Option<(String, String)>,
    child: Option<Child>,
    /// What the server printed on its first start.
    pub first_stdout: Vec<String>,
    /// Flags given to `nimbus serve` on every start.
    serve_flags: Vec<String>,
}

impl Nimbus {
    /// Starts a server on a free port in a new data directory.
    pub fn start(backend: &Backend) -> Nimbus {
        Nimbus::start_with(backend, &[])
    }

    /// Starts a server with extra `nimbus serve` flags.
    pub fn start_with(backend: &Backend, flags: &[&str]) -> Nimbus {
        let dir = tempfile::tempdir().unwrap();
        let (database, made_database) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres(url) => {
                let (name, db_url) = fresh_postgres_database(url);
                (Some(db_url), Some((url.clone(), name)))
            }
        };
        let mut n = Nimbus {
            dir,
            endpoint: String::new(),
            database,
            made_database,
            child: None,
            first_stdout: Vec::new(),
            serve_flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        n.first_stdout = n.launch();
        n
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Everything the server wrote to stderr (its log), across restarts.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("server.log")).unwrap()
    }

    fn launch(&mut self) -> Vec<String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nimbus"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.path())
            .args(&self.serve_flags)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("NIMBUS_LOG", "debug,sqlx=warn,hyper=info")
            .stdout(Stdio::piped())
            .stderr(self.log_file());
        if let Some(db) = &self.database {
            cmd.args(["--database", db]);
        }
        let mut child = cmd.spawn().expect("nimbus starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line =
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("nimbus prints its address");
            lines.push(line.clone());
            if let Some(rest) = line.split("serving on ").nth(1) {
                self.endpoint = rest.split_whitespace().next().unwrap().to_string();
                break;
            }
        }
        // The admin key lines follow the address on a first start.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        self.child = Some(child);
        lines
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap().success()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops (gracefully) and starts again on the same data directory and database.
    pub fn restart(&mut self) {
        assert!(self.stop(), "nimbus exits 0 on SIGTERM");
        self.launch();
    }

    /// Starts again after a kill.
    pub fn start_again(&mut self) {
        self.launch();
    }

    /// Runs the CLI against this server; returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
            .args(args)
            .env("NIMBUS_DATA_DIR", self.dir.path())
            .env("NIMBUS_ENDPOINT", &self.endpoint)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the CLI and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "nimbus {args:?} failed: {err}");
        out
    }

    /// Runs the CLI with `--output json` and parses the answer.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("CLI prints JSON")
    }

    /// The admin credentials from the data directory.
    pub fn credentials(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.dir.path().join("credentials")).unwrap();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim_start_matches([' ', '=']).trim().to_string()))
                .unwrap()
        };
        (get("aws_access_key_id"), get("aws_secret_access_key"))
    }

    /// A signer with the admin key.
    pub fn signer(&self) -> Signer {
        let (id, secret) = self.credentials();
        Signer { access_key_id: id, secret, region: "us-east-1".into(), service: "nimbus".into() }
    }

    /// Sends a raw HTTP request, signed with `signer` when given; returns (status, body).
    pub fn http(&self, method: &str, path_and_query: &str, body: &[u8], signer: Option<&Signer>) -> (u16, String) {
        http_to(&self.endpoint, method, path_and_query, body, signer, time_now())
    }
}

impl Drop for Nimbus {
    fn drop(&mut self) {
        self.kill9();
        if let Some((url, name)) = self.made_database.take() {
            let _ = Command::new("psql")
                .arg(url)
                .args(["-q", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .status();
        }
    }
}

pub fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// One HTTP request to `endpoint`, optionally signed at time `at`.
pub fn http_to(
    endpoint: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    signer: Option<&Signer>,
    at: time::OffsetDateTime,
) -> (u16, String) {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let host = endpoint.trim_start_matches("http://").to_string();
    let mut headers = vec![("host".to_string(), host)];
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    if let Some(s) = signer {
        s.sign(method, path, query, &mut headers, body, at);
    }
    let client = reqwest::blocking::Client::new();
    let mut req =
        client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{endpoint}{path_and_query}"));
    for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    let resp = req.body(body.to_vec()).send().expect("server answers");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// A minimal valid native bundle with the Titanic input schema.
pub fn bundle(auc: f64) -> String {
    serde_json::json!({
        "format": "nimbus-model",
        "format_version": 1,
        "input_schema": {"fields": [
            {"name": "Pclass", "type": "integer"},
            {"name": "Sex", "type": "category", "categories": ["male", "female"]},
            {"name": "Age", "type": "float"}
        ]},
        "output_schema": {"fields": [{"name": "Survived", "type": "integer"}]},
        "metrics": {"auc": auc},
        "parameters": {"max_depth": 4, "eta": 0.1},
        "model": {"trees": []}
    })
    .to_string()
}

/// Writes `text` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
