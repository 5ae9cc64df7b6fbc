//! Sessions, origins and the index, as every operation starts them (docs/format.md 13.2:
//! start the session, then load the index).

use holdfast_engine::session::{Session, SessionInfo};
use holdfast_engine::{ErrorKind, Origin, Result, Vault};

use crate::Sink;

/// Who and when, for new objects.
pub fn origin() -> Origin {
    Origin {
        host: holdfast_sources::meta::hostname(),
        user: holdfast_sources::meta::username(),
        now: crate::time::now_secs(),
    }
}

/// `user@host`, for recorded events.
pub fn by() -> String {
    let o = origin();
    format!("{}@{}", o.user, o.host)
}

/// The start marker's facts for a session of `purpose` by this process.
pub fn info(purpose: &str) -> SessionInfo {
    SessionInfo {
        purpose: purpose.to_string(),
        host: holdfast_sources::meta::hostname(),
        pid: std::process::id(),
        started: origin().now,
    }
}

/// Start a session on `vault`. With `required` false (readers), a session that cannot be
/// written (read-only credentials) is skipped with a note.
pub fn start(vault: &Vault, purpose: &str, required: bool) -> Result<Option<Session>> {
    match vault.start_session(&info(purpose)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if !required && matches!(e.kind(), ErrorKind::Storage) => {
            tracing::info!("no session marker ({e}); a concurrent prune cannot see this {purpose}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Load the index, warning about damaged index objects.
pub fn load_index(vault: &Vault, sink: &dyn Sink) -> Result<()> {
    for d in vault.load_index()? {
        sink.warning(&format!(
            "{} is damaged ({}); run `holdfast verify`",
            d.object, d.reason
        ));
    }
    Ok(())
}

/// Run `f` inside a session of `purpose` (ended however `f` ends).
pub fn within<T>(
    vault: &Vault,
    purpose: &str,
    required: bool,
    f: impl FnOnce(Option<&Session>) -> Result<T>,
) -> Result<T> {
    let session = start(vault, purpose, required)?;
    let r = f(session.as_ref());
    if let Some(s) = session {
        s.end();
    }
    r
}
