//! `verify`: check that every recovery point is complete and, with `read_data`, that every
//! stored byte authenticates. Every problem is attributed to the points and files it affects.

use std::collections::{HashMap, HashSet};

use holdfast_storage::{ErrorKind as SK, Handle, Kind};
use rayon::prelude::*;

use crate::crypto;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack;
use crate::tree::NodeKind;
use crate::vault::{Damage, Vault};
use crate::walk::{self, Visit};

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Read and authenticate stored packs.
    pub read_data: bool,
    /// With `read_data`, which packs to read (None: all).
    pub subset: Option<Subset>,
}

/// A share of the packs to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// The first `p` percent of the pack-id space: always the same packs.
    Pct(f64),
    /// Part `k` of `n` (1-based): the pack-id space cut into `n` equal ranges, so parts
    /// `1/n` … `n/n` read every pack exactly once.
    Part(u32, u32),
}

/// A recovery point hit by damage.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Affected {
    /// Point id.
    pub point: String,
    /// Its resource.
    pub resource: String,
    /// Its time, Unix nanoseconds.
    pub time_ns: i64,
    /// Files (and directories) that cannot be restored intact.
    pub paths: Vec<String>,
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// Recovery points checked.
    pub points: usize,
    /// Evidence records checked (each must verify under the owner key).
    #[serde(default)]
    pub evidence: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Packs read in full.
    pub packs_read: usize,
    /// Blobs authenticated.
    pub blobs_read: usize,
    /// Stored packs no index lists (left by interrupted backups; harmless).
    pub unindexed_packs: usize,
    /// Damaged or missing objects.
    pub problems: Vec<Damage>,
    /// Points affected by them.
    pub affected: Vec<Affected>,
    /// Whether rebuilding the index (`repair index`) would help.
    pub index_needs_repair: bool,
    /// Points that are not trusted (docs/format.md 13.5): forged or missing signatures,
    /// resources outside their writer's scope, future times, quarantined writers.
    pub untrusted: Vec<Untrusted>,
}

/// A point `verify` does not trust.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Untrusted {
    /// Point id.
    pub point: String,
    /// The resource it claims.
    pub resource: String,
    /// Who signed it (`owner`, a writer's label, `unsigned`, `FORGED`).
    pub writer: String,
    /// Why it is not trusted.
    pub concern: crate::trust::Concern,
}

impl Report {
    /// Whether nothing is wrong. Points of a quarantined writer are reported but do not
    /// fail a verify: the quarantine is the owner's answer to them.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
            && self.affected.is_empty()
            && self
                .untrusted
                .iter()
                .all(|u| u.concern.kind == crate::trust::ConcernKind::Quarantined)
    }
}

/// Where pack `id` falls in the id space: its first four bytes, 0 ≤ v < 2^32.
fn position(id: &Id) -> u64 {
    u64::from(u32::from_le_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]))
}

/// Whether pack `id` is in the first `pct` percent of the id space.
fn sample(id: &Id, pct: f64) -> bool {
    (position(id) as f64) < pct / 100.0 * (1u64 << 32) as f64
}

/// Whether pack `id` is in part `k` of `n` of the id space (exact integer ranges).
fn in_part(id: &Id, k: u32, n: u32) -> bool {
    let n = u64::from(n.max(1));
    let k = u64::from(k.clamp(1, n as u32));
    let lo = (k - 1) * (1u64 << 32) / n;
    let hi = k * (1u64 << 32) / n;
    (lo..hi).contains(&position(id))
}

impl VerifyOptions {
    /// Whether this verify reads pack `id`.
    fn reads(&self, id: &Id) -> bool {
        match self.subset {
            Some(Subset::Part(k, n)) => in_part(id, k, n),
            Some(Subset::Pct(pct)) => sample(id, pct),
            None => true,
        }
    }
}

