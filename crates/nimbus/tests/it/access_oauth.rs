//! The OAuth2 token endpoint and JWT authorizers through the real binary and real HTTP: the
//! seed's Cognito curl (`curl -X POST --user id:secret '…/oauth2/token?grant_type=client_credentials'`)
//! run with the real `curl`, the form-body variant, the endpoint's OAuth2 errors, the claims of
//! the access token and the JWKS; the token on a `jwt:` route with scopes (with and without
//! `Bearer `, missing, wrong scope, tampered), signing-key rotation; and an outside issuer the
//! test is itself (an RSA key made by `openssl`, its JWKS served on another port), whose tokens
//! are checked for audience, issuer, expiry and signature.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus, backends};

/// The seeds' three passengers.
pub(crate) const SAMPLE: &str = r#"{"instances":[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},{"Age":38,"Sex":"female","Pclass":1}]}"#;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// A server on `backend` with the Titanic example plus `extra` (TOML appended to its
/// `nimbus.toml`) applied, trained and version 1 approved; returns it and apply's output.
pub(crate) fn deploy(backend: &Backend, extra: &str) -> (Nimbus, String) {
    let n = Nimbus::start(backend);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap() + extra;
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    let out = n.ok(&["apply", dir.to_str().unwrap()]);
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    (n, out)
}

/// One request with `headers`; returns status, response headers and body. The long timeout
/// covers a token request that waits for the first signing key of a debug build.
pub(crate) fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, HeaderMap, String) {
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300)).build().unwrap();
    let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().expect("the server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap_or_default())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The secret `apply` printed for a client it created.
fn created_secret(apply_out: &str, client: &str) -> String {
    let line = apply_out
        .lines()
        .find(|l| l.starts_with(&format!("client   {client}: create (")))
        .unwrap_or_else(|| panic!("apply reports creating client {client}:\n{apply_out}"));
    let rest = line.split_once(", secret ").unwrap_or_else(|| panic!("no secret in {line:?}")).1;
    rest.rsplit_once(": shown once").unwrap_or_else(|| panic!("no 'shown once' in {line:?}")).0.to_string()
}

/// `POST /oauth2/token` with a form body (`client_secret_post` when no Basic credentials).
fn token_request(n: &Nimbus, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, HeaderMap, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let authorization = basic.map(|(id, secret)| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
    });
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(a) = &authorization {
        headers.push(("authorization", a.as_str()));
    }
    let (status, h, text) = send("POST", &format!("{}/oauth2/token", n.endpoint), &headers, &body);
    (status, h, json_of(&text))
}

/// A fresh access token for a client (all its scopes).
fn token_for(n: &Nimbus, id: &str, secret: &str) -> String {
    let (status, _, v) = token_request(n, &[("grant_type", "client_credentials")], Some((id, secret)));
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().expect("an access token").to_string()
}

/// The decoded JSON of part `i` (0 header, 1 payload) of a compact JWT.
fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("a JSON object")
}

fn jwks_kids(n: &Nimbus) -> Vec<String> {
    let (status, _, text) = send("GET", &format!("{}/.well-known/jwks.json", n.endpoint), &[], "");
    assert_eq!(status, 200, "{text}");
    json_of(&text)["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .map(|k| {
            assert_eq!(
                (k["kty"].as_str(), k["alg"].as_str(), k["use"].as_str()),
                (Some("RSA"), Some("RS256"), Some("sig"))
            );
            k["kid"].as_str().unwrap().to_string()
        })
        .collect()
}

/// POSTs the sample to a gateway path with an optional Authorization value.
fn predict(n: &Nimbus, path: &str, authorization: Option<&str>) -> (u16, HeaderMap, String) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    send("POST", &format!("{}{path}", n.endpoint), &headers, SAMPLE)
}

fn assert_predictions(answer: &(u16, HeaderMap, String), what: &str) {
    let (status, _, body) = answer;
    assert_eq!(*status, 200, "{what}: {body}");
    assert_eq!(json_of(body)["predictions"].as_array().map(Vec::len), Some(3), "{what}: {body}");
}

