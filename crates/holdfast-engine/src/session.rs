//! Session markers: how running commands announce themselves to garbage collection.
//!
//! A session is a run of a command that relies on the index it loaded (a backup, a copy, a
//! restore). It is a family of create-only objects `sessions/<sid><seq>`: `sid` is 32 random
//! hex digits, `seq` 8 hex digits.
//!
//! | seq | meaning | content |
//! |---|---|---|
//! | `00000000` | start | who and what, and the session's own 32-byte key `k`, sealed to the vault's public key |
//! | `00000001`… | heartbeats, one per interval while the session runs | `BLAKE3-keyed(k, "holdfast v3 heartbeat" ‖ u32 seq)` |
//! | `fffffffe` | **claim**: `commit` (the backup is about to write its manifest) or `abandon` (a pruner declared the session dead) | `commit ‖ BLAKE3-keyed(k, "holdfast v3 commit")`, or `abandon ‖ BLAKE3-keyed(abandon key, sid)` |
//! | `ffffffff` | end | `BLAKE3-keyed(k, "holdfast v3 end")` |
//!
//! The claim is the safety mechanism that makes abandonment clock-free: a pruner that has
//! seen no heartbeat for a while *creates* the claim with `abandon`; a backup about to commit
//! creates it with `commit`. Create-only storage lets exactly one of them win. A backup that
//! loses does not write its manifest. See docs/format.md, section 13.
//!
//! **Authentication** (format version 3). Only the session itself knows `k`, and only full
//! keys can open the start marker to learn it, so nobody else — no write-only key, nobody
//! with mere storage access — can write a heartbeat, commit claim or end marker that a pruner
//! accepts; the abandon key is derived from the vault's X25519 secret, so only full keys can
//! abandon. A pruner ignores markers that do not authenticate. A backup whose claim slot or
//! end marker was taken by someone else never commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use holdfast_storage::{ErrorKind as SK, Handle, Kind, Storage};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use zeroize::Zeroizing;

use crate::crypto::{self, PublicKey, SecretKey};
use crate::error::{Error, Result};

/// Sequence number of the claim object.
pub const CLAIM: u32 = 0xffff_fffe;
/// Sequence number of the end object.
pub const END: u32 = 0xffff_ffff;
const AAD: &[u8] = b"holdfast v2 session";
const COMMIT: &[u8] = b"commit";
const ABANDON: &[u8] = b"abandon";

/// The default heartbeat interval; `HOLDFAST_HEARTBEAT_SECS` overrides it.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// Who started a session (sealed in its start object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
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

/// The sealed content of a start marker: who, and the session's key.
#[derive(Serialize, Deserialize)]
struct StartMarker {
    #[serde(flatten)]
    info: SessionInfo,
    /// The session's key `k`, 64 hex digits.
    key: String,
}

/// The content of heartbeat number `seq` of a session with key `k`.
fn heartbeat_body(k: &[u8; 32], seq: u32) -> [u8; 32] {
    let mut m = b"holdfast v3 heartbeat".to_vec();
    m.extend_from_slice(&seq.to_le_bytes());
    *blake3::keyed_hash(k, &m).as_bytes()
}

/// The content of a `commit` claim.
fn commit_body(k: &[u8; 32]) -> Vec<u8> {
    [
        COMMIT,
        blake3::keyed_hash(k, b"holdfast v3 commit").as_bytes(),
    ]
    .concat()
}

/// The content of an end marker.
fn end_body(k: &[u8; 32]) -> [u8; 32] {
    *blake3::keyed_hash(k, b"holdfast v3 end").as_bytes()
}

