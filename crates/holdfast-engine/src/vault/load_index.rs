//! Loading the vault's index (every index object, every location kept).

use super::*;

impl Vault {
    /// Read all index objects into memory. Damaged index objects are skipped and returned.
    ///
    /// Packs condemned by a garbage-collection notice are demoted (writers do not
    /// deduplicate against them). The notices are listed **before** the index objects: a
    /// backup that started its session first and then misses a notice is one the pruner
    /// sees (docs/format.md 13.2).
    pub fn load_index(&self) -> Result<Vec<Damage>> {
        self.load_index_with(&std::collections::HashSet::new())
    }

    /// [`Vault::load_index`], demoting `extra` packs too (used by repacking).
    pub fn load_index_with(&self, extra: &std::collections::HashSet<Id>) -> Result<Vec<Damage>> {
        let mut condemned = crate::gc::condemned_packs(self)?;
        condemned.extend(extra.iter().copied());
        let mut attempt = 0;
        let (objects, damage) = loop {
            let (objects, damage, vanished) = self.read_index_objects()?;
            // An index object that vanished between listing and reading was replaced by a
            // prune's consolidated one: list again.
            if vanished && attempt < 3 {
                attempt += 1;
                continue;
            }
            break (objects, damage);
        };
        let mut idx = self.index.write();
        *idx = Index::default();
        let mut demoted = Vec::new();
        for (name, packs) in objects {
            let (d, n): (Vec<_>, Vec<_>) =
                packs.into_iter().partition(|p| condemned.contains(&p.id));
            idx.add(n);
            demoted.extend(d);
            idx.objects.push(name);
        }
        idx.add_demoted(demoted);
        Ok(damage)
    }

    /// Read and decode every index object: (name, packs) pairs, damage, and whether an
    /// object vanished between listing and reading.
    #[allow(clippy::type_complexity)]
    pub fn read_index_objects(
        &self,
    ) -> Result<(Vec<(String, Vec<index::IndexedPack>)>, Vec<Damage>, bool)> {
        let list = self.storage.list(Kind::Index)?;
        let key = &self.keys.index_key;
        let loaded: Vec<std::result::Result<(String, Vec<index::IndexedPack>), (Damage, bool)>> =
            list.par_iter()
                .map(|o| {
                    let h = Handle::new(Kind::Index, &o.name);
                    let data = match self.storage.read(&h) {
                        Ok(d) => d,
                        Err(e) if e.kind == SK::NotFound => {
                            return Err((
                                Damage {
                                    object: h.path(),
                                    reason: "vanished".into(),
                                },
                                true,
                            ));
                        }
                        Err(e) => {
                            return Err((
                                Damage {
                                    object: h.path(),
                                    reason: e.to_string(),
                                },
                                false,
                            ));
                        }
                    };
                    if Id::of_stored(&data).to_hex() != o.name {
                        return Err((
                            Damage {
                                object: h.path(),
                                reason: "content does not match its name".into(),
                            },
                            false,
                        ));
                    }
                    index::decode(&data, key)
                        .map(|p| (o.name.clone(), p))
                        .map_err(|e| {
                            (
                                Damage {
                                    object: h.path(),
                                    reason: e.to_string(),
                                },
                                false,
                            )
                        })
                })
                .collect();
        let mut objects = Vec::new();
        let mut damage = Vec::new();
        let mut vanished = false;
        for r in loaded {
            match r {
                Ok(o) => objects.push(o),
                Err((d, v)) => {
                    vanished |= v;
                    damage.push(d);
                }
            }
        }
        Ok((objects, damage, vanished))
    }

    /// The in-memory index.
    pub fn index(&self) -> parking_lot::RwLockReadGuard<'_, Index> {
        self.index.read()
    }

    pub(crate) fn index_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Index> {
        self.index.write()
    }
}
