//! The HTTP listener: accepts up to `max_connections` connections and serves each with hyper,
//! enforcing three timeouts so no client can hold the server's resources by being slow:
//!
//! - **header read timeout**: a request's head (request line and headers) must arrive whole
//!   within it, counted from its first byte (from the accept, for a connection's first
//!   request); a client that trickles a header byte a second is dropped;
//! - **idle timeout**: a keep-alive connection with no request in flight and no bytes moving
//!   is closed after it;
//! - **body read timeout**: a request body must arrive within it, counted from the request's
//!   start, plus one second for every [`MIN_BODY_RATE`] bytes received (so a 5 GiB upload at
//!   any reasonable speed finishes, and a drip does not); a slow upload gets `408` (the
//!   handler sees [`BodyTimeout`]).
//!
//! Each connection has a small shared state ([`ConnState`]) that its socket wrapper updates on
//! every read and write and its service updates at each request's start and end; a watchdog in
//! the connection's task compares it with the deadlines. The request path costs a clock read
//! per socket operation, and a body timer only when a body is not already buffered.
//!
//! With `--tls-cert`/`--tls-key` every connection first does its TLS handshake, in its own task
//! (see [`crate::tls`]) and within the header timeout, which for the first request is counted
//! from the accept and so covers the handshake and the head together. After that it is served
//! exactly as a plain one, with the decrypted stream under the same watchdog. Every request
//! carries, in its extensions, the peer's address (`ConnectInfo<SocketAddr>`) and whether it
//! came over TLS ([`Transport`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use nimbus_core::Transport;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::Service;

use crate::tls;

/// The connection limits of a listener; every field has a `nimbus serve` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `--header-timeout`: how long a request's head may take to arrive.
    pub header_timeout: Duration,
    /// `--idle-timeout`: how long a keep-alive connection may sit idle.
    pub idle_timeout: Duration,
    /// `--body-timeout`: how long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// `--max-connections`: connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(120),
            max_connections: 1024,
        }
    }
}

/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN: Duration = Duration::from_secs(30);

/// Marks "no time recorded".
const NONE: u64 = u64::MAX;

/// What the watchdog of one connection needs to know, shared with its socket and service.
struct ConnState {
    started: Instant,
    /// Requests being handled now.
    in_flight: AtomicU32,
    /// When bytes last moved either way, ms since `started`.
    last_io_ms: AtomicU64,
    /// When the first byte of the next request head arrived, ms since `started` (or [`NONE`]).
    head_started_ms: AtomicU64,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            started: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_io_ms: AtomicU64::new(0),
            // The first request's head is timed from the accept.
            head_started_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_started_ms.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(NONE, Ordering::Release);
    }

    fn request_ended(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection is to be dropped, if nothing changes; `None` while a request runs.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, after: Duration| self.started + Duration::from_millis(ms) + after;
        let idle = at(self.last_io_ms.load(Ordering::Relaxed), limits.idle_timeout);
        match self.head_started_ms.load(Ordering::Acquire) {
            NONE => Some(idle),
            head => Some(idle.min(at(head, limits.header_timeout))),
        }
    }
}

/// A socket (TCP, or the plaintext side of TLS) that reports its reads and writes to the
/// connection's state.
struct TrackedIo<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.state.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.state.on_write();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            self.state.on_write();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub use nimbus_core::timeouts::{BodyTimeout, is_body_timeout};

/// A request body that fails with [`BodyTimeout`] once its deadline passes. The timer is only
/// armed when the body is not already there.
/// Bytes a second a body must keep up, beyond its first `--body-timeout` seconds.
pub const MIN_BODY_RATE: u64 = 64 * 1024;

struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Every byte that arrives earns the body more time, at the minimum rate: a large
                // upload at any reasonable speed finishes; a drip does not.
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(|f| f.data_ref().map_or(0, Bytes::len))) {
                    this.deadline += Duration::from_secs_f64(data as f64 / MIN_BODY_RATE as f64);
                    this.timer = None;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks a request ended when dropped (the response is ready, or the request was abandoned).
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets requests in
/// flight finish (for up to 30 s) and returns. With `tls`, every connection speaks HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut warned_full: Option<Instant> = None;
    loop {
        if permits.available_permits() == 0 && warned_full.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(max_connections = limits.max_connections, "connection limit reached; new connections wait");
            warned_full = Some(Instant::now());
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, tls, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends; all of them back means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, permits.acquire_many(all)).await.is_err() {
        tracing::warn!("requests still running after {DRAIN:?}; closing their connections");
    }
    Ok(())
}

/// One connection, in its own task: the TLS handshake when there is one, then HTTP.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    // Made at the accept: the first request's head deadline counts from here, so a client gets
    // one header timeout for the handshake and its first head together.
    let state = Arc::new(ConnState::new());
    match tls {
        None => {
            let io = TrackedIo { inner: stream, state: state.clone() };
            serve_http(io, state, Transport { secure: false }, peer, app, limits, stop).await;
        }
        Some(acceptor) => {
            let deadline = state.started + limits.header_timeout;
            let stream = tokio::select! {
                tls = tls::handshake(&acceptor, stream, peer, deadline) => match tls {
                    Some(s) => s,
                    None => return,
                },
                // Shutting down: a connection still in its handshake has no request to finish.
                _ = stop.changed() => return,
            };
            let io = TrackedIo { inner: stream, state: state.clone() };
            serve_http(io, state, Transport { secure: true }, peer, app, limits, stop).await;
        }
    }
}

