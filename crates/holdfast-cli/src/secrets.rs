//! Where passphrases and key files come from. Secrets are read from the environment, a file,
//! a command's stdout or a TTY prompt — never from argv — and never printed.

use std::io::IsTerminal;
use std::process::{Command, Stdio};

use holdfast_engine::keys::{self, KeyMaterial};
use holdfast_engine::{Error, Result};
use zeroize::Zeroizing;

/// What unlocks the vault.
pub enum Secret {
    /// A passphrase.
    Passphrase(Zeroizing<Vec<u8>>),
    /// Key material from a key file.
    KeyFile(Box<KeyMaterial>),
}

fn trim_newline(v: Vec<u8>) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(v);
    while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        v.pop();
    }
    v
}

/// A passphrase or key file's bytes, wiped from memory when dropped.
pub fn read_secret_file(p: impl AsRef<std::path::Path>) -> Result<Zeroizing<Vec<u8>>> {
    let p = p.as_ref();
    std::fs::read(p)
        .map(Zeroizing::new)
        .map_err(|e| Error::io(p, e))
}

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

/// A passphrase file's passphrase: its first line, without the line ending. Every passphrase
/// file is read this way: `HOLDFAST_PASSPHRASE_FILE`, a plan's `passphrase_file` (the daemon
/// hands it to its workers as that variable) and `plan check --connect`.
pub fn passphrase_file(p: impl AsRef<std::path::Path>) -> Result<Zeroizing<Vec<u8>>> {
    let data = read_secret_file(p)?;
    let first = data.split(|b| *b == b'\n').next().unwrap_or(&[]).to_vec();
    Ok(trim_newline(first))
}

/// A key file's key material.
pub fn key_file(p: impl AsRef<std::path::Path>) -> Result<Secret> {
    let p = p.as_ref();
    let data = read_secret_file(p)?;
    let m =
        keys::decode_key_file(&data).map_err(|e| Error::Input(format!("{}: {e}", p.display())))?;
    Ok(Secret::KeyFile(Box::new(m)))
}

/// The secret a plan's vault names (`key_file`, `passphrase_file` or `passphrase_env`), read
/// exactly as the `HOLDFAST_*` variables the daemon sets for its workers are.
pub fn plan_vault(name: &str, v: &holdfast_plan::Vault) -> Result<Secret> {
    if let Some(k) = &v.key_file {
        return key_file(k);
    }
    if let Some(f) = &v.passphrase_file {
        return passphrase_file(f).map(Secret::Passphrase);
    }
    if let Some(var) = &v.passphrase_env {
        return std::env::var_os(var)
            .map(|s| Secret::Passphrase(Zeroizing::new(s.into_encoded_bytes())))
            .ok_or_else(|| {
                Error::Input(format!("vault {name:?}: passphrase_env {var} is not set"))
            });
    }
    Err(Error::Input(format!("vault {name:?} has no secret source")))
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
