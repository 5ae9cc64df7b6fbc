//! Walking the trees of a recovery point.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::tree::{Node, NodeKind};
use crate::vault::Vault;

/// Join a parent path and a name with `/` (paths are raw bytes; `""` is the root).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// What [`walk`] tells the visitor.
pub enum Visit<'a> {
    /// A node at a path (directories are visited before their contents).
    Node(&'a [u8], &'a Node),
    /// Leaving a directory (after its contents), for post-order work.
    Leave(&'a [u8], &'a Node),
    /// A subtree could not be read; its contents are skipped.
    Damaged(&'a [u8], &'a Error),
}

/// Depth-first walk of the tree `root`, paths relative to it. The visitor returns `false` to
/// skip descending into a directory. Damaged subtrees are reported to the visitor and the walk
/// continues; only storage failures that may be transient abort it.
pub fn walk(vault: &Vault, root: &Id, visit: &mut dyn FnMut(Visit<'_>) -> bool) -> Result<()> {
    walk_inner(vault, root, b"", visit)
}

fn walk_inner(
    vault: &Vault,
    id: &Id,
    prefix: &[u8],
    visit: &mut dyn FnMut(Visit<'_>) -> bool,
) -> Result<()> {
    let tree = match vault.load_tree(id) {
        Ok(t) => t,
        Err(e) if e.retryable() || matches!(e, Error::KeyDenied { .. }) => return Err(e),
        Err(e) => {
            visit(Visit::Damaged(prefix, &e));
            return Ok(());
        }
    };
    for n in &tree.nodes {
        let path = join(prefix, &n.name);
        let descend = visit(Visit::Node(&path, n));
        if let NodeKind::Dir { subtree } = &n.kind {
            if descend {
                walk_inner(vault, subtree, &path, visit)?;
            }
            visit(Visit::Leave(&path, n));
        }
    }
    Ok(())
}

/// Find the node at `path` (components separated by `/`) under `root`.
pub fn lookup(vault: &Vault, root: &Id, path: &str) -> Result<Option<Node>> {
    let mut tree_id = *root;
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.is_empty() {
        return Ok(None);
    }
    for (i, c) in comps.iter().enumerate() {
        let tree = vault.load_tree(&tree_id)?;
        let Some(n) = tree.nodes.into_iter().find(|n| n.name == c.as_bytes()) else {
            return Ok(None);
        };
        if i + 1 == comps.len() {
            return Ok(Some(n));
        }
        match n.kind {
            NodeKind::Dir { subtree } => tree_id = subtree,
            _ => return Ok(None),
        }
    }
    Ok(None)
}
