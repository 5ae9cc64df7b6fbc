//! File metadata helpers: node metadata from `lstat`, user and group names.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use holdfast_engine::tree::{Node, NodeKind};
use parking_lot::Mutex;

/// Caches uid/gid → name lookups.
#[derive(Default)]
pub struct Names {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl Names {
    /// The user name of `uid` (empty if unknown).
    pub fn user(&self, uid: u32) -> String {
        self.users
            .lock()
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The group name of `gid` (empty if unknown).
    pub fn group(&self, gid: u32) -> String {
        self.groups
            .lock()
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

/// A node with the metadata of `m` and the given kind.
pub fn node(name: Vec<u8>, m: &std::fs::Metadata, kind: NodeKind, names: &Names) -> Node {
    let hardlink = (m.is_file() && m.nlink() > 1).then(|| (m.dev(), m.ino()));
    Node {
        name,
        kind,
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        user: names.user(m.uid()),
        group: names.group(m.gid()),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
        hardlink,
    }
}

/// The host name of this machine.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The name of the user running holdfast.
pub fn username() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
