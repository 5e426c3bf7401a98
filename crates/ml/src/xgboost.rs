//! XGBoost JSON models (being written).
