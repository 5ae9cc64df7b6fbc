//! How a running operation reports progress and is asked to stop.
//!
//! A [`Sink`] receives byte counts, warnings and step notes while an operation runs; the CLI
//! turns them into a progress bar and `holdfast: …` lines, the worker into JSON-lines events
//! for the daemon. A [`Cancel`] token is checked at step boundaries — before a backup
//! commits its point, between restore targets, between copied points — so a cancelled
//! operation stops without committing half of its work. (The daemon still stops a worker
//! past its completion window by signal: a worker process is the unit of isolation.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use holdfast_engine::{Error, Result};

/// Where a running operation reports what it does. Every method has a no-op default.
pub trait Sink: Sync {
    /// `n` more bytes were read (backup, verify) or written (restore).
    fn bytes(&self, _n: u64) {}
    /// Something the user should know that does not fail the operation.
    fn warning(&self, _message: &str) {}
    /// A step of a long operation (prune, copy, repair), for logs.
    fn note(&self, _message: &str) {}
}

/// A sink that drops everything.
pub struct Silent;

impl Sink for Silent {}

/// A cancellation token: cheap to clone, set once, checked by the operation.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Ask the operation to stop at its next step boundary.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Fail with an interrupted error when cancelled (nothing of `what` was committed).
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Session(format!(
                "{what} was cancelled; nothing of it was committed"
            )))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_token_fails_the_check_with_an_interrupted_error() {
        let c = Cancel::new();
        assert!(c.check("backup").is_ok());
        let other = c.clone();
        other.cancel();
        let e = c.check("backup").unwrap_err();
        assert_eq!(e.kind(), holdfast_engine::ErrorKind::Interrupted);
        assert!(e.to_string().contains("backup was cancelled"), "{e}");
    }
}
