//! The write path: blobs → compress → encrypt → pack → upload → index.
//!
//! [`BlobWriter`] is shared by all worker threads of a backup. Each thread takes a pack
//! builder from a pool (so encryption runs in parallel, one data key per pack), and finished
//! packs go through a bounded channel to uploader threads, overlapping CPU work with I/O.
//!
//! Write ordering (the crash-safety argument, docs/format.md): a pack is uploaded before any
//! index object lists it; index objects are written before the manifest that needs them. A
//! crash therefore leaves at worst unreferenced packs, never a point with missing data.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use holdfast_storage::{ErrorKind as SK, Handle, Kind};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{self, IndexedPack};
use crate::pack::{BlobType, FinishedPack, PackBuilder};
use crate::vault::Vault;

/// Index objects are written every this many packs, so a long backup that crashes keeps most
/// of its uploaded data discoverable by the next run.
const PACKS_PER_INDEX: usize = 64;

/// Counters of a writer.
#[derive(Debug, Default, Clone)]
pub struct WriteStats {
    /// New blobs stored.
    pub blobs_added: u64,
    /// Their plaintext size.
    pub bytes_added: u64,
    /// Their stored size.
    pub stored_added: u64,
    /// Packs uploaded.
    pub packs: u64,
    /// The names of the packs this writer created and indexed (their bytes are known to be
    /// genuine: this process wrote them).
    pub pack_ids: Vec<Id>,
}

struct Shared<'v> {
    vault: &'v Vault,
    pending: Mutex<Vec<IndexedPack>>,
    written: Mutex<Vec<IndexedPack>>,
    error: Mutex<Option<Error>>,
    packs: AtomicU64,
    /// Buffers of uploaded packs, reused for new ones (fewer large allocations).
    free: Mutex<Vec<Vec<u8>>>,
}

impl Shared<'_> {
    fn upload(&self, p: FinishedPack) -> Result<()> {
        let h = Handle::new(Kind::Pack, p.id.to_hex());
        match self.vault.storage().create(&h, &p.bytes) {
            Ok(()) => {}
            Err(e) if e.kind == SK::AlreadyExists => {} // content-addressed: same bytes
            Err(e) => return Err(e.into()),
        }
        self.packs.fetch_add(1, Ordering::Relaxed);
        let batch = {
            let mut pending = self.pending.lock();
            pending.push(IndexedPack {
                id: p.id,
                size: p.bytes.len() as u64,
                wrapped: p.wrapped,
                entries: p.entries,
            });
            let mut free = self.free.lock();
            if free.is_empty() {
                free.push(p.bytes);
            }
            if pending.len() >= PACKS_PER_INDEX {
                std::mem::take(&mut *pending)
            } else {
                Vec::new()
            }
        };
        self.write_index(batch)
    }

    fn write_index(&self, batch: Vec<IndexedPack>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let data = index::encode(&batch, &self.vault.key_material().index_key);
        let h = Handle::new(Kind::Index, Id::of_stored(&data).to_hex());
        match self.vault.storage().create(&h, &data) {
            Ok(()) => {}
            Err(e) if e.kind == SK::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        self.written.lock().extend(batch);
        Ok(())
    }
}

/// Adds blobs to a vault. Create one per backup; call [`BlobWriter::finish`] before saving
/// the manifest that references the blobs.
pub struct BlobWriter<'v> {
    shared: &'v Shared<'v>,
    tx: Option<Sender<FinishedPack>>,
    pools: [Mutex<Vec<PackBuilder>>; 2],
    seen: Vec<Mutex<HashSet<Id>>>,
    level: i32,
    target: usize,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    stored_added: AtomicU64,
}