/// 401 `{"message":"Unauthorized"}` with the `invalid_token` challenge.
fn assert_unauthorized(answer: &(u16, HeaderMap, String), what: &str) {
    let (status, headers, body) = answer;
    assert_eq!((*status, body.as_str()), (401, r#"{"message":"Unauthorized"}"#), "{what}");
    let challenge = headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{what}: www-authenticate is {challenge:?}"
    );
}

/// Replaces one character in the middle of the payload with another base64url one.
fn flip_payload_char(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Vec<char> = parts[1].chars().collect();
    let i = payload.len() / 2;
    payload[i] = if payload[i] == 'A' { 'B' } else { 'A' };
    format!("{}.{}.{}", parts[0], payload.into_iter().collect::<String>(), parts[2])
}

/// The token with its payload replaced by `claims`, the signature kept.
fn with_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2])
}

const REPORTS_ID: &str = "reports_app_client";
const OTHER_ID: &str = "other_app_client";

/// The resource server, the two clients, the authorizer on the built-in issuer and its route.
fn builtin_toml() -> String {
    format!(
        r#"
[auth.resource_servers.titanic]
name = "Titanic API"
scopes = [{{ name = "predict" }}, {{ name = "admin" }}]

[auth.clients.reports]
client_id = "{REPORTS_ID}"
scopes = ["titanic/predict"]

[auth.clients.other]
client_id = "{OTHER_ID}"
scopes = ["titanic/admin"]
token_validity_s = 300

[apis.titanic.authorizers.pool]
audience = ["{REPORTS_ID}", "{OTHER_ID}"]

[apis.titanic.routes."POST /scoped/predict"]
function = "predict"
auth = "jwt:pool"
scopes = ["titanic/predict"]
"#
    )
}

