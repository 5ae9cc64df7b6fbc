//! PostgreSQL physical backups for point-in-time recovery: base backups streamed from
//! `pg_basebackup` (tar format), and WAL segments archived one by one by `archive_command`.
//!
//! A base backup point (kind `postgres-base`) holds `base.tar` and records the start and end
//! LSN, timeline, system identifier and server version. A WAL point (kind `postgres-wal`)
//! holds one file from `pg_wal/` under its own name (segments, `.history`, `.partial`,
//! `.backup` files) and records that name, which is how `wal-fetch` finds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Result};

use crate::postgres::{PgConn, query, tool};
use crate::{Captured, Progress, Source};

/// Source kind of base backups.
pub const BASE_KIND: &str = "postgres-base";
/// Source kind of archived WAL files.
pub const WAL_KIND: &str = "postgres-wal";
/// The base backup's fact naming the cluster's bootstrap superuser.
pub const SUPERUSER_FACT: &str = "superuser";

/// Parse an LSN `X/Y` (hex) into a number.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Whether `name` is a file PostgreSQL archives: a segment (24 hex digits), a timeline
/// history file, a partial segment or a backup history file.
pub fn valid_wal_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex(name, 24) {
        return true;
    }
    if let Some(t) = name.strip_suffix(".history") {
        return hex(t, 8);
    }
    if let Some(t) = name.strip_suffix(".partial") {
        return hex(t, 24);
    }
    if let Some(t) = name.strip_suffix(".backup") {
        // Byte checks: a 33-byte name may split a multi-byte character anywhere.
        let b = t.as_bytes();
        let hex_bytes = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
        return b.len() == 33 && hex_bytes(&b[..24]) && b[24] == b'.' && hex_bytes(&b[25..]);
    }
    false
}

/// One archived WAL file.
pub struct WalSource {
    path: PathBuf,
    name: String,
}

impl WalSource {
    /// The file at `path` (as `archive_command`'s `%p` names it).
    pub fn new(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !valid_wal_name(&name) {
            return Err(Error::Input(format!(
                "{}: not a WAL segment, history, partial or backup file name",
                path.display()
            )));
        }
        Ok(WalSource {
            path: path.to_path_buf(),
            name,
        })
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Source for WalSource {
    fn kind(&self) -> &'static str {
        WAL_KIND
    }

    fn paths(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let hint = f.metadata().ok().map(|m| m.len());
        let io_err = |e: std::io::Error| Error::io(&self.path, e);
        let (content, size) = crate::content::store_stream(w, f, hint, progress, &io_err)?;
        let mut facts = BTreeMap::new();
        facts.insert("wal_file".into(), self.name.clone());
        if self.name.len() >= 8 {
            facts.insert("timeline".into(), self.name[..8].to_string());
        }
        crate::stream::single_file(w, &self.name, size, content, facts)
    }
}

/// A base backup of a running cluster.
pub struct BaseBackupSource {
    conn: PgConn,
    facts: BTreeMap<String, String>,
}

impl BaseBackupSource {
    /// Check the connection and record what the cluster is.
    pub fn new(conn: &PgConn) -> Result<Self> {
        let db = conn.database().unwrap_or_else(|| "postgres".into());
        let mut facts = BTreeMap::new();
        facts.insert(
            "server_version".into(),
            query(conn, &db, "SHOW server_version")?,
        );
        facts.insert(
            "system_identifier".into(),
            query(
                conn,
                &db,
                "SELECT system_identifier FROM pg_control_system()",
            )?,
        );
        facts.insert("wal_level".into(), query(conn, &db, "SHOW wal_level")?);
        facts.insert(
            "archive_mode".into(),
            query(conn, &db, "SHOW archive_mode")?,
        );
        facts.insert(
            "wal_segment_size".into(),
            query(conn, &db, "SHOW wal_segment_size")?,
        );
        // The bootstrap superuser (oid 10): the role a restore test connects as.
        facts.insert(
            SUPERUSER_FACT.into(),
            query(conn, &db, "SELECT rolname FROM pg_roles WHERE oid = 10")?,
        );
        Ok(BaseBackupSource {
            conn: conn.clone(),
            facts,
        })
    }
}

impl Source for BaseBackupSource {
    fn kind(&self) -> &'static str {
        BASE_KIND
    }

    fn paths(&self) -> Vec<String> {
        vec![self.conn.display()]
    }

    fn capture(&self, w: &BlobWriter<'_>, progress: Progress<'_>) -> Result<Captured> {
        let program = tool("pg_basebackup")?;
        let db = self.conn.database().unwrap_or_else(|| "postgres".into());
        let lsn_before = query(&self.conn, &db, "SELECT pg_current_wal_lsn()")?;
        let mut cmd = self.conn.command(&program);
        cmd.args([
            "-D",
            "-",
            "-F",
            "t",
            "-X",
            "none",
            "-c",
            "fast",
            "--verbose",
            "-d",
        ])
        .arg(self.conn.for_db(&db));
        let run = crate::export::stream_child(w, cmd, "base.tar", progress)?;
        let (status, err_out) = (
            run.status,
            String::from_utf8_lossy(&run.stderr).into_owned(),
        );
        let (content, size) = run.stored?;
        if !status.success() {
            return Err(Error::source_failed(
                "pg_basebackup",
                format!(
                    "pg_basebackup failed ({status}); nothing was committed: {}",
                    crate::export::tail(err_out.as_bytes())
                ),
            ));
        }
        // With -X none pg_basebackup does not print its WAL range. The server's insert
        // position before and after bounds it: a restore to an LSN or time picks a base
        // backup whose recorded end is at or after its true end (safe).
        let mut facts = self.facts.clone();
        facts.insert("start_lsn".into(), lsn_before);
        facts.insert(
            "end_lsn".into(),
            query(&self.conn, &db, "SELECT pg_current_wal_lsn()")?,
        );
        facts.insert(
            "timeline".into(),
            query(
                &self.conn,
                &db,
                "SELECT timeline_id FROM pg_control_checkpoint()",
            )?,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        facts.insert("end_time_ns".into(), now.as_nanos().to_string());
        crate::stream::single_file(w, "base.tar", size, content, facts)
    }
}

/// Parse a size setting such as `16MB` or `1GB` (PostgreSQL's `SHOW wal_segment_size`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let mul = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    Some(n * mul)
}

