//! The ml core: what turns a CSV file into a model bundle, and a bundle into predictions.
//!
//! - [`table`]: CSV (RFC 4180) into typed columns; empty fields are missing.
//! - [`parquet`]: the same tables from and to Parquet files.
//! - [`preprocess`]: feature selection and categorical encoding, fitted on training data and
//!   saved inside the bundle, so a request with raw fields is transformed exactly as in
//!   training.
//! - [`train`]: gradient-boosted trees with XGBoost's parameter names, trained by hessboost.
//! - [`metrics`]: classification and regression metrics.
//! - [`bundle`]: the native bundle (manifest, preprocessing, trees in XGBoost JSON).
//! - [`protocols`], [`instances`]: prediction request bodies (every format; a fast path for
//!   the seeds' `instances`).
//! - [`predict`]: the predictor that applies preprocessing and evaluates the trees.
#![forbid(unsafe_code)]

pub mod batch;
pub mod bundle;
pub mod instances;
pub mod metrics;
pub mod parquet;
pub mod plots;
pub mod predict;
pub mod preprocess;
#[cfg(test)]
mod proptests;
pub mod protocols;
pub mod table;
pub mod train;
pub mod xgboost;

/// Errors of the ml core. Each names the column, parameter or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The CSV text is malformed.
    #[error("{source_name}: malformed CSV at line {line}: {reason}")]
    Csv { source_name: String, line: u64, reason: String },
    /// The Parquet file could not be read.
    #[error("{source_name}: unreadable Parquet file: {reason}")]
    Parquet { source_name: String, reason: String },
    /// The data has no rows or no columns.
    #[error("{0}: the file has no data rows; a header line and at least one row are needed")]
    Empty(String),
    /// A named column is not in the data.
    #[error("column {column:?} is not in {source_name}; its columns are: {available}")]
    MissingColumn { column: String, source_name: String, available: String },
    /// A column's values do not fit how it is used.
    #[error("column {column:?}: {reason}")]
    Column { column: String, reason: String },
    /// A training parameter is invalid.
    #[error("parameter {name}: {reason}")]
    Param { name: String, reason: String },
    /// A request field is invalid.
    #[error("{0}")]
    Input(String),
    /// A bundle could not be read.
    #[error("model bundle: {0}")]
    Bundle(String),
    /// The booster failed.
    #[error("training: {0}")]
    Booster(String),
}

impl From<hessboost::prelude::HessboostError> for MlError {
    fn from(e: hessboost::prelude::HessboostError) -> Self {
        MlError::Booster(e.to_string())
    }
}
