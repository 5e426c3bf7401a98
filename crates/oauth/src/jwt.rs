//! JSON Web Tokens signed with RSA (JWS compact form): signing with ring's constant-time RSA,
//! parsing, and signature verification against a JWK's modulus and exponent.
//!
//! Only what an OAuth2 resource server needs: RS256 to sign (what Cognito issues), RS256,
//! RS384 and RS512 to verify. Any other `alg` (`none`, HMAC, ECDSA, PSS) is refused before a
//! key is looked at, so a token cannot pick a weaker algorithm than the key's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::verifier::JwtError;

/// Tokens longer than this are refused unparsed (a Cognito access token is about 1 KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The RSA signature algorithms of JWS that are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Rs384,
    Rs512,
}

impl Alg {
    pub(crate) fn parse(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "RS384" => Some(Alg::Rs384),
            "RS512" => Some(Alg::Rs512),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
        }
    }

    /// PKCS#1 v1.5 with a modulus of 2048 to 8192 bits: shorter keys are refused.
    fn params(self) -> &'static signature::RsaParameters {
        match self {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        }
    }
}

/// The public half of an RSA signing key, as published in a JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RsaJwk {
    pub kid: String,
    /// The `alg` the JWK is restricted to, when it names one.
    pub alg: Option<Alg>,
    /// Modulus, big-endian without leading zeros.
    pub n: Vec<u8>,
    /// Public exponent, big-endian without leading zeros.
    pub e: Vec<u8>,
}

impl RsaJwk {
    /// Reads one entry of a JWKS. `Ok(None)` for keys this verifier has no use for (not RSA,
    /// meant for encryption, no `kid`, an algorithm other than RS256/384/512), so one odd key
    /// in an outside issuer's set does not hide the others.
    pub(crate) fn from_value(v: &Value) -> Result<Option<RsaJwk>, String> {
        let field = |name: &str| v.get(name).and_then(Value::as_str);
        if field("kty") != Some("RSA") || field("use").is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let Some(kid) = field("kid") else { return Ok(None) };
        let alg = match field("alg") {
            None => None,
            Some(name) => match Alg::parse(name) {
                Some(alg) => Some(alg),
                None => return Ok(None),
            },
        };
        let number = |name: &str| -> Result<Vec<u8>, String> {
            let text = field(name).ok_or_else(|| format!("key {kid:?} has no {name}"))?;
            let mut bytes = URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| format!("key {kid:?}: {name} is not base64url"))?;
            let zeros = bytes.iter().take_while(|b| **b == 0).count();
            bytes.drain(..zeros);
            if bytes.is_empty() {
                return Err(format!("key {kid:?}: {name} is zero"));
            }
            Ok(bytes)
        };
        Ok(Some(RsaJwk { kid: kid.to_string(), alg, n: number("n")?, e: number("e")? }))
    }

    /// The JWKS entry: `{"kty":"RSA","alg","use":"sig","kid","n","e"}`.
    pub(crate) fn to_value(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": self.alg.unwrap_or(Alg::Rs256).name(),
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }

    /// The RFC 7638 thumbprint (base64url SHA-256 of the canonical `{"e","kty","n"}`): a kid
    /// that names the key material itself, so two replicas can never give one kid two keys.
    pub(crate) fn thumbprint(n: &[u8], e: &[u8]) -> String {
        let canonical =
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, URL_SAFE_NO_PAD.encode(e), URL_SAFE_NO_PAD.encode(n));
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// Signs `claims` with RS256 under `kid`; returns the compact token.
pub(crate) fn sign(pair: &RsaKeyPair, kid: &str, claims: &Map<String, Value>) -> Result<String, String> {
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let mut token = String::with_capacity(1024);
    URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(Value::Object(claims.clone()).to_string(), &mut token);
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(&signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), token.as_bytes(), &mut sig)
        .map_err(|_| "RSA signing failed".to_string())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&sig, &mut token);
    Ok(token)
}

/// A token split and decoded, its signature not yet checked.
pub(crate) struct Parsed<'a> {
    pub alg: Alg,
    pub kid: String,
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; refuses anything but an RSA-signed JSON object.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    let bad = |why: &str| JwtError::Malformed(why.to_string());
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad("the token is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("a JWT has three dot-separated parts"));
    };
    let object = |part: &str, what: &str| -> Result<Map<String, Value>, JwtError> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| bad(&format!("the {what} is not base64url")))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(bad(&format!("the {what} is not a JSON object"))),
        }
    };
    let header = object(h, "header")?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Alg::parse(alg_name).ok_or_else(|| {
        bad(&format!("alg {:?} is not accepted; tokens must be signed with RS256, RS384 or RS512", short(alg_name)))
    })?;
    if header.contains_key("crit") {
        return Err(bad("the header has critical extensions (crit), which this verifier does not implement"));
    }
    let kid = header.get("kid").and_then(Value::as_str).ok_or_else(|| bad("the header has no kid"))?.to_string();
    let claims = object(p, "payload")?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad("the signature is not base64url"))?;
    Ok(Parsed { alg, kid, claims, signing_input: &token[..h.len() + 1 + p.len()], signature })
}

impl Parsed<'_> {
    /// Checks the signature with `key`, which must allow the token's algorithm.
    pub(crate) fn verify_with(&self, key: &RsaJwk) -> Result<(), JwtError> {
        if key.alg.is_some_and(|a| a != self.alg) {
            return Err(JwtError::BadSignature);
        }
        RsaPublicKeyComponents { n: &key.n, e: &key.e }
            .verify(self.alg.params(), self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwtError::BadSignature)
    }
}

/// At most 64 characters of an untrusted string, for error messages and logs.
pub(crate) fn short(s: &str) -> String {
    s.chars().take(64).collect()
}
