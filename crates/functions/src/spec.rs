//! What a function is, as declared in `nimbus.toml` (`[functions.NAME]`) and stored by the
//! server.
//!
//! ```toml
//! [functions.predict]
//! kind = "model"
//! model_group = "titanic"
//! selector = "latest-approved"   # or "@production", or a version number
//! memory_mb = 256                # refuse to load a model larger than this
//! timeout_s = 10
//! max_concurrency = 64           # more at once are throttled (429)
//! idle_s = 900                   # unload after this long without requests (scale to zero)
//! default = true                 # the function the local-emulator path invokes
//!
//! [functions.hello]
//! kind = "process"
//! command = ["python3", "-m", "awslambdaric"]   # the runtime: it speaks the Lambda Runtime API
//! handler = "app.lambda_handler"                 # `_HANDLER`
//! code = "hello"                                 # a directory or .zip beside nimbus.toml
//! requirements = "requirements.txt"              # inside the bundle; pip-installed once per version
//! environment = { MODEL_URL = "https://…" }
//! secrets = { API_KEY = "…" }                    # sealed when stored, never shown or logged
//! memory_mb = 256                                # the instance's memory limit
//! timeout_s = 3
//! max_concurrency = 10                           # instances at most; one invocation each
//! min_instances = 0                              # kept warm; 0 scales to zero
//! idle_s = 300                                   # an idle instance stops after this long
//! ```

use std::collections::BTreeMap;

use nimbus_registry::Selector;
use serde::{Deserialize, Serialize};

/// What runs when a function is invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// A registry model, loaded in-process and answering prediction requests.
    Model,
    /// A command started per instance that takes events through the Lambda Runtime API.
    Process,
}

fn default_selector() -> String {
    "latest-approved".into()
}
fn default_memory() -> u32 {
    256
}
fn default_timeout() -> f64 {
    30.0
}
fn default_concurrency() -> u32 {
    100
}
fn default_idle() -> u64 {
    900
}

/// A function's declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub kind: FunctionKind,
    /// The registry group a model function serves.
    #[serde(default)]
    pub model_group: Option<String>,
    /// Which version of the group: `latest-approved`, `@alias` or a number.
    #[serde(default = "default_selector")]
    pub selector: String,
    /// Memory limit in MB (128 to 10240).
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Longest an invocation may take, seconds (at most 900).
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Invocations running at once before further ones are throttled.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// Seconds without an invocation before the loaded model is dropped; 0 keeps it loaded.
    #[serde(default = "default_idle")]
    pub idle_s: u64,
    /// Whether the local-emulator path `/2015-03-31/functions/function/invocations` invokes
    /// this function.
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub description: String,
    /// Process functions: the program and its arguments, run in the task root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Process functions: the handler name given to the runtime as `_HANDLER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Process functions: the code bundle. In `nimbus.toml` a directory or `.zip` path
    /// relative to the project; stored as the `s3://` URI of the uploaded zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The SHA-256 of the stored bundle (set when it is uploaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,
    /// Process functions: a pip requirements file inside the bundle, installed into the task
    /// root once per bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<String>,
    /// Environment variables of the process (besides the Lambda ones nimbus sets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Secret environment variables. Declared in plain text; the server seals each value with
    /// its master key before storing the declaration (then the value reads `sealed:…`) and
    /// never returns or logs it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Process functions: instances kept running while idle (0 = scale to zero).
    #[serde(default)]
    pub min_instances: u32,
    /// Asynchronous invocations: how many times a failed attempt is retried (0 to 2, as
    /// Lambda's `MaximumRetryAttempts`).
    #[serde(default = "default_async_retries")]
    pub async_retries: u32,
    /// Asynchronous invocations: the delay before the first retry, seconds; the second waits
    /// twice as long (Lambda: about a minute, then two).
    #[serde(default = "default_async_retry_delay")]
    pub async_retry_delay_s: f64,
}

fn default_async_retries() -> u32 {
    2
}
fn default_async_retry_delay() -> f64 {
    60.0
}