/// Run `f` with a [`BlobWriter`] on `vault`, with `uploaders` upload threads, then finish it.
pub fn with_writer<T>(
    vault: &Vault,
    uploaders: usize,
    f: impl FnOnce(&BlobWriter<'_>) -> Result<T>,
) -> Result<(T, WriteStats)> {
    let shared = Shared {
        vault,
        pending: Mutex::new(Vec::new()),
        written: Mutex::new(Vec::new()),
        error: Mutex::new(None),
        packs: AtomicU64::new(0),
        free: Mutex::new(Vec::new()),
    };
    std::thread::scope(|s| {
        let (tx, rx): (Sender<FinishedPack>, Receiver<FinishedPack>) =
            bounded(usize::from(uploaders > 1));
        let handles: Vec<_> = (0..uploaders.max(1))
            .map(|_| {
                let rx = rx.clone();
                let shared = &shared;
                s.spawn(move || {
                    for p in rx {
                        if shared.error.lock().is_some() {
                            continue; // drain
                        }
                        if let Err(e) = shared.upload(p) {
                            shared.error.lock().get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        let w = BlobWriter {
            shared: &shared,
            tx: Some(tx),
            pools: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
            seen: (0..16).map(|_| Mutex::new(HashSet::new())).collect(),
            level: vault.config().zstd_level,
            target: vault.config().pack_target as usize,
            blobs_added: AtomicU64::new(0),
            bytes_added: AtomicU64::new(0),
            stored_added: AtomicU64::new(0),
        };
        let out = f(&w);
        let stats = w.close(handles);
        let out = out?;
        let stats = stats?;
        Ok((out, stats))
    })
}

impl<'v> BlobWriter<'v> {
    /// The vault written to.
    pub fn vault(&self) -> &'v Vault {
        self.shared.vault
    }

    /// Whether a blob is known, in the vault or in this session.
    pub fn known(&self, id: &Id) -> bool {
        self.shared.vault.index().contains(id)
            || self.seen[(id.0[0] & 15) as usize].lock().contains(id)
    }

    /// Store a blob unless it is known; returns its id and whether it was new.
    pub fn add(&self, ty: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        if data.len() > (u32::MAX as usize) - 1024 {
            return Err(Error::Input(format!(
                "a {ty:?} blob of {} bytes exceeds the 4 GiB limit of the format",
                data.len()
            )));
        }
        let id = self.shared.vault.blob_id(data);
        if self.shared.vault.index().contains(&id)
            || !self.seen[(id.0[0] & 15) as usize].lock().insert(id)
        {
            return Ok((id, false));
        }
        if let Some(e) = self.shared.error.lock().take() {
            return Err(e);
        }
        let pool = &self.pools[ty as usize];
        let popped = pool.lock().pop();
        let mut pb = match popped {
            Some(pb) => pb,
            None => {
                let public = self.shared.vault.key_material().public_key();
                match self.shared.free.lock().pop() {
                    Some(buf) => PackBuilder::with_buffer(&public, buf),
                    None => PackBuilder::new(&public, self.target + (1 << 20)),
                }
            }
        };
        // Seal the pack first if this blob would make its buffer grow past the target: a
        // grown buffer doubles, and every pack in flight costs its capacity in memory.
        let worst = data.len() + data.len() / 128 + 1024;
        if !pb.is_empty() && pb.len() + worst > self.target + (1 << 20) {
            let public = self.shared.vault.key_material().public_key();
            let buf = self.shared.free.lock().pop();
            let full = std::mem::replace(
                &mut pb,
                match buf {
                    Some(b) => PackBuilder::with_buffer(&public, b),
                    None => PackBuilder::new(&public, self.target + (1 << 20)),
                },
            );
            self.send(full.finish(&self.shared.vault.key_material().index_key))?;
        }
        let stored = pb.add_plain(ty, id, data, self.level);
        if pb.len() >= self.target {
            let fp = pb.finish(&self.shared.vault.key_material().index_key);
            self.send(fp)?;
        } else {
            pool.lock().push(pb);
        }
        self.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.stored_added.fetch_add(stored, Ordering::Relaxed);
        Ok((id, true))
    }

    fn send(&self, fp: FinishedPack) -> Result<()> {
        let tx = self.tx.as_ref().expect("sender lives until close");
        tx.send(fp)
            .map_err(|_| Error::Internal("the upload threads stopped".into()))
    }

    fn close(mut self, handles: Vec<std::thread::ScopedJoinHandle<'_, ()>>) -> Result<WriteStats> {
        let ik = &self.shared.vault.key_material().index_key;
        let mut res = Ok(());
        for pool in &self.pools {
            let builders: Vec<_> = std::mem::take(&mut *pool.lock());
            for pb in builders {
                if !pb.is_empty() && res.is_ok() {
                    res = self.send(pb.finish(ik));
                }
            }
        }
        drop(self.tx.take());
        for h in handles {
            let _ = h.join();
        }
        res?;
        if let Some(e) = self.shared.error.lock().take() {
            return Err(e);
        }
        let rest = std::mem::take(&mut *self.shared.pending.lock());
        self.shared.write_index(rest)?;
        let written = std::mem::take(&mut *self.shared.written.lock());
        let pack_ids = written.iter().map(|p| p.id).collect();
        self.shared.vault.index_mut().add(written);
        Ok(WriteStats {
            blobs_added: self.blobs_added.load(Ordering::Relaxed),
            bytes_added: self.bytes_added.load(Ordering::Relaxed),
            stored_added: self.stored_added.load(Ordering::Relaxed),
            packs: self.shared.packs.load(Ordering::Relaxed),
            pack_ids,
        })
    }
}
