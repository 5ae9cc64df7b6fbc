//! `prune`: return the space of forgotten recovery points, safely while other hosts back up.
//!
//! The algorithm (docs/format.md 13.2 has the safety argument):
//!
//! 1. Start a session of our own; refuse if another prune is running.
//! 2. Finish notices left by earlier prunes (step 5 for each).
//! 3. **Mark.** Walk every recovery point to find the blobs in use. Packs whose blobs are all
//!    unused, packs that no index lists (left by interrupted backups) and packs worth
//!    repacking (unused share at or above the threshold; their used blobs are first written
//!    into new packs) are condemned.
//! 4. Write a notice naming the condemned packs, *then* list the open sessions and record
//!    them in the notice's companion.
//! 5. **Sweep** once each recorded session has ended or been declared abandoned: re-read the
//!    points, rescue any condemned pack that a point now needs, write a consolidated index
//!    without the deleted packs, delete the old index objects, delete the packs, delete the
//!    notice. If sessions are still running after `max_wait`, the notice stays and the next
//!    prune finishes it; backups never wait for a prune.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use holdfast_storage::{Handle, Kind};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::gc::{self, Companion, Notice, Pending};
use crate::id::Id;
use crate::index::{self, IndexedPack};
use crate::pack::PackEntry;
use crate::session::{self, Session, SessionInfo};
use crate::tree::NodeKind;
use crate::vault::Vault;
use crate::walk::{self, Visit};

mod mark;
mod sessions;
mod sweep;
use mark::{References, choose_locations};
use sessions::{Starts, check_other_prunes, cleanup_sessions, wait_for_sessions};
use sweep::sweep;

/// Index objects written by a sweep hold at most this many packs each.
const PACKS_PER_CONSOLIDATED_INDEX: usize = 2048;

/// How `prune` behaves.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Only report what would be done.
    pub dry_run: bool,
    /// Repack a pack when at least this percentage of its stored bytes is unused.
    pub repack_unused_pct: f64,
    /// How long to wait for running sessions before leaving the notice to a later prune.
    pub max_wait: Duration,
    /// A session whose heartbeat does not advance for this long is declared abandoned.
    pub abandon_after: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_unused_pct: 25.0,
            max_wait: Duration::from_secs(600),
            abandon_after: Duration::from_secs(600),
        }
    }
}

/// A session a notice is still waiting for.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Waiting {
    /// Session id.
    pub session: String,
    /// Who runs it, when the start marker is readable.
    pub info: Option<SessionInfo>,
}

/// A notice left for a later prune.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PendingReport {
    /// Notice name.
    pub notice: String,
    /// Packs it condemns.
    pub packs: usize,
    /// Their stored size.
    pub bytes: u64,
    /// Sessions it waits for.
    pub waiting_for: Vec<Waiting>,
}

/// What `prune` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PruneReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Recovery points walked.
    pub points: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Their stored size.
    pub stored_bytes: u64,
    /// Blobs in use by points.
    pub used_blobs: usize,
    /// Packs with no used blob.
    pub unused_packs: usize,
    /// Packs whose used blobs were (or would be) rewritten.
    pub repacked_packs: usize,
    /// Plaintext bytes rewritten by repacking.
    pub repacked_bytes: u64,
    /// Stored packs no index lists.
    pub unindexed_packs: usize,
    /// Condemned packs (or would be) and their size.
    pub condemned_packs: usize,
    /// Their stored size.
    pub condemned_bytes: u64,
    /// Packs deleted by this run (including earlier notices finished now).
    pub deleted_packs: usize,
    /// Stored bytes freed.
    pub freed_bytes: u64,
    /// Condemned packs kept because a point needs a blob that no other pack holds in a
    /// form that authenticates.
    pub rescued_packs: usize,
    /// Index entries that claim a used blob but do not authenticate (forged or damaged;
    /// `repair index` removes them).
    pub forged_locations: usize,
    /// Index objects written / deleted by consolidation.
    pub index_written: usize,
    /// Index objects deleted.
    pub index_deleted: usize,
    /// Sessions declared abandoned.
    pub abandoned_sessions: Vec<String>,
    /// Notices left for a later prune.
    pub pending: Vec<PendingReport>,
}

