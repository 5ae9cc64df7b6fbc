//! The built-in check of files points: every restored file read back and compared with the
//! point chunk by chunk, every directory and link checked for presence and target.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use holdfast_engine::tree::NodeKind;
use holdfast_engine::{Id, Result, Vault};

/// What a comparison of a restored folder with its point found.
#[derive(Debug, Default)]
pub struct TreeComparison {
    /// Files read back and compared.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Directories found.
    pub dirs: u64,
    /// Symbolic links found with their targets.
    pub links: u64,
    /// What differs, one line each (`path: why`).
    pub mismatches: Vec<String>,
}

/// Compare the folder `dir` with the tree `root` of `vault`: every file read back and its
/// chunks compared with the point's chunk ids (keyed BLAKE3), every directory and link there.
pub fn compare_tree(vault: &Vault, root: &Id, dir: &Path) -> Result<TreeComparison> {
    let mut out = TreeComparison::default();
    let mut stack = vec![(*root, dir.to_path_buf())];
    while let Some((tree_id, path)) = stack.pop() {
        for node in vault.load_tree(&tree_id)?.nodes {
            let p = path.join(std::ffi::OsStr::from_bytes(&node.name));
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    if p.is_dir() {
                        out.dirs += 1;
                        stack.push((*subtree, p));
                    } else {
                        out.mismatches
                            .push(format!("{}: directory missing", p.display()));
                    }
                }
                NodeKind::Symlink { target } => match std::fs::read_link(&p) {
                    Ok(t) if t.as_os_str().as_encoded_bytes() == target.as_slice() => {
                        out.links += 1;
                    }
                    Ok(_) => out
                        .mismatches
                        .push(format!("{}: link target differs", p.display())),
                    Err(e) => out.mismatches.push(format!("{}: {e}", p.display())),
                },
                NodeKind::File { size, content } => match compare_file(vault, &p, *size, content) {
                    Ok(None) => {
                        out.files += 1;
                        out.bytes += size;
                    }
                    Ok(Some(why)) => out.mismatches.push(format!("{}: {why}", p.display())),
                    Err(e) => out.mismatches.push(format!("{}: {e}", p.display())),
                },
            }
        }
    }
    Ok(out)
}

/// Read `path` back and compare it with the chunks `content` (`size` bytes in all): None when
/// it is the same, else why not.
fn compare_file(
    vault: &Vault,
    path: &Path,
    size: u64,
    content: &[Id],
) -> std::io::Result<Option<String>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len != size {
        return Ok(Some(format!("{len} bytes, the point has {size}")));
    }
    let mut buf = Vec::new();
    for (i, id) in content.iter().enumerate() {
        let Some(n) = vault.blob_len(id) else {
            return Ok(Some(format!(
                "chunk {i} ({}) is not in the index",
                id.short()
            )));
        };
        buf.clear();
        (&mut f).take(n).read_to_end(&mut buf)?;
        if buf.len() as u64 != n || vault.blob_id(&buf) != *id {
            return Ok(Some(format!("chunk {i} differs from the point")));
        }
    }
    Ok(None)
}
