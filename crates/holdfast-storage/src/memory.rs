//! An in-memory backend, for tests and as the base of fault injection.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::{ErrorKind, Handle, Kind, ObjectInfo, Result, Storage, StorageError};

/// Objects held in a map. Satisfies the whole [`Storage`] contract except durability.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<Handle, Vec<u8>>>,
    prepared: Mutex<bool>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace an object's bytes behind the contract's back (tests simulate damage with it).
    pub fn tamper(&self, handle: &Handle, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        match self.objects.lock().get_mut(handle) {
            Some(v) => {
                f(v);
                true
            }
            None => false,
        }
    }

    /// All handles currently stored.
    pub fn handles(&self) -> Vec<Handle> {
        self.objects.lock().keys().cloned().collect()
    }

    fn missing(&self, op: &'static str, h: &Handle) -> StorageError {
        StorageError::new(
            ErrorKind::NotFound,
            op,
            h.path(),
            self.location(),
            "no such object",
        )
    }
}

impl Storage for MemoryStorage {
    fn location(&self) -> String {
        "memory:".into()
    }

    fn create(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        let mut m = self.objects.lock();
        if m.contains_key(handle) {
            return Err(StorageError::new(
                ErrorKind::AlreadyExists,
                "create",
                handle.path(),
                self.location(),
                "object exists",
            ));
        }
        m.insert(handle.clone(), data.to_vec());
        Ok(())
    }

    fn replace(&self, handle: &Handle, data: &[u8]) -> Result<()> {
        self.objects.lock().insert(handle.clone(), data.to_vec());
        Ok(())
    }

    fn read(&self, handle: &Handle) -> Result<Vec<u8>> {
        self.objects
            .lock()
            .get(handle)
            .cloned()
            .ok_or_else(|| self.missing("read", handle))
    }

    fn read_range(&self, handle: &Handle, offset: u64, length: u64) -> Result<Vec<u8>> {
        let m = self.objects.lock();
        let v = m.get(handle).ok_or_else(|| self.missing("read", handle))?;
        let end = offset
            .checked_add(length)
            .filter(|e| *e <= v.len() as u64)
            .ok_or_else(|| {
                StorageError::new(
                    ErrorKind::Permanent,
                    "read",
                    handle.path(),
                    self.location(),
                    format!(
                        "object is shorter than {} bytes (truncated)",
                        offset.saturating_add(length)
                    ),
                )
            })?;
        Ok(v[offset as usize..end as usize].to_vec())
    }

    fn size(&self, handle: &Handle) -> Result<u64> {
        self.objects
            .lock()
            .get(handle)
            .map(|v| v.len() as u64)
            .ok_or_else(|| self.missing("stat", handle))
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .objects
            .lock()
            .iter()
            .filter(|(h, _)| h.kind == kind)
            .map(|(h, v)| ObjectInfo {
                name: h.name.clone(),
                size: v.len() as u64,
                modified_ns: None,
            })
            .collect())
    }

    fn delete(&self, handle: &Handle) -> Result<()> {
        self.objects.lock().remove(handle);
        Ok(())
    }

    fn location_exists(&self) -> Result<bool> {
        Ok(*self.prepared.lock() || !self.objects.lock().is_empty())
    }

    fn prepare(&self) -> Result<()> {
        *self.prepared.lock() = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes_the_shared_suite() {
        crate::testsuite::run(&super::MemoryStorage::new());
    }
}
