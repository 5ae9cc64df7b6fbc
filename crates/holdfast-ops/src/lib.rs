//! holdfast's operations: what the CLI, the daemon's worker and later callers (restore
//! tests, drills, a dashboard) start, watch and read. Each operation takes an opened vault
//! (the caller finds the secret and unlocks it), a typed request, a progress [`Sink`] and a
//! [`Cancel`] token, and returns a typed report that is `Serialize`: the report *is* the
//! `--json` output of the matching command and the `done` event of the worker protocol
//! ([`worker`]), and its JSON Schema is generated from the type ([`schema`],
//! docs/schema/).
//!
//! Data flows one way: the operation builds a source ([`holdfast_sources`]), the engine
//! chunks, compresses, encrypts and packs it ([`holdfast_engine`]), the storage stores it.
//! Nothing here knows a command-line flag or prints: words for a person at a terminal are
//! the CLI's, numbers and names are the report's.

pub mod backup;
pub mod copy;
pub mod drill;
pub mod evidence;
pub mod forget;
pub mod pitr;
pub mod pitr_restore;
pub mod points;
pub mod progress;
pub mod protect;
pub mod prune;
pub mod restore;
pub mod restore_test;
pub mod schema;
pub mod secret;
pub mod time;
pub mod verify;
pub mod worker;

pub use progress::{Cancel, Silent, Sink};

pub mod session;

/// What every operation is given besides its request: where progress goes, the token that
/// cancels it, and the S3 settings of the vault (the default for S3 sources and targets).
pub struct Context<'a> {
    /// Progress, warnings and notes.
    pub sink: &'a dyn Sink,
    /// Cancellation.
    pub cancel: &'a Cancel,
    /// S3 settings (endpoint, region, addressing) for buckets the request names.
    pub s3: &'a holdfast_storage::url::S3Options,
}
