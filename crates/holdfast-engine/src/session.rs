//! Session markers: how running commands announce themselves to garbage collection.
//!
//! A session is a run of a command that relies on the index it loaded (a backup, a copy, a
//! restore). It is a family of create-only objects `sessions/<sid><seq>`: `sid` is 32 random
//! hex digits, `seq` 8 hex digits.
//!
//! | seq | meaning | content |
//! |---|---|---|
//! | `00000000` | start | who and what, sealed to the vault's public key |
//! | `00000001`… | heartbeats, one per interval while the session runs | empty |
//! | `fffffffe` | **claim**: `commit` (the backup is about to write its manifest) or `abandon` (a pruner declared the session dead) | the word |
//! | `ffffffff` | end | empty |
//!
//! The claim is the safety mechanism that makes abandonment clock-free: a pruner that has
//! seen no heartbeat for a while *creates* the claim with `abandon`; a backup about to commit
//! creates it with `commit`. Create-only storage lets exactly one of them win. A backup that
//! loses does not write its manifest. See docs/format.md, section 13.
//!
//! Write-only keys can create sessions; only full keys can read who started them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use holdfast_storage::{ErrorKind as SK, Handle, Kind, Storage};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, PublicKey, SecretKey};
use crate::error::{Error, Result};

/// Sequence number of the claim object.
pub const CLAIM: u32 = 0xffff_fffe;
/// Sequence number of the end object.
pub const END: u32 = 0xffff_ffff;
const AAD: &[u8] = b"holdfast v2 session";

/// The default heartbeat interval; `HOLDFAST_HEARTBEAT_SECS` overrides it.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// Who started a session (sealed in its start object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// What the session does: `backup`, `copy`, `restore`, `verify`, `prune`.
    pub purpose: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Start time on that host, Unix seconds (informational only; nothing depends on it).
    pub started: i64,
}

/// The object name of a session's object number `seq`.
pub fn object_name(sid: &str, seq: u32) -> String {
    format!("{sid}{seq:08x}")
}

/// Split a listed session object name into (sid, seq).
pub fn parse_name(name: &str) -> Option<(&str, u32)> {
    if name.len() != 40 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let (sid, seq) = name.split_at(32);
    Some((sid, u32::from_str_radix(seq, 16).ok()?))
}

