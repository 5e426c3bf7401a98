//! Invocation logs: the START/END/REPORT lines of every invocation and the runtime's own
//! lines (loads, swaps, unloads), kept per function in a bounded in-memory ring.
//!
//! The line formats are Lambda's, so tools that parse CloudWatch Lambda logs read them:
//! `START RequestId: {id} Version: {v}`, `END RequestId: {id}` and the tab-separated
//! `REPORT RequestId: {id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB`
//! with `\tInit Duration: {:.2} ms` on cold starts only.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept per function; older lines are dropped first.
pub const MAX_LINES: usize = 10_000;

/// One log line with its time.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub ms: i64,
    pub text: String,
    /// The invocation that printed it, for lines of a process instance (which carry no id).
    pub request: Option<std::sync::Arc<str>>,
}

/// A function's recent log lines.
#[derive(Debug, Default)]
pub struct LogBook {
    lines: Mutex<VecDeque<LogLine>>,
}

impl LogBook {
    /// Appends lines stamped `ms`.
    pub fn push(&self, ms: i64, texts: impl IntoIterator<Item = String>) {
        self.push_for(ms, None, texts);
    }

    /// Appends lines stamped `ms` that the invocation `request` printed.
    pub fn push_for(&self, ms: i64, request: Option<&std::sync::Arc<str>>, texts: impl IntoIterator<Item = String>) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for text in texts {
            if lines.len() == MAX_LINES {
                lines.pop_front();
            }
            lines.push_back(LogLine { ms, text, request: request.cloned() });
        }
    }

    /// Lines at or after `since_ms` containing `filter` (or printed by the invocation of that
    /// id), oldest first, at most `limit` (the newest).
    pub fn query(&self, since_ms: i64, filter: Option<&str>, limit: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<LogLine> = lines
            .iter()
            .rev()
            .filter(|l| {
                l.ms >= since_ms
                    && filter.is_none_or(|f| l.text.contains(f) || l.request.as_deref().is_some_and(|r| r == f))
            })
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// `START RequestId: … Version: …`
pub fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}")
}

/// `END RequestId: …`
pub fn end_line(request_id: &str) -> String {
    format!("END RequestId: {request_id}")
}

/// The REPORT line; `init_ms` only on a cold start.
pub fn report_line(request_id: &str, duration_ms: f64, memory_mb: u32, used_mb: u64, init_ms: Option<f64>) -> String {
    let billed = duration_ms.ceil().max(1.0) as u64;
    let mut line = format!(
        "REPORT RequestId: {request_id}\tDuration: {duration_ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {used_mb} MB"
    );
    if let Some(init) = init_ms {
        line.push_str(&format!("\tInit Duration: {init:.2} ms"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_lambda() {
        assert_eq!(start_line("r1", "$LATEST"), "START RequestId: r1 Version: $LATEST");
        assert_eq!(end_line("r1"), "END RequestId: r1");
        assert_eq!(
            report_line("r1", 0.0423, 256, 3, None),
            "REPORT RequestId: r1\tDuration: 0.04 ms\tBilled Duration: 1 ms\tMemory Size: 256 MB\tMax Memory Used: 3 MB"
        );
        assert!(
            report_line("r1", 2.5, 256, 3, Some(4.251)).ends_with(
                "\tBilled Duration: 3 ms\tMemory Size: 256 MB\tMax Memory Used: 3 MB\tInit Duration: 4.25 ms"
            )
        );
    }

    #[test]
    fn the_ring_is_bounded_and_filters() {
        let book = LogBook::default();
        book.push(1, (0..MAX_LINES + 5).map(|i| format!("line {i}")));
        book.push(2, ["REPORT x".to_string()]);
        let all = book.query(0, None, usize::MAX);
        assert_eq!(all.len(), MAX_LINES);
        assert_eq!(all[0].text, "line 6");
        assert_eq!(book.query(2, None, 10).len(), 1);
        assert_eq!(book.query(0, Some("REPORT"), 10)[0].text, "REPORT x");
        assert_eq!(
            book.query(0, None, 2).iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            [format!("line {}", MAX_LINES + 4), "REPORT x".into()]
        );
    }
}
