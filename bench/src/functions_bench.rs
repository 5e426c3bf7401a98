//! The measuring half of bench/functions.sh (process functions), several tools in one binary:
//!
//! - `floor-cold`, `floor-warm`: **the floor**, a handler without nimbus. A minimal Lambda
//!   Runtime API server of our own (hyper on one thread) starts the handler's command with the
//!   environment nimbus gives an instance (`AWS_LAMBDA_RUNTIME_API` pointing at itself,
//!   `_HANDLER`, `AWS_LAMBDA_FUNCTION_*`, `LAMBDA_TASK_ROOT`, `HOME`/`TMPDIR`, …), in the task
//!   root as its working directory. `floor-cold` times spawn → first
//!   `GET /2018-06-01/runtime/invocation/next` (init) and spawn → first answer received (the
//!   first invocation), a new process per run. `floor-warm` starts the handler once and times
//!   sequential invocations: from handing the event to a `next` that is already waiting to
//!   the handler's `…/response` post being read, i.e. the handler's own time plus the loopback
//!   round trip of the Runtime API, which is the least any Runtime API server adds.
//! - `floor-throughput`: the same floor with several handler processes, each kept busy with
//!   back-to-back invocations: the protocol's own throughput ceiling, with no HTTP in front.
//! - `request`: a keep-alive HTTP/1.1 client (blocking, one connection) that times sequential
//!   POSTs, optionally SigV4-signed for the Invoke API (service `lambda`) with the admin key of a
//!   data directory, a fresh signature per request made before its timer starts; with `--tail`
//!   it sends `X-Amz-Log-Type: Tail` and reads `Init Duration` from the REPORT line.
//! - `echo-runtime`: a Lambda runtime (run by nimbus as a process function) that answers every
//!   event with the event itself, so the script can capture the API Gateway 2.0 event nimbus
//!   builds and hand the floor the very same bytes.
//!
//! Every summary is one JSON object on stdout; latencies in microseconds.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "Process-function benchmark tools for bench/functions.sh")]
struct Cli {
    /// NAME=VALUE added to every JSON object printed (repeatable; numbers stay numbers).
    #[arg(long = "tag", global = true)]
    tags: Vec<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

static TAGS: std::sync::OnceLock<Vec<(String, serde_json::Value)>> = std::sync::OnceLock::new();

/// Prints one JSON object with the `--tag`s added.
fn emit(mut v: serde_json::Value) {
    for (k, t) in TAGS.get().into_iter().flatten() {
        v[k] = t.clone();
    }
    println!("{v}");
}

#[derive(Subcommand)]
enum Cmd {
    /// Cold starts without nimbus: RUNS fresh processes, one JSON line each.
    FloorCold {
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// The event of the first invocation (a file).
        #[arg(long)]
        event: PathBuf,
        #[command(flatten)]
        launch: Launch,
    },
    /// Warm invocations without nimbus: one process, N timed sequential invocations.
    FloorWarm {
        #[arg(long, default_value_t = 2000)]
        n: usize,
        #[arg(long, default_value_t = 200)]
        warmup: usize,
        #[arg(long)]
        event: PathBuf,
        #[command(flatten)]
        launch: Launch,
    },
    /// Throughput without nimbus: INSTANCES processes, each kept busy with back-to-back
    /// invocations for SECONDS (after WARMUP seconds); invocations per second in all.
    FloorThroughput {
        #[arg(long, default_value_t = 8)]
        instances: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long)]
        event: PathBuf,
        #[command(flatten)]
        launch: Launch,
    },
    /// Sequential POSTs to URL on one keep-alive connection; prints their latencies.
    Request {
        url: String,
        #[arg(long)]
        body: PathBuf,
        #[arg(long, default_value_t = 1)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        warmup: usize,
        /// SigV4-sign for the Invoke API with this credentials file's `[default]` key.
        #[arg(long)]
        sign: Option<PathBuf>,
        /// Send `X-Amz-Log-Type: Tail` and read `Init Duration` from the REPORT line.
        #[arg(long)]
        tail: bool,
        /// Every answer must be a 200 containing this text.
        #[arg(long, default_value = "Hello")]
        expect: String,
        /// Print the last answer's body instead of the summary.
        #[arg(long)]
        print_body: bool,
    },
    /// A Lambda runtime answering each event with the event itself.
    EchoRuntime,
}