/// Run prune. `info` describes this process (its session's start marker); `log` receives
/// progress lines.
pub fn prune(
    vault: &Vault,
    opts: &PruneOptions,
    info: &SessionInfo,
    log: &(dyn Fn(&str) + Sync),
) -> Result<PruneReport> {
    let secret = vault.require_full("prune")?.clone();
    let storage = vault.storage().clone();
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let own = if opts.dry_run {
        None
    } else {
        let s = Session::start(storage.clone(), &vault.key_material().public_key(), info)?;
        check_other_prunes(vault, &secret, s.id(), opts.abandon_after)?;
        Some(s)
    };
    let own_id = own.as_ref().map(|s| s.id().to_string()).unwrap_or_default();
    let mut refs = References::default();

    // 2. Finish earlier notices.
    let earlier = gc::list_notices(vault)?;
    if !opts.dry_run {
        for p in earlier.iter() {
            log(&format!("finishing the deletion notice {}", &p.name[..12]));
            finish_notice(vault, p, opts, &own_id, &mut refs, &mut report, log)?;
        }
    }

    // 3. Mark.
    let damage = vault.load_index()?;
    if let Some(d) = damage.first() {
        return Err(Error::damaged(
            &d.object,
            format!("{}; run `holdfast repair index` before pruning", d.reason),
        ));
    }
    let (points, pdamage) = vault.list_points()?;
    if let Some(d) = pdamage.first() {
        return Err(Error::damaged(
            &d.object,
            format!("{}; forget or repair the point before pruning", d.reason),
        ));
    }
    report.points = points.len();
    log(&format!("walking {} recovery points", points.len()));
    refs.add_points(vault, &points)?;
    report.used_blobs = refs.blobs.len();

    let pending_condemned: HashSet<Id> = gc::condemned_packs(vault)?;
    let listed: HashMap<Id, u64> = vault.stored_packs()?;
    // Every record of every pack (nothing an index object says is trusted: any index-key
    // holder can write one, docs/format.md 13.2.3).
    let by_pack = vault.index().entries_by_pack();
    report.packs = by_pack.len();
    report.stored_bytes = by_pack
        .iter()
        .map(|(id, (size, _))| listed.get(id).copied().unwrap_or(*size))
        .sum();

    // Which pack serves each used blob. A blob with locations in several packs is read
    // from them in turn and served by the first location that authenticates, so a forged
    // entry can never make the genuine copy look unused.
    let used_in = choose_locations(vault, &refs.blobs, &pending_condemned, &listed)?;
    report.forged_locations = used_in.forged;
    let mut condemned: Vec<(Id, u64)> = Vec::new();
    let mut repack: Vec<(Id, Vec<PackEntry>)> = Vec::new();
    for (pid, (_, entries)) in &by_pack {
        if pending_condemned.contains(pid) {
            continue;
        }
        let Some(&stored) = listed.get(pid) else {
            continue; // missing pack: verify reports it; nothing to delete
        };
        let mut seen_blob: HashSet<Id> = HashSet::new();
        let used: Vec<PackEntry> = entries
            .iter()
            .filter(|e| used_in.serves(pid, &e.id) && seen_blob.insert(e.id))
            .copied()
            .collect();
        if used.is_empty() {
            report.unused_packs += 1;
            condemned.push((*pid, stored));
            continue;
        }
        let used_stored: u64 = used.iter().map(|e| u64::from(e.length)).sum();
        let all_stored: u64 = stored.saturating_sub(8);
        let unused_pct = if all_stored == 0 {
            0.0
        } else {
            100.0 * all_stored.saturating_sub(used_stored) as f64 / all_stored as f64
        };
        if unused_pct >= opts.repack_unused_pct && unused_pct > 0.0 && used.len() < entries.len() {
            report.repacked_packs += 1;
            report.repacked_bytes += used.iter().map(|e| u64::from(e.raw_len)).sum::<u64>();
            repack.push((*pid, used));
            condemned.push((*pid, stored));
        }
    }
    for (id, size) in &listed {
        if !by_pack.contains_key(id) && !pending_condemned.contains(id) {
            report.unindexed_packs += 1;
            condemned.push((*id, *size));
        }
    }
    report.condemned_packs = condemned.len();
    report.condemned_bytes = condemned.iter().map(|c| c.1).sum();
    if opts.dry_run || condemned.is_empty() {
        if !opts.dry_run {
            cleanup_sessions(vault, &own_id, &report)?;
        }
        if let Some(s) = own {
            s.end();
        }
        return Ok(report);
    }

    // Repack: write the used blobs of the chosen packs into new packs first.
    if !repack.is_empty() {
        log(&format!("repacking {} packs", repack.len()));
        let demote: HashSet<Id> = repack.iter().map(|r| r.0).collect();
        vault.load_index_with(&demote)?;
        let (_, stats) = crate::writer::with_writer(vault, 2, |w| {
            for (_, entries) in &repack {
                for e in entries {
                    if w.known(&e.id) {
                        continue;
                    }
                    let data = vault.read_blob(&e.id)?;
                    w.add(e.ty, &data)?;
                }
            }
            Ok(())
        })?;
        refs.trusted.extend(stats.pack_ids);
    }

    // 4. Notice, then sessions.
    let notice = Notice {
        version: 1,
        packs: condemned.iter().map(|c| c.0.to_hex()).collect(),
        host: info.host.clone(),
        created: info.started,
    };
    let name = gc::write_notice(vault, &notice)?;
    let pending = Pending {
        name,
        notice,
        companion: None,
    };
    finish_notice(vault, &pending, opts, &own_id, &mut refs, &mut report, log)?;
    cleanup_sessions(vault, &own_id, &report)?;
    if let Some(s) = own {
        s.end();
    }
    Ok(report)
}