/// Serves HTTP/1.1 on `io` under the connection's watchdog until the client or the timeouts end
/// it, or shutdown has let its request in flight finish.
async fn serve_http<S>(
    io: TrackedIo<S>,
    state: Arc<ConnState>,
    transport: Transport,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let svc_state = state.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        svc_state.request_started();
        let guard = InFlight(svc_state.clone());
        let (mut parts, incoming) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        parts.extensions.insert(transport);
        let body = TimedBody {
            inner: incoming,
            deadline: Instant::now() + limits.body_timeout,
            limit: limits.body_timeout,
            timer: None,
        };
        let req = axum::http::Request::from_parts(parts, Body::new(body));
        let mut app = app.clone();
        async move {
            let response = app.call(req).await;
            drop(guard);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    // The watchdog is not woken per request (that cost a task wake and a timer per request):
    // it looks again at the connection's deadline, or at least every `tick`, which bounds how
    // late a deadline that moved earlier (a request head starting) is noticed.
    let tick =
        (limits.header_timeout.min(limits.idle_timeout) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        let next_look = Instant::now() + tick;
        let deadline = Some(state.deadline(&limits).map_or(next_look, |d| d.min(next_look)));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = sleep_until_opt(deadline) => {
                if state.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "closing a connection that was idle or slow to send its request head");
                    return;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! The listener with and without TLS, on a loopback port, with a handler that reports the
    //! [`Transport`] it was given.

    use std::time::Duration;

    use axum::Extension;
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::tls::fixture;

    /// Serves a route `/transport` that answers with what its handler sees; returns its address
    /// and the sender that shuts it down.
    async fn start(tls: bool, limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new().route(
            "/transport",
            axum::routing::get(|Extension(t): Extension<Transport>| async move { format!("secure={}", t.secure) }),
        );
        let acceptor = tls.then(|| {
            let dir = tempfile::tempdir().unwrap();
            let files = crate::TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
            std::fs::write(&files.cert, fixture::CERT).unwrap();
            std::fs::write(&files.key, fixture::KEY_PKCS8).unwrap();
            crate::tls::acceptor(&files).unwrap()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(listener, app, limits, acceptor, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// A TLS client that trusts only the test certificate.
    fn connector() -> TlsConnector {
        connector_offering(&[])
    }

    /// A TLS client that trusts only the test certificate and offers these ALPN protocols.
    fn connector_offering(alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(fixture::CERT.as_bytes()).unwrap()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut config = config;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    /// Sends one `GET path` with `Connection: close` and returns all that came back.
    async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str) -> String {
        let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        // A peer that closes without TLS close_notify ends in an error after the answer; the
        // bytes before it are what counts.
        let _ = stream.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    async fn get_tls(addr: SocketAddr, path: &str) -> String {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector().connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), None, "the client offered no ALPN, so none is chosen");
        get(tls, path).await
    }

    #[tokio::test]
    async fn a_handler_sees_secure_transport_on_tls_and_not_on_plain() {
        let (plain, _stop_plain) = start(false, Limits::default()).await;
        let answer = get(TcpStream::connect(plain).await.unwrap(), "/transport").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("secure=false"), "{answer}");

        let (tls, _stop_tls) = start(true, Limits::default()).await;
        let answer = get_tls(tls, "/transport").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("secure=true"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_that_never_sends_a_client_hello_is_dropped_and_does_not_stall_others() {
        let limits = Limits { header_timeout: Duration::from_millis(400), ..Limits::default() };
        let (addr, _stop) = start(true, limits).await;
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // Accepted before the next client; its handshake waits in its own task meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = get_tls(addr, "/transport").await;
        assert!(answer.ends_with("secure=true"), "{answer}");
        // Had the handshake run in the accept loop, the answer could only have come after the
        // silent connection was given up.
        let mut buf = [0u8; 16];
        let still_open = matches!(silent.try_read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        assert!(still_open, "the silent connection was closed before another client was served");
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("the silent connection was never closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "nothing is sent to a client that never said hello");
        let after = started.elapsed();
        assert!(after >= Duration::from_millis(350), "closed after {after:?}, before the 400 ms header timeout");
    }

    #[tokio::test]
    async fn alpn_picks_http1_and_refuses_an_h2_only_client() {
        let (addr, _stop) = start(true, Limits::default()).await;
        let localhost = || ServerName::try_from("localhost").unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector_offering(&[b"h2", b"http/1.1"]).connect(localhost(), tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert!(get(tls, "/transport").await.ends_with("secure=true"));
        let tcp = TcpStream::connect(addr).await.unwrap();
        assert!(
            connector_offering(&[b"h2"]).connect(localhost(), tcp).await.is_err(),
            "an h2-only client was accepted"
        );
    }

    #[tokio::test]
    async fn plain_http_on_the_tls_port_gets_no_http_answer() {
        let (addr, _stop) = start(true, Limits::default()).await;
        let answer = get(TcpStream::connect(addr).await.unwrap(), "/transport").await;
        assert!(!answer.contains("HTTP/1.1"), "{answer:?}");
    }
}
