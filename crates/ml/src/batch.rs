//! A prediction request's rows, predicted chunk by chunk as they are decoded, the answer
//! written as it goes.
//!
//! Every request decoder ([`crate::instances`], [`crate::protocols`]) writes encoded rows into a
//! [`RowSink`]. A [`Batch`] sink holds at most [`CHUNK_ROWS`] rows at a time: when the chunk is
//! full it is predicted and its answers are appended to the response, so the working memory of
//! a request is bounded whatever its shape:
//!
//! - the body itself, plus one chunk (`CHUNK_ROWS × features × 4` bytes), plus
//! - the answer, at most [`ANSWER_LIMIT`] bytes (larger is refused with 413), plus
//! - for the column forms only (`{"inputs": {"Age": […], …}}`, per-field inference tensors),
//!   4 bytes per value: each value takes at least 2 body bytes, so at most twice the body.
//!
//! No field name is copied per row; names are checked against the model's fields before any
//! row is built. Between chunks the sink checks a cancel flag, so a timed-out request stops
//! using the CPU within one chunk.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::metrics::argmax;
use crate::predict::Predictor;
use crate::preprocess::Preprocessor;
use crate::protocols::{ErrorKind, ProtocolError};
use crate::train::Task;

/// Rows predicted at a time.
pub const CHUNK_ROWS: usize = 1024;

/// Largest answer, in bytes: Lambda's synchronous response limit (6 MB), in MiB.
pub const ANSWER_LIMIT: usize = 6 * 1024 * 1024;

/// Where decoded rows go.
pub trait RowSink {
    /// The next row: its index in the request and its features, all missing (NaN) to start.
    fn next_row(&mut self) -> Result<(usize, &mut [f32]), ProtocolError>;
    /// The row the last [`RowSink::next_row`] gave.
    fn current_row(&mut self) -> &mut [f32];
    /// Rows so far.
    fn rows(&self) -> usize;
    /// Asked, before the first row, to collect class probabilities too; returns whether
    /// they are collected. A sink that keeps only features has nothing to refuse.
    fn collect_probabilities(&mut self) -> bool {
        true
    }
}

/// A sink that keeps every row: the whole encoded matrix, for tests and tools.
#[derive(Debug, Default)]
pub struct Matrix {
    pub width: usize,
    /// Row-major, `rows × width`.
    pub x: Vec<f32>,
    pub rows: usize,
}

impl Matrix {
    pub fn new(pre: &Preprocessor) -> Matrix {
        Matrix { width: pre.width(), x: Vec::new(), rows: 0 }
    }
}

impl RowSink for Matrix {
    fn next_row(&mut self) -> Result<(usize, &mut [f32]), ProtocolError> {
        let i = self.rows;
        self.rows += 1;
        self.x.resize(self.rows * self.width, f32::NAN);
        Ok((i, &mut self.x[i * self.width..]))
    }

    fn current_row(&mut self) -> &mut [f32] {
        let start = self.x.len() - self.width;
        &mut self.x[start..]
    }

    fn rows(&self) -> usize {
        self.rows
    }
}

/// The response a batch writes.
#[derive(Clone, Copy, Debug)]
pub enum Form<'a> {
    /// `{"predictions": […], "probabilities": […]}`.
    Predict,
    /// An Open Inference Protocol v2 response for `model` at `version`, echoing `id`.
    Infer { model: &'a str, version: &'a str, id: Option<&'a str> },
}

/// A sink that predicts each full chunk and writes its answers; see the module docs.
pub struct Batch<'a> {
    predictor: &'a Predictor,
    width: usize,
    /// Rows not yet predicted, row-major.
    chunk: Vec<f32>,
    rows: usize,
    infer: bool,
    /// The answer so far, the predicted values last.
    out: Vec<u8>,
    /// Probabilities, when collected: `[p,q],[p,q]` (predict) or `p,q,p,q` (inference).
    probabilities: Option<Vec<u8>>,
    /// Each class label as the answer writes it.
    labels: &'a [Vec<u8>],
    cancel: Option<&'a AtomicBool>,
    limit: usize,
}