/// Environment names nimbus sets for every process instance; a declaration may not set them.
pub const RESERVED_ENV: [&str; 14] = [
    "AWS_LAMBDA_RUNTIME_API",
    "_HANDLER",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The prefix of a sealed secret value in a stored declaration.
pub const SEALED_PREFIX: &str = "sealed:";

impl FunctionSpec {
    /// Checks every field; the error names the field and the fix.
    pub fn validate(&self, name: &str) -> Result<Selector, String> {
        nimbus_core::names::resource("function name", name).map_err(|e| e.to_string())?;
        let selector: Selector = self.selector.parse().map_err(|e| format!("selector: {e}"))?;
        match self.kind {
            FunctionKind::Model => {
                let group = self.model_group.as_deref().ok_or(
                    "model_group: a model function needs the registry group it serves, e.g. model_group = \"titanic\"",
                )?;
                nimbus_core::names::resource("model group", group).map_err(|e| format!("model_group: {e}"))?;
                for (field, set) in [
                    ("command", !self.command.is_empty()),
                    ("handler", self.handler.is_some()),
                    ("code", self.code.is_some()),
                    ("requirements", self.requirements.is_some()),
                    ("environment", !self.environment.is_empty()),
                    ("secrets", !self.secrets.is_empty()),
                    ("min_instances", self.min_instances > 0),
                ] {
                    if set {
                        return Err(format!(
                            "{field}: only process functions take it; remove it or set kind = \"process\""
                        ));
                    }
                }
            }
            FunctionKind::Process => self.validate_process()?,
        }
        if !(128..=10240).contains(&self.memory_mb) {
            return Err(format!("memory_mb: must be from 128 to 10240, got {}", self.memory_mb));
        }
        if !(self.timeout_s > 0.0 && self.timeout_s <= 900.0) {
            return Err(format!("timeout_s: must be more than 0 and at most 900 seconds, got {}", self.timeout_s));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.max_concurrency) {
            return Err(format!("max_concurrency: must be from 1 to {MAX_CONCURRENCY}, got {}", self.max_concurrency));
        }
        if self.async_retries > 2 {
            return Err(format!("async_retries: must be 0, 1 or 2 (as Lambda allows), got {}", self.async_retries));
        }
        if !(0.0..=3600.0).contains(&self.async_retry_delay_s) {
            return Err(format!(
                "async_retry_delay_s: must be from 0 to 3600 seconds, got {}",
                self.async_retry_delay_s
            ));
        }
        if self.idle_s > MAX_IDLE_S {
            return Err(format!(
                "idle_s: must be at most {MAX_IDLE_S} (30 days; 0 keeps the model loaded), got {}",
                self.idle_s
            ));
        }
        Ok(selector)
    }
}

impl FunctionSpec {
    fn validate_process(&self) -> Result<(), String> {
        if self.model_group.is_some() {
            return Err(
                "model_group: only model functions serve a model group; remove it or set kind = \"model\"".into()
            );
        }
        match self.command.first() {
            None => {
                return Err("command: a process function needs the program to run, e.g. \
                     command = [\"python3\", \"-m\", \"awslambdaric\"]"
                    .into());
            }
            Some(p) if p.is_empty() => return Err("command: the program (its first element) is empty".into()),
            Some(_) => {}
        }
        if let Some(arg) = self.command.iter().find(|a| a.contains('\0')) {
            return Err(format!("command: {arg:?} contains a NUL byte"));
        }
        if let Some(h) = &self.handler
            && (h.is_empty() || h.len() > 128 || h.chars().any(|c| c.is_control()))
        {
            return Err(format!("handler: {h:?} must be 1 to 128 printable characters, e.g. \"app.lambda_handler\""));
        }
        if let Some(r) = &self.requirements
            && (r.is_empty() || r.starts_with('/') || r.split('/').any(|s| s == ".."))
        {
            return Err(format!(
                "requirements: {r:?} must be a relative path inside the code bundle, e.g. \"requirements.txt\""
            ));
        }
        if self.requirements.is_some() && self.code.is_none() {
            return Err("requirements: the file is read from the code bundle; set code too".into());
        }
        for (field, vars) in [("environment", &self.environment), ("secrets", &self.secrets)] {
            for (k, v) in vars {
                let valid = !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "{field}.{k}: a variable name is letters, digits and _ and does not start with a digit"
                    ));
                }
                if RESERVED_ENV.contains(&k.as_str()) {
                    return Err(format!(
                        "{field}.{k}: nimbus sets this variable for every instance; choose another name"
                    ));
                }
                if v.contains('\0') {
                    return Err(format!("{field}.{k}: the value contains a NUL byte"));
                }
            }
        }
        if let Some(k) = self.environment.keys().find(|k| self.secrets.contains_key(*k)) {
            return Err(format!("secrets.{k}: also set in environment; keep it in one of the two"));
        }
        if self.min_instances > self.max_concurrency {
            return Err(format!(
                "min_instances: {} is more than max_concurrency = {}; keep at most that many warm",
                self.min_instances, self.max_concurrency
            ));
        }
        Ok(())
    }

    /// Checks what only a stored declaration must satisfy: its `code` is the `s3://` address
    /// of an uploaded bundle with the bundle's `code_sha256` (in `nimbus.toml` it is a local
    /// path, which `nimbus apply` uploads and replaces).
    pub fn validate_stored(&self) -> Result<(), String> {
        match (&self.code, &self.code_sha256) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err("code_sha256: set only with code, the bundle it is the digest of".into()),
            (Some(code), _) if nimbus_store::parse_uri(code).is_none() => Err(format!(
                "code: {code:?} is not the s3:// address of an uploaded bundle; deploy the code with `nimbus apply` or \
                 `nimbus functions deploy NAME --code DIR`, which upload it and set code and code_sha256"
            )),
            (Some(_), None) => Err("code_sha256: the SHA-256 of the bundle is needed with code; deploy the code with \
                 `nimbus apply` or `nimbus functions deploy`, which set it"
                .into()),
            (Some(_), Some(sha)) if !crate::bundle::is_sha256(sha) => {
                Err(format!("code_sha256: {sha:?} is not a SHA-256 (64 lower-case hex digits)"))
            }
            _ => Ok(()),
        }
    }

    /// Whether this function takes Lambda events (a process function) rather than prediction
    /// bodies (a model function).
    pub fn takes_events(&self) -> bool {
        self.kind == FunctionKind::Process
    }
}