/// Run the checks.
pub fn verify(
    vault: &Vault,
    opts: VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    vault.require_full("verify")?;
    let mut report = Report::default();
    let index_damage = vault.load_index()?;
    report.index_needs_repair = !index_damage.is_empty();
    report.problems.extend(index_damage);
    report.problems.extend(check_markers(vault)?);

    let stored: HashMap<String, u64> = vault
        .storage()
        .list(Kind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    let mut bad: HashSet<Id> = HashSet::new();
    // One entry per pack id (the index may hold several records of one pack: any index-key
    // holder can write index objects, so records are checked, not trusted).
    let records: Vec<_> = vault.index().packs.clone();
    let mut packs: Vec<crate::index::PackRecord> = Vec::new();
    {
        let mut seen: HashSet<Id> = HashSet::new();
        for r in &records {
            if seen.insert(r.id) {
                packs.push(r.clone());
            }
        }
    }
    report.packs = packs.len();
    let indexed: HashSet<String> = packs.iter().map(|p| p.id.to_hex()).collect();
    report.unindexed_packs = stored.keys().filter(|k| !indexed.contains(*k)).count();
    for (id, n) in vault.index().disagreeing_packs() {
        report.problems.push(Damage {
            object: Handle::new(Kind::Pack, id.to_hex()).path(),
            reason: format!(
                "listed by index objects with {n} different records (forged or damaged; run \
                 `holdfast repair index`)"
            ),
        });
        report.index_needs_repair = true;
    }

    // (pack, blob) locations found bad; a blob is bad only when every location is.
    let mut bad_loc: HashSet<(Id, Id)> = HashSet::new();
    let mut bad_packs: HashSet<Id> = HashSet::new();
    for p in &records {
        let name = p.id.to_hex();
        match stored.get(&name) {
            None => {
                if bad_packs.insert(p.id) {
                    report.problems.push(Damage {
                        object: Handle::new(Kind::Pack, &name).path(),
                        reason: "missing".into(),
                    });
                }
            }
            Some(&s) if s != p.size => {
                report.problems.push(Damage {
                    object: Handle::new(Kind::Pack, &name).path(),
                    reason: format!("size {s} instead of {} (truncated or altered)", p.size),
                });
                bad_packs.insert(p.id);
            }
            Some(_) => {}
        }
    }

    if opts.read_data {
        let to_read: Vec<_> = packs
            .iter()
            .filter(|p| !bad_packs.contains(&p.id))
            .filter(|p| opts.reads(&p.id))
            .collect();
        report.packs_read = to_read.len();
        let by_pack = vault.index().entries_by_pack();
        let results: Vec<Result<PackCheck>> = to_read
            .par_iter()
            .map(|p| {
                check_pack(
                    vault,
                    &p.id,
                    by_pack.get(&p.id).map_or(&[][..], |(_, es)| es.as_slice()),
                    progress,
                )
            })
            .collect();
        for (p, r) in to_read.iter().zip(results) {
            let (n, dmg, ids, mismatch) = r?;
            report.blobs_read += n;
            report.problems.extend(dmg);
            report.index_needs_repair |= mismatch;
            bad_loc.extend(ids.into_iter().map(|b| (p.id, b)));
        }
    }
    {
        let idx = vault.index();
        // Every blob location in a missing or truncated pack is lost.
        for loc in idx.all_locations() {
            let pack = idx.packs[loc.pack as usize].id;
            if bad_packs.contains(&pack) {
                bad_loc.insert((pack, loc.entry.id));
            }
        }
        let candidates: HashSet<Id> = bad_loc.iter().map(|(_, b)| *b).collect();
        for b in candidates {
            if idx
                .locations(&b)
                .iter()
                .all(|l| bad_loc.contains(&(idx.packs[l.pack as usize].id, b)))
            {
                bad.insert(b);
            }
        }
    }

    // Evidence records must open and carry the owner's signature (docs/format.md 11.5).
    let (evidence, evidence_damage) = vault.list_evidence()?;
    report.evidence = evidence.len() + evidence_damage.len();
    report.problems.extend(evidence_damage);
    let (points, point_damage) = vault.list_points()?;
    report.points = points.len() + point_damage.len();
    for d in point_damage {
        report.affected.push(Affected {
            point: d.object.trim_start_matches("points/").to_string(),
            resource: String::new(),
            time_ns: 0,
            paths: vec!["(manifest unreadable)".into()],
        });
        report.problems.push(d);
    }
    // A damaged protection chain is reported by check_markers; judge trust without it.
    let judge = crate::trust::Judge::with(crate::protect::current(vault).unwrap_or_default());
    for (id, m) in &points {
        if let Some(concern) = judge.concern(m) {
            report.untrusted.push(Untrusted {
                point: id.to_hex(),
                resource: m.resource.clone(),
                writer: m.attribution.name().to_string(),
                concern,
            });
        }
    }
    let mut reported_trees: HashSet<String> = HashSet::new();
    for (id, m) in &points {
        let mut paths = Vec::new();
        if !vault.index().contains(&m.root) || bad.contains(&m.root) {
            paths.push("/ (root tree)".to_string());
        } else {
            let idx_has = |b: &Id| vault.index().contains(b);
            walk::walk(vault, &m.root, &mut |v| {
                match v {
                    Visit::Node(path, n) => {
                        if let NodeKind::File { content, .. } = &n.kind
                            && content.iter().any(|c| bad.contains(c) || !idx_has(c))
                        {
                            paths.push(String::from_utf8_lossy(path).into_owned());
                        }
                        if let NodeKind::Dir { subtree } = &n.kind
                            && (bad.contains(subtree) || !idx_has(subtree))
                        {
                            paths.push(format!("{}/ (directory)", String::from_utf8_lossy(path)));
                            return false;
                        }
                    }
                    Visit::Damaged(path, e) => {
                        let p = format!("{}/ (directory)", String::from_utf8_lossy(path));
                        if reported_trees.insert(e.to_string()) {
                            report.problems.push(Damage {
                                object: e.to_string(),
                                reason: "tree unreadable".into(),
                            });
                        }
                        paths.push(p);
                    }
                    Visit::Leave(..) => {}
                }
                true
            })?;
        }
        if !paths.is_empty() {
            report.affected.push(Affected {
                point: id.to_hex(),
                resource: m.resource.clone(),
                time_ns: m.time_ns,
                paths,
            });
        }
    }
    // Points that miss blobs while packs sit outside the index: rebuilding the index from
    // the packs' headers may bring the blobs back.
    if report.unindexed_packs > 0 && !report.affected.is_empty() {
        report.index_needs_repair = true;
    }
    Ok(report)
}

/// Blobs read, damage found, bad blob ids of one pack, and whether its header disagrees
/// with the index.
type PackCheck = (usize, Vec<Damage>, Vec<Id>, bool);

/// Read one pack whole: name, header, every blob. Returns blobs read, damage and bad blob ids.
fn check_pack(
    vault: &Vault,
    id: &Id,
    entries: &[pack::PackEntry],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PackCheck> {
    let h = Handle::new(Kind::Pack, id.to_hex());
    let all_bad = |reason: String| {
        Ok((
            0,
            vec![Damage {
                object: h.path(),
                reason,
            }],
            entries.iter().map(|e| e.id).collect(),
            false,
        ))
    };
    let data = match vault.storage().read(&h) {
        Ok(d) => d,
        Err(e) if e.kind == SK::NotFound || e.kind == SK::Permanent => return all_bad(e.message),
        Err(e) => return Err(e.into()),
    };
    progress(data.len() as u64);
    let mut damage = Vec::new();
    let mut mismatch = false;
    if Id::of_stored(&data) != *id {
        damage.push(Damage {
            object: h.path(),
            reason: "content does not match its name (altered)".into(),
        });
    }
    let wrapped = match pack::read_header(&data, &vault.key_material().index_key) {
        Ok((w, header)) => {
            let mut a: Vec<_> = header.iter().map(|e| (e.id, e.offset, e.length)).collect();
            let mut b: Vec<_> = entries.iter().map(|e| (e.id, e.offset, e.length)).collect();
            a.sort();
            b.sort();
            if !b.iter().all(|x| a.binary_search(x).is_ok()) {
                mismatch = true;
                damage.push(Damage {
                    object: h.path(),
                    reason: "header does not list what the index says (forged or damaged index \
                             record; run `holdfast repair index`)"
                        .into(),
                });
            }
            Some(w)
        }
        Err(e) => {
            damage.push(Damage {
                object: h.path(),
                reason: e.to_string(),
            });
            None
        }
    };
    let wrapped = wrapped.or_else(|| {
        vault
            .index()
            .packs
            .iter()
            .find(|p| p.id == *id)
            .map(|p| p.wrapped)
    });
    let secret = vault.require_full("verify")?;
    let dk = match wrapped.map(|w| crypto::unwrap(secret, &w)) {
        Some(Ok(k)) => k,
        _ => {
            return Ok((
                0,
                {
                    damage.push(Damage {
                        object: h.path(),
                        reason: "data key does not open".into(),
                    });
                    damage
                },
                entries.iter().map(|e| e.id).collect(),
                mismatch,
            ));
        }
    };
    let mut bad = Vec::new();
    for e in entries {
        let (s, l) = (e.offset as usize, e.length as usize);
        let ok = data
            .get(s..s + l)
            .ok_or(())
            .and_then(|b| pack::open_blob(&dk, e, b.to_vec()).map_err(|_| ()))
            .map(|plain| vault.blob_id(&plain) == e.id)
            .unwrap_or(false);
        if !ok {
            damage.push(Damage {
                object: format!("{} (blob {})", h.path(), e.id.short()),
                reason: "blob does not authenticate".into(),
            });
            bad.push(e.id);
        }
    }
    Ok((entries.len(), damage, bad, mismatch))
}

/// Session markers, garbage-collection notices and protection records: each must
/// authenticate and parse.
fn check_markers(vault: &Vault) -> Result<Vec<Damage>> {
    let secret = vault.require_full("verify")?;
    let storage = vault.storage();
    let mut out: Vec<Damage> = crate::session::check_all(&**storage, secret)?
        .into_iter()
        .map(|(object, reason)| Damage { object, reason })
        .collect();
    out.extend(
        crate::gc::check_all(vault)?
            .into_iter()
            .map(|(object, reason)| Damage { object, reason }),
    );
    if let Err(e) = crate::protect::history(vault) {
        match e {
            Error::Damaged { object, reason } => out.push(Damage { object, reason }),
            e => return Err(e),
        }
    }
    Ok(out)
}

/// The error for a vault found damaged by `verify`.
pub fn damaged_error(report: &Report) -> Error {
    let what = if report.problems.is_empty() {
        "the vault".to_string()
    } else {
        format!("{} object(s)", report.problems.len())
    };
    let mut why = format!("{} recovery point(s) affected", report.affected.len());
    let untrusted = report
        .untrusted
        .iter()
        .filter(|u| u.concern.kind != crate::trust::ConcernKind::Quarantined)
        .count();
    if untrusted > 0 {
        why.push_str(&format!(
            ", {untrusted} untrusted (forged, unsigned, out of scope or future-dated; \
             `holdfast points` shows why)"
        ));
    }
    if report.index_needs_repair {
        why.push_str("; run `holdfast repair index`");
    }
    Error::damaged(what, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_a_rotation_read_every_pack_exactly_once() {
        let ids: Vec<Id> = (0u32..5000)
            .map(|i| Id(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .chain([Id([0; 32]), Id([0xff; 32])])
            .collect();
        for n in [1u32, 3, 4, 7, 10, 40] {
            for id in &ids {
                let hits = (1..=n).filter(|k| in_part(id, *k, n)).count();
                assert_eq!(hits, 1, "{n} parts: pack {id:?} read {hits} times");
            }
            // Each part reads about 1/n.
            let first = ids.iter().filter(|id| in_part(id, 1, n)).count();
            let expect = ids.len() / n as usize;
            assert!(first.abs_diff(expect) <= expect / 4 + 20, "{n}: {first}");
        }
        // A 10 % sample reads about a tenth.
        let read = ids.iter().filter(|id| sample(id, 10.0)).count();
        assert!((400..600).contains(&read), "{read}");
    }
}
