//! Wall-clock helpers shared by the runner, the daemon, the API and the CLI: Unix
//! nanoseconds, RFC 3339 rendering, `1h 30m`-style durations, the host name; and the
//! [`Clock`] the daemon reads wall time from, which tests replace.
//!
//! The daemon waits with tokio's timers (`tokio::time::Instant`) and reads the time of day
//! (schedules, RPOs, the catalog's timestamps) from its [`Clock`]. [`SystemClock`] is the
//! machine's clock. [`TokioClock`] derives the time of day from tokio's timer clock, so a
//! test on a paused tokio runtime (`start_paused`) moves both together: a day of schedules
//! runs in milliseconds.

/// Where the daemon reads the time of day.
pub trait Clock: Send + Sync + 'static {
    /// Unix nanoseconds now.
    fn now_ns(&self) -> i64;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        now_ns()
    }
}

/// The time of day as tokio's timer clock sees it: `start_ns` when made, then advancing with
/// `tokio::time::Instant` (which a paused test runtime advances as fast as timers fire).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ns: i64,
    at: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start_ns` now. Call it inside the tokio runtime it follows.
    pub fn starting_at(start_ns: i64) -> TokioClock {
        TokioClock {
            start_ns,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ns(&self) -> i64 {
        let gone = tokio::time::Instant::now().saturating_duration_since(self.at);
        self.start_ns
            .saturating_add(i64::try_from(gone.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Unix nanoseconds now, by the machine's clock.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// RFC 3339 of Unix nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

pub use holdfast_ops::time::humanize;

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
