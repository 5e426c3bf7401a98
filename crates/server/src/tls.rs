//! TLS on the listener: loading the certificate chain and private key that `--tls-cert` and
//! `--tls-key` name into a rustls configuration, and the handshake of one accepted connection.
//!
//! The files are read once, at start, so a mistake in them stops the server with a message
//! naming the file and the fix instead of failing every handshake later. The handshake runs in
//! the connection's own task (see [`crate::listener`]), never in the accept loop: a client that
//! is slow to finish it, or never does, holds one connection slot until the header timeout and
//! stalls nobody else. The server speaks HTTP/1.1 only and says so in ALPN, so a client that
//! insists on h2 is refused in the handshake rather than failing on its first frame.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;

const CERT_FLAG: &str = "--tls-cert";
const KEY_FLAG: &str = "--tls-key";

/// Why the TLS certificate or key cannot be used. It names the flag and file at fault, and
/// what to do, and never includes the files' contents.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {problem}")]
pub struct TlsError {
    flag: &'static str,
    path: String,
    problem: String,
}

impl TlsError {
    fn new(flag: &'static str, path: &Path, problem: impl Into<String>) -> TlsError {
        TlsError { flag, path: path.display().to_string(), problem: problem.into() }
    }
}

/// Loads the certificate chain and key of `files` and builds the acceptor of every connection.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain = load_chain(&files.cert)?;
    if is_ca(&chain[0]) {
        // Not an error: curl and browsers accept such a certificate once trusted. But rustls
        // clients (the nimbus CLI among them) refuse it, and `openssl req -x509` makes one by
        // default, so the likely surprise is named here rather than in every client.
        tracing::warn!(
            "{CERT_FLAG} {}: the certificate is a CA certificate (basicConstraints CA:TRUE); rustls-based clients, \
             the nimbus CLI among them, refuse it as a server's certificate (CaUsedAsEndEntity); for a self-signed \
             one, add `-addext basicConstraints=critical,CA:FALSE` to `openssl req -x509`",
            files.cert.display()
        );
    }
    let key = load_key(&files.key)?;
    // Named explicitly rather than taken from a process-wide default, so the server does not
    // depend on which other crates in the binary enable which rustls provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        TlsError::new(
            KEY_FLAG,
            &files.key,
            format!("the private key cannot be used ({e}); supported are RSA (2048 bits or more), ECDSA P-256 or P-384, and Ed25519"),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half; rustls accepts that, and so do we.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::new(
                KEY_FLAG,
                &files.key,
                format!(
                    "this private key does not belong to the certificate in {CERT_FLAG} {} (their public keys differ); \
                     pass the key the certificate was issued for",
                    files.cert.display()
                ),
            ));
        }
        Err(e) => {
            return Err(TlsError::new(
                CERT_FLAG,
                &files.cert,
                format!("the first certificate (the server's own) cannot be parsed: {e}"),
            ));
        }
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::new(flag, path, format!("cannot read the file: {e}")))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(CERT_FLAG, path)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(CERT_FLAG, path, not_pem(&e)))?;
    if chain.is_empty() {
        let problem = if has_block(&text, "PRIVATE KEY") {
            format!("the file holds a private key, not a certificate; were {CERT_FLAG} and {KEY_FLAG} swapped?")
        } else {
            "no certificate found (expected a PEM 'CERTIFICATE' block: the server's certificate first, then any \
             intermediates; a DER file converts with `openssl x509 -inform der -in FILE -out FILE.pem`)"
                .to_string()
        };
        return Err(TlsError::new(CERT_FLAG, path, problem));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(KEY_FLAG, path)?;
    match PrivateKeyDer::from_pem_slice(&text) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let problem = if has_block(&text, "ENCRYPTED PRIVATE KEY") {
                "the private key is encrypted and the server cannot ask for its passphrase; decrypt it \
                 (`openssl pkey -in FILE -out FILE.plain`) and make the result readable only by the server"
                    .to_string()
            } else if has_block(&text, "CERTIFICATE") {
                format!("no private key found: the file holds a certificate; were {CERT_FLAG} and {KEY_FLAG} swapped?")
            } else {
                "no private key found (expected a PEM 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY' block)"
                    .to_string()
            };
            Err(TlsError::new(KEY_FLAG, path, problem))
        }
        Err(e) => Err(TlsError::new(KEY_FLAG, path, not_pem(&e))),
    }
}

/// Whether `text` has a PEM block of exactly this label.
fn has_block(text: &[u8], label: &str) -> bool {
    let begin = format!("-----BEGIN {label}-----");
    text.windows(begin.len()).any(|w| w == begin.as_bytes())
}

