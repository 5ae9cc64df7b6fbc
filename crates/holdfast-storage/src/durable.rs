//! Durable file writes: the one helper every on-disk write of holdfast goes through.
//!
//! Sequence: write to a uniquely named temporary file in the destination's folder, `fsync`
//! it, publish it (a hard link for create-only, a rename for replace), then `fsync` the folder
//! so the new directory entry survives a power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn temp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let r: u64 = rand::random();
    dest.with_file_name(format!(".tmp-{name}-{r:016x}"))
}

fn write_temp(tmp: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    f.write_all(data)?;
    f.sync_all()
}

/// fsync a folder so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dest` with `data`, atomically and durably, failing with
/// [`io::ErrorKind::AlreadyExists`] if it exists. The parent folder must exist.
pub fn create_new(dest: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = temp_path(dest);
    if let Err(e) = write_temp(&tmp, data) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // link(2) fails with EEXIST instead of replacing: the create-only publish.
    let linked = fs::hard_link(&tmp, dest);
    let _ = fs::remove_file(&tmp);
    linked?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replace `dest` with `data` atomically and durably (for local state such as caches).
pub fn replace(dest: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = temp_path(dest);
    if let Err(e) = write_temp(&tmp, data) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, dest) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_never_overwrites_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("obj");
        create_new(&p, b"one").unwrap();
        let e = create_new(&p, b"two").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        replace(&p, b"three").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