/// Most concurrent invocations of one function.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Longest `idle_s`: 30 days.
pub const MAX_IDLE_S: u64 = 30 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_like: serde_json::Value) -> Result<FunctionSpec, String> {
        serde_json::from_value(toml_like).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_validation() {
        let s = spec(serde_json::json!({"kind": "model", "model_group": "titanic"})).unwrap();
        assert_eq!((s.selector.as_str(), s.memory_mb, s.max_concurrency, s.idle_s), ("latest-approved", 256, 100, 900));
        assert_eq!(s.validate("predict").unwrap(), Selector::LatestApproved);
        let e = spec(serde_json::json!({"kind": "model"})).unwrap().validate("p").unwrap_err();
        assert!(e.starts_with("model_group:"), "{e}");
        let e = spec(serde_json::json!({"kind": "model", "model_group": "t", "selector": "newest"}))
            .unwrap()
            .validate("p")
            .unwrap_err();
        assert!(e.starts_with("selector:") && e.contains("@production"), "{e}");
        let e = spec(serde_json::json!({"kind": "model", "model_group": "t", "timeout_s": 0}))
            .unwrap()
            .validate("p")
            .unwrap_err();
        assert!(e.starts_with("timeout_s:"), "{e}");
        let e = spec(serde_json::json!({"kind": "model", "model_group": "t", "memroy_mb": 1})).unwrap_err();
        assert!(e.contains("unknown field `memroy_mb`"), "{e}");
        for (field, value) in [("idle_s", serde_json::json!(u64::MAX)), ("max_concurrency", serde_json::json!(0))] {
            let mut v = serde_json::json!({"kind": "model", "model_group": "t"});
            v[field] = value;
            let e = spec(v).unwrap().validate("p").unwrap_err();
            assert!(e.starts_with(&format!("{field}: must be")), "{e}");
        }
        let e = spec(serde_json::json!({"kind": "model", "model_group": "t", "idle_s": -1})).unwrap_err();
        assert!(e.contains("idle_s") || e.contains("invalid value"), "{e}");
        let e = spec(serde_json::json!({"kind": "lambda"})).unwrap_err();
        assert!(e.contains("unknown variant `lambda`"), "{e}");
    }
}
