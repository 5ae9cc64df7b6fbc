//! Vault locations (`/path`, `file:///path`, `s3://bucket/prefix`) and the S3 settings that
//! do not fit in a URL. Parsing only: opening a location is `holdfast-storage`'s job, so the
//! plan (which checks locations) needs no storage backend.

use std::path::PathBuf;

/// A location that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct LocationError {
    /// The location as given.
    pub location: String,
    /// What is wrong with it.
    pub message: String,
}

/// Settings for S3 that do not fit in the URL; each falls back to the usual AWS variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL (`http://127.0.0.1:9000`); `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Region; `AWS_REGION` / `AWS_DEFAULT_REGION`; default `us-east-1`.
    pub region: Option<String>,
    /// Use virtual-host style addressing instead of path style.
    pub virtual_host_style: bool,
    /// Access key id; `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret access key; `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
}

/// A parsed vault location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder.
    Local(PathBuf),
    /// An S3 bucket and key prefix.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

impl Location {
    /// Parse a location string.
    pub fn parse(s: &str) -> Result<Location, LocationError> {
        let bad = |m: &str| LocationError {
            location: s.to_string(),
            message: m.to_string(),
        };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("an S3 vault URL needs a bucket: s3://BUCKET/PREFIX"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(bad("a file:// URL needs a path"));
            }
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if s.contains("://") {
            return Err(bad(
                "unsupported vault URL scheme; use a path, file://PATH or s3://BUCKET/PREFIX",
            ));
        }
        if s.is_empty() {
            return Err(bad("the vault location is empty"));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("/srv/v").unwrap(),
            Location::Local("/srv/v".into())
        );
        assert_eq!(
            Location::parse("file:///srv/v").unwrap(),
            Location::Local("/srv/v".into())
        );
        assert_eq!(
            Location::parse("s3://b/p/q/").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("gopher://x").is_err());
        assert!(Location::parse("").is_err());
    }
}