/// How the floor starts a handler: as nimbus starts an instance of a function.
#[derive(clap::Args)]
struct Launch {
    /// NAME=VALUE for the process, as a function's `environment` (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// `_HANDLER` (nimbus sets it empty when the declaration has no `handler`).
    #[arg(long, default_value = "")]
    handler: String,
    #[arg(long, default_value = "floor")]
    name: String,
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// The working directory and `LAMBDA_TASK_ROOT` (nimbus: an empty directory for a
    /// function without code).
    #[arg(long)]
    task_root: PathBuf,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let tags = cli.tags.iter().map(|t| {
        let (k, v) = t.split_once('=').unwrap_or((t, ""));
        (k.to_string(), serde_json::from_str(v).unwrap_or_else(|_| json!(v)))
    });
    let _ = TAGS.set(tags.collect());
    match cli.cmd {
        Cmd::FloorCold { runs, event, launch } => floor(|rt| rt.block_on(floor_cold(runs, &event, &launch))),
        Cmd::FloorWarm { n, warmup, event, launch } => floor(|rt| rt.block_on(floor_warm(n, warmup, &event, &launch))),
        Cmd::FloorThroughput { instances, seconds, warmup, event, launch } => {
            floor(|rt| rt.block_on(floor_throughput(instances, seconds, warmup, &event, &launch)))
        }
        Cmd::Request { url, body, n, warmup, sign, tail, expect, print_body } => {
            request(&url, &body, n, warmup, sign.as_deref(), tail, &expect, print_body)
        }
        Cmd::EchoRuntime => echo_runtime(),
    }
}

fn floor(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<(), Error>) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    f(&rt)
}

// ---------------------------------------------------------------- the floor's Runtime API

/// Where an invocation's answer goes (`Err`: an `…/error` post).
type ReplyTo = oneshot::Sender<Result<Bytes, Bytes>>;

/// One event for the handler, and where its answer goes.
struct Invocation {
    id: String,
    event: Bytes,
    reply: ReplyTo,
}

enum Msg {
    /// A `next` arrived (when) and waits for an event.
    Poll(Instant, oneshot::Sender<Invocation>),
    InitError(Bytes),
}

struct Api {
    msgs: mpsc::UnboundedSender<Msg>,
    current: Mutex<Option<(String, ReplyTo)>>,
    arn: String,
}

fn status(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = code;
    res
}

