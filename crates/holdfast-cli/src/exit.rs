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
        | ErrorKind::NotFound
        | ErrorKind::Internal
        | ErrorKind::Interrupted
        | ErrorKind::Io
        | ErrorKind::Unsupported
        | ErrorKind::SourceFailed => ERROR,
    }
}

/// The one line printed for an error, with its hint.
pub fn render(e: &Error) -> String {
    format!("holdfast: error: {e} (hint: {})", hint(e))
}

/// What the user can do about an error, in terms of holdfast's commands and options (the
/// engine's errors say what went wrong; only the command line knows its flags).
pub fn hint(e: &Error) -> &'static str {
    match e {
        Error::NoWriterIdentity => {
            return "make a new key file on a host with the full key (`holdfast key \
                    create-backup-only --label HOST --output FILE`) and replace this one \
                    with it";
        }
        Error::OutOfScope { .. } => {
            return "back up under a resource name the key was issued for (see `holdfast \
                    key writers`), or issue a key for this one";
        }
        _ => {}
    }
    match e.kind() {
        ErrorKind::NoVault => "check --vault / HOLDFAST_VAULT, or create one with `holdfast init`",
        ErrorKind::VaultExists => "use the existing vault, or choose another location",
        ErrorKind::WrongKey => {
            "check HOLDFAST_PASSPHRASE / HOLDFAST_PASSPHRASE_FILE / HOLDFAST_KEY_FILE"
        }
        ErrorKind::KeyDenied => "run this on a host that holds the full key (a passphrase key)",
        ErrorKind::Damaged => "run `holdfast verify --read-data` to see what is affected",
        ErrorKind::Unreachable => "check the endpoint and network, then retry",
        ErrorKind::Storage => "check the storage credentials and permissions",
        ErrorKind::Input => "see `holdfast help` for the accepted arguments",
        ErrorKind::NotFound => {
            "see what there is with `holdfast points` (points), `holdfast key list` (keys) or `holdfast ls POINT` (files)"
        }
        ErrorKind::Internal => {
            "this is a bug in holdfast; please report it with the command line and this message"
        }
        ErrorKind::Io => "check the path and its permissions",
        ErrorKind::Unsupported => "upgrade holdfast",
        ErrorKind::Locked => {
            "see `holdfast lock show` and `holdfast hold list`; protected points can go only \
             after their retain-until date or once their hold is released"
        }
        ErrorKind::Interrupted => {
            "run it again; if it recurs, `holdfast verify` lists forged session markers"
        }
        ErrorKind::SourceFailed => {
            "check that the database or program is up and the credentials are right, then run it again"
        }
    }
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

    #[test]
    fn not_found_and_internal_errors_render_with_their_hints() {
        let e = Error::NotFound("no recovery point matches \"zz\"".into());
        assert_eq!(code(&e), ERROR);
        assert_eq!(
            render(&e),
            "holdfast: error: no recovery point matches \"zz\" (hint: see what there is with \
             `holdfast points` (points), `holdfast key list` (keys) or `holdfast ls POINT` (files))"
        );
        let e = Error::Internal("the upload threads stopped".into());
        assert_eq!(code(&e), ERROR);
        assert!(!e.retryable());
        assert_eq!(
            render(&e),
            "holdfast: error: internal error: the upload threads stopped (hint: this is a bug in \
             holdfast; please report it with the command line and this message)"
        );
    }
}