impl<'a> Batch<'a> {
    /// A batch answering in `form`; probabilities are collected when `probabilities` is set
    /// (and the model is a classifier). `cancel`, once set, stops the batch at its next chunk.
    pub fn new(predictor: &'a Predictor, form: Form<'_>, probabilities: bool, cancel: Option<&'a AtomicBool>) -> Self {
        let regression = predictor.task == Task::Regression;
        let infer = matches!(form, Form::Infer { .. });
        let written = &predictor.written_labels;
        let datatype = if regression { "FP64" } else { written.datatype };
        let labels = if infer { &written.infer } else { &written.predict };
        let mut out = Vec::with_capacity(64);
        match form {
            Form::Predict => out.extend_from_slice(b"{\"predictions\":["),
            Form::Infer { model, version, id } => {
                out.extend_from_slice(b"{\"model_name\":");
                out.extend_from_slice(&json_bytes(&Value::from(model)));
                out.extend_from_slice(b",\"model_version\":");
                out.extend_from_slice(&json_bytes(&Value::from(version)));
                if let Some(id) = id {
                    out.extend_from_slice(b",\"id\":");
                    out.extend_from_slice(&json_bytes(&Value::from(id)));
                }
                out.extend_from_slice(b",\"outputs\":[{\"name\":\"predict\",\"datatype\":\"");
                out.extend_from_slice(datatype.as_bytes());
                out.extend_from_slice(b"\",\"data\":[");
            }
        }
        Batch {
            predictor,
            width: predictor.preprocessor().width(),
            chunk: Vec::new(),
            rows: 0,
            infer,
            out,
            probabilities: (probabilities && !regression).then(Vec::new),
            labels,
            cancel,
            limit: ANSWER_LIMIT,
        }
    }

    /// The model's preprocessing, to encode values with.
    pub fn preprocessor(&self) -> &'a Preprocessor {
        self.predictor.preprocessor()
    }

    /// Predicts the rows held and appends their answers.
    fn flush(&mut self) -> Result<(), ProtocolError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(ProtocolError::new(ErrorKind::Cancelled, "the prediction was stopped: its time ran out"));
        }
        let raw = self.predictor.predict_matrix(&self.chunk).map_err(|e| ProtocolError::bad_request(e.to_string()))?;
        self.chunk.clear();
        let task = self.predictor.task;
        let classes = match task {
            Task::Binary | Task::Regression => 1,
            Task::Multiclass { num_class } => num_class,
        };
        let first = self.rows - raw.len() / classes;
        for (i, row) in raw.chunks(classes).enumerate() {
            if first + i > 0 {
                self.out.push(b',');
            }
            match task {
                Task::Binary => self.out.extend_from_slice(&self.labels[(row[0] > 0.5) as usize]),
                Task::Multiclass { .. } => self.out.extend_from_slice(&self.labels[argmax(row)]),
                Task::Regression => {
                    serde_json::to_writer(&mut self.out, &Value::from(row[0])).expect("writing to a Vec")
                }
            }
            if let Some(p) = &mut self.probabilities {
                write_probabilities(p, first + i == 0, self.infer, task, row);
            }
        }
        let size = self.out.len() + self.probabilities.as_ref().map_or(0, Vec::len);
        if size > self.limit {
            return Err(ProtocolError::new(
                ErrorKind::TooLarge,
                format!(
                    "the answer would be larger than {} bytes after {} instances; send fewer instances per request",
                    self.limit, self.rows
                ),
            ));
        }
        Ok(())
    }

    /// Predicts what is left and returns the whole answer; probabilities are included when
    /// collected and `probabilities` is still wanted.
    pub fn finish(mut self, probabilities: bool) -> Result<Vec<u8>, ProtocolError> {
        self.flush()?;
        let n = self.rows;
        let probabilities = self.probabilities.take().filter(|_| probabilities && n > 0);
        let mut out = self.out;
        out.push(b']');
        if self.infer {
            out.extend_from_slice(format!(",\"shape\":[{n}]}}").as_bytes());
            if let Some(p) = probabilities {
                let classes = self.labels.len();
                out.extend_from_slice(b",{\"name\":\"predict_proba\",\"datatype\":\"FP32\",\"data\":[");
                out.extend_from_slice(&p);
                out.extend_from_slice(format!("],\"shape\":[{n},{classes}]}}").as_bytes());
            }
            out.extend_from_slice(b"]}");
        } else {
            if let Some(p) = probabilities {
                out.extend_from_slice(b",\"probabilities\":[");
                out.extend_from_slice(&p);
                out.push(b']');
            }
            out.push(b'}');
        }
        Ok(out)
    }

    /// The same batch with another answer limit (for tests and tools).
    pub fn with_answer_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl RowSink for Batch<'_> {
    /// Starts collecting probabilities (when the model gives them), if no row came yet.
    fn collect_probabilities(&mut self) -> bool {
        if self.rows == 0 && self.predictor.task != Task::Regression {
            self.probabilities.get_or_insert_with(Vec::new);
        }
        self.probabilities.is_some() || self.predictor.task == Task::Regression
    }

    fn next_row(&mut self) -> Result<(usize, &mut [f32]), ProtocolError> {
        if self.chunk.len() == CHUNK_ROWS * self.width && self.width > 0 {
            self.flush()?;
        }
        let i = self.rows;
        self.rows += 1;
        let start = self.chunk.len();
        self.chunk.resize(start + self.width, f32::NAN);
        Ok((i, &mut self.chunk[start..]))
    }

    fn current_row(&mut self) -> &mut [f32] {
        let start = self.chunk.len() - self.width;
        &mut self.chunk[start..]
    }

    fn rows(&self) -> usize {
        self.rows
    }
}

