//! A fault-injecting wrapper around any [`Storage`]: bit flips and truncation on read,
//! failure after N calls, and a simulated crash after N writes.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::{ErrorKind, Handle, Kind, ObjectInfo, Result, Storage, StorageError};

/// Which faults to inject. All default to off.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Every call after this many calls fails with a transient error.
    pub fail_after_calls: Option<usize>,
    /// After this many successful creates the "process crashes": every further call fails and
    /// nothing more reaches the inner store.
    pub crash_after_writes: Option<usize>,
    /// Flip the lowest bit of the byte at this offset (modulo the object length) of every
    /// object of this kind that is read.
    pub flip_bit_on_read: Option<(Kind, u64)>,
    /// Return only the first N bytes of every object of this kind that is read whole.
    pub truncate_on_read: Option<(Kind, usize)>,
}

/// Wraps a store and injects the faults of a [`FaultPlan`].
pub struct FaultyStorage<S> {
    inner: S,
    plan: Mutex<FaultPlan>,
    calls: AtomicUsize,
    writes: AtomicUsize,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wrap `inner` with `plan`.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        FaultyStorage {
            inner,
            plan: Mutex::new(plan),
            calls: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        }
    }

    /// Change the plan.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.plan.lock() = plan;
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many creates reached the inner store.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn gate(&self, op: &'static str, object: &str) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let plan = self.plan.lock().clone();
        if let Some(max) = plan.crash_after_writes
            && self.writes.load(Ordering::SeqCst) >= max
        {
            return Err(StorageError::new(
                ErrorKind::Permanent,
                op,
                object,
                self.location(),
                "injected crash",
            ));
        }
        if let Some(max) = plan.fail_after_calls
            && n >= max
        {
            return Err(StorageError::new(
                ErrorKind::Transient,
                op,
                object,
                self.location(),
                "injected failure",
            ));
        }
        Ok(())
    }

    fn damage(&self, kind: Kind, offset: u64, data: &mut Vec<u8>, whole: bool) {
        let plan = self.plan.lock().clone();
        if let Some((k, at)) = plan.flip_bit_on_read
            && k == kind
            && !data.is_empty()
        {
            let total = if whole { data.len() as u64 } else { u64::MAX };
            let pos = if whole { at % total } else { at };
            if pos >= offset && pos < offset + data.len() as u64 {
                data[(pos - offset) as usize] ^= 1;
            }
        }
        if whole
            && let Some((k, keep)) = plan.truncate_on_read
            && k == kind
        {
            data.truncate(keep);
        }
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn location(&self) -> String {
        format!("faulty:{}", self.inner.location())
    }

    fn create(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        self.gate("create", &handle.path())?;
        self.inner.create(handle, data)?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn replace(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        self.gate("replace", &handle.path())?;
        self.inner.replace(handle, data)?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read(&self, handle: &Handle) -> Result<Vec<u8>> {
        self.gate("read", &handle.path())?;
        let mut v = self.inner.read(handle)?;
        self.damage(handle.kind, 0, &mut v, true);
        Ok(v)
    }

    fn read_range(&self, handle: &Handle, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.gate("read", &handle.path())?;
        let mut v = self.inner.read_range(handle, offset, length)?;
        self.damage(handle.kind, offset, &mut v, false);
        Ok(v)
    }

    fn size(&self, handle: &Handle) -> Result<u64> {
        self.gate("stat", &handle.path())?;
        self.inner.size(handle)
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.gate("list", kind.dir())?;
        self.inner.list(kind)
    }

    fn delete(&self, handle: &Handle) -> Result<()> {
        self.gate("delete", &handle.path())?;
        self.inner.delete(handle)
    }

    fn location_exists(&self) -> Result<bool> {
        self.gate("stat", "")?;
        self.inner.location_exists()
    }

    fn prepare(&self) -> Result<()> {
        self.gate("create", "")?;
        self.inner.prepare()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;

    #[test]
    fn clean_plan_passes_the_shared_suite() {
        crate::testsuite::run(&FaultyStorage::new(
            MemoryStorage::new(),
            FaultPlan::default(),
        ));
    }

    #[test]
    fn faults_fire() {
        let s = FaultyStorage::new(MemoryStorage::new(), FaultPlan::default());
        let h = Handle::new(Kind::Pack, "aa11");
        s.create(&h, b"hello").unwrap();
        s.set_plan(FaultPlan {
            flip_bit_on_read: Some((Kind::Pack, 1)),
            ..Default::default()
        });
        assert_eq!(s.read(&h).unwrap(), b"hdllo");
        assert_eq!(s.read_range(&h, 1, 2).unwrap(), b"dl");
        assert_eq!(s.read_range(&h, 3, 2).unwrap(), b"lo");
        s.set_plan(FaultPlan {
            truncate_on_read: Some((Kind::Pack, 2)),
            ..Default::default()
        });
        assert_eq!(s.read(&h).unwrap(), b"he");
        s.set_plan(FaultPlan {
            crash_after_writes: Some(1),
            ..Default::default()
        });
        assert!(s.create(&Handle::new(Kind::Pack, "bb"), b"x").is_err());
        assert_eq!(s.inner().handles().len(), 1);
        s.set_plan(FaultPlan {
            fail_after_calls: Some(0),
            ..Default::default()
        });
        assert!(s.read(&h).unwrap_err().is_transient());
    }
}