/// Describes a PEM syntax error in words: the parser's own text shows lines as byte arrays,
/// which a key file's line should not be printed as anyway.
fn not_pem(e: &pem::Error) -> String {
    let what = match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no END line (is the file cut short?)".to_string(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_string(),
        pem::Error::Base64Decode(_) => "a block's base64 text is corrupt".to_string(),
        other => other.to_string(),
    };
    format!("not valid PEM: {what}")
}

/// Whether a DER certificate says it is a CA (basicConstraints `cA` true). Only this one field is
/// read, walking the DER by hand: rustls checks the rest of the certificate, and no parser crate
/// is worth adding for one boolean. Anything unexpected reads as "not a CA", since this only
/// decides a warning.
fn is_ca(cert: &[u8]) -> bool {
    /// One DER element: its tag, its contents and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    /// The elements of a constructed element's contents.
    fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        std::iter::from_fn(move || {
            let (tag, contents, rest) = element(input)?;
            input = rest;
            Some((tag, contents))
        })
    }
    const SEQUENCE: u8 = 0x30;
    const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13]; // 2.5.29.19
    let Some((SEQUENCE, certificate, _)) = element(cert) else { return false };
    let Some((SEQUENCE, tbs, _)) = element(certificate) else { return false };
    // The extensions are the tbsCertificate's `[3]` field, a SEQUENCE of Extension.
    let Some((_, explicit)) = elements(tbs).find(|(tag, _)| *tag == 0xa3) else { return false };
    let Some((SEQUENCE, extensions, _)) = element(explicit) else { return false };
    elements(extensions).any(|(_, extension)| {
        // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
        let mut fields = elements(extension);
        if fields.next() != Some((0x06, BASIC_CONSTRAINTS)) {
            return false;
        }
        let Some((_, value)) = fields.find(|(tag, _)| *tag == 0x04) else { return false };
        // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
        let Some((SEQUENCE, constraints, _)) = element(value) else { return false };
        matches!(elements(constraints).next(), Some((0x01, [b]))  if *b != 0)
    })
}

/// The TLS handshake of one accepted connection, to finish by `deadline` (the header timeout,
/// counted from the accept). `None` when it failed or ran out of time; that is logged at debug
/// level only, because scanners and plain-HTTP clients on an HTTPS port cause it all day.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "closing a connection that did not finish its TLS handshake within the header timeout");
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A test-only identity: a self-signed ECDSA P-256 certificate for `localhost` and
    //! `127.0.0.1` (not a CA, so rustls clients accept it as a server's own), valid until 2126,
    //! whose key is public here and protects nothing. Made with `openssl req -x509 -newkey ec
    //! -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 -subj /CN=localhost -addext
    //! subjectAltName=IP:127.0.0.1,DNS:localhost -addext basicConstraints=critical,CA:FALSE`.

    pub const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBlzCCAT6gAwIBAgIUUWyQXZteRu2uthW986FjB5LQHzwwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMzExMDEzOFoYDzIxMjYxMTA5
MTEwMTM4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQGVLI+vIK4JamoTgfEdFXvXulHw5uJ3Y4pEGrhUrKopWDXDubFNYK+
RPAT8ZQovTeoYVDk7CqfdP4EcBpY+pk+o2wwajAdBgNVHQ4EFgQUjXrLMVf05i+q
xjOyxtuVf/NLWbgwHwYDVR0jBBgwFoAUjXrLMVf05i+qxjOyxtuVf/NLWbgwGgYD
VR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0E
AwIDRwAwRAIgKkSNESR1ySOGvcWE4ly7FQHTHznLDVnVfPqgDDMZ5AoCIBTKy/+R
UIazh+YSr8BzRcynSKFGKjgD/a+6pX/g/tep
-----END CERTIFICATE-----
";

    /// The certificate's key, PKCS#8.
    pub const KEY_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqlkq8DgI2neSJTfj
3N65/1q4FusOsUFrTnhYLBHlkv+hRANCAAQGVLI+vIK4JamoTgfEdFXvXulHw5uJ
3Y4pEGrhUrKopWDXDubFNYK+RPAT8ZQovTeoYVDk7CqfdP4EcBpY+pk+
-----END PRIVATE KEY-----
";

    /// The same key, SEC1 (`openssl ec`).
    pub const KEY_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIKpZKvA4CNp3kiU349zeuf9auBbrDrFBa054WCwR5ZL/oAoGCCqGSM49