/// The interval between heartbeats (from `HOLDFAST_HEARTBEAT_SECS`, default 60 s).
pub fn heartbeat_interval() -> Duration {
    std::env::var("HOLDFAST_HEARTBEAT_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .map_or(HEARTBEAT, Duration::from_secs_f64)
}

struct Beat {
    stop: Mutex<bool>,
    cv: Condvar,
    seq: AtomicU32,
}

/// A running session. Ending it (or dropping it) stops the heartbeat; [`Session::end`] also
/// writes the end marker.
pub struct Session {
    storage: Arc<dyn Storage>,
    sid: String,
    beat: Arc<Beat>,
    thread: Option<std::thread::JoinHandle<()>>,
    ended: AtomicBool,
}

impl Session {
    /// Create the start marker and begin heartbeats. Must happen **before** the index is
    /// loaded (the ordering argument of docs/format.md 13.2).
    pub fn start(
        storage: Arc<dyn Storage>,
        public: &PublicKey,
        info: &SessionInfo,
    ) -> Result<Self> {
        let sid = hex::encode(crypto::random_bytes::<16>());
        let body = serde_json::to_vec(info).map_err(|e| Error::Input(e.to_string()))?;
        let sealed = crypto::seal_to(public, AAD, &body);
        storage.create(&Handle::new(Kind::Session, object_name(&sid, 0)), &sealed)?;
        let beat = Arc::new(Beat {
            stop: Mutex::new(false),
            cv: Condvar::new(),
            seq: AtomicU32::new(0),
        });
        let interval = heartbeat_interval();
        let thread = {
            let beat = beat.clone();
            let storage = storage.clone();
            let sid = sid.clone();
            std::thread::Builder::new()
                .name("holdfast-heartbeat".into())
                .spawn(move || {
                    loop {
                        {
                            let mut stop = beat.stop.lock();
                            if !*stop {
                                beat.cv.wait_for(&mut stop, interval);
                            }
                            if *stop {
                                return;
                            }
                        }
                        let next = beat.seq.load(Ordering::Relaxed) + 1;
                        if next >= CLAIM {
                            return;
                        }
                        let h = Handle::new(Kind::Session, object_name(&sid, next));
                        match storage.create(&h, b"") {
                            Ok(()) => beat.seq.store(next, Ordering::Relaxed),
                            Err(e) if e.kind == SK::AlreadyExists => {
                                beat.seq.store(next, Ordering::Relaxed)
                            }
                            Err(e) => tracing::warn!("session heartbeat failed: {e}"),
                        }
                    }
                })
                .map_err(|e| Error::io("heartbeat thread", e))?
        };
        Ok(Session {
            storage,
            sid,
            beat,
            thread: Some(thread),
            ended: AtomicBool::new(false),
        })
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.sid
    }

    /// Claim the right to commit. Fails if a pruner declared this session abandoned; the
    /// caller must then not write its manifest.
    pub fn claim_commit(&self) -> Result<()> {
        let h = Handle::new(Kind::Session, object_name(&self.sid, CLAIM));
        match self.storage.create(&h, b"commit") {
            Ok(()) => Ok(()),
            Err(e) if e.kind == SK::AlreadyExists => match self.storage.read(&h) {
                Ok(b) if b == b"commit" => Ok(()), // our own retried create
                _ => Err(Error::Input(
                    "a prune declared this run abandoned (no heartbeat for too long); nothing \
                     was committed — run it again"
                        .into(),
                )),
            },
            Err(e) => Err(e.into()),
        }
    }

    fn stop_heartbeat(&mut self) {
        *self.beat.stop.lock() = true;
        self.beat.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stop heartbeats and write the end marker (best effort: a missing end marker only
    /// makes a pruner wait until the session counts as abandoned).
    pub fn end(mut self) {
        self.stop_heartbeat();
        let h = Handle::new(Kind::Session, object_name(&self.sid, END));
        if let Err(e) = self.storage.create(&h, b"")
            && e.kind != SK::AlreadyExists
        {
            tracing::warn!("could not write the session end marker: {e}");
        }
        self.ended.store(true, Ordering::Relaxed);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.ended.load(Ordering::Relaxed) {
            self.stop_heartbeat();
        }
    }
}

/// What a listing says about one session.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// Session id.
    pub sid: String,
    /// Highest heartbeat number seen.
    pub beat: u32,
    /// The claim object exists.
    pub claimed: bool,
    /// The end object exists.
    pub ended: bool,
    /// Whether the start object exists.
    pub started: bool,
    /// Object names of this session.
    pub objects: Vec<String>,
}

/// List all sessions, by id.
pub fn list(storage: &dyn Storage) -> Result<std::collections::BTreeMap<String, SessionState>> {
    let mut out: std::collections::BTreeMap<String, SessionState> = Default::default();
    for o in storage.list(Kind::Session)? {
        let Some((sid, seq)) = parse_name(&o.name) else {
            continue;
        };
        let s = out.entry(sid.to_string()).or_insert_with(|| SessionState {
            sid: sid.to_string(),
            ..Default::default()
        });
        match seq {
            0 => s.started = true,
            CLAIM => s.claimed = true,
            END => s.ended = true,
            n => s.beat = s.beat.max(n),
        }
        s.objects.push(o.name);
    }
    Ok(out)
}

/// Read who started a session (full key).
pub fn read_info(storage: &dyn Storage, secret: &SecretKey, sid: &str) -> Option<SessionInfo> {
    let data = storage
        .read(&Handle::new(Kind::Session, object_name(sid, 0)))
        .ok()?;
    let plain = crypto::open_sealed(secret, AAD, &data).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// Check one stored session object (for `verify`): `Err(reason)` if it is malformed.
/// A vanished object is fine (a prune cleaned it up).
pub fn check_object(
    storage: &dyn Storage,
    secret: &SecretKey,
    name: &str,
) -> std::result::Result<(), String> {
    let Some((_, seq)) = parse_name(name) else {
        return Ok(()); // not a session object name: listings ignore it
    };
    let data = match storage.read(&Handle::new(Kind::Session, name)) {
        Ok(d) => d,
        Err(e) if e.kind == SK::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let ok = match seq {
        0 => crypto::open_sealed(secret, AAD, &data)
            .ok()
            .is_some_and(|p| serde_json::from_slice::<SessionInfo>(&p).is_ok()),
        CLAIM => data == b"commit" || data == b"abandon",
        _ => data.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err("malformed session marker".into())
    }
}

/// Try to declare a session abandoned. Returns `true` if this call's claim won (the session
/// can no longer commit), `false` if the session had already claimed commit.
pub fn abandon(storage: &dyn Storage, sid: &str) -> Result<bool> {
    let h = Handle::new(Kind::Session, object_name(sid, CLAIM));
    match storage.create(&h, b"abandon") {
        Ok(()) => Ok(true),
        Err(e) if e.kind == SK::AlreadyExists => Ok(storage.read(&h)? == b"abandon"),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_storage::memory::MemoryStorage;

    #[test]
    fn names_round_trip() {
        let n = object_name("0123456789abcdef0123456789abcdef", CLAIM);
        assert_eq!(
            parse_name(&n),
            Some(("0123456789abcdef0123456789abcdef", CLAIM))
        );
        assert_eq!(parse_name("00"), None);
    }

    #[test]
    fn commit_and_abandon_exclude_each_other() {
        let st: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let secret = SecretKey::generate();
        let info = SessionInfo {
            purpose: "backup".into(),
            host: "h".into(),
            pid: 1,
            started: 0,
        };
        let a = Session::start(st.clone(), &secret.public(), &info).expect("start");
        assert!(abandon(&*st, a.id()).expect("abandon"));
        assert!(a.claim_commit().is_err());
        a.end();

        let b = Session::start(st.clone(), &secret.public(), &info).expect("start");
        b.claim_commit().expect("claim");
        b.claim_commit().expect("claim again is idempotent");
        assert!(!abandon(&*st, b.id()).expect("abandon"));
        let sid = b.id().to_string();
        b.end();
        let l = list(&*st).expect("list");
        assert!(l[&sid].ended && l[&sid].claimed && l[&sid].started);
        assert_eq!(read_info(&*st, &secret, &sid), Some(info));
    }
}
