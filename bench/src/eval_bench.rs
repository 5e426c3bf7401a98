//! Prototype timing: hessboost's batch predictor against a plain flat-array walk over the same
//! XGBoost JSON trees (numeric splits only), on the peers' batch body.
use std::time::Instant;

use nimbus_ml::predict::Predictor;
use serde_json::Value;

struct Node {
    feature: u32,
    value: f32,
    left: u32,
    right: u32,
    default_left: bool,
    leaf: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model: Value = serde_json::from_slice(&std::fs::read(&args[1]).unwrap()).unwrap();
    let body: Value = serde_json::from_slice(&std::fs::read(&args[2]).unwrap()).unwrap();
    let mut opts = nimbus_ml::xgboost::ImportOptions::default();
    opts.categories.insert("Sex".into(), vec!["male".into(), "female".into()]);
    opts.categories.insert("Embarked".into(), vec!["S".into(), "C".into(), "Q".into()]);
    let bundle = nimbus_ml::xgboost::bundle_from_xgboost_json(&std::fs::read(&args[1]).unwrap(), &opts).unwrap();
    let predictor = Predictor::from_bundle(&bundle).unwrap();
    let x = predictor.encode_records(body["instances"].as_array().unwrap()).unwrap();
    let width = predictor.preprocessor().width();
    let rows = x.len() / width;

    let mut nodes = Vec::new();
    let mut roots = Vec::new();
    for t in model["learner"]["gradient_booster"]["model"]["trees"].as_array().unwrap() {
        let base = nodes.len() as u32;
        roots.push(base);
        let arr = |k: &str| t[k].as_array().unwrap().clone();
        let (l, r, si, sc, dl) = (
            arr("left_children"),
            arr("right_children"),
            arr("split_indices"),
            arr("split_conditions"),
            arr("default_left"),
        );
        for i in 0..l.len() {
            let left = l[i].as_i64().unwrap();
            nodes.push(Node {
                feature: si[i].as_u64().unwrap() as u32,
                value: sc[i].as_f64().unwrap() as f32,
                left: if left < 0 { 0 } else { base + left as u32 },
                right: if left < 0 { 0 } else { base + r[i].as_i64().unwrap() as u32 },
                default_left: dl[i].as_i64().unwrap_or(0) == 1 || dl[i].as_bool().unwrap_or(false),
                leaf: left < 0,
            });
        }
    }
    let walk = |out: &mut Vec<f32>| {
        out.clear();
        for r in 0..rows {
            let row = &x[r * width..(r + 1) * width];
            let mut m = 0f32;
            for &root in &roots {
                let mut n = &nodes[root as usize];
                while !n.leaf {
                    let v = row[n.feature as usize];
                    let go_left = if v.is_nan() { n.default_left } else { v < n.value };
                    n = &nodes[if go_left { n.left } else { n.right } as usize];
                }
                m += n.value;
            }
            out.push(m);
        }
    };
    let iters = 20_000;
    let mut out = Vec::new();
    let t = Instant::now();
    for _ in 0..iters {
        walk(&mut out);
    }
    let flat = t.elapsed().as_secs_f64() / iters as f64 * 1e6;
    let t = Instant::now();
    let mut keep = 0.0;
    for _ in 0..iters {
        keep += predictor.predict_margin_matrix(&x).unwrap()[0];
    }
    let hb = t.elapsed().as_secs_f64() / iters as f64 * 1e6;
    let hm = predictor.predict_margin_matrix(&x).unwrap();
    let base = hm[0] - out[0];
    let maxdiff = hm.iter().zip(&out).map(|(a, b)| (a - (b + base)).abs()).fold(0f32, f32::max);
    println!(
        "rows {rows}: flat {flat:.1} us, hessboost {hb:.1} us per batch; margin offset {base}, max diff {maxdiff} ({keep})"
    );
}
