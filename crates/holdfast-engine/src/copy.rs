//! `copy`: recovery points from one vault into another that has its own keys.
//!
//! Every blob is read and authenticated in the source, re-encrypted under the destination's
//! keys, and stored only if the destination lacks it. Blob ids are keyed per vault, so the
//! trees are rewritten with the destination's ids — unless both vaults share their id key
//! (`init --copy-ids-from`), in which case trees are identical and a blob the destination
//! already holds is not even read from the source. The copied manifest records where it
//! came from (`copied_from`), which makes re-running a copy idempotent. After writing, each
//! copied point is verified in the destination.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::BlobType;
use crate::point::{CopiedFrom, Manifest};
use crate::session::Session;
use crate::tree::{NodeKind, Tree};
use crate::vault::Vault;
use crate::writer::{BlobWriter, with_writer};

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CopyReport {
    /// Points written to the destination: (source id, destination id).
    pub copied: Vec<(String, String)>,
    /// Source points the destination already had.
    pub already_there: Vec<String>,
    /// Blobs stored in the destination.
    pub blobs_added: u64,
    /// Their plaintext size.
    pub bytes_added: u64,
    /// Their stored size.
    pub stored_added: u64,
    /// Blobs read back and authenticated in the destination.
    pub blobs_verified: u64,
    /// Whether both vaults share their id key (cheap incremental copies).
    pub shared_ids: bool,
}

/// Whether two vaults compute the same blob ids.
pub fn shared_ids(a: &Vault, b: &Vault) -> bool {
    let probe = b"holdfast id probe";
    a.blob_id(probe) == b.blob_id(probe)
}

/// Copy `points` (source ids and manifests) from `src` into `dst`. The caller has started a
/// session on each vault and loaded both indexes (session first).
pub fn copy_points(
    src: &Vault,
    dst: &Vault,
    dst_session: &Session,
    points: &[(Id, Manifest)],
    log: &(dyn Fn(&str) + Sync),
) -> Result<CopyReport> {
    src.require_full("copying recovery points")?;
    let mut report = CopyReport {
        shared_ids: shared_ids(src, dst),
        ..Default::default()
    };
    let src_vault = hex::encode(src.key_material().vault_id());
    // Points already copied (needs the destination's full key to read its manifests).
    let mut present: HashSet<String> = HashSet::new();
    if dst.require_full("x").is_ok() {
        let (dpoints, _) = dst.list_points()?;
        for (_, m) in dpoints {
            if let Some(c) = m.copied_from
                && c.vault == src_vault
            {
                present.insert(c.point);
            }
        }
    } else {
        log("the destination key is write-only: points copied before cannot be recognised");
    }
    let todo: Vec<&(Id, Manifest)> = points
        .iter()
        .filter(|(id, _)| {
            let there = present.contains(&id.to_hex());
            if there {
                report.already_there.push(id.to_hex());
            }
            !there
        })
        .collect();
    if todo.is_empty() {
        return Ok(report);
    }
    let memo: Mutex<HashMap<Id, Id>> = Mutex::new(HashMap::new());
    let shared = report.shared_ids;
    let (roots, stats) = with_writer(dst, 4, |w| {
        let mut roots = Vec::new();
        for (id, m) in &todo {
            log(&format!("copying point {} ({})", id.short(), m.resource));
            roots.push(copy_tree(src, w, &m.root, &memo, shared)?);
        }
        Ok(roots)
    })?;
    report.blobs_added = stats.blobs_added;
    report.bytes_added = stats.bytes_added;
    report.stored_added = stats.stored_added;
    dst_session.claim_commit()?;
    for ((id, m), root) in todo.iter().zip(roots) {
        let mut copy = m.clone();
        copy.root = root;
        copy.copied_from = Some(CopiedFrom {
            vault: src_vault.clone(),
            point: id.to_hex(),
        });
        let new_id = dst.save_point(&copy)?;
        report.copied.push((id.to_hex(), new_id.to_hex()));
        report.blobs_verified += verify_copy(dst, &copy.root)?;
    }
    Ok(report)
}

fn copy_tree(
    src: &Vault,
    w: &BlobWriter<'_>,
    src_id: &Id,
    memo: &Mutex<HashMap<Id, Id>>,
    shared: bool,
) -> Result<Id> {
    if let Some(d) = memo.lock().get(src_id) {
        return Ok(*d);
    }
    let mut tree = src.load_tree(src_id)?;
    // Content first, in parallel.
    let chunks: Vec<Id> = tree
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::File { content, .. } => Some(content.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect::<HashSet<Id>>()
        .into_iter()
        .filter(|c| !memo.lock().contains_key(c))
        .collect();
    chunks.par_iter().try_for_each(|c| -> Result<()> {
        let d = if shared && w.known(c) {
            *c
        } else {
            let data = src.read_blob(c)?;
            w.add(BlobType::Data, &data)?.0
        };
        memo.lock().insert(*c, d);
        Ok(())
    })?;
    for n in &mut tree.nodes {
        match &mut n.kind {
            NodeKind::File { content, .. } => {
                let m = memo.lock();
                for c in content.iter_mut() {
                    *c = *m
                        .get(c)
                        .ok_or_else(|| Error::Internal("copy: a chunk has no mapping".into()))?;
                }
            }
            NodeKind::Dir { subtree } => {
                *subtree = copy_tree(src, w, subtree, memo, shared)?;
            }
            NodeKind::Symlink { .. } => {}
        }
    }
    let (d, _) = w.add(BlobType::Tree, &tree.encode())?;
    memo.lock().insert(*src_id, d);
    Ok(d)
}

/// Check a copied point in the destination: every blob is indexed and, with the full key,
/// reads back and authenticates. Returns the blobs read.
fn verify_copy(dst: &Vault, root: &Id) -> Result<u64> {
    let full = dst.require_full("x").is_ok();
    let mut n = 0u64;
    let mut stack = vec![*root];
    let mut seen = HashSet::new();
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        if !full {
            if !dst.index().contains(&t) {
                return Err(Error::damaged(
                    format!("blob {}", t.short()),
                    "missing from the destination after the copy",
                ));
            }
            continue;
        }
        let tree: Tree = dst.load_tree(&t)?;
        n += 1;
        let mut content = Vec::new();
        for node in &tree.nodes {
            match &node.kind {
                NodeKind::Dir { subtree } => stack.push(*subtree),
                NodeKind::File { content: c, .. } => content.extend(c.iter().copied()),
                NodeKind::Symlink { .. } => {}
            }
        }
        content.sort_unstable();
        content.dedup();
        content
            .par_iter()
            .try_for_each(|c| dst.read_blob(c).map(|_| ()))?;
        n += content.len() as u64;
    }
    Ok(n)
}