AwEHoUQDQgAEBlSyPryCuCWpqE4HxHRV717pR8Obid2OKRBq4VKyqKVg1w7mxTWC
vkTwE/GUKL03qGFQ5Owqn3T+BHAaWPqZPg==
-----END EC PRIVATE KEY-----
";

    /// A certificate like [`CERT`] but a CA (basicConstraints CA:TRUE), as `openssl req -x509`
    /// makes by default.
    pub const CA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUV96Ogs4nmGf89JXh+ZNQzovBpPgwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMzExMDEyOVoYDzIxMjYxMTA5
MTEwMTI5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARadeYpjxLJpSoQSeIpL9T/j1a5xDqdZWoqXOnYmdj8IzliUJD4yP0K
4HeNyYlxYsjAjy2lYkfdZZUL/22RqbqZo28wbTAdBgNVHQ4EFgQUqrRlMx8ta/NW
fh9hLYnMDxAhIXowHwYDVR0jBBgwFoAUqrRlMx8ta/NWfh9hLYnMDxAhIXowDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSQAwRgIhAM7jXpthe1N4RnAQJ9g9+cytyffbXetC38YyK02BDL9bAiEA
tpVnRZV4IK4qssIUpEAtxIn0gk5rPpkea+A8UA/ziaY=
-----END CERTIFICATE-----
";

    /// Another P-256 key, not the certificate's.
    pub const OTHER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8scpO3baX6ng0lT0
LfOqvQy3kSuZPOSKHCi6iFOkLfqhRANCAAQ3uHI9kU1dKz2Q1pPKGjqOmjMcdDJy
TgrbGYEDDzueOttcWNycsnIW7KQI+/u/z95izwlU2lx3djwHGIvlgorj
-----END PRIVATE KEY-----
";
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    /// Writes `cert` and `key` to files in `dir` and loads them.
    fn load(dir: &Path, cert: &str, key: &str) -> Result<TlsAcceptor, TlsError> {
        let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        acceptor(&files)
    }

    fn load_err(cert: &str, key: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        match load(dir.path(), cert, key) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string().replace(&dir.path().display().to_string(), "DIR"),
        }
    }

    #[test]
    fn loads_pkcs8_and_sec1_keys_and_offers_only_http1() {
        let dir = tempfile::tempdir().unwrap();
        for key in [KEY_PKCS8, KEY_SEC1] {
            let acceptor = load(dir.path(), CERT, key).unwrap();
            assert_eq!(acceptor.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
    }

    #[test]
    fn a_ca_certificate_is_recognised() {
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert!(is_ca(&der(CA_CERT)));
        assert!(!is_ca(&der(CERT)));
        assert!(!is_ca(b""));
        assert!(!is_ca(&der(CA_CERT)[..100]), "a cut certificate reads as not a CA");
    }

    #[test]
    fn a_missing_file_is_named_with_its_flag() {
        let files = TlsFiles { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let e = acceptor(&files).err().unwrap().to_string();
        assert!(e.starts_with("--tls-cert /nonexistent/cert.pem: cannot read the file:"), "{e}");
    }

    #[test]
    fn a_file_without_the_expected_block_says_what_was_expected() {
        let e = load_err(CERT, "not pem at all\n");
        assert_eq!(
            e,
            "--tls-key DIR/key.pem: no private key found (expected a PEM 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC \
             PRIVATE KEY' block)"
        );
        let e = load_err("", KEY_PKCS8);
        assert!(
            e.starts_with("--tls-cert DIR/cert.pem: no certificate found (expected a PEM 'CERTIFICATE' block"),
            "{e}"
        );
    }

    #[test]
    fn swapped_files_are_recognised() {
        let e = load_err(KEY_PKCS8, CERT);
        assert!(e.starts_with("--tls-cert DIR/cert.pem: the file holds a private key"), "{e}");
        assert!(e.contains("swapped"), "{e}");
    }

    #[test]
    fn an_encrypted_key_is_recognised() {
        let e = load_err(CERT, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n");
        assert!(e.starts_with("--tls-key DIR/key.pem: the private key is encrypted"), "{e}");
    }

    #[test]
    fn broken_pem_is_described_without_the_file_contents() {
        let cut = &KEY_PKCS8[..KEY_PKCS8.len() - 30];
        let e = load_err(CERT, cut);
        assert_eq!(e, "--tls-key DIR/key.pem: not valid PEM: a block has no END line (is the file cut short?)");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let e = load_err(CERT, OTHER_KEY);
        assert!(
            e.starts_with(
                "--tls-key DIR/key.pem: this private key does not belong to the certificate in --tls-cert DIR/cert.pem"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_key_that_is_not_a_key_is_refused() {
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
        let e = load_err(CERT, garbage);
        assert!(e.starts_with("--tls-key DIR/key.pem: the private key cannot be used"), "{e}");
    }
}