/// The content of an `abandon` claim for session `sid`: only full keys can make it.
fn abandon_body(secret: &SecretKey, sid: &str) -> Vec<u8> {
    let key = Zeroizing::new(blake3::derive_key(
        "holdfast v3 session abandon key",
        &secret.0,
    ));
    [ABANDON, blake3::keyed_hash(&key, sid.as_bytes()).as_bytes()].concat()
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
    key: Arc<Zeroizing<[u8; 32]>>,
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
        let key = Arc::new(Zeroizing::new(crypto::random_bytes::<32>()));
        let start = Zeroizing::new(
            serde_json::to_vec(&StartMarker {
                info: info.clone(),
                key: hex::encode(**key),
            })
            .map_err(|e| Error::Input(e.to_string()))?,
        );
        let sealed = crypto::seal_to(public, AAD, &start);
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
            let key = key.clone();
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
                        match storage.create(&h, &heartbeat_body(&key, next)) {
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
            key,
            beat,
            thread: Some(thread),
            ended: AtomicBool::new(false),
        })
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.sid
    }

    /// Claim the right to commit. Fails if a pruner declared this session abandoned, or if
    /// anyone else took its claim or ended it (forged markers): the caller must then not
    /// write its manifest.
    pub fn claim_commit(&self) -> Result<()> {
        let ended_behind_our_back = || {
            Error::Session(
                "this run's session was ended by someone else (a forged end marker); nothing \
                 was committed — run it again, and check who can write to the vault"
                    .into(),
            )
        };
        let end = Handle::new(Kind::Session, object_name(&self.sid, END));
        match self.storage.read(&end) {
            Ok(_) => return Err(ended_behind_our_back()),
            Err(e) if e.kind == SK::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let h = Handle::new(Kind::Session, object_name(&self.sid, CLAIM));
        let mine = commit_body(&self.key);
        match self.storage.create(&h, &mine) {
            Ok(()) => {}
            Err(e) if e.kind == SK::AlreadyExists => {
                let b = self.storage.read(&h)?;
                if b != mine {
                    return Err(Error::Session(if b.starts_with(ABANDON) {
                        "a prune declared this run abandoned (no heartbeat for too long); \
                         nothing was committed — run it again"
                            .into()
                    } else {
                        "this run's commit claim was taken by someone else (a forged claim); \
                         nothing was committed — run it again, and check who can write to the \
                         vault"
                            .into()
                    }));
                }
            }
            Err(e) => return Err(e.into()),
        }
        // An end marker created between the check above and our claim: still not ours.
        match self.storage.read(&end) {
            Ok(_) => Err(ended_behind_our_back()),
            Err(e) if e.kind == SK::NotFound => Ok(()),
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
        if let Err(e) = self.storage.create(&h, &end_body(&self.key))
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

/// What a listing says about one session (names only: nothing here is authenticated).
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// Session id.
    pub sid: String,
    /// Highest heartbeat number listed.
    pub beat: u32,
    /// The claim object exists.
    pub claimed: bool,
    /// The end object exists.
    pub ended: bool,
    /// Whether the start object exists.
    pub started: bool,
    /// Heartbeat numbers listed, ascending.
    pub beats: Vec<u32>,
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
            n => {
                s.beat = s.beat.max(n);
                s.beats.push(n);
            }
        }
        s.objects.push(o.name);
    }
    for s in out.values_mut() {
        s.beats.sort_unstable();
    }
    Ok(out)
}

/// A session's start marker, opened (full key).
pub struct Opened {
    /// Who started it.
    pub info: SessionInfo,
    key: Zeroizing<[u8; 32]>,
}

/// Read and open a session's start marker (full key). `Ok(None)` when it is missing or does
/// not open (not a session this vault's keys started); storage errors are errors.
pub fn read_start(storage: &dyn Storage, secret: &SecretKey, sid: &str) -> Result<Option<Opened>> {
    let data = match storage.read(&Handle::new(Kind::Session, object_name(sid, 0))) {
        Ok(d) => d,
        Err(e) if matches!(e.kind, SK::NotFound | SK::Permanent) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Ok(plain) = crypto::open_sealed(secret, AAD, &data).map(Zeroizing::new) else {
        return Ok(None);
    };
    let Ok(m) = serde_json::from_slice::<StartMarker>(&plain) else {
        return Ok(None);
    };
    let mut key = Zeroizing::new([0u8; 32]);
    if hex::decode_to_slice(&m.key, &mut *key).is_err() {
        return Ok(None);
    }
    Ok(Some(Opened { info: m.info, key }))
}

/// Read who started a session (full key).
pub fn read_info(storage: &dyn Storage, secret: &SecretKey, sid: &str) -> Option<SessionInfo> {
    read_start(storage, secret, sid)
        .ok()
        .flatten()
        .map(|o| o.info)
}

/// What a session's claim says, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// No claim.
    None,
    /// The session claimed commit (authenticated with its key).
    Commit,
    /// A full key declared it abandoned (authenticated).
    Abandon,
    /// The claim slot is taken by something that does not authenticate: the session can
    /// never commit (its own claim would fail), so it counts as abandoned.
    Forged,
}

