//! Checks the SigV4 canonicalisation, signing and verification against the published AWS
//! test-suite vectors in `tests/data/sigv4/` (see its README).

use std::path::{Path, PathBuf};

use nimbus_iam::sigv4::{self, UriMode};
use sha2::{Digest, Sha256};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct Case {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    creq: String,
    sts: String,
    authz: String,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigv4");
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.join("request.txt").exists() {
                    dirs.push(p);
                } else {
                    stack.push(p);
                }
            }
        }
    }
    dirs.sort();
    dirs.iter().map(|d| parse_case(d, d.strip_prefix(&root).unwrap().display().to_string())).collect()
}

fn parse_case(dir: &Path, name: String) -> Case {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let req = read("request.txt");
    let (head, body) = req.split_once("\n\n").unwrap_or((&req, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let method = request_line.split(' ').next().unwrap().to_string();
    let target = request_line[method.len() + 1..request_line.rfind(" HTTP/").unwrap()].to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    Case {
        name,
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
        creq: read("canonical_request.txt"),
        sts: read("string_to_sign.txt"),
        authz: read("authorization.txt").trim().to_string(),
    }
}

fn signed_headers(authz: &str) -> Vec<String> {
    let s = authz.split("SignedHeaders=").nth(1).unwrap();
    s[..s.find(',').unwrap()].split(';').map(str::to_string).collect()
}

#[test]
fn canonical_requests_strings_to_sign_and_signatures_match_the_suite() {
    let cases = cases();
    assert!(cases.len() >= 25, "expected the suite's cases, found {}", cases.len());
    for c in &cases {
        let signed = signed_headers(&c.authz);
        let headers = sigv4::canonical_headers(&c.headers, &signed).unwrap();
        let payload = hex::encode(Sha256::digest(&c.body));
        let creq = sigv4::canonical_request(
            &c.method,
            &sigv4::canonical_uri(&c.path, UriMode::Normalized),
            &sigv4::canonical_query(&c.query),
            &headers,
            &signed.join(";"),
            &payload,
        );
        assert_eq!(creq, c.creq, "canonical request of {}", c.name);
        let sts = sigv4::string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &creq);
        assert_eq!(sts, c.sts, "string to sign of {}", c.name);
        let key = sigv4::signing_key(SECRET, "20150830", "us-east-1", "service");
        let expected_sig = c.authz.rsplit("Signature=").next().unwrap();
        let got = {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(sts.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(got, expected_sig, "signature of {}", c.name);
    }
}

#[test]
fn the_verifier_accepts_every_suite_request_and_rejects_a_changed_one() {
    let now = time::macros::datetime!(2015-08-30 12:40:00 UTC);
    for c in cases() {
        let mut headers = c.headers.clone();
        headers.push(("Authorization".into(), c.authz.clone()));
        let hash = hex::encode(Sha256::digest(&c.body));
        let req = sigv4::Request {
            method: &c.method,
            path: &c.path,
            query: &c.query,
            headers: &headers,
            body_sha256: Some(&hash),
        };
        let parsed = sigv4::parse(&req).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
        parsed
            .verify(&req, SECRET, "us-east-1", "service", UriMode::Normalized, now)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));

        let other = if c.method == "GET" { "PUT" } else { "GET" };
        let changed = sigv4::Request { method: other, ..req };
        assert_eq!(
            parsed.verify(&changed, SECRET, "us-east-1", "service", UriMode::Normalized, now),
            Err(sigv4::SigError::Mismatch),
            "{} with another method",
            c.name
        );
    }
}
