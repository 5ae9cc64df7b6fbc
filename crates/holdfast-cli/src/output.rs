//! Output helpers: progress bars on a TTY, times, sizes, JSON.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr when it is a terminal and output is not JSON/quiet; hidden
/// otherwise.
pub fn progress(json: bool, quiet: bool, what: &str) -> ProgressBar {
    if json || quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// RFC 3339 UTC rendering of Unix nanoseconds.
pub use holdfast_ops::time::{parse_time, rfc3339_ns as time_ns};

/// What an operation's progress sink does at a terminal: bytes move the progress bar,
/// warnings are printed (always), notes unless quiet.
pub struct Term {
    bar: ProgressBar,
    notes: bool,
}

impl Term {
    /// A sink for `what` (`backup`, `verify`, …) under `--json` / `--quiet`.
    pub fn new(json: bool, quiet: bool, what: &str) -> Self {
        Term {
            bar: progress(json, quiet, what),
            notes: !(json || quiet),
        }
    }

    /// A sink without a progress bar.
    pub fn plain(json: bool, quiet: bool) -> Self {
        Term {
            bar: ProgressBar::hidden(),
            notes: !(json || quiet),
        }
    }

    /// Clear the progress bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl holdfast_ops::Sink for Term {
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }
    fn warning(&self, message: &str) {
        self.bar
            .suspend(|| eprintln!("holdfast: warning: {message}"));
    }
    fn note(&self, message: &str) {
        if self.notes {
            self.bar.suspend(|| eprintln!("holdfast: {message}"));
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC rendering of Unix seconds.
pub fn time_short(secs: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// Human-readable byte size.
pub fn size(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(1000), "1000 B");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