/// The absolute segment number of a WAL file name (timeline ignored), for segments and the
/// `.partial`/`.backup` files named after them; `None` for history files.
pub fn wal_segment_number(name: &str, seg_size: u64) -> Option<u64> {
    if name.len() < 24 || name.ends_with(".history") || seg_size == 0 {
        return None;
    }
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some(log * (0x1_0000_0000 / seg_size) + seg)
}

/// The first segment a base backup needs, from its recorded start LSN and segment size.
pub fn base_first_segment(start_lsn: &str, seg_size: u64) -> Option<u64> {
    (seg_size > 0).then_some(())?;
    Some(parse_lsn(start_lsn)? / seg_size)
}

/// Whether an archived WAL file is needed by base backups whose first segments are
/// `first_segments`: history files always; segments from the oldest base backup onward. With
/// no base backup, everything is kept (nothing can be proven unneeded).
pub fn wal_needed(name: &str, seg_size: u64, first_segments: &[u64]) -> bool {
    let Some(oldest) = first_segments.iter().min() else {
        return true;
    };
    match wal_segment_number(name, seg_size) {
        None => true,
        Some(n) => n >= *oldest,
    }
}

/// Unpack a tar file (a base backup) into `dir`.
pub fn unpack(tar_file: &Path, dir: &Path) -> Result<()> {
    let f = std::fs::File::open(tar_file).map_err(|e| Error::io(tar_file, e))?;
    let mut a = tar::Archive::new(f);
    a.set_preserve_permissions(true);
    a.unpack(dir).map_err(|e| Error::io(dir, e))
}

/// The recovery settings appended to `postgresql.auto.conf`.
pub fn recovery_settings(restore_command: &str, target: &[(String, String)]) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut out = String::from("\n# written by holdfast pg restore\n");
    out.push_str(&format!("restore_command = {}\n", q(restore_command)));
    out.push_str("recovery_target_timeline = 'latest'\n");
    for (k, v) in target {
        out.push_str(&format!("{k} = {}\n", q(v)));
    }
    if !target.is_empty() {
        out.push_str("recovery_target_action = 'promote'\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_names() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000003.partial",
            "000000010000000000000002.00000028.backup",
        ] {
            assert!(valid_wal_name(ok), "{ok}");
        }
        for bad in [
            "",
            "x",
            "../000000010000000000000003",
            "00000002.historyx",
            "0000000100000000000000",
            // 33 bytes before .backup, the 24th byte inside a two-byte character: no panic.
            "00000001000000000000000\u{e9}00000000.backup",
            "000000010000000000000002\u{e9}0000000.backup",
            "000000010000000000000002.000000\u{e9}.backup",
            "0000000100000000000000\u{e9}\u{e9}.partial",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            assert!(!valid_wal_name(bad), "{bad}");
        }
        assert_eq!(parse_lsn("0/3000028"), Some(0x3000028));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert!(parse_lsn("zz").is_none());
    }

    #[test]
    fn wal_retention_keeps_what_the_oldest_kept_base_needs() {
        let seg = 16 << 20;
        assert_eq!(parse_size("16MB"), Some(seg));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        // 0/5000028 is in segment 5.
        let first = base_first_segment("0/5000028", seg).unwrap();
        assert_eq!(first, 5);
        assert!(!wal_needed("000000010000000000000004", seg, &[first]));
        assert!(wal_needed("000000010000000000000005", seg, &[first]));
        assert!(wal_needed("000000020000000000000006", seg, &[first, 9]));
        assert!(wal_needed("00000002.history", seg, &[first]));
        assert!(!wal_needed(
            "000000010000000000000002.00000028.backup",
            seg,
            &[first]
        ));
        assert!(wal_needed("000000010000000000000002", seg, &[]));
        // The second log file: 0x100 segments of 16 MiB per 4 GiB.
        assert_eq!(
            wal_segment_number("000000010000000100000003", seg),
            Some(0x100 + 3)
        );
        assert_eq!(base_first_segment("1/3000000", seg), Some(0x100 + 3));
    }

    #[test]
    fn settings_quote_values() {
        let s = recovery_settings(
            "a 'b' %f %p",
            &[("recovery_target_name".into(), "it's".into())],
        );
        assert!(s.contains("restore_command = 'a ''b'' %f %p'"));
        assert!(s.contains("recovery_target_name = 'it''s'"));
        assert!(s.contains("recovery_target_action = 'promote'"));
    }
}
