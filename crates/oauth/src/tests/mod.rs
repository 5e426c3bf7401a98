//! Tests of the crate against real SQLite databases, and fixtures they share.
//!
//! RSA key generation takes seconds in a debug build, so the keys come from a pool of three
//! generated once per test binary (with the production generator): every server's n-th key
//! is the pool's (n mod 3)-th, distinct from its two neighbours, which is all rotation needs.
//! Outside issuers in the tests sign with pool keys too.

mod management;
mod outside;
mod token_endpoint;
mod verify;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use nimbus_iam::crypto::MasterKey;
use nimbus_meta::Db;
use ring::signature::RsaKeyPair;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::keys::{self, KeyGen};
use crate::{ClientSpec, NewClient, Oauth, Options, ResourceServerSpec, ScopeSpec, TokenRequest, VerifierOptions};

const POOL: usize = 3;
static KEY_POOL: [OnceLock<Vec<u8>>; POOL] = [const { OnceLock::new() }; POOL];

/// The pool's `i`-th key as PKCS#8 DER, generated on first use.
pub(crate) fn pool_key(i: usize) -> Vec<u8> {
    KEY_POOL[i % POOL]
        .get_or_init(|| {
            let t = std::time::Instant::now();
            let der = keys::generate_pkcs8().expect("key generation");
            eprintln!("generated a {}-bit RSA key in {:?} (debug build)", keys::KEY_BITS, t.elapsed());
            der
        })
        .clone()
}

/// A key generator handing out the pool's keys 0, 1, 2, 0, … in turn.
fn pooled_keygen() -> KeyGen {
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move || Ok(pool_key(next.fetch_add(1, Ordering::Relaxed))))
}

pub(crate) const ISSUER: &str = "http://127.0.0.1:8080";

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub master: MasterKey,
    pub oauth: Oauth,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(Options::default().throttle, VerifierOptions::default()).await
}

pub(crate) async fn fixture_with(throttle: crate::throttle::Throttle, verifier: VerifierOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
    let master = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
    let opts = Options { keygen: pooled_keygen(), throttle, verifier };
    let oauth = Oauth::open_with(db.clone(), master.clone(), ISSUER.into(), opts).await.unwrap();
    Fixture { dir, db, master, oauth }
}

impl Fixture {
    /// Opens a second server over the same database, as a restart or another replica would.
    pub async fn reopen(&self) -> Oauth {
        let opts = Options { keygen: pooled_keygen(), ..Options::default() };
        Oauth::open_with(self.db.clone(), self.master.clone(), ISSUER.into(), opts).await.unwrap()
    }

    /// A resource server `orders` with read and write, and a client holding both.
    pub async fn client(&self, name: &str) -> NewClient {
        self.oauth
            .put_resource_server(&ResourceServerSpec {
                identifier: "orders".into(),
                name: "Orders API".into(),
                scopes: vec![scope("read"), scope("write")],
            })
            .await
            .unwrap();
        self.oauth.create_client(&client_spec(name, &["orders/read", "orders/write"])).await.unwrap()
    }

    /// A token for `client` through the seed's query-string form.
    pub async fn token(&self, client: &NewClient, scope: Option<&str>) -> String {
        let query = match scope {
            Some(s) => format!("grant_type=client_credentials&scope={s}"),
            None => "grant_type=client_credentials".into(),
        };
        let auth = basic(&client.info.client_id, &client.client_secret);
        let req = TokenRequest::parse(&query, Some("application/x-www-form-urlencoded"), b"", Some(&auth)).unwrap();
        self.oauth.token(&req, None).await.unwrap().access_token
    }

    /// Signs arbitrary claims with the server's current key.
    pub async fn sign(&self, claims: Value) -> String {
        let key = self.oauth.inner.keys.signing_key().await.unwrap();
        crate::jwt::sign(&key.pair, &key.kid, claims.as_object().unwrap()).unwrap()
    }
}

pub(crate) fn scope(name: &str) -> ScopeSpec {
    ScopeSpec { name: name.into(), description: format!("{name} access") }
}

pub(crate) fn client_spec(name: &str, scopes: &[&str]) -> ClientSpec {
    ClientSpec {
        name: name.into(),
        client_id: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        token_validity_s: 3600,
    }
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub(crate) fn now_s() -> i64 {
    nimbus_core::clock::now_ms() / 1000
}

/// The claims of a token, unverified.
pub(crate) fn claims_of(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub(crate) fn header_of(token: &str) -> Map<String, Value> {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// Signs `claims` as an outside issuer would, with any of the RSA algorithms.
pub(crate) fn sign_as(pair: &RsaKeyPair, alg: &str, kid: &str, claims: &Value) -> String {
    let padding: &'static dyn ring::signature::RsaEncoding = match alg {
        "RS256" => &ring::signature::RSA_PKCS1_SHA256,
        "RS384" => &ring::signature::RSA_PKCS1_SHA384,
        "RS512" => &ring::signature::RSA_PKCS1_SHA512,
        other => panic!("no such alg {other}"),
    };
    let header = json!({"alg": alg, "kid": kid});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(padding, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The JWKS entry of a key pair.
pub(crate) fn jwk_of(pair: &RsaKeyPair, kid: &str, alg: Option<&str>) -> Value {
    let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    let mut v = json!({"kty": "RSA", "use": "sig", "kid": kid, "n": URL_SAFE_NO_PAD.encode(&parts.n), "e": URL_SAFE_NO_PAD.encode(&parts.e)});
    if let Some(alg) = alg {
        v["alg"] = alg.into();
    }
    v
}

/// A tiny HTTP server answering every GET of `/.well-known/jwks.json` with the current
/// `body` (status `status`), counting requests; 404 elsewhere.
pub(crate) struct JwksServer {
    pub base: String,
    pub body: Arc<Mutex<(u16, String)>>,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(body: Value) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new((200u16, body.to_string())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let (b, h) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&req).lines().next().unwrap_or("").to_string();
                    let (status, text) = if line.starts_with("GET /.well-known/jwks.json ") {
                        h.fetch_add(1, Ordering::SeqCst);
                        b.lock().unwrap().clone()
                    } else {
                        (404, "{}".to_string())
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        JwksServer { base, body, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set(&self, status: u16, body: Value) {
        *self.body.lock().unwrap() = (status, body.to_string());
    }
}

/// Collects the failing rows of a table-driven test, to report them all at once.
#[derive(Default)]
pub(crate) struct Failures(Vec<String>);

impl Failures {
    pub fn check(&mut self, row: &str, ok: bool, detail: impl FnOnce() -> String) {
        if !ok {
            self.0.push(format!("{row}: {}", detail()));
        }
    }

    pub fn assert_none(self) {
        assert!(self.0.is_empty(), "{} failing rows:\n  {}", self.0.len(), self.0.join("\n  "));
    }
}
