//! Exit codes (documented in the README and docs/user-guide.md) and error rendering.

use holdfast_engine::{Error, ErrorKind};

/// Success.
pub const OK: i32 = 0;
/// A fatal error not covered below.
pub const ERROR: i32 = 1;
/// Bad command-line usage (clap).
pub const USAGE: i32 = 2;
/// Partial: the command finished but some items could not be backed up or restored.
pub const PARTIAL: i32 = 3;
/// `verify` found damage, or a command hit damaged stored data.
pub const DAMAGED: i32 = 4;
/// No vault at the location.
pub const NO_VAULT: i32 = 10;
/// A vault lock, a legal hold or a running prune forbids the operation.
pub const LOCKED: i32 = 11;
/// Wrong passphrase or key file.
pub const WRONG_KEY: i32 = 12;
/// The key does not allow the operation (write-only key).
pub const KEY_DENIED: i32 = 13;
/// The storage could not be reached (retry later).
pub const UNREACHABLE: i32 = 14;

/// The exit code of an engine error.
pub fn code(e: &Error) -> i32 {
    match e.kind() {
        ErrorKind::NoVault => NO_VAULT,
        ErrorKind::WrongKey => WRONG_KEY,
        ErrorKind::KeyDenied => KEY_DENIED,
        ErrorKind::Damaged => DAMAGED,
        ErrorKind::Unreachable => UNREACHABLE,
        ErrorKind::Locked => LOCKED,
        ErrorKind::VaultExists
        | ErrorKind::Storage
        | ErrorKind::Input
        | ErrorKind::Interrupted
        | ErrorKind::Io
        | ErrorKind::Unsupported
        | ErrorKind::SourceFailed => ERROR,
    }
}

/// The one line printed for an error, with its hint.
pub fn render(e: &Error) -> String {
    format!("holdfast: error: {e} (hint: {})", e.hint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_errors_are_pinned() {
        let cases = [
            Error::NoVault {
                location: "/srv/vault".into(),
            },
            Error::VaultExists {
                location: "/srv/vault".into(),
            },
            Error::WrongKey {
                location: "s3://b/p".into(),
            },
            Error::KeyDenied {
                operation: "restore".into(),
            },
            Error::damaged("packs/ab/ab12", "blob does not authenticate"),
            Error::Storage(holdfast_storage::StorageError::new(
                holdfast_storage::ErrorKind::Transient,
                "read",
                "config",
                "s3://b/p",
                "cannot reach the endpoint http://127.0.0.1:9",
            )),
            Error::Input("no recovery point matches \"zz\"".into()),
            Error::Locked("point 1a2b3c4d is under a compliance lock until 2027-01-01".into()),
        ];
        let lines: Vec<String> = cases
            .iter()
            .map(|e| format!("[{}] {}", code(e), render(e)))
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
    }
}