/// A session as a full key sees it: only authenticated markers count.
#[derive(Debug, Clone)]
pub struct Assessed {
    /// Who started it; `None` when the start marker is missing or does not open (then no
    /// other marker of the session can be authenticated, and it is not a session of this
    /// vault's keys).
    pub info: Option<SessionInfo>,
    /// Highest heartbeat number that authenticates (0 when none).
    pub beat: u32,
    /// The claim.
    pub claim: Claim,
    /// An end marker that authenticates exists.
    pub ended: bool,
    /// Markers that exist but do not authenticate (forged or damaged).
    pub forged: Vec<String>,
}

impl Assessed {
    /// Over: ended, abandoned, or unable to commit ever again.
    pub fn over(&self) -> bool {
        self.ended || matches!(self.claim, Claim::Abandon | Claim::Forged)
    }
}

fn read_opt(storage: &dyn Storage, name: &str) -> Result<Option<Vec<u8>>> {
    match storage.read(&Handle::new(Kind::Session, name)) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind == SK::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Heartbeats read per assessment at most (from the highest down): forged heartbeats
/// beyond this only hide a session's life, which costs that session (declared abandoned,
/// it cannot commit), never data.
const BEATS_CHECKED: usize = 8;

/// Authenticate a listed session's markers (full key). `start` is its opened start marker
/// (from [`read_start`], cached by callers that poll).
pub fn assess(
    storage: &dyn Storage,
    secret: &SecretKey,
    st: &SessionState,
    start: Option<&Opened>,
) -> Result<Assessed> {
    let mut out = Assessed {
        info: start.map(|o| o.info.clone()),
        beat: 0,
        claim: Claim::None,
        ended: false,
        forged: Vec::new(),
    };
    if st.claimed {
        let name = object_name(&st.sid, CLAIM);
        if let Some(b) = read_opt(storage, &name)? {
            out.claim = if b == abandon_body(secret, &st.sid) {
                Claim::Abandon
            } else if start.is_some_and(|o| b == commit_body(&o.key)) {
                Claim::Commit
            } else {
                out.forged.push(name);
                Claim::Forged
            };
        }
    }
    let Some(o) = start else {
        return Ok(out);
    };
    if st.ended {
        let name = object_name(&st.sid, END);
        match read_opt(storage, &name)? {
            Some(b) if b == end_body(&o.key) => out.ended = true,
            Some(_) => out.forged.push(name),
            None => {}
        }
    }
    for &n in st.beats.iter().rev().take(BEATS_CHECKED) {
        let name = object_name(&st.sid, n);
        match read_opt(storage, &name)? {
            Some(b) if b == heartbeat_body(&o.key, n) => {
                out.beat = n;
                break;
            }
            Some(_) => out.forged.push(name),
            None => {}
        }
    }
    Ok(out)
}

/// Check the markers of every session (for `verify`): the objects that are malformed or do
/// not authenticate, with the reason.
pub fn check_all(storage: &dyn Storage, secret: &SecretKey) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for st in list(storage)?.values() {
        if !st.started {
            // What is left of a session a prune cleaned up (a tombstone claim, heartbeats a
            // stalled session wrote after it was abandoned), or a planted family: nothing
            // here can be authenticated, and nothing here counts (a prune deletes it).
            continue;
        }
        let start = read_start(storage, secret, &st.sid)?;
        if st.started && start.is_none() {
            out.push((
                Handle::new(Kind::Session, object_name(&st.sid, 0)).path(),
                "session start marker does not open (not written with this vault's keys)".into(),
            ));
        }
        let a = assess(storage, secret, st, start.as_ref())?;
        let mut forged = a.forged;
        if let Some(o) = &start {
            // Heartbeats below the authenticated one are not read by `assess`: check them.
            for &n in st.beats.iter().filter(|&&n| n < a.beat) {
                let name = object_name(&st.sid, n);
                if read_opt(storage, &name)?.is_some_and(|b| b != heartbeat_body(&o.key, n)) {
                    forged.push(name);
                }
            }
        }
        forged.sort();
        forged.dedup();
        for f in forged {
            out.push((
                Handle::new(Kind::Session, &f).path(),
                "session marker does not authenticate (forged or damaged)".into(),
            ));
        }
    }
    Ok(out)
}