/// Complete a notice: record sessions if needed, wait for them, sweep.
fn finish_notice(
    vault: &Vault,
    p: &Pending,
    opts: &PruneOptions,
    own: &str,
    refs: &mut References,
    report: &mut PruneReport,
    log: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let storage = vault.storage();
    let companion = match &p.companion {
        Some(c) => c.clone(),
        None => {
            // Listed after the notice exists: every session that could have missed the
            // notice is in this list.
            // Only sessions whose start marker opens are sessions of this vault's keys; a
            // marker family without one (planted) cannot hold back a sweep.
            let secret = vault.require_full("prune")?;
            let mut starts = Starts::default();
            let mut open: Vec<String> = Vec::new();
            for s in session::list(&**storage)?.into_values() {
                if s.sid == own || !s.started {
                    continue;
                }
                if starts.get(vault, secret, &s.sid)?.is_none() {
                    continue;
                }
                if !starts.assess(vault, secret, &s)?.over() {
                    open.push(s.sid);
                }
            }
            let c = Companion {
                notice: p.name.clone(),
                sessions: open,
            };
            gc::write_companion(vault, &c)?;
            c
        }
    };
    let waiting = wait_for_sessions(vault, &companion.sessions, opts, report, log)?;
    if !waiting.is_empty() {
        let secret = vault.require_full("prune")?;
        let sizes: HashMap<String, u64> = storage
            .list(Kind::Pack)?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        report.pending.push(PendingReport {
            notice: p.name.clone(),
            packs: p.notice.packs.len(),
            bytes: p.notice.packs.iter().filter_map(|n| sizes.get(n)).sum(),
            waiting_for: waiting
                .into_iter()
                .map(|sid| Waiting {
                    info: session::read_info(&**storage, secret, &sid),
                    session: sid,
                })
                .collect(),
        });
        return Ok(());
    }
    sweep(vault, p, refs, report, log)
}
