//! The part of a native model bundle the registry reads: its manifest.
//!
//! A native bundle is one JSON document: `format` = `nimbus-model`, a `format_version`, the
//! input and output schemas, metrics, parameters, and the `model` itself (preprocessing and
//! trees), which the registry stores without looking inside; the ml layer reads it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{RegistryError, Schema};

pub use nimbus_core::schema::{BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION};

/// The manifest fields of a native bundle.
#[derive(Clone, Debug, Deserialize)]
pub struct BundleManifest {
    pub format: String,
    pub format_version: u32,
    pub input_schema: Schema,
    pub output_schema: Schema,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub description: String,
    /// The model proper; required, read by the ml layer.
    pub model: serde_json::Value,
}

/// Reads and checks a bundle's manifest.
pub fn read_manifest(bytes: &[u8]) -> Result<BundleManifest, RegistryError> {
    let bad = |field: &str, reason: String| RegistryError::InvalidField { field: field.to_string(), reason };
    let m: BundleManifest =
        serde_json::from_slice(bytes).map_err(|e| bad("bundle", format!("not a native model bundle: {e}")))?;
    if m.format != BUNDLE_FORMAT {
        return Err(bad("bundle.format", format!("is {:?}; a native bundle says {BUNDLE_FORMAT:?}", m.format)));
    }
    if m.format_version == 0 || m.format_version > BUNDLE_FORMAT_VERSION {
        return Err(bad(
            "bundle.format_version",
            format!("{} is not supported; this nimbus reads versions 1 to {BUNDLE_FORMAT_VERSION}", m.format_version),
        ));
    }
    if !m.model.is_object() {
        return Err(bad("bundle.model", "must be a JSON object".into()));
    }
    m.input_schema.validate("bundle.input_schema")?;
    m.output_schema.validate("bundle.output_schema")?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_broken_field() {
        let err = |text: &str| read_manifest(text.as_bytes()).unwrap_err().to_string();
        assert!(err("{}").contains("missing field `format`"), "{}", err("{}"));
        let base = r#"{"format":"nimbus-model","format_version":9,"input_schema":{"fields":[]},"output_schema":{"fields":[]},"model":{}}"#;
        assert!(err(base).contains("bundle.format_version"));
        let ok = base.replace("\"format_version\":9", "\"format_version\":1");
        assert!(read_manifest(ok.as_bytes()).is_ok());
        let dup = ok.replace(
            r#""input_schema":{"fields":[]}"#,
            r#""input_schema":{"fields":[{"name":"a","type":"float"},{"name":"a","type":"float"}]}"#,
        );
        assert!(err(&dup).contains("appears twice"));
    }
}
