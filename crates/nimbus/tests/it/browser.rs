//! A real browser for the tests that only a browser can answer: CORS is enforced by browsers,
//! not by HTTP clients, so "the browser refuses to let the page read this" can only be seen
//! from inside one.
//!
//! A test puts a page on one origin with [`serve_static`], the page `fetch()`es another origin
//! (the nimbus gateway) and writes the outcome into the DOM (status and body, or the
//! `TypeError` a blocked fetch raises), and [`run_page`] runs headless Chromium on it and
//! returns the DOM. The browser comes from `scripts/chromium.sh`, which installs Debian's
//! `chromium` when it is missing; where that cannot be done, [`chromium`] says why and the test
//! prints the reason and passes without checking anything.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one Chromium run may take before it is killed: a page that never settles must
/// fail the test, not hang it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The Chromium binary, from `scripts/chromium.sh` (run once per test process, so parallel
/// tests do not race two package installs); `Err` says why there is none.
#[allow(dead_code)]
pub fn chromium() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chromium.sh");
            let out = Command::new("bash")
                .arg(&script)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                let reason = stderr.lines().last().unwrap_or("no message").to_string();
                return Err(format!("{} failed ({}): {reason}", script.display(), out.status));
            }
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if path.is_empty() {
                return Err(format!("{} printed no path", script.display()));
            }
            Ok(PathBuf::from(path))
        })
        .clone()
}

/// Loads `page_url` in headless Chromium, lets the page run for up to `wait_ms` of virtual
/// time (timers and network loads included), and returns the DOM it ends with. Chromium is
/// killed if the whole run takes longer than 60 s.
#[allow(dead_code)]
pub fn run_page(page_url: &str, wait_ms: u64) -> Result<String, String> {
    let binary = chromium()?;
    // A fresh profile per run: parallel runs sharing the default profile would find it locked.
    let profile = tempfile::tempdir().map_err(|e| format!("cannot make a profile directory: {e}"))?;
    let mut cmd = Command::new(&binary);
    cmd.args(["--headless=new", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--virtual-time-budget={wait_ms}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Containers often have a small /dev/shm, which crashes renderers mid-page.
        .args(["--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check"])
        .arg("--dump-dom")
        .arg(page_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout can end the renderer and helper processes as well.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    // Read both pipes on threads: a browser blocked on a full pipe would never exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < RUN_LIMIT => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status();
                let _ = child.kill();
                let _ = child.wait();
                let tail = last_lines(&stderr.join().unwrap_or_default(), 5);
                return Err(format!("chromium did not finish {page_url} within {RUN_LIMIT:?}; it said:\n{tail}"));
            }
            Err(e) => return Err(format!("cannot wait for chromium: {e}")),
        }
    };
    let dom = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() || dom.trim().is_empty() {
        return Err(format!("chromium exited with {status} on {page_url}; it said:\n{}", last_lines(&stderr, 10)));
    }
    Ok(dom)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A static file server on 127.0.0.1; it stops when dropped.
struct StaticServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serves `files` (path such as `"/index.html"` → body) on `127.0.0.1` at a free port, from a
/// background thread, until the returned guard is dropped. Bodies are `text/html` (`.json`
/// paths `application/json`, `.js` paths `text/javascript`); other paths get 404. No CORS
/// header is ever sent, so a page on another origin cannot read these files.
#[allow(dead_code)]
pub fn serve_static(files: Vec<(&'static str, String)>) -> (u16, impl Drop) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().unwrap().port();
    let files: Arc<Vec<(&'static str, String)>> = Arc::new(files);
    let stop = Arc::new(AtomicBool::new(false));
    let accept = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let files = files.clone();
                // One thread per connection: browsers open spare connections they may never
                // send on, and a single-threaded loop would sit waiting on one of those.
                std::thread::spawn(move || answer(conn, &files));
            }
        })
    };
    (port, StaticServer { port, stop, accept: Some(accept) })
}

/// Reads one request head and answers it; the connection then closes.
fn answer(mut conn: TcpStream, files: &[(&'static str, String)]) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let (status, content_type, body) = match files.iter().find(|(p, _)| *p == path) {
        Some((p, body)) => {
            let ct = if p.ends_with(".json") {
                "application/json"
            } else if p.ends_with(".js") {
                "text/javascript"
            } else {
                "text/html; charset=utf-8"
            };
            ("200 OK", ct, body.as_str())
        }
        None => ("404 Not Found", "text/plain", "not found"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.shutdown(Shutdown::Write);
}

/// The browser or the reason a test skips.
fn browser_or_skip(test: &str) -> bool {
    match chromium() {
        Ok(_) => true,
        Err(reason) => {
            eprintln!("skipping {test}: no headless Chromium: {reason}");
            false
        }
    }
}

#[test]
fn a_page_script_runs_and_its_dom_comes_back() {
    if !browser_or_skip("a_page_script_runs_and_its_dom_comes_back") {
        return;
    }
    let page = r#"<!doctype html><html><body>waiting<script>document.body.textContent = "ran:" + (1+1)</script></body></html>"#;
    let (port, _server) = serve_static(vec![("/index.html", page.to_string())]);
    let dom = run_page(&format!("http://127.0.0.1:{port}/index.html"), 2_000).unwrap();
    assert!(dom.contains("ran:2"), "the script's result is in the DOM:\n{dom}");
}

#[test]
fn the_browser_blocks_a_cross_origin_read_without_cors_headers() {
    if !browser_or_skip("the_browser_blocks_a_cross_origin_read_without_cors_headers") {
        return;
    }
    let data = r#"{"secret": 42}"#.to_string();
    // Origin B: the data, served without any Access-Control-* header.
    let (b, _other) = serve_static(vec![("/data.json", data.clone())]);
    // Origin A: the page, and the same data again so the page can show that the fetch itself
    // works here and it is the cross-origin read alone that fails.
    let page = format!(
        r#"<!doctype html><html><body>waiting<script>
        const outcome = (p) => p.then(r => r.text().then(t => "read " + r.status + " " + t),
                                      e => "blocked " + e.name + ": " + e.message);
        Promise.all([outcome(fetch("/data.json")), outcome(fetch("http://127.0.0.1:{b}/data.json"))])
          .then(([same, cross]) => {{ document.body.textContent = "same=[" + same + "] cross=[" + cross + "]"; }});
        </script></body></html>"#
    );
    let (a, _page) = serve_static(vec![("/index.html", page), ("/data.json", data)]);
    let dom = run_page(&format!("http://127.0.0.1:{a}/index.html"), 5_000).unwrap();
    assert!(dom.contains(r#"same=[read 200 {"secret": 42}]"#), "the same-origin fetch reads the data:\n{dom}");
    assert!(dom.contains("cross=[blocked TypeError"), "the cross-origin read is blocked with a TypeError:\n{dom}");
    assert!(!dom.contains(r#"cross=[read"#), "the page never sees the cross-origin body:\n{dom}");
}
