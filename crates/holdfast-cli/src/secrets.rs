//! Where the CLI's passphrases and key files come from: the `HOLDFAST_*` variables (a
//! passphrase, a file, a command's stdout or a key file), else a TTY prompt — never argv, and
//! never printed. Files are read by [`holdfast_ops::secret`], as the daemon's workers and
//! `plan check --connect` read them.

use std::io::IsTerminal;
use std::process::{Command, Stdio};

use holdfast_engine::{Error, Result};
use zeroize::Zeroizing;

use holdfast_ops::secret::trim_newline;
pub use holdfast_ops::secret::{Secret, key_file, passphrase_file};

/// Warn that the key object just written used the weak test parameters of
/// `HOLDFAST_KDF_MEMORY_KIB` (see [`holdfast_engine::keys::KdfParams::from_env`]).
pub fn warn_weak_kdf() {
    if let Ok(v) = std::env::var("HOLDFAST_KDF_MEMORY_KIB")
        && v.parse::<u32>().is_ok()
    {
        eprintln!(
            "holdfast: warning: HOLDFAST_KDF_MEMORY_KIB={v} wrote a weak key object (for tests \
             only); unset it and run `holdfast key passwd`"
        );
    }
}

fn from_env(
    var: &str,
    file_var: &str,
    cmd_var: Option<&str>,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if let Some(v) = std::env::var_os(var) {
        return Ok(Some(Zeroizing::new(v.into_encoded_bytes())));
    }
    if let Some(p) = std::env::var_os(file_var) {
        return passphrase_file(p).map(Some);
    }
    if let Some(cv) = cmd_var
        && let Ok(cmd) = std::env::var(cv)
    {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| Error::Input(format!("{cv}: cannot run the command: {e}")))?;
        // Wiped however this ends (a failing command may still have printed the secret).
        let stdout = Zeroizing::new(out.stdout);
        if !out.status.success() {
            return Err(Error::Input(format!(
                "{cv}: the command failed ({})",
                out.status
            )));
        }
        return Ok(Some(trim_newline(stdout.to_vec())));
    }
    Ok(None)
}

fn prompt(msg: &str) -> Result<Zeroizing<Vec<u8>>> {
    let p = rpassword::prompt_password(msg).map_err(|e| Error::io("<tty>", e))?;
    Ok(Zeroizing::new(p.into_bytes()))
}

fn tty() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The secret that opens an existing vault: from `PREFIX_KEY_FILE`, `PREFIX_PASSPHRASE(_FILE|_COMMAND)` (`HOLDFAST_TO` for
/// the destination of a copy).
pub fn unlock_secret_prefixed(prefix: &str) -> Result<Secret> {
    if prefix != "HOLDFAST" {
        let kf = format!("{prefix}_KEY_FILE");
        if let Some(p) = std::env::var_os(&kf) {
            return key_file(p);
        }
        let (v, f, c) = (
            format!("{prefix}_PASSPHRASE"),
            format!("{prefix}_PASSPHRASE_FILE"),
            format!("{prefix}_PASSPHRASE_COMMAND"),
        );
        if let Some(p) = from_env(&v, &f, Some(&c))? {
            return Ok(Secret::Passphrase(p));
        }
        if tty() {
            return Ok(Secret::Passphrase(prompt(
                "destination vault passphrase: ",
            )?));
        }
        return Err(Error::Input(format!(
            "no passphrase for the destination vault: set {v}, {f}, {c} or {kf}"
        )));
    }
    if let Some(p) = std::env::var_os("HOLDFAST_KEY_FILE") {
        return key_file(p);
    }
    if let Some(p) = from_env(
        "HOLDFAST_PASSPHRASE",
        "HOLDFAST_PASSPHRASE_FILE",
        Some("HOLDFAST_PASSPHRASE_COMMAND"),
    )? {
        return Ok(Secret::Passphrase(p));
    }
    if tty() {
        return Ok(Secret::Passphrase(prompt("vault passphrase: ")?));
    }
    Err(Error::Input(
        "no passphrase: set HOLDFAST_PASSPHRASE, HOLDFAST_PASSPHRASE_FILE, HOLDFAST_PASSPHRASE_COMMAND or HOLDFAST_KEY_FILE"
            .into(),
    ))
}

/// A new passphrase (for `init`, `key add`, `key passwd`): `env_var`s first, else prompt twice.
pub fn new_passphrase(init: bool) -> Result<Zeroizing<Vec<u8>>> {
    let found = if init {
        from_env(
            "HOLDFAST_PASSPHRASE",
            "HOLDFAST_PASSPHRASE_FILE",
            Some("HOLDFAST_PASSPHRASE_COMMAND"),
        )?
    } else {
        from_env(
            "HOLDFAST_NEW_PASSPHRASE",
            "HOLDFAST_NEW_PASSPHRASE_FILE",
            None,
        )?
    };
    let p = match found {
        Some(p) => p,
        None if tty() => {
            let a = prompt("new passphrase: ")?;
            let b = prompt("repeat passphrase: ")?;
            if a != b {
                return Err(Error::Input("the passphrases do not match".into()));
            }
            a
        }
        None => {
            return Err(Error::Input(if init {
                "no passphrase for the new vault: set HOLDFAST_PASSPHRASE or HOLDFAST_PASSPHRASE_FILE".into()
            } else {
                "no new passphrase: set HOLDFAST_NEW_PASSPHRASE or HOLDFAST_NEW_PASSPHRASE_FILE"
                    .into()
            }));
        }
    };
    if p.is_empty() {
        return Err(Error::Input("an empty passphrase is not allowed".into()));
    }
    Ok(p)
}
