//! Executions run once: concurrent retries start one engine; a restarted server takes back its
//! own executions at once, another's only when its lease expired; a server that lost its lease
//! writes nothing final.

use super::*;

/// A pipeline whose gate step fails until the file `FLAG` exists; then it trains and registers.
fn gated_registration(pipeline: &str) -> String {
    format!(
        r#"[[uploads]]
file = "train.csv"
to = "s3://{pipeline}/train.csv"

[pipelines.{pipeline}]
model_group = "{pipeline}"

[pipelines.{pipeline}.parameters]
flag = {{ type = "string", default = "/nonexistent" }}

[pipelines.{pipeline}.steps.gate]
kind = "process"
command = ["sh", "-c", "test -e \"$FLAG\" || {{ echo no flag yet; exit 1; }}"]

[pipelines.{pipeline}.steps.train]
kind = "train"
data = "s3://{pipeline}/train.csv"
target = "Survived"
feature_columns = "Pclass,Sex,Age,Fare"
categorical_columns = "Sex"
num_round = 5
after = ["gate"]

[pipelines.{pipeline}.steps.register]
kind = "register"
model = "${{steps.train.model}}"
"#
    )
}

#[test]
fn concurrent_retries_start_one_engine() {
    for backend in backends() {
        let n = Nimbus::start(&backend);
        let flags = tempfile::tempdir().unwrap();
        let flag = flags.path().join("go");
        let dir = project(&n, "gated", &gated_registration("gated"));
        let titanic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/data/train.csv");
        std::fs::copy(titanic, dir.join("train.csv")).unwrap();
        apply(&n, &dir);
        let (code, _, err) =
            n.cli(&["pipelines", "run", "gated", "--param", &format!("flag={}", flag.display()), "--wait"]);
        assert_eq!(code, 1, "{backend:?}: {err}");
        assert!(err.contains("no flag yet"), "{err}");
        std::fs::write(&flag, b"").unwrap();

        // Several retries at once (more than two, so a race has its chance): exactly one wins.
        let racers = 4;
        let barrier = std::sync::Barrier::new(racers);
        let results: Vec<(i32, String, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..racers)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        n.cli(&["pipelines", "run", "--retry", "gated-1"])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = results.iter().filter(|r| r.0 == 0).count();
        assert_eq!(won, 1, "{backend:?}: exactly one retry starts: {results:?}");
        for (code, _, err) in results.iter().filter(|r| r.0 != 0) {
            assert_eq!(*code, 2, "{backend:?}: {err}");
            assert!(err.contains("cannot be retried") && err.contains("only a Failed or Stopped execution"), "{err}");
        }
        let e = wait_until_done(&n, "gated-1", Duration::from_secs(30));
        assert_eq!(e["status"], "Succeeded", "{backend:?}: {e}");
        let versions = n.json(&["models", "list", "gated"]);
        assert_eq!(versions.as_array().unwrap().len(), 1, "{backend:?}: one version: {versions}");
        let v = n.json(&["models", "describe", "gated/1"]);
        assert_eq!(v["lineage"]["pipeline_execution"], "gated-1", "{v}");
    }
}

