//! Input and output schemas of models: named, typed fields, as stored with every model
//! version and checked against every prediction request.

use serde::{Deserialize, Serialize};

/// The `format` marker of native model bundles (written by the ml layer, read by the registry).
pub const BUNDLE_FORMAT: &str = "nimbus-model";
/// The highest native bundle format version this binary writes and reads.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// A schema that breaks a rule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct SchemaError {
    pub field: String,
    pub reason: String,
}

/// The type of one input or output field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Integer,
    Float,
    String,
    Boolean,
    /// A string drawn from a fixed set of categories.
    Category,
}

/// One named field of a schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Allowed values, for `category` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Whether a request may leave the field out (it is then treated as missing).
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

/// An ordered list of fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub fields: Vec<Field>,
}

impl Schema {
    /// Checks names are unique and categories are given exactly for category fields.
    pub fn validate(&self, what: &str) -> Result<(), SchemaError> {
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            let field = format!("{what}.fields[{i}]");
            let bad = |reason: String| SchemaError { field: field.clone(), reason };
            if f.name.is_empty() {
                return Err(bad("name must not be empty".into()));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(bad(format!("field name {:?} appears twice", f.name)));
            }
            match (&f.kind, &f.categories) {
                (FieldType::Category, None) => {
                    return Err(bad(format!("category field {:?} needs a 'categories' list", f.name)));
                }
                (FieldType::Category, Some(c)) if c.is_empty() => {
                    return Err(bad(format!("category field {:?} needs at least one category", f.name)));
                }
                (k, Some(_)) if *k != FieldType::Category => {
                    return Err(bad(format!("only category fields take 'categories' ({:?} is not one)", f.name)));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
