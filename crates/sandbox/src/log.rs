//! A child's output, bounded: lines longer than `max_line_bytes` are cut (and marked), and
//! past `max_bytes` only the first and the last lines are kept, with a line saying how much
//! was left out between them. Memory stays under `max_bytes` (plus one line) whatever the
//! child prints.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The bounds of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// Longest line kept, bytes; the rest of a longer line is dropped.
    pub max_line_bytes: usize,
    /// Bytes of lines kept in all: a quarter for the first lines, the rest for the last.
    pub max_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits { max_line_bytes: 8 * 1024, max_bytes: 1024 * 1024 }
    }
}

/// The marker appended to a cut line.
pub const CUT: &str = " [line cut: longer than the log's line limit]";

/// Lines of output: stderr lines are prefixed `stderr: `.
#[derive(Clone, Debug)]
pub struct Log {
    limits: LogLimits,
    head: Vec<String>,
    head_bytes: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    /// Lines and bytes dropped between head and tail.
    dropped_lines: usize,
    dropped_bytes: usize,
}

impl Log {
    /// An empty log.
    pub fn new(limits: LogLimits) -> Log {
        Log {
            limits,
            head: Vec::new(),
            head_bytes: 0,
            tail: VecDeque::new(),
            tail_bytes: 0,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// Adds a line (without its newline); `cut` lines arrive already shortened.
    pub fn push(&mut self, is_stderr: bool, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let line = if is_stderr { format!("stderr: {text}") } else { text.into_owned() };
        self.push_line(line);
    }

    /// Adds a line of nimbus's own (not the child's).
    pub fn note(&mut self, line: impl Into<String>) {
        self.push_line(line.into());
    }

    fn push_line(&mut self, line: String) {
        let size = line.len() + 1;
        if self.head_bytes + size <= self.limits.max_bytes / 4 && self.tail.is_empty() {
            self.head_bytes += size;
            self.head.push(line);
            return;
        }
        self.tail_bytes += size;
        self.tail.push_back(line);
        let tail_limit = self.limits.max_bytes - self.limits.max_bytes / 4;
        while self.tail_bytes > tail_limit {
            let Some(old) = self.tail.pop_front() else { break };
            self.tail_bytes -= old.len() + 1;
            self.dropped_lines += 1;
            self.dropped_bytes += old.len() + 1;
        }
    }

    /// The last line, or an empty string.
    pub fn last_line(&self) -> String {
        self.tail.back().or(self.head.last()).cloned().unwrap_or_default()
    }

    /// The last `n` lines.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let all: Vec<&String> = self.head.iter().chain(self.tail.iter()).collect();
        all[all.len().saturating_sub(n)..].iter().map(|s| s.to_string()).collect()
    }

    /// Whether anything was left out.
    pub fn truncated(&self) -> bool {
        self.dropped_lines > 0
    }

    /// The log as text, one line per line, with the gap marked.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.head_bytes + self.tail_bytes + 80);
        for l in &self.head {
            out.push_str(l);
            out.push('\n');
        }
        if self.dropped_lines > 0 {
            out.push_str(&format!(
                "[log truncated: {} lines ({} bytes) left out here; the log keeps {} bytes]\n",
                self.dropped_lines, self.dropped_bytes, self.limits.max_bytes
            ));
        }
        for l in &self.tail {
            out.push_str(l);
            out.push('\n');
        }
        out.pop();
        out
    }
}

/// Reads `stream` into lines of at most `max_line` bytes (longer ones cut and marked) and sends
/// each as `(is_stderr, bytes)`; ends at end of stream, on a read error, or when the receiver
/// is gone. Memory: one read buffer and one line.
pub async fn read_lines(
    mut stream: impl AsyncRead + Unpin,
    is_stderr: bool,
    max_line: usize,
    to: tokio::sync::mpsc::Sender<(bool, Vec<u8>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                let mut done = std::mem::take(&mut line);
                if cut {
                    done.extend_from_slice(CUT.as_bytes());
                    cut = false;
                }
                if to.send((is_stderr, done)).await.is_err() {
                    return;
                }
            } else if line.len() < max_line {
                line.push(b);
            } else {
                cut = true;
            }
        }
    }
    if !line.is_empty() || cut {
        if cut {
            line.extend_from_slice(CUT.as_bytes());
        }
        let _ = to.send((is_stderr, line)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_and_last_lines_within_the_limit() {
        let mut log = Log::new(LogLimits { max_line_bytes: 100, max_bytes: 400 });
        for i in 0..1000 {
            log.push(i % 2 == 1, format!("line {i:04}").as_bytes());
        }
        let text = log.text();
        assert!(text.len() < 400 + 120, "{}", text.len());
        assert!(text.starts_with("line 0000\nstderr: line 0001\n"), "{text}");
        assert!(text.ends_with("stderr: line 0999"), "{text}");
        assert!(text.contains("[log truncated: ") && log.truncated());
        assert_eq!(log.last_line(), "stderr: line 0999");
        assert_eq!(log.last_lines(2), ["line 0998", "stderr: line 0999"]);
    }

    #[tokio::test]
    async fn long_lines_are_cut_without_buffering_them() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut input = vec![b'x'; 1 << 20];
        input.extend_from_slice(b"\nshort\nno newline at the end");
        read_lines(&input[..], false, 10, tx).await;
        let mut got = Vec::new();
        while let Some((_, l)) = rx.recv().await {
            got.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(got, [format!("xxxxxxxxxx{CUT}"), "short".into(), "no newlin".to_string() + "e" + CUT]);
    }
}
