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
//! ```

use nimbus_registry::Selector;
use serde::{Deserialize, Serialize};

/// What runs when a function is invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// A registry model, loaded in-process and answering prediction requests.
    Model,
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
}

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
            }
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
        if self.idle_s > MAX_IDLE_S {
            return Err(format!(
                "idle_s: must be at most {MAX_IDLE_S} (30 days; 0 keeps the model loaded), got {}",
                self.idle_s
            ));
        }
        Ok(selector)
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
