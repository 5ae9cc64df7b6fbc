//! The one path matcher of includes (restore) and excludes (backup): glob patterns where a
//! pattern with a `/` matches the whole path (`/srv/app/*.conf`, `**/cache`) and one without
//! matches the file name at any depth (`*.tmp`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use holdfast_engine::{Error, Result};

/// A set of path patterns.
#[derive(Debug, Clone)]
pub struct PathMatcher {
    by_path: GlobSet,
    by_name: GlobSet,
    empty: bool,
}

impl PathMatcher {
    /// Build from patterns; `what` (`include`, `exclude`) names them in errors.
    pub fn new(patterns: &[String], what: &str) -> Result<Self> {
        let mut p = GlobSetBuilder::new();
        let mut n = GlobSetBuilder::new();
        for pat in patterns {
            let g = Glob::new(pat)
                .map_err(|e| Error::Input(format!("bad {what} pattern {pat:?}: {e}")))?;
            if pat.contains('/') {
                p.add(g)
            } else {
                n.add(g)
            };
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Input(format!("bad {what} patterns: {e}")))
        };
        Ok(PathMatcher {
            by_path: build(p)?,
            by_name: build(n)?,
            empty: patterns.is_empty(),
        })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether `path` (whose file name is `name`) matches a pattern.
    pub fn matches(&self, path: &Path, name: &[u8]) -> bool {
        self.by_path.is_match(path) || self.by_name.is_match(Path::new(OsStr::from_bytes(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slash_matches_the_path_otherwise_the_name() {
        let m = PathMatcher::new(&["*.tmp".into(), "/srv/app/*.conf".into()], "exclude").unwrap();
        assert!(m.matches(Path::new("/a/b/x.tmp"), b"x.tmp"));
        assert!(m.matches(Path::new("/srv/app/main.conf"), b"main.conf"));
        assert!(!m.matches(Path::new("/etc/main.conf"), b"main.conf"));
        assert!(!m.is_empty());
        assert!(PathMatcher::new(&[], "include").unwrap().is_empty());
        let e = PathMatcher::new(&["a[".into()], "include").unwrap_err();
        assert!(
            e.to_string().starts_with("bad include pattern \"a[\""),
            "{e}"
        );
    }
}
