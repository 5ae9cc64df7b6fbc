//! Trees: one directory listing per blob (docs/format.md, "Trees").
//!
//! A tree is a list of nodes sorted by name. Files list the ids of their content chunks,
//! directories the id of their subtree. Unchanged directories therefore produce identical
//! tree blobs and deduplicate like data.

use crate::id::Id;
use crate::wire::{Reader, WireError, Writer};

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file (or a stream stored as a file).
    File {
        /// Size in bytes.
        size: u64,
        /// Content chunk ids, in order.
        content: Vec<Id>,
    },
    /// A directory.
    Dir {
        /// The subtree's blob id.
        subtree: Id,
    },
    /// A symbolic link.
    Symlink {
        /// The link target, as raw bytes.
        target: Vec<u8>,
    },
}

/// One directory entry with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The entry's name (raw bytes; any byte but `/` and NUL).
    pub name: Vec<u8>,
    /// Kind and kind-specific data.
    pub kind: NodeKind,
    /// Permission bits and file type bits (`st_mode`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Owner name, if known.
    pub user: String,
    /// Group name, if known.
    pub group: String,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// `(device, inode)` for files with more than one hard link.
    pub hardlink: Option<(u64, u64)>,
}

/// A directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

const VERSION: u8 = 1;

impl Tree {
    /// Encode; nodes are sorted by name first.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut w = Writer::new();
        w.u8(VERSION);
        w.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            w.bytes16(&n.name);
            w.u8(match n.kind {
                NodeKind::File { .. } => 0,
                NodeKind::Dir { .. } => 1,
                NodeKind::Symlink { .. } => 2,
            });
            w.u32(n.mode);
            w.u32(n.uid);
            w.u32(n.gid);
            w.bytes16(n.user.as_bytes());
            w.bytes16(n.group.as_bytes());
            w.i64(n.mtime_sec);
            w.u32(n.mtime_nsec);
            match n.hardlink {
                Some((dev, ino)) => {
                    w.u8(1);
                    w.u64(dev);
                    w.u64(ino);
                }
                None => w.u8(0),
            }
            match &n.kind {
                NodeKind::File { size, content } => {
                    w.u64(*size);
                    w.u32(content.len() as u32);
                    for id in content {
                        w.raw(&id.0);
                    }
                }
                NodeKind::Dir { subtree } => w.raw(&subtree.0),
                NodeKind::Symlink { target } => w.bytes32(target),
            }
        }
        w.into_inner()
    }

    /// Decode a tree blob's plaintext. Rejects unsorted or duplicate names and names that
    /// could escape a restore target (`.`, `..`, containing `/` or NUL).
    pub fn decode(data: &[u8]) -> Result<Tree, WireError> {
        let mut r = Reader::new(data);
        let v = r.u8()?;
        if v != VERSION {
            return Err(WireError(format!("unknown tree version {v}")));
        }
        let n = r.count(2 + 1 + 12 + 4 + 12 + 1)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.bytes16()?.to_vec();
            if name.is_empty()
                || name == b"."
                || name == b".."
                || name.iter().any(|&b| b == b'/' || b == 0)
            {
                return Err(WireError(format!(
                    "invalid entry name {:?}",
                    String::from_utf8_lossy(&name)
                )));
            }
            if let Some(prev) = nodes.last()
                && prev.name >= name
            {
                return Err(WireError("entries are not sorted or not unique".into()));
            }
            let kind = r.u8()?;
            let mode = r.u32()?;
            let uid = r.u32()?;
            let gid = r.u32()?;
            let user = String::from_utf8_lossy(r.bytes16()?).into_owned();
            let group = String::from_utf8_lossy(r.bytes16()?).into_owned();
            let mtime_sec = r.i64()?;
            let mtime_nsec = r.u32()?;
            let hardlink = match r.u8()? {
                0 => None,
                1 => Some((r.u64()?, r.u64()?)),
                f => return Err(WireError(format!("unknown node flag {f}"))),
            };
            let kind = match kind {
                0 => {
                    let size = r.u64()?;
                    let c = r.count(32)?;
                    let mut content = Vec::with_capacity(c);
                    for _ in 0..c {
                        content.push(Id(r.array()?));
                    }
                    NodeKind::File { size, content }
                }
                1 => NodeKind::Dir {
                    subtree: Id(r.array()?),
                },
                2 => NodeKind::Symlink {
                    target: r.bytes32()?.to_vec(),
                },
                k => return Err(WireError(format!("unknown node kind {k}"))),
            };
            nodes.push(Node {
                name,
                kind,
                mode,
                uid,
                gid,
                user,
                group,
                mtime_sec,
                mtime_nsec,
                hardlink,
            });
        }
        r.finish()?;
        Ok(Tree { nodes })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_node() -> impl Strategy<Value = Node> {
        let name = prop::collection::vec(
            any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
            1..40,
        )
        .prop_filter("not . or ..", |n| n != b"." && n != b"..");
        let kind = prop_oneof![
            (any::<u64>(), prop::collection::vec(any::<[u8; 32]>(), 0..5)).prop_map(|(size, c)| {
                NodeKind::File {
                    size,
                    content: c.into_iter().map(Id).collect(),
                }
            }),
            any::<[u8; 32]>().prop_map(|s| NodeKind::Dir { subtree: Id(s) }),
            prop::collection::vec(any::<u8>(), 0..100)
                .prop_map(|target| NodeKind::Symlink { target }),
        ];
        (
            name,
            kind,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            "[a-z]{0,8}",
            "[a-z]{0,8}",
            any::<i64>(),
            0u32..1_000_000_000,
            any::<Option<(u64, u64)>>(),
        )
            .prop_map(
                |(name, kind, mode, uid, gid, user, group, mtime_sec, mtime_nsec, hardlink)| Node {
                    name,
                    kind,
                    mode,
                    uid,
                    gid,
                    user,
                    group,
                    mtime_sec,
                    mtime_nsec,
                    hardlink,
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in prop::collection::vec(arb_node(), 0..12)) {
            let mut nodes = nodes;
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let mut t = Tree { nodes };
            let enc = t.encode();
            prop_assert_eq!(Tree::decode(&enc).unwrap(), t);
        }

        #[test]
        fn tree_decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = Tree::decode(&data);
        }
    }

    #[test]
    fn rejects_escaping_names() {
        for bad in [&b".."[..], b".", b"a/b"] {
            let mut t = Tree {
                nodes: vec![Node {
                    name: bad.to_vec(),
                    kind: NodeKind::Symlink { target: vec![] },
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    user: String::new(),
                    group: String::new(),
                    mtime_sec: 0,
                    mtime_nsec: 0,
                    hardlink: None,
                }],
            };
            assert!(Tree::decode(&t.encode()).is_err());
        }
    }
}
