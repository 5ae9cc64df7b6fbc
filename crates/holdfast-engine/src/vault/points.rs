//! Recovery points of a vault: signing and storing manifests, reading them with their
//! attribution, listing them, and resolving `latest` among the trusted ones (docs/format.md
//! 11, 13.5).

use holdfast_storage::{ErrorKind as SK, Handle, Kind};
use rayon::prelude::*;

use super::{Damage, PointEntry, Vault};
use crate::crypto;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::identity;
use crate::point::{self, Manifest};

impl Vault {
    /// Sign, seal and store a manifest; returns the point id. The signature is the owner's
    /// (full key) or the key's writer identity (docs/format.md 11.4); a write-only key without
    /// one cannot write points.
    pub fn save_point(&self, m: &Manifest) -> Result<Id> {
        self.may_write(&m.resource)?;
        let signer = self.keys.signer().ok_or(Error::NoWriterIdentity)?;
        let plain = identity::seal_manifest(&m.to_json(), &self.keys.vault_id, &signer);
        let sealed = crypto::seal_to(&self.keys.public_key(), point::AAD, &plain);
        let id = Id::of_stored(&sealed);
        match self
            .storage
            .create(&Handle::new(Kind::Point, id.to_hex()), &sealed)
        {
            Ok(()) => Ok(id),
            Err(e) if e.kind == SK::AlreadyExists => Ok(id),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether this key may write points of `resource`: a writer identity issued for some
    /// resources only (`key create-backup-only --resource`) refuses the others up front,
    /// since readers would not trust such a point (docs/format.md 13.5).
    pub fn may_write(&self, resource: &str) -> Result<()> {
        match self.keys.writer() {
            Some(w) if !w.certificate().allows(resource) => Err(Error::OutOfScope {
                writer: w.certificate().label.clone(),
                scope: w.certificate().scope.join(", "),
                resource: resource.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Read one manifest and who signed it ([`Manifest::attribution`]).
    pub fn load_point(&self, id: &Id) -> Result<Manifest> {
        let secret = self.require_full("reading recovery points")?;
        let owner = self.owner_vk.as_ref().ok_or_else(|| Error::KeyDenied {
            operation: "reading recovery points".into(),
        })?;
        let h = Handle::new(Kind::Point, id.to_hex());
        let data = self.storage.read(&h)?;
        if Id::of_stored(&data) != *id {
            return Err(Error::damaged(h.path(), "content does not match its name"));
        }
        let plain = crypto::open_sealed(secret, point::AAD, &data)
            .map_err(|e| Error::damaged(h.path(), e))?;
        let (json, attribution) = identity::open_manifest(&plain, &self.keys.vault_id, owner)
            .map_err(|e| Error::damaged(h.path(), e))?;
        let mut m = Manifest::from_json(json).map_err(|e| Error::damaged(h.path(), e))?;
        m.attribution = attribution;
        Ok(m)
    }

    /// All recovery points, oldest first, and the manifests that could not be read.
    pub fn list_points(&self) -> Result<(Vec<PointEntry>, Vec<Damage>)> {
        self.require_full("listing recovery points")?;
        let list = self.storage.list(Kind::Point)?;
        let res: Vec<_> = list
            .par_iter()
            .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.name.clone(), o.modified_ns)))
            .map(|(id, name, stored_ns)| match self.load_point(&id) {
                Ok(mut m) => {
                    m.stored_ns = stored_ns;
                    Ok((id, m))
                }
                Err(e @ Error::Storage(_)) if e.retryable() => Err(Err(e)),
                Err(e) => Err(Ok(Damage {
                    object: format!("points/{name}"),
                    reason: e.to_string(),
                })),
            })
            .collect();
        let mut points = Vec::new();
        let mut damage = Vec::new();
        for r in res {
            match r {
                Ok(p) => points.push(p),
                Err(Ok(d)) => damage.push(d),
                Err(Err(e)) => return Err(e),
            }
        }
        points.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        Ok((points, damage))
    }

    /// Resolve `latest`, `latest:RESOURCE` or an id prefix to one point. `latest` is the
    /// newest *trusted* point ([`crate::trust`]); the newer untrusted ones it passes over are
    /// logged as warnings. An id prefix selects any point.
    pub fn find_point(&self, spec: &str) -> Result<(Id, Manifest)> {
        let (points, _) = self.list_points()?;
        let latest = if spec == "latest" {
            Some(None)
        } else {
            spec.strip_prefix("latest:").map(Some)
        };
        if let Some(resource) = latest {
            let (trusted, untrusted) = crate::trust::Judge::of(self)?.split(
                points
                    .into_iter()
                    .filter(|(_, m)| resource.is_none_or(|r| m.resource == r))
                    .collect(),
            );
            let chosen = trusted.into_iter().last();
            let chosen_at = chosen.as_ref().map(|(id, m)| (m.time_ns, *id));
            // Only the untrusted points newer than the one chosen were passed over.
            let passed: Vec<_> = untrusted
                .iter()
                .filter(|((id, m), _)| chosen_at.is_none_or(|t| (m.time_ns, *id) > t))
                .collect();
            for ((id, _), why) in passed.iter().rev() {
                tracing::warn!(
                    "passing over point {} as {spec}: {why} (name it by id to use it)",
                    id.short()
                );
            }
            return chosen.ok_or_else(|| {
                Error::NotFound(match (resource, passed.len()) {
                    (None, 0) => "the vault has no recovery points".into(),
                    (Some(r), 0) => format!("no recovery point of resource {r:?}"),
                    (None, n) => format!(
                        "the vault has no trusted recovery point ({n} untrusted passed over; see \
                         `holdfast points`, name one by id to use it)"
                    ),
                    (Some(r), n) => format!(
                        "no recovery point of resource {r:?}: it has no trusted recovery point \
                         ({n} untrusted passed over; see `holdfast points`, name one by id to use \
                         it)"
                    ),
                })
            });
        }
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Input(format!(
                "{spec:?} is not a point id, `latest` or `latest:RESOURCE`"
            )));
        }
        let mut found: Vec<_> = points
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .collect();
        match found.len() {
            0 => Err(Error::NotFound(format!(
                "no recovery point matches {spec:?}"
            ))),
            1 => Ok(found.remove(0)),
            n => Err(Error::Input(format!(
                "{spec:?} matches {n} recovery points; give more characters"
            ))),
        }
    }

    /// Delete a recovery point's manifest (full key; the caller checks locks and holds).
    pub fn delete_point(&self, id: &Id) -> Result<()> {
        self.require_full("forgetting recovery points")?;
        self.storage
            .delete(&Handle::new(Kind::Point, id.to_hex()))
            .map_err(Into::into)
    }
}