/// Runs SQL on the metadata database of a server started on `db` (a PostgreSQL URL) or, when
/// `None`, on the SQLite file of its data directory; returns what it printed.
fn sql(n: &Nimbus, db: Option<&str>, statement: &str) -> String {
    let out = match db {
        Some(url) => {
            std::process::Command::new("psql").args([url, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", statement]).output()
        }
        None => std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(n.data_dir().join("meta.db"))
            .arg(statement)
            .output(),
    }
    .expect("psql / sqlite3 runs");
    assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh PostgreSQL database for servers that share it, dropped at the end.
struct SharedDatabase {
    server: String,
    name: String,
    url: String,
}

impl SharedDatabase {
    fn create(server: &str) -> SharedDatabase {
        let name = format!("nimbus_it_lease_{}", marker());
        let ok = std::process::Command::new("psql")
            .args([server, "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot create {name}");
        let mut url = url::Url::parse(server).unwrap();
        url.set_path(&format!("/{name}"));
        SharedDatabase { server: server.to_string(), name, url: url.to_string() }
    }
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([&self.server, "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .status();
    }
}

fn long_sleep(pipeline: &str, mark: &str) -> String {
    format!(
        r#"[pipelines.{pipeline}]
model_group = "{pipeline}"

[pipelines.{pipeline}.steps.sleep]
kind = "process"
command = ["sleep", "{mark}"]
"#
    )
}

#[test]
fn a_restarted_server_takes_back_its_own_executions_at_once() {
    for backend in backends() {
        let mut n = Nimbus::start(&backend);
        let mark = marker();
        apply(&n, &project(&n, "own", &long_sleep("own", &mark)));
        let id = start(&n, &["own"]);
        wait_for_processes(&mark, 1);
        n.kill9();
        // Its lease (30 s) is still live, but the execution was this server's own: the restarted
        // server knows nothing runs it any more and fails it at once.
        n.start_again();
        let e = n.json(&["pipelines", "describe", &id]);
        assert_eq!(e["status"], "Failed", "{backend:?}: {e}");
        let outcome = e["outcome"].as_str().unwrap();
        assert!(outcome.contains("interrupted") && outcome.contains("this server, before it restarted"), "{outcome}");
        assert_eq!(step(&e, "sleep")["status"], "Failed", "{e}");
        assert_no_process_left(&mark, "after kill -9 and restart");
    }
}

#[test]
fn an_execution_with_a_live_lease_elsewhere_is_not_taken_over() {
    // Two real servers on one PostgreSQL database, each with its own data directory.
    if let Ok(server) = std::env::var("NIMBUS_TEST_POSTGRES_URL")
        && !server.is_empty()
    {
        let db = SharedDatabase::create(&server);
        let mut a = Nimbus::start_with(&Backend::Sqlite, &["--database", &db.url]);
        let mut b = Nimbus::start_with(&Backend::Sqlite, &["--database", &db.url]);
        let mark = marker();
        apply(&a, &project(&a, "shared", &long_sleep("shared", &mark)));
        let id = start(&a, &["shared"]);
        wait_for_processes(&mark, 1);
        let owner_a = std::fs::read_to_string(a.data_dir().join("instance-id")).unwrap();
        assert_eq!(sql(&a, Some(&db.url), &format!("SELECT owner FROM executions WHERE id = '{id}'")), owner_a.trim());
        a.kill9();
        // B starts again (its start-up recovery runs) while A's lease is live: not B's to take.
        b.restart();
        let status = sql(&b, Some(&db.url), &format!("SELECT status FROM executions WHERE id = '{id}'"));
        assert_eq!(status, "Running", "a live lease of another server is left alone");
        // Once the lease has expired (written here rather than waited for), B takes it over.
        sql(&b, Some(&db.url), &format!("UPDATE executions SET lease_until_ms = 1 WHERE id = '{id}'"));
        b.restart();
        let row = sql(&b, Some(&db.url), &format!("SELECT status || ' ' || outcome FROM executions WHERE id = '{id}'"));
        assert!(
            row.starts_with("Failed ") && row.contains("whose lease expired") && row.contains(owner_a.trim()),
            "{row}"
        );
        drop(a);
    } else {
        eprintln!("two servers on one database need PostgreSQL: NIMBUS_TEST_POSTGRES_URL is not set");
    }
    // On SQLite (one server per database) the same rule, by writing the rows: an execution owned
    // by another instance with a live lease survives a restart; once expired it is taken over.
    if std::process::Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("skipping the SQLite half: no sqlite3 command");
        return;
    }
    let mut n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    apply(&n, &project(&n, "elsewhere", &long_sleep("elsewhere", &mark)));
    let id = start(&n, &["elsewhere"]);
    wait_for_processes(&mark, 1);
    n.kill9();
    let future = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 600_000;
    sql(
        &n,
        None,
        &format!("UPDATE executions SET owner = 'another-server', lease_until_ms = {future} WHERE id = '{id}'"),
    );
    n.start_again();
    assert_eq!(n.json(&["pipelines", "describe", &id])["status"], "Running", "a live lease elsewhere is left alone");
    n.kill9();
    sql(&n, None, &format!("UPDATE executions SET lease_until_ms = 1 WHERE id = '{id}'"));
    n.start_again();
    let e = n.json(&["pipelines", "describe", &id]);
    assert_eq!(e["status"], "Failed", "{e}");
    let outcome = e["outcome"].as_str().unwrap();
    assert!(outcome.contains("server another-server, whose lease expired"), "{outcome}");
}

/// A server on `backend` whose metadata database the test can also reach with [`sql`]: on
/// PostgreSQL a database made here (whose URL `sql` needs), on SQLite the file in the data dir.
fn server_with_sql(backend: &Backend) -> (Option<SharedDatabase>, Nimbus) {
    match backend {
        Backend::Sqlite => (None, Nimbus::start(backend)),
        Backend::Postgres(server) => {
            let db = SharedDatabase::create(server);
            let n = Nimbus::start_with(&Backend::Sqlite, &["--database", &db.url]);
            (Some(db), n)
        }
    }
}

#[test]
fn a_server_that_lost_its_lease_stops_its_run_and_leaves_the_execution_to_the_new_holder() {
    if std::process::Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("skipping: no sqlite3 command to write the rows with");
        return;
    }
    for backend in backends() {
        let (db, n) = server_with_sql(&backend);
        let url = db.as_ref().map(|d| d.url.as_str());
        let mark = marker();
        apply(&n, &project(&n, "lost", &long_sleep("lost", &mark)));
        let id = start(&n, &["lost"]);
        wait_for_processes(&mark, 1);
        // Another server holds the execution now (as after a recovery of an expired lease and a
        // retry there), while this one still runs its step.
        sql(&n, url, &format!("UPDATE executions SET owner = 'new-holder' WHERE id = '{id}'"));
        // At its next heartbeat (every 10 s) this server notices and ends its copy of the run...
        let deadline = Instant::now() + Duration::from_secs(40);
        while !processes_with(&mark).is_empty() {
            assert!(Instant::now() < deadline, "{backend:?}: the step still runs on the server that lost the lease");
            std::thread::sleep(Duration::from_millis(100));
        }
        // ...and records nothing over what the new holder will record.
        std::thread::sleep(Duration::from_secs(1));
        let row =
            sql(&n, url, &format!("SELECT status || '|' || owner || '|' || outcome FROM executions WHERE id = '{id}'"));
        assert_eq!(row, "Running|new-holder|", "{backend:?}");
        let step = sql(&n, url, &format!("SELECT status FROM execution_steps WHERE execution_id = '{id}'"));
        assert_eq!(step, "Running", "{backend:?}");
        assert!(n.server_log().contains("lost the lease of a running execution"), "{backend:?}");
    }
}
