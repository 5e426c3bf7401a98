//! Evaluation plots as standalone SVG documents: the ROC curve, the confusion matrix and
//! feature importance. Plain SVG text, so they open in any browser and embed in the console.

use std::fmt::Write;

const W: f64 = 420.0;
const H: f64 = 420.0;
const STYLE: &str = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:12px";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn open(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" style=\"{STYLE}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"600\">{}</text>",
        width / 2.0,
        escape(title)
    )
}

/// The ROC curve with the chance diagonal and the AUC in the title.
pub fn roc(points: &[(f64, f64)], auc: f64) -> String {
    let (x0, y0, side) = (60.0, 40.0, 320.0);
    let mut s = open(W, H, &format!("ROC curve (AUC = {auc:.3})"));
    let _ = write!(s, "<rect x=\"{x0}\" y=\"{y0}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#999\"/>");
    for i in 0..=4 {
        let t = i as f64 / 4.0;
        let (x, y) = (x0 + t * side, y0 + side - t * side);
        let _ = write!(s, "<line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{}\" stroke=\"#eee\"/>", y0 + side);
        let _ = write!(s, "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#eee\"/>", x0 + side);
        let _ = write!(s, "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{t:.2}</text>", y0 + side + 16.0);
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t:.2}</text>", x0 - 6.0, y + 4.0);
    }
    let _ = write!(
        s,
        "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>",
        y0 + side,
        x0 + side
    );
    let path: Vec<String> =
        points.iter().map(|(fpr, tpr)| format!("{:.1},{:.1}", x0 + fpr * side, y0 + side - tpr * side)).collect();
    let _ =
        write!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2.5\"/>", path.join(" "));
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">False positive rate</text>",
        x0 + side / 2.0,
        H - 12.0
    );
    let _ = write!(
        s,
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">True positive rate</text>",
        y0 + side / 2.0
    );
    s.push_str("</svg>");
    s
}

/// The confusion matrix: rows are actual classes, columns predicted, shaded by count.
pub fn confusion(matrix: &[Vec<u64>], labels: &[String]) -> String {
    let k = matrix.len().max(1);
    let (x0, y0) = (110.0, 70.0);
    let cell = (280.0 / k as f64).min(140.0);
    let max = matrix.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mut s = open(W, H, "Confusion matrix");
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">Predicted</text>",
        x0 + cell * k as f64 / 2.0,
        y0 - 26.0
    );
    let _ = write!(
        s,
        "<text transform=\"translate(24 {}) rotate(-90)\" text-anchor=\"middle\">Actual</text>",
        y0 + cell * k as f64 / 2.0
    );
    for (i, row) in matrix.iter().enumerate() {
        let label = escape(labels.get(i).map(String::as_str).unwrap_or("?"));
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
            x0 - 8.0,
            y0 + cell * (i as f64 + 0.5) + 4.0
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            x0 + cell * (i as f64 + 0.5),
            y0 - 8.0
        );
        for (j, &n) in row.iter().enumerate() {
            let shade = n as f64 / max;
            let (x, y) = (x0 + cell * j as f64, y0 + cell * i as f64);
            let fill = format!(
                "rgb({},{},{})",
                (239.0 - shade * 202.0) as u8,
                (246.0 - shade * 147.0) as u8,
                (255.0 - shade * 20.0) as u8
            );
            let text = if shade > 0.55 { "#fff" } else { "#111" };
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"{fill}\" stroke=\"#fff\"/>"
            );
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"16\" fill=\"{text}\">{n}</text>",
                x + cell / 2.0,
                y + cell / 2.0 + 5.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars of feature importance (total gain), largest first.
pub fn importance(pairs: &[(String, f64)]) -> String {
    let n = pairs.len().max(1);
    let height = 70.0 + 26.0 * n as f64;
    let max = pairs.iter().map(|p| p.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let (x0, bar_w) = (120.0, 260.0);
    let mut s = open(W, height, "Feature importance (total gain)");
    for (i, (name, gain)) in pairs.iter().enumerate() {
        let y = 45.0 + 26.0 * i as f64;
        let w = bar_w * gain / max;
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", x0 - 8.0, y + 14.0, escape(name));
        let _ = write!(s, "<rect x=\"{x0}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"#2563eb\" rx=\"2\"/>");
        let _ = write!(s, "<text x=\"{}\" y=\"{}\">{:.1}</text>", x0 + w + 6.0, y + 14.0, gain);
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn plots_are_svg_documents_with_their_data() {
        let r = super::roc(&[(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)], 0.75);
        assert!(r.starts_with("<svg") && r.ends_with("</svg>") && r.contains("AUC = 0.750"));
        let c = super::confusion(&[vec![5, 1], vec![2, 7]], &["0".into(), "1".into()]);
        assert!(c.contains(">7</text>"));
        let i = super::importance(&[("Sex".into(), 10.0), ("A<B".into(), 5.0)]);
        assert!(i.contains("A&lt;B") && i.contains(">Sex<"));
    }
}
