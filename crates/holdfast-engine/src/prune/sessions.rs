//! Prune's view of running sessions: only authenticated markers count (docs/format.md
//! 13.2.1). Refusing to run beside another prune, waiting for the sessions a notice recorded,
//! declaring silent ones abandoned, and cleaning up the markers of sessions that are over.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use holdfast_storage::{Handle, Kind};

use super::PruneOptions;
use super::PruneReport;
use crate::error::{Error, Result};
use crate::gc;
use crate::session;
use crate::vault::Vault;

/// Start markers opened so far (full key), by session id.
#[derive(Default)]
pub(super) struct Starts(HashMap<String, Option<session::Opened>>);

impl Starts {
    pub(super) fn get(
        &mut self,
        vault: &Vault,
        secret: &crate::crypto::SecretKey,
        sid: &str,
    ) -> Result<Option<&session::Opened>> {
        if !self.0.contains_key(sid) {
            let o = session::read_start(&**vault.storage(), secret, sid)?;
            self.0.insert(sid.to_string(), o);
        }
        Ok(self.0.get(sid).and_then(Option::as_ref))
    }

    /// The authenticated state of a listed session.
    pub(super) fn assess(
        &mut self,
        vault: &Vault,
        secret: &crate::crypto::SecretKey,
        st: &session::SessionState,
    ) -> Result<session::Assessed> {
        let start = self.get(vault, secret, &st.sid)?;
        session::assess(&**vault.storage(), secret, st, start)
    }
}

/// Refuse to run next to another live prune.
pub(super) fn check_other_prunes(
    vault: &Vault,
    secret: &crate::crypto::SecretKey,
    own: &str,
    abandon_after: Duration,
) -> Result<()> {
    let mut starts = Starts::default();
    let sessions = session::list(&**vault.storage())?;
    for (sid, st) in &sessions {
        if sid == own {
            continue;
        }
        let a = starts.assess(vault, secret, st)?;
        if a.over() || a.claim != session::Claim::None {
            continue;
        }
        if let Some(i) = a.info
            && i.purpose == "prune"
        {
            // A prune that died leaves a session whose heartbeat stops; declare it
            // abandoned if it has not beaten while we watched.
            if !watch_for_life(vault, secret, &mut starts, sid, a.beat, abandon_after)? {
                let start = starts.get(vault, secret, sid)?;
                session::abandon(&**vault.storage(), secret, sid, start)?;
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

/// Watch a session's (authenticated) heartbeat for up to `window`; true if it advanced or
/// ended.
fn watch_for_life(
    vault: &Vault,
    secret: &crate::crypto::SecretKey,
    starts: &mut Starts,
    sid: &str,
    beat: u32,
    window: Duration,
) -> Result<bool> {
    let start = Instant::now();
    loop {
        let st = session::list(&**vault.storage())?;
        let Some(s) = st.get(sid) else {
            return Ok(true);
        };
        let a = starts.assess(vault, secret, s)?;
        if a.over() || a.beat != beat {
            return Ok(true);
        }
        if start.elapsed() >= window {
            return Ok(false);
        }
        std::thread::sleep(poll_interval(window));
    }
}

pub(super) fn poll_interval(window: Duration) -> Duration {
    (window / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

/// Wait until each session has ended or is declared abandoned; returns those still running
/// after `max_wait`.
pub(super) fn wait_for_sessions(
    vault: &Vault,
    sids: &[String],
    opts: &PruneOptions,
    report: &mut PruneReport,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Vec<String>> {
    let storage = vault.storage();
    let secret = vault.require_full("prune")?;
    let mut starts = Starts::default();
    let start = Instant::now();
    // sid -> (last authenticated heartbeat seen, when we saw it change)
    let mut seen: BTreeMap<String, (u32, Instant)> = BTreeMap::new();
    let mut announced = false;
    loop {
        let states = session::list(&**storage)?;
        let mut open = Vec::new();
        for sid in sids {
            let Some(s) = states.get(sid) else {
                continue; // cleaned up: it had ended
            };
            if starts.get(vault, secret, sid)?.is_none() {
                continue; // not a session of this vault's keys (its start does not open)
            }
            let a = starts.assess(vault, secret, s)?;
            if a.over() {
                continue; // ended, or declared abandoned (it can never commit)
            }
            let now = Instant::now();
            let e = seen.entry(sid.clone()).or_insert((a.beat, now));
            if e.0 != a.beat {
                *e = (a.beat, now);
            }
            if now.duration_since(e.1) >= opts.abandon_after {
                if a.claim == session::Claim::Commit {
                    // Claimed commit, then went silent: it has written its manifest or
                    // died. (The residual risk is in docs/format.md 13.2.)
                    report.abandoned_sessions.push(sid.clone());
                    continue;
                }
                let st = starts.get(vault, secret, sid)?;
                if session::abandon(&**storage, secret, sid, st)? {
                    log(&format!(
                        "session {} shows no heartbeat for {:?}: declared abandoned",
                        &sid[..12],
                        opts.abandon_after
                    ));
                    report.abandoned_sessions.push(sid.clone());
                    continue;
                }
                // It claimed commit just now: alive; give it a full window again.
                *e = (a.beat, now);
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

/// Delete the objects of sessions that are over, once no notice needs them. The `abandon`
/// claim of a session that has not ended is kept: it is what stops that session from ever
/// committing, should it only have stalled.
pub(super) fn cleanup_sessions(vault: &Vault, own: &str, report: &PruneReport) -> Result<()> {
    if !report.pending.is_empty() || !gc::list_notices(vault)?.is_empty() {
        return Ok(());
    }
    let storage = vault.storage();
    let secret = vault.require_full("prune")?;
    let mut starts = Starts::default();
    for (sid, s) in session::list(&**storage)? {
        if sid == own {
            continue;
        }
        let genuine = starts.get(vault, secret, &sid)?.is_some();
        let a = starts.assess(vault, secret, &s)?;
        // An abandon claim — or a forged one — is what stops the session from ever
        // committing; it stays as long as the session has not ended.
        let abandoned = matches!(a.claim, session::Claim::Abandon | session::Claim::Forged);
        // Marker families whose start does not open were planted (or are what is left of
        // a cleaned-up session): nothing of theirs can hold anything back.
        let over = !genuine || a.over() || report.abandoned_sessions.contains(&sid);
        if !over {
            continue;
        }
        // Kept for good for a session that did not end: should it only have stalled, the
        // claim is what stops it from committing when it resumes.
        let keep_claim = abandoned && !a.ended;
        let claim = session::object_name(&sid, session::CLAIM);
        let mut objects = s.objects.clone();
        objects.sort(); // the end marker (ffffffff) last
        for o in objects.iter().filter(|o| !(keep_claim && **o == claim)) {
            storage.delete(&Handle::new(Kind::Session, o))?;
        }
    }
    Ok(())
}