#[test]
fn the_seeds_curl_gets_a_token_that_opens_only_its_scoped_route() {
    for backend in backends() {
        let (n, applied) = deploy(&backend, &builtin_toml());
        let secret = created_secret(&applied, "reports");
        let other_secret = created_secret(&applied, "other");
        assert!(applied.contains(&format!("client   reports: create (client id {REPORTS_ID}, ")), "{applied}");

        // The seed's curl, exactly, with the real curl binary (query-string grant, Basic auth).
        let out = Command::new("curl")
            .args(["-s", "-X", "POST", "--user", &format!("{REPORTS_ID}:{secret}")])
            .arg(format!("{}/oauth2/token?grant_type=client_credentials", n.endpoint))
            .args(["-H", "Content-Type: application/x-www-form-urlencoded"])
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
        let answer = json_of(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(answer["token_type"], "Bearer", "{answer}");
        assert_eq!(answer["expires_in"], 3600, "the default validity: {answer}");
        let token = answer["access_token"].as_str().expect("an access_token").to_string();

        // The same with everything in the form body (client_secret_post) and an explicit scope.
        let (status, headers, v) = token_request(
            &n,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "titanic/predict"),
                ("client_id", REPORTS_ID),
                ("client_secret", &secret),
            ],
            None,
        );
        assert_eq!((status, &v["token_type"]), (200, &json!("Bearer")), "{v}");
        assert!(v["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{v}");
        assert_eq!(headers["cache-control"], "no-store");

        // The endpoint's OAuth2 errors.
        let (status, _, v) = token_request(&n, &[("grant_type", "client_credentials")], Some((REPORTS_ID, "wrong")));
        assert_eq!((status, v), (400, json!({"error": "invalid_client"})));
        let (status, _, v) = token_request(
            &n,
            &[("grant_type", "password"), ("username", "u"), ("password", "p")],
            Some((REPORTS_ID, &secret)),
        );
        assert_eq!((status, &v["error"]), (400, &json!("unsupported_grant_type")), "{v}");
        let (status, _, v) = token_request(
            &n,
            &[("grant_type", "client_credentials"), ("scope", "titanic/admin")],
            Some((REPORTS_ID, &secret)),
        );
        assert_eq!((status, &v["error"]), (400, &json!("invalid_scope")), "{v}");

        // The token's claims, as Cognito's access tokens: no aud.
        let header = jwt_part(&token, 0);
        let claims = jwt_part(&token, 1);
        assert_eq!(header["alg"], "RS256", "{header}");
        assert_eq!(claims["client_id"], REPORTS_ID, "{claims}");
        assert_eq!(claims["scope"], "titanic/predict", "{claims}");
        assert_eq!(claims["token_use"], "access", "{claims}");
        assert_eq!(claims["iss"].as_str(), Some(n.endpoint.as_str()), "{claims}");
        assert!(claims.get("aud").is_none(), "an access token has no aud: {claims}");
        let (exp, iat) = (claims["exp"].as_i64().unwrap(), claims["iat"].as_i64().unwrap());
        assert_eq!(exp - iat, 3600, "{claims}");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "{claims}");
        let kid = header["kid"].as_str().expect("a kid").to_string();
        assert_eq!(jwks_kids(&n), vec![kid.clone()], "the JWKS publishes the signing key");
        let (status, _, text) = send("GET", &format!("{}/.well-known/openid-configuration", n.endpoint), &[], "");
        let discovery = json_of(&text);
        assert_eq!(status, 200);
        assert_eq!(discovery["issuer"].as_str(), Some(n.endpoint.as_str()), "{discovery}");
        assert_eq!(discovery["token_endpoint"], format!("{}/oauth2/token", n.endpoint), "{discovery}");
        assert_eq!(discovery["jwks_uri"], format!("{}/.well-known/jwks.json", n.endpoint), "{discovery}");

        // The token on the scoped route: with `Bearer `, and bare as the seed sends it.
        let route = "/titanic/prod/scoped/predict";
        assert_predictions(&predict(&n, route, Some(&format!("Bearer {token}"))), "Bearer token");
        assert_predictions(&predict(&n, route, Some(&token)), "token without the Bearer prefix");
        // Refusals.
        assert_unauthorized(&predict(&n, route, None), "no token");
        assert_unauthorized(&predict(&n, route, Some("Bearer ")), "an empty bearer token");
        let other = token_for(&n, OTHER_ID, &other_secret);
        assert_eq!(jwt_part(&other, 1)["scope"], "titanic/admin");
        assert_unauthorized(&predict(&n, route, Some(&format!("Bearer {other}"))), "the other client's scope");
        assert_unauthorized(&predict(&n, route, Some(&flip_payload_char(&token))), "a payload character flipped");
        let mut raised = jwt_part(&other, 1);
        raised["scope"] = json!("titanic/predict");
        assert_unauthorized(&predict(&n, route, Some(&with_claims(&other, &raised))), "a scope written in");
        let mut longer = claims.clone();
        longer["exp"] = json!(exp + 86_400);
        assert_unauthorized(&predict(&n, route, Some(&with_claims(&token, &longer))), "an exp pushed back");
        assert_unauthorized(&predict(&n, route, Some("Bearer not.a.jwt")), "garbage");
        // The route without authorization still answers anyone; the scoped one only with a token.
        assert_predictions(&predict(&n, "/titanic/prod/predict", None), "the public route");

        // Rotation: a new kid signs new tokens; the old key stays published and its tokens valid.
        let rotated = n.ok(&["auth", "rotate-signing-key"]);
        assert!(rotated.starts_with("new signing key "), "{rotated}");
        let fresh = token_for(&n, REPORTS_ID, &secret);
        let new_kid = jwt_part(&fresh, 0)["kid"].as_str().unwrap().to_string();
        assert_ne!(new_kid, kid, "the new token is signed with the new key");
        assert!(rotated.contains(&new_kid), "{rotated} names {new_kid}");
        let mut kids = jwks_kids(&n);
        kids.sort();
        let mut want = vec![kid.clone(), new_kid.clone()];
        want.sort();
        assert_eq!(kids, want, "the JWKS lists the old and the new key");
        assert_predictions(&predict(&n, route, Some(&format!("Bearer {token}"))), "the token of the old key");
        assert_predictions(&predict(&n, route, Some(&format!("Bearer {fresh}"))), "the token of the new key");

        // The access log records the decisions.
        let log = n.json(&["logs", "titanic", "--api"]);
        let lines: Vec<Value> = log["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| json_of(l["text"].as_str().unwrap()))
            .filter(|l| l["routeKey"] == "POST /scoped/predict")
            .collect();
        assert!(lines.iter().any(|l| l["status"] == 401 && l["authorization"] == "deny"), "{lines:?}");
        assert!(lines.iter().any(|l| l["status"] == 200 && l["authorization"] == "allow"), "{lines:?}");
    }
}