fn write_probabilities(out: &mut Vec<u8>, first: bool, flat: bool, task: Task, row: &[f32]) {
    if !first {
        out.push(b',');
    }
    if !flat {
        out.push(b'[');
    }
    let mut cell = |j: usize, p: f32| {
        if j > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &f64::from(p)).expect("writing to a Vec");
    };
    if task == Task::Binary {
        cell(0, 1.0 - row[0]);
        cell(1, row[0]);
    } else {
        for (j, &p) in row.iter().enumerate() {
            cell(j, p);
        }
    }
    if !flat {
        out.push(b']');
    }
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serialises")
}

/// A model's class labels as answers write them, made once when the model loads.
#[derive(Debug, Default)]
pub(crate) struct WrittenLabels {
    /// As JSON, for `{"predictions": […]}`.
    pub predict: Vec<Vec<u8>>,
    /// For the inference protocol: as JSON, or as strings when the datatype is BYTES.
    pub infer: Vec<Vec<u8>>,
    /// The inference `predict` datatype.
    pub datatype: &'static str,
}

impl WrittenLabels {
    pub fn of(labels: &[Value]) -> WrittenLabels {
        let datatype = datatype_of(labels);
        let infer = labels
            .iter()
            .map(|l| match l {
                Value::Number(_) | Value::Bool(_) if datatype == "BYTES" => json_bytes(&Value::String(l.to_string())),
                _ => json_bytes(l),
            })
            .collect();
        WrittenLabels { predict: labels.iter().map(json_bytes).collect(), infer, datatype }
    }
}

/// The v2 datatype of the class labels: INT64 (all integers), FP64 (numbers), BOOL, else BYTES.
pub(crate) fn datatype_of(labels: &[Value]) -> &'static str {
    if labels.iter().all(|v| v.is_i64() || v.is_u64()) {
        "INT64"
    } else if labels.iter().all(Value::is_number) {
        "FP64"
    } else if labels.iter().all(Value::is_boolean) {
        "BOOL"
    } else {
        "BYTES"
    }
}
