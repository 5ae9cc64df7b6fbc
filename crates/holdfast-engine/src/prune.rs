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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    /// Session id.
    pub session: String,
    /// Who runs it, when the start marker is readable.
    pub info: Option<SessionInfo>,
}

/// A notice left for a later prune.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Default, Serialize)]
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
    /// Condemned packs kept because a point created meanwhile needs them.
    pub rescued_packs: usize,
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

    let (objects, _, _) = vault.read_index_objects()?;
    let pending_condemned: HashSet<Id> = gc::condemned_packs(vault)?;
    let mut packs: Vec<IndexedPack> = Vec::new();
    let mut seen_pack: HashSet<Id> = HashSet::new();
    for (_, ps) in objects {
        for p in ps {
            if seen_pack.insert(p.id) {
                packs.push(p);
            }
        }
    }
    let listed: HashMap<Id, u64> = storage
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size)))
        .collect();
    report.packs = packs.len();
    report.stored_bytes = packs.iter().map(|p| p.size).sum();

    // One canonical location per used blob: the first pack (in index order) holding it.
    let mut canonical: HashMap<Id, Id> = HashMap::new();
    for p in packs.iter().filter(|p| !pending_condemned.contains(&p.id)) {
        for e in &p.entries {
            if refs.blobs.contains(&e.id) {
                canonical.entry(e.id).or_insert(p.id);
            }
        }
    }
    let mut condemned: Vec<(Id, u64)> = Vec::new();
    let mut repack: Vec<(Id, Vec<PackEntry>)> = Vec::new();
    for p in packs.iter().filter(|p| !pending_condemned.contains(&p.id)) {
        if !listed.contains_key(&p.id) {
            continue; // missing pack: verify reports it; nothing to delete
        }
        let used: Vec<PackEntry> = p
            .entries
            .iter()
            .filter(|e| canonical.get(&e.id) == Some(&p.id))
            .copied()
            .collect();
        if used.is_empty() {
            report.unused_packs += 1;
            condemned.push((p.id, p.size));
            continue;
        }
        let used_stored: u64 = used.iter().map(|e| u64::from(e.length)).sum();
        let all_stored: u64 = p.entries.iter().map(|e| u64::from(e.length)).sum();
        let unused_pct = if all_stored == 0 {
            0.0
        } else {
            100.0 * (all_stored - used_stored) as f64 / all_stored as f64
        };
        if unused_pct >= opts.repack_unused_pct && unused_pct > 0.0 {
            report.repacked_packs += 1;
            report.repacked_bytes += used.iter().map(|e| u64::from(e.raw_len)).sum::<u64>();
            repack.push((p.id, used));
            condemned.push((p.id, p.size));
        }
    }
    for (id, size) in &listed {
        if !seen_pack.contains(id) && !pending_condemned.contains(id) {
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
        crate::writer::with_writer(vault, 2, |w| {
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

/// Refuse to run next to another live prune.
fn check_other_prunes(
    vault: &Vault,
    secret: &crate::crypto::SecretKey,
    own: &str,
    abandon_after: Duration,
) -> Result<()> {
    let sessions = session::list(&**vault.storage())?;
    for (sid, st) in &sessions {
        if sid == own || st.ended || st.claimed {
            continue;
        }
        if let Some(i) = session::read_info(&**vault.storage(), secret, sid)
            && i.purpose == "prune"
        {
            // A prune that died leaves a session whose heartbeat stops; declare it
            // abandoned if it has not beaten while we watched.
            if !watch_for_life(vault, sid, st.beat, abandon_after)? {
                session::abandon(&**vault.storage(), sid)?;
                continue;
            }
            return Err(Error::Locked(format!(
                "another prune is running (host {}, pid {}); run prune again when it is done",
                i.host, i.pid
            )));
        }
    }
    Ok(())
}

/// Watch a session's heartbeat for up to `window`; true if it advanced or ended.
fn watch_for_life(vault: &Vault, sid: &str, beat: u32, window: Duration) -> Result<bool> {
    let start = Instant::now();
    loop {
        let st = session::list(&**vault.storage())?;
        match st.get(sid) {
            None => return Ok(true),
            Some(s) if s.ended || s.beat != beat => return Ok(true),
            _ => {}
        }
        if start.elapsed() >= window {
            return Ok(false);
        }
        std::thread::sleep(poll_interval(window));
    }
}

fn poll_interval(window: Duration) -> Duration {
    (window / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
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
            let open: Vec<String> = session::list(&**storage)?
                .into_values()
                .filter(|s| !s.ended && s.sid != own)
                .map(|s| s.sid)
                .collect();
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

/// Wait until each session has ended or is declared abandoned; returns those still running
/// after `max_wait`.
fn wait_for_sessions(
    vault: &Vault,
    sids: &[String],
    opts: &PruneOptions,
    report: &mut PruneReport,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Vec<String>> {
    let storage = vault.storage();
    let start = Instant::now();
    // sid -> (last heartbeat seen, when we saw it change)
    let mut seen: BTreeMap<String, (u32, Instant)> = BTreeMap::new();
    let mut announced = false;
    loop {
        let states = session::list(&**storage)?;
        let mut open = Vec::new();
        for sid in sids {
            let Some(s) = states.get(sid) else {
                continue; // cleaned up: it had ended
            };
            if s.ended
                || (s.claimed && claim_of(vault, sid).as_deref() == Some(b"abandon".as_slice()))
            {
                continue; // over, or declared abandoned (it can never commit)
            }
            let now = Instant::now();
            let e = seen.entry(sid.clone()).or_insert((s.beat, now));
            if e.0 != s.beat {
                *e = (s.beat, now);
            }
            if now.duration_since(e.1) >= opts.abandon_after {
                if s.claimed {
                    // Claimed commit, then went silent: it has written its manifest or
                    // died. (The residual risk is in docs/format.md 13.2.)
                    report.abandoned_sessions.push(sid.clone());
                    continue;
                }
                if session::abandon(&**storage, sid)? {
                    log(&format!(
                        "session {} shows no heartbeat for {:?}: declared abandoned",
                        &sid[..12],
                        opts.abandon_after
                    ));
                    report.abandoned_sessions.push(sid.clone());
                }
                continue;
            }
            open.push(sid.clone());
        }
        if open.is_empty() {
            return Ok(open);
        }
        if start.elapsed() >= opts.max_wait {
            return Ok(open);
        }
        if !announced {
            log(&format!(
                "waiting for {} running session(s) that may use the condemned packs",
                open.len()
            ));
            announced = true;
        }
        std::thread::sleep(poll_interval(opts.abandon_after));
    }
}

/// The blobs used by recovery points, accumulated across the run.
#[derive(Default)]
struct References {
    points: HashSet<Id>,
    trees: HashSet<Id>,
    blobs: HashSet<Id>,
}

impl References {
    fn add_points(&mut self, vault: &Vault, points: &[(Id, crate::point::Manifest)]) -> Result<()> {
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

/// Delete what a notice condemns, except what points need now.
fn sweep(
    vault: &Vault,
    p: &Pending,
    refs: &mut References,
    report: &mut PruneReport,
    log: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let storage = vault.storage();
    // Points now: every session that could use condemned packs has ended, so its point (if
    // any) is visible.
    vault.load_index()?;
    let (points, damage) = vault.list_points()?;
    if let Some(d) = damage.first() {
        return Err(Error::damaged(
            &d.object,
            format!("{}; cannot decide what is safe to delete", d.reason),
        ));
    }
    refs.add_points(vault, &points)?;

    let condemned: HashSet<Id> = p
        .notice
        .packs
        .iter()
        .filter_map(|h| Id::from_hex(h))
        .collect();
    let (objects, idx_damage, _) = vault.read_index_objects()?;
    if let Some(d) = idx_damage.first() {
        return Err(Error::damaged(
            &d.object,
            format!("{}; run `holdfast repair index` before pruning", d.reason),
        ));
    }
    let listed: HashMap<Id, u64> = storage
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size)))
        .collect();
    let mut entries_of: HashMap<Id, &IndexedPack> = HashMap::new();
    let mut safe: HashSet<Id> = HashSet::new();
    for (_, ps) in &objects {
        for pk in ps {
            entries_of.entry(pk.id).or_insert(pk);
            if !condemned.contains(&pk.id) && listed.contains_key(&pk.id) {
                safe.extend(pk.entries.iter().map(|e| e.id));
            }
        }
    }
    let mut delete: Vec<(Id, u64)> = Vec::new();
    for id in &condemned {
        let Some(&size) = listed.get(id) else {
            continue; // already gone
        };
        let entries: Vec<Id> = match entries_of.get(id) {
            Some(pk) => pk.entries.iter().map(|e| e.id).collect(),
            None => unindexed_entries(vault, id, size),
        };
        let needed = entries
            .iter()
            .any(|b| refs.blobs.contains(b) && !safe.contains(b));
        if needed {
            report.rescued_packs += 1;
        } else {
            delete.push((*id, size));
        }
    }
    let doomed: HashSet<Id> = delete.iter().map(|d| d.0).collect();

    // Consolidated index without the doomed packs, before anything is deleted.
    let touched = objects
        .iter()
        .any(|(_, ps)| ps.iter().any(|pk| doomed.contains(&pk.id)));
    if touched || objects.len() > 1 {
        let mut keep: Vec<IndexedPack> = Vec::new();
        let mut seen: HashSet<Id> = HashSet::new();
        for (_, ps) in &objects {
            for pk in ps {
                if !doomed.contains(&pk.id) && seen.insert(pk.id) {
                    keep.push(pk.clone());
                }
            }
        }
        let mut written: HashSet<String> = HashSet::new();
        for chunk in keep.chunks(PACKS_PER_CONSOLIDATED_INDEX) {
            let data = index::encode(chunk, &vault.key_material().index_key);
            let name = Id::of_stored(&data).to_hex();
            crate::vault::create_idempotent(&**storage, &Handle::new(Kind::Index, &name), &data)?;
            written.insert(name);
            report.index_written += 1;
        }
        for (name, _) in &objects {
            if !written.contains(name) {
                storage.delete(&Handle::new(Kind::Index, name))?;
                report.index_deleted += 1;
            }
        }
    }
    log(&format!("deleting {} packs", delete.len()));
    let results: Vec<holdfast_storage::Result<()>> = delete
        .par_iter()
        .map(|(id, _)| storage.delete(&Handle::new(Kind::Pack, id.to_hex())))
        .collect();
    for r in results {
        r?;
    }
    report.deleted_packs += delete.len();
    report.freed_bytes += delete.iter().map(|d| d.1).sum::<u64>();
    gc::remove_notice(&**storage, &p.name)?;
    Ok(())
}

/// The blob ids of a pack no index lists, from its header (empty if unreadable: such a pack
/// cannot serve any point).
fn unindexed_entries(vault: &Vault, id: &Id, size: u64) -> Vec<Id> {
    let h = Handle::new(Kind::Pack, id.to_hex());
    let Ok(data) = vault.storage().read(&h) else {
        return Vec::new();
    };
    if data.len() as u64 != size {
        return Vec::new();
    }
    match crate::pack::read_header(&data, &vault.key_material().index_key) {
        Ok((_, entries)) => entries.into_iter().map(|e| e.id).collect(),
        Err(_) => Vec::new(),
    }
}

/// The content of a session's claim object, if readable.
fn claim_of(vault: &Vault, sid: &str) -> Option<Vec<u8>> {
    vault
        .storage()
        .read(&Handle::new(
            Kind::Session,
            session::object_name(sid, session::CLAIM),
        ))
        .ok()
}

/// Delete the objects of sessions that are over, once no notice needs them. The `abandon`
/// claim of a session that has not ended is kept: it is what stops that session from ever
/// committing, should it only have stalled.
fn cleanup_sessions(vault: &Vault, own: &str, report: &PruneReport) -> Result<()> {
    if !report.pending.is_empty() || !gc::list_notices(vault)?.is_empty() {
        return Ok(());
    }
    let storage = vault.storage();
    for (sid, s) in session::list(&**storage)? {
        if sid == own {
            continue;
        }
        let abandoned =
            s.claimed && claim_of(vault, &sid).as_deref() == Some(b"abandon".as_slice());
        let over = s.ended || abandoned || report.abandoned_sessions.contains(&sid);
        if !over {
            continue;
        }
        let keep_claim = abandoned && !s.ended;
        let claim = session::object_name(&sid, session::CLAIM);
        let mut objects = s.objects.clone();
        objects.sort(); // the end marker (ffffffff) last
        for o in objects.iter().filter(|o| !(keep_claim && **o == claim)) {
            storage.delete(&Handle::new(Kind::Session, o))?;
        }
    }
    Ok(())
}
