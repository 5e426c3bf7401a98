//! Metrics of a model on held-out data: accuracy, precision, recall, F1, ROC AUC, log loss
//! and the confusion matrix for classifiers; RMSE, MAE and R² for regression.

use std::collections::BTreeMap;

use serde::Serialize;

/// The evaluation of a model, as written into the report and the registry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Metric name → value (`accuracy`, `auc`, …).
    pub metrics: BTreeMap<String, f64>,
    /// `confusion[actual][predicted]`, for classifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<u64>>>,
    /// ROC curve points `(false positive rate, true positive rate)`, for binary classifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc: Option<Vec<(f64, f64)>>,
    /// Rows evaluated.
    pub rows: usize,
}

const EPS: f64 = 1e-15;

/// Binary classifier metrics from labels in {0, 1} and probabilities of class 1; the
/// decision threshold is 0.5, as XGBoost's `predict` for classes.
pub fn binary(labels: &[f32], probs: &[f32]) -> Evaluation {
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    let mut log_loss = 0.0;
    for (&y, &p) in labels.iter().zip(probs) {
        let positive = p > 0.5;
        match (y > 0.5, positive) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
        let p = (p as f64).clamp(EPS, 1.0 - EPS);
        log_loss -= if y > 0.5 { p.ln() } else { (1.0 - p).ln() };
    }
    let n = labels.len().max(1) as f64;
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let mut metrics = BTreeMap::new();
    metrics.insert("accuracy".into(), (tp + tn) as f64 / n);
    metrics.insert("precision".into(), precision);
    metrics.insert("recall".into(), recall);
    metrics.insert(
        "f1".into(),
        if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 },
    );
    metrics.insert("auc".into(), auc(labels, probs));
    metrics.insert("log_loss".into(), log_loss / n);
    Evaluation {
        metrics,
        confusion: Some(vec![vec![tn, fp], vec![fn_, tp]]),
        roc: Some(roc_curve(labels, probs)),
        rows: labels.len(),
    }
}

/// Multi-class metrics from class indices and row-major probabilities (`num_class` per row):
/// accuracy, macro-averaged precision/recall/F1, log loss, confusion matrix.
pub fn multiclass(labels: &[f32], probs: &[f32], num_class: usize) -> Evaluation {
    let mut confusion = vec![vec![0u64; num_class]; num_class];
    let mut log_loss = 0.0;
    for (i, &y) in labels.iter().enumerate() {
        let row = &probs[i * num_class..(i + 1) * num_class];
        let predicted = argmax(row);
        confusion[y as usize][predicted] += 1;
        log_loss -= (row[y as usize] as f64).clamp(EPS, 1.0).ln();
    }
    let n = labels.len().max(1) as f64;
    let correct: u64 = (0..num_class).map(|k| confusion[k][k]).sum();
    let (mut p_sum, mut r_sum, mut f_sum) = (0.0, 0.0, 0.0);
    for (k, row) in confusion.iter().enumerate() {
        let tp = row[k];
        let predicted: u64 = confusion.iter().map(|r| r[k]).sum();
        let actual: u64 = row.iter().sum();
        let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
        p_sum += p;
        r_sum += r;
        f_sum += if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    }
    let k = num_class as f64;
    let mut metrics = BTreeMap::new();
    metrics.insert("accuracy".into(), correct as f64 / n);
    metrics.insert("precision".into(), p_sum / k);
    metrics.insert("recall".into(), r_sum / k);
    metrics.insert("f1".into(), f_sum / k);
    metrics.insert("log_loss".into(), log_loss / n);
    Evaluation { metrics, confusion: Some(confusion), roc: None, rows: labels.len() }
}

/// Regression metrics: RMSE, MAE, R².
pub fn regression(labels: &[f32], preds: &[f32]) -> Evaluation {
    let n = labels.len().max(1) as f64;
    let mean = labels.iter().map(|&y| y as f64).sum::<f64>() / n;
    let (mut se, mut ae, mut tss) = (0.0, 0.0, 0.0);
    for (&y, &p) in labels.iter().zip(preds) {
        let e = y as f64 - p as f64;
        se += e * e;
        ae += e.abs();
        tss += (y as f64 - mean).powi(2);
    }
    let mut metrics = BTreeMap::new();
    metrics.insert("rmse".into(), (se / n).sqrt());
    metrics.insert("mae".into(), ae / n);
    metrics.insert("r2".into(), if tss > 0.0 { 1.0 - se / tss } else { 0.0 });
    Evaluation { metrics, confusion: None, roc: None, rows: labels.len() }
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half.
pub fn auc(labels: &[f32], scores: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0u64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] > 0.5 {
                rank_sum += mid_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = labels.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return 0.5;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// The ROC curve's corner points, from (0, 0) to (1, 1).
pub fn roc_curve(labels: &[f32], scores: &[f32]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let p = labels.iter().filter(|&&y| y > 0.5).count().max(1) as f64;
    let n = labels.iter().filter(|&&y| y <= 0.5).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    for (idx, &k) in order.iter().enumerate() {
        if labels[k] > 0.5 {
            tp += 1.0
        } else {
            fp += 1.0
        }
        let last_of_tie = idx + 1 == order.len() || scores[order[idx + 1]] != scores[k];
        if last_of_tie {
            out.push((fp / n, tp / p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_metrics_on_a_known_case() {
        let y = [0.0, 0.0, 1.0, 1.0];
        let p = [0.1, 0.4, 0.35, 0.8];
        let e = binary(&y, &p);
        assert!((e.metrics["auc"] - 0.75).abs() < 1e-12);
        assert_eq!(e.metrics["accuracy"], 0.75);
        assert_eq!(e.confusion, Some(vec![vec![2, 0], vec![1, 1]]));
        assert_eq!(e.metrics["precision"], 1.0);
        assert_eq!(e.metrics["recall"], 0.5);
        let ll = -(0.9f64.ln() + 0.6f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
        assert!((e.metrics["log_loss"] - ll).abs() < 1e-6);
        assert_eq!(e.roc.as_ref().unwrap().last(), Some(&(1.0, 1.0)));
        assert!((auc(&y, &[0.5, 0.5, 0.5, 0.5]) - 0.5).abs() < 1e-12, "ties count half");
    }

    #[test]
    fn multiclass_and_regression() {
        let e = multiclass(&[0.0, 1.0, 2.0], &[0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.5, 0.2, 0.3], 3);
        assert_eq!(e.confusion.as_ref().unwrap()[2][0], 1);
        assert!((e.metrics["accuracy"] - 2.0 / 3.0).abs() < 1e-12);
        let r = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
        assert!((r.metrics["rmse"] - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((r.metrics["mae"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.metrics["r2"] - 0.5).abs() < 1e-12);
    }
}