async fn route(api: Arc<Api>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    const BASE: &str = "/2018-06-01/runtime/";
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(BASE) else { return Ok(status(StatusCode::NOT_FOUND, "{}")) };
    if rest == "invocation/next" {
        let (tx, rx) = oneshot::channel();
        if api.msgs.send(Msg::Poll(Instant::now(), tx)).is_err() {
            return Ok(status(StatusCode::INTERNAL_SERVER_ERROR, "{}"));
        }
        let Ok(inv) = rx.await else { return Ok(status(StatusCode::INTERNAL_SERVER_ERROR, "{}")) };
        let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
            + Duration::from_secs(30);
        let mut res = Response::new(Full::new(inv.event));
        let h = res.headers_mut();
        let mut set = |k: &'static str, v: &str| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        set("content-type", "application/json");
        set("lambda-runtime-aws-request-id", &inv.id);
        set("lambda-runtime-deadline-ms", &deadline.as_millis().to_string());
        set("lambda-runtime-invoked-function-arn", &api.arn);
        set("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0");
        *api.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((inv.id, inv.reply));
        return Ok(res);
    }
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    if rest == "init/error" {
        let _ = api.msgs.send(Msg::InitError(body));
        return Ok(status(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    let answered = rest.strip_prefix("invocation/").and_then(|r| {
        r.strip_suffix("/response").map(|id| (id, true)).or_else(|| r.strip_suffix("/error").map(|id| (id, false)))
    });
    let Some((id, ok)) = answered else { return Ok(status(StatusCode::NOT_FOUND, "{}")) };
    let mut current = api.current.lock().unwrap_or_else(|e| e.into_inner());
    match current.take() {
        Some((cid, reply)) if cid == id => {
            let _ = reply.send(if ok { Ok(body) } else { Err(body) });
            Ok(status(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        other => {
            *current = other;
            Ok(status(StatusCode::FORBIDDEN, r#"{"errorType":"InvalidStateTransition"}"#))
        }
    }
}

/// A handler process behind the floor's Runtime API.
struct Handler {
    child: tokio::process::Child,
    msgs: mpsc::UnboundedReceiver<Msg>,
    /// The first `next`, kept for the first invocation.
    waiting: Option<oneshot::Sender<Invocation>>,
    server: tokio::task::JoinHandle<()>,
    work: PathBuf,
    seq: u64,
}

/// How long the floor waits for the handler at any step before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

impl Handler {
    /// Binds the Runtime API, starts the command and waits for its first `next`. Returns the
    /// handler, the time spawn → first `next`, and the spawn instant.
    async fn start(launch: &Launch, run: usize) -> Result<(Handler, Duration, Instant), Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, mut msgs) = mpsc::unbounded_channel();
        let arn = format!("arn:aws:lambda:us-east-1:000000000000:function:{}", launch.name);
        let api = Arc::new(Api { msgs: tx, current: Mutex::new(None), arn });
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| route(api.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        let work = std::env::temp_dir().join(format!("nimbus-floor-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let env = environment(launch, &addr.to_string(), &work);
        let mut cmd = tokio::process::Command::new(&launch.command[0]);
        cmd.args(&launch.command[1..])
            .env_clear()
            .envs(env)
            .current_dir(&launch.task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd.spawn()?;
        let first = tokio::select! {
            m = tokio::time::timeout(PATIENCE, msgs.recv()) => m.map_err(|_| "the handler never asked for an event")?,
            s = child.wait() => return Err(format!("the handler exited during init: {}", s?).into()),
        };
        let (init, waiting) = match first {
            Some(Msg::Poll(at, slot)) => (at - spawned, slot),
            Some(Msg::InitError(body)) => {
                return Err(format!("init error: {}", String::from_utf8_lossy(&body)).into());
            }
            None => return Err("the Runtime API stopped".into()),
        };
        let handler = Handler { child, msgs, waiting: Some(waiting), server, work, seq: 0 };
        Ok((handler, init, spawned))
    }

    /// One invocation: waits (untimed) until a `next` is waiting, then times handing it the
    /// event until the answer is read. Returns the answer, that time and when it ended.
    async fn invoke(&mut self, event: &Bytes) -> Result<(Bytes, Duration, Instant), Error> {
        let slot = match self.waiting.take() {
            Some(s) => s,
            None => loop {
                match tokio::time::timeout(PATIENCE, self.msgs.recv()).await {
                    Ok(Some(Msg::Poll(_, s))) => break s,
                    Ok(Some(Msg::InitError(_))) => continue,
                    Ok(None) => return Err("the Runtime API stopped".into()),
                    Err(_) => return Err("the handler did not ask for the next event".into()),
                }
            },
        };
        self.seq += 1;
        let (reply, answer) = oneshot::channel();
        let id = format!("00000000-0000-4000-8000-{:012x}", self.seq);
        let started = Instant::now();
        slot.send(Invocation { id, event: event.clone(), reply }).map_err(|_| "the handler went away")?;
        let answer = tokio::time::timeout(PATIENCE, answer).await.map_err(|_| "no answer from the handler")?;
        let done = Instant::now();
        match answer {
            Ok(Ok(body)) => Ok((body, done - started, done)),
            Ok(Err(body)) => Err(format!("the handler failed: {}", String::from_utf8_lossy(&body)).into()),
            Err(_) => Err("the handler asked for another event without answering".into()),
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The environment nimbus gives an instance (crates/functions/src/process: `environment` and
/// `Instance::start`), with this floor's Runtime API address.
fn environment(launch: &Launch, api: &str, work: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for key in ["PATH", "LANG"] {
        if let Ok(v) = std::env::var(key) {
            env.push((key.into(), v));
        }
    }
    if !env.iter().any(|(k, _)| k == "LANG") {
        env.push(("LANG".into(), "C.UTF-8".into()));
    }
    for kv in &launch.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        env.push((k.into(), v.into()));
    }
    let root = launch.task_root.display().to_string();
    let tmp = work.display().to_string();
    let standard = [
        ("_HANDLER", launch.handler.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", launch.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", launch.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", launch.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]floor".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("TZ", ":UTC".into()),
        ("LAMBDA_TASK_ROOT", root.clone()),
        ("LAMBDA_RUNTIME_DIR", root),
        ("PYTHONUNBUFFERED", "1".into()),
        ("AWS_LAMBDA_RUNTIME_API", api.into()),
        ("HOME", tmp.clone()),
        ("TMPDIR", tmp),
    ];
    env.extend(standard.into_iter().map(|(k, v)| (k.to_string(), v)));
    env
}

async fn floor_cold(runs: usize, event: &Path, launch: &Launch) -> Result<(), Error> {
    let event = Bytes::from(std::fs::read(event)?);
    for run in 0..runs {
        let (mut handler, init, spawned) = Handler::start(launch, run).await?;
        let (answer, _, done) = handler.invoke(&event).await?;
        handler.stop().await;
        if !answer.windows(5).any(|w| w == b"Hello") {
            return Err(format!("unexpected answer: {}", String::from_utf8_lossy(&answer)).into());
        }
        let line = json!({
            "init_ms": round3(init.as_secs_f64() * 1e3),
            "first_ms": round3((done - spawned).as_secs_f64() * 1e3),
        });
        emit(line);
    }
    Ok(())
}

async fn floor_warm(n: usize, warmup: usize, event: &Path, launch: &Launch) -> Result<(), Error> {
    let event = Bytes::from(std::fs::read(event)?);
    let (mut handler, _, _) = Handler::start(launch, 0).await?;
    let mut times = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let (answer, took, _) = handler.invoke(&event).await?;
        if i == 0 && !answer.windows(5).any(|w| w == b"Hello") {
            return Err(format!("unexpected answer: {}", String::from_utf8_lossy(&answer)).into());
        }
        if i >= warmup {
            times.push(took);
        }
    }
    handler.stop().await;
    emit(summary(&mut times));
    Ok(())
}

async fn floor_throughput(
    instances: usize,
    seconds: f64,
    warmup: f64,
    event: &Path,
    launch: &Launch,
) -> Result<(), Error> {
    let event = Bytes::from(std::fs::read(event)?);
    let mut handlers = Vec::with_capacity(instances);
    for i in 0..instances {
        handlers.push(Handler::start(launch, i).await?.0);
    }
    let start = Instant::now() + Duration::from_secs_f64(warmup);
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for mut h in handlers {
        let event = event.clone();
        tasks.spawn(async move {
            let mut times = Vec::new();
            loop {
                let (answer, took, done) = h.invoke(&event).await?;
                if times.is_empty() && !answer.windows(5).any(|w| w == b"Hello") {
                    return Err::<_, Error>(format!("unexpected answer: {}", String::from_utf8_lossy(&answer)).into());
                }
                if done >= end {
                    break;
                }
                if done >= start {
                    times.push(took);
                }
            }
            h.stop().await;
            Ok(times)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    let rps = all.len() as f64 / seconds;
    let mut out = summary(&mut all);
    out["rps"] = json!(rps.round());
    out["instances"] = json!(instances);
    emit(out);
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Median, p90, p99, mean and min of `times`, microseconds.
fn summary(times: &mut [Duration]) -> serde_json::Value {
    times.sort();
    let us = |d: Duration| round3(d.as_secs_f64() * 1e6);
    let at = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    json!({
        "n": times.len(), "p50_us": us(at(0.5)), "p90_us": us(at(0.9)), "p99_us": us(at(0.99)),
        "mean_us": us(mean), "min_us": us(times[0]),
    })
}

// ---------------------------------------------------------------- the client

/// One HTTP/1.1 keep-alive connection, blocking.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(16384) })
    }

    /// Writes one request (head and body in one write) and reads its answer.
    fn exchange(&mut self, request: &[u8]) -> Result<Answer, Error> {
        self.stream.write_all(request)?;
        self.read_answer()
    }

    fn fill(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_answer(&mut self) -> Result<Answer, Error> {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or("bad status")?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
            .collect();
        let find = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let body = if let Some(len) = find("content-length") {
            let len: usize = len.parse()?;
            while self.buf.len() < len {
                self.fill()?;
            }
            self.buf.drain(..len).collect()
        } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    self.fill()?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill()?;
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            Vec::new()
        };
        Ok(Answer { status, headers, body })
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), Error> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    Ok((host.to_string(), path))
}

fn build_request(
    host: &str,
    path: &str,
    body: &[u8],
    signer: Option<&nimbus_iam::sigv4::Signer>,
    tail: bool,
) -> Vec<u8> {
    let mut headers: Vec<(String, String)> =
        vec![("host".into(), host.into()), ("content-type".into(), "application/json".into())];
    if tail {
        headers.push(("x-amz-log-type".into(), "Tail".into()));
    }
    if let Some(s) = signer {
        s.sign("POST", path, "", &mut headers, body, time::OffsetDateTime::now_utc());
    }
    let mut out = format!("POST {path} HTTP/1.1\r\n").into_bytes();
    for (k, v) in &headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// `Init Duration: 12.34 ms` in the base64 log tail, in ms.
fn init_duration(answer: &Answer) -> Option<f64> {
    let log = base64::engine::general_purpose::STANDARD.decode(answer.header("x-amz-log-result")?).ok()?;
    let text = String::from_utf8_lossy(&log);
    let after = text.split("Init Duration: ").nth(1)?;
    after.split(' ').next()?.parse().ok()
}

#[allow(clippy::too_many_arguments)]
fn request(
    url: &str,
    body: &Path,
    n: usize,
    warmup: usize,
    sign: Option<&Path>,
    tail: bool,
    expect: &str,
    print_body: bool,
) -> Result<(), Error> {
    let (host, path) = split_url(url)?;
    let body = std::fs::read(body)?;
    let signer = match sign {
        Some(file) => {
            let p = nimbus_iam::credentials::read(file, "default")?.ok_or("no [default] profile in the credentials")?;
            Some(nimbus_iam::sigv4::Signer {
                access_key_id: p.aws_access_key_id,
                secret: p.aws_secret_access_key,
                region: p.region.unwrap_or_else(|| "us-east-1".into()),
                service: "lambda".into(),
            })
        }
        None => None,
    };
    let started = Instant::now();
    let mut conn = Conn::open(&host)?;
    let mut times = Vec::with_capacity(n);
    let mut last = None;
    let mut first_ms = 0.0;
    for i in 0..warmup + n.max(1) {
        let req = build_request(&host, &path, &body, signer.as_ref(), tail);
        let t = Instant::now();
        let answer = conn.exchange(&req)?;
        let took = t.elapsed();
        if i == 0 {
            first_ms = started.elapsed().as_secs_f64() * 1e3;
        }
        let text = String::from_utf8_lossy(&answer.body);
        if answer.status != 200 || answer.header("x-amz-function-error").is_some() || !text.contains(expect) {
            return Err(format!("{url} answered {}: {}", answer.status, text).into());
        }
        if i >= warmup {
            times.push(took);
        }
        last = Some(answer);
    }
    let last = last.expect("at least one request");
    if print_body {
        std::io::stdout().write_all(&last.body)?;
        return Ok(());
    }
    let mut out = summary(&mut times);
    // The first request's time includes opening the connection (a cold start's end to end).
    out["first_ms"] = json!(round3(first_ms));
    if tail {
        out["init_ms"] = json!(init_duration(&last));
    }
    emit(out);
    Ok(())
}

// ---------------------------------------------------------------- the echo runtime

fn echo_runtime() -> Result<(), Error> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")?;
    let mut conn = Conn::open(&api)?;
    loop {
        let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: {api}\r\n\r\n");
        let event = conn.exchange(next.as_bytes())?;
        let id = event.header("lambda-runtime-aws-request-id").ok_or("no request id")?.to_string();
        let mut post = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: {api}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            event.body.len()
        )
        .into_bytes();
        post.extend_from_slice(&event.body);
        conn.exchange(&post)?;
    }
}