/// Runs `openssl` with `input` on stdin; returns stdout, or `Err` when it cannot be run.
fn openssl(args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

/// An RSA key of the outside issuer: its PEM file and its JWK modulus.
struct OutsideKey {
    pem: String,
    modulus: Vec<u8>,
}

impl OutsideKey {
    fn generate(dir: &Path, name: &str) -> Result<OutsideKey, String> {
        let pem = dir.join(format!("{name}.pem")).to_str().unwrap().to_string();
        openssl(&["genrsa", "-out", &pem, "2048"], b"")?;
        let text = String::from_utf8(openssl(&["rsa", "-in", &pem, "-noout", "-modulus"], b"")?).unwrap();
        let hex_modulus = text.trim().strip_prefix("Modulus=").expect("openssl prints Modulus=HEX");
        Ok(OutsideKey { pem, modulus: hex::decode(hex_modulus).expect("hex modulus") })
    }

    fn jwk(&self, kid: &str) -> Value {
        // 65537, openssl's default public exponent.
        let n = URL_SAFE_NO_PAD.encode(&self.modulus);
        json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"})
    }

    /// An RS256 token with `claims` under `kid`.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = openssl(&["dgst", "-sha256", "-sign", &self.pem, "-binary"], input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn tokens_of_an_outside_issuer_are_checked_against_its_jwks() {
    let keys_dir = tempfile::tempdir().unwrap();
    let (key, impostor) =
        match (OutsideKey::generate(keys_dir.path(), "issuer"), OutsideKey::generate(keys_dir.path(), "impostor")) {
            (Ok(k), Ok(i)) => (k, i),
            (Err(reason), _) | (_, Err(reason)) => {
                eprintln!("skipping tokens_of_an_outside_issuer_are_checked_against_its_jwks: {reason}");
                return;
            }
        };
    let kid = "outside-key-1";
    // The issuer: its JWKS at the default place, issuer + /.well-known/jwks.json.
    let jwks = json!({"keys": [key.jwk(kid)]}).to_string();
    let (port, _issuer) = crate::browser::serve_static(vec![("/.well-known/jwks.json", jwks)]);
    let issuer = format!("http://127.0.0.1:{port}");
    let extra = format!(
        r#"
[apis.titanic.authorizers.outside]
issuer = "{issuer}"
audience = ["outside-aud"]

[apis.titanic.routes."POST /outside/predict"]
function = "predict"
auth = "jwt:outside"
"#
    );
    let (n, _) = deploy(&Backend::Sqlite, &extra);
    let route = "/titanic/prod/outside/predict";
    let now = unix_now();
    let claims = json!({"iss": issuer, "sub": "machine-1", "aud": "outside-aud", "iat": now, "exp": now + 600});
    let bearer = |token: String| format!("Bearer {token}");

    let valid = key.sign(kid, &claims);
    assert_predictions(&predict(&n, route, Some(&bearer(valid.clone()))), "a valid outside token");
    assert_predictions(&predict(&n, route, Some(&bearer(valid))), "the same token again (cached signature)");
    let mut listed = claims.clone();
    listed["aud"] = json!(["someone-else", "outside-aud"]);
    assert_predictions(&predict(&n, route, Some(&bearer(key.sign(kid, &listed)))), "aud as a list");

    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign(kid, &wrong_aud)))), "another audience");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!(format!("{issuer}/elsewhere"));
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign(kid, &wrong_iss)))), "another issuer");
    let mut builtin_iss = claims.clone();
    builtin_iss["iss"] = json!(n.endpoint);
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign(kid, &builtin_iss)))), "the server's own issuer");
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign(kid, &expired)))), "an expired token");
    let mut early = claims.clone();
    early["nbf"] = json!(now + 3600);
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign(kid, &early)))), "a token not valid yet");
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign(kid, &no_exp)))), "a token without exp");
    assert_unauthorized(
        &predict(&n, route, Some(&bearer(impostor.sign(kid, &claims)))),
        "another key under the issuer's kid",
    );
    assert_unauthorized(&predict(&n, route, Some(&bearer(key.sign("unknown-kid", &claims)))), "a kid not in the JWKS");
    // An unsigned token (alg none) with the right claims.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_unauthorized(&predict(&n, route, Some(&bearer(none))), "alg none");
    // After all the refusals a valid token still passes.
    let mut later = claims.clone();
    later["jti"] = json!("second");
    assert_predictions(&predict(&n, route, Some(&bearer(key.sign(kid, &later)))), "a second valid token");
}