/// Try to declare a session abandoned (full key). Returns `true` if the session can no
/// longer commit — this call's claim won, or the slot already held an abandon claim or a
/// forged one — and `false` if the session had claimed commit.
pub fn abandon(
    storage: &dyn Storage,
    secret: &SecretKey,
    sid: &str,
    start: Option<&Opened>,
) -> Result<bool> {
    let h = Handle::new(Kind::Session, object_name(sid, CLAIM));
    match storage.create(&h, &abandon_body(secret, sid)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind == SK::AlreadyExists => {
            let b = storage.read(&h)?;
            Ok(start.is_none_or(|o| b != commit_body(&o.key)))
        }
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
        let start = read_start(&*st, &secret, a.id())
            .expect("read")
            .expect("opens");
        assert!(abandon(&*st, &secret, a.id(), Some(&start)).expect("abandon"));
        assert!(a.claim_commit().is_err());
        a.end();

        let b = Session::start(st.clone(), &secret.public(), &info).expect("start");
        b.claim_commit().expect("claim");
        b.claim_commit().expect("claim again is idempotent");
        let start = read_start(&*st, &secret, b.id())
            .expect("read")
            .expect("opens");
        assert!(!abandon(&*st, &secret, b.id(), Some(&start)).expect("abandon"));
        let sid = b.id().to_string();
        b.end();
        let l = list(&*st).expect("list");
        assert!(l[&sid].ended && l[&sid].claimed && l[&sid].started);
        assert_eq!(read_info(&*st, &secret, &sid), Some(info));
        let a = assess(&*st, &secret, &l[&sid], Some(&start)).expect("assess");
        assert!(
            a.ended && a.claim == Claim::Commit && a.forged.is_empty(),
            "{a:?}"
        );
        assert!(check_all(&*st, &secret).expect("check").is_empty());
    }

    fn info() -> SessionInfo {
        SessionInfo {
            purpose: "backup".into(),
            host: "h".into(),
            pid: 1,
            started: 0,
        }
    }

    #[test]
    fn forged_markers_do_not_count_and_stop_the_commit() {
        let st: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let secret = SecretKey::generate();
        // A forged (empty, as format 2 wrote them) end marker: the pruner does not count the
        // session as ended, and the session refuses to commit.
        let a = Session::start(st.clone(), &secret.public(), &info()).expect("start");
        st.create(&Handle::new(Kind::Session, object_name(a.id(), END)), b"")
            .expect("forge");
        let l = list(&*st).expect("list");
        let start = read_start(&*st, &secret, a.id())
            .expect("read")
            .expect("opens");
        let v = assess(&*st, &secret, &l[a.id()], Some(&start)).expect("assess");
        assert!(!v.ended && !v.over() && v.forged.len() == 1, "{v:?}");
        let e = a.claim_commit().expect_err("must not commit");
        assert!(e.to_string().contains("ended by someone else"), "{e}");
        assert!(!check_all(&*st, &secret).expect("check").is_empty());

        // A forged claim: the session can never commit, so it counts as over.
        let b = Session::start(st.clone(), &secret.public(), &info()).expect("start");
        st.create(
            &Handle::new(Kind::Session, object_name(b.id(), CLAIM)),
            b"commit",
        )
        .expect("forge");
        assert!(b.claim_commit().is_err());
        let l = list(&*st).expect("list");
        let start = read_start(&*st, &secret, b.id())
            .expect("read")
            .expect("opens");
        let v = assess(&*st, &secret, &l[b.id()], Some(&start)).expect("assess");
        assert_eq!(v.claim, Claim::Forged);
        assert!(v.over());

        // An abandon claim made without the full key is forged too, and forged heartbeats
        // do not count as life.
        let c = Session::start(st.clone(), &secret.public(), &info()).expect("start");
        st.create(&Handle::new(Kind::Session, object_name(c.id(), 7)), b"")
            .expect("forge");
        let l = list(&*st).expect("list");
        let start = read_start(&*st, &secret, c.id())
            .expect("read")
            .expect("opens");
        let v = assess(&*st, &secret, &l[c.id()], Some(&start)).expect("assess");
        assert_eq!(v.beat, 0);
        assert_eq!(v.claim, Claim::None);
    }
}
