//! Prune's mark step: the blobs, trees and points in use, which pack serves each used blob,
//! and whether a used blob has a safe copy outside the condemned packs.

use super::*;

/// The blobs used by recovery points, accumulated across the run.
#[derive(Default)]
pub(super) struct References {
    pub(super) points: HashSet<Id>,
    pub(super) trees: HashSet<Id>,
    pub(super) blobs: HashSet<Id>,
    /// Packs this process wrote (repacking): genuine by construction.
    pub(super) trusted: HashSet<Id>,
    /// Used blobs with an authenticated location outside the condemned packs.
    pub(super) confirmed: HashSet<Id>,
}

impl References {
    /// Whether a used blob has a location in a pack that is not condemned, is stored, and
    /// authenticates (or was written by this process).
    pub(super) fn has_safe_copy(
        &mut self,
        vault: &Vault,
        blob: &Id,
        condemned: &HashSet<Id>,
        listed: &HashMap<Id, u64>,
    ) -> Result<bool> {
        if self.confirmed.contains(blob) {
            return Ok(true);
        }
        let locs: Vec<(Id, crate::index::BlobLocation)> = {
            let idx = vault.index();
            idx.locations(blob)
                .into_iter()
                .map(|l| (idx.packs[l.pack as usize].id, l))
                .collect()
        };
        for (pack, l) in locs {
            if condemned.contains(&pack) || !listed.contains_key(&pack) {
                continue;
            }
            if self.trusted.contains(&pack) || vault.authenticates_at(&l)? {
                self.confirmed.insert(*blob);
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(super) fn add_points(
        &mut self,
        vault: &Vault,
        points: &[(Id, crate::point::Manifest)],
    ) -> Result<()> {
        for (pid, m) in points {
            if !self.points.insert(*pid) {
                continue;
            }
            if !self.trees.insert(m.root) {
                continue;
            }
            self.blobs.insert(m.root);
            let mut failure: Option<Error> = None;
            let trees = &mut self.trees;
            let blobs = &mut self.blobs;
            walk::walk(vault, &m.root, &mut |v| match v {
                Visit::Node(_, n) => match &n.kind {
                    NodeKind::Dir { subtree } => {
                        blobs.insert(*subtree);
                        trees.insert(*subtree)
                    }
                    NodeKind::File { content, .. } => {
                        blobs.extend(content.iter().copied());
                        true
                    }
                    NodeKind::Symlink { .. } => true,
                },
                Visit::Leave(..) => true,
                Visit::Damaged(path, e) => {
                    failure.get_or_insert(Error::damaged(
                        format!(
                            "point {} at {:?}",
                            pid.short(),
                            String::from_utf8_lossy(path)
                        ),
                        format!("{e}; prune needs every tree readable (run verify)"),
                    ));
                    false
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Which packs serve the used blobs.
pub(super) struct Served {
    pub(super) pairs: HashSet<(Id, Id)>,
    /// Locations that failed authentication while choosing (forged or damaged entries).
    pub(super) forged: usize,
}

impl Served {
    pub(super) fn serves(&self, pack: &Id, blob: &Id) -> bool {
        self.pairs.contains(&(*pack, *blob))
    }
}

/// For every used blob, the pack that serves it: its only location, or — when several
/// packs claim it — the first location that authenticates. When none does, every claimed
/// location is kept (prune never makes a damaged blob worse).
pub(super) fn choose_locations(
    vault: &Vault,
    used: &HashSet<Id>,
    pending_condemned: &HashSet<Id>,
    listed: &HashMap<Id, u64>,
) -> Result<Served> {
    let mut pairs: HashSet<(Id, Id)> = HashSet::new();
    let mut contested: Vec<(Id, Vec<crate::index::BlobLocation>)> = Vec::new();
    {
        let idx = vault.index();
        for b in used {
            let locs: Vec<crate::index::BlobLocation> = idx
                .locations(b)
                .into_iter()
                .filter(|l| {
                    let p = &idx.packs[l.pack as usize].id;
                    !pending_condemned.contains(p) && listed.contains_key(p)
                })
                .collect();
            let mut packs: Vec<Id> = locs.iter().map(|l| idx.packs[l.pack as usize].id).collect();
            packs.sort();
            packs.dedup();
            match packs.len() {
                0 => {}
                1 => {
                    pairs.insert((packs[0], *b));
                }
                _ => contested.push((*b, locs)),
            }
        }
    }
    let chosen: Vec<Result<(Id, Vec<Id>, usize)>> = contested
        .par_iter()
        .map(|(b, locs)| {
            let mut failed = 0;
            for l in locs {
                if vault.authenticates_at(l)? {
                    let p = vault.index().packs[l.pack as usize].id;
                    return Ok((*b, vec![p], failed));
                }
                failed += 1;
            }
            let idx = vault.index();
            Ok((
                *b,
                locs.iter().map(|l| idx.packs[l.pack as usize].id).collect(),
                failed,
            ))
        })
        .collect();
    let mut forged = 0;
    for c in chosen {
        let (b, ps, failed) = c?;
        forged += failed;
        for p in ps {
            pairs.insert((p, b));
        }
    }
    Ok(Served { pairs, forged })
}
