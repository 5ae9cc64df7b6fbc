//! Opening vault locations. Parsing them, and the S3 settings, live in `holdfast-location`
//! (re-exported here) so crates that only check a location need no backend.

use std::sync::Arc;

pub use holdfast_location::{Location, LocationError, S3Options};

use crate::{Storage, StorageError};

/// Opening a parsed location's backend.
pub trait OpenLocation {
    /// Open the backend for this location.
    fn open(&self, s3: &S3Options) -> Result<Arc<dyn Storage>, StorageError>;
}

impl OpenLocation for Location {
    fn open(&self, s3: &S3Options) -> Result<Arc<dyn Storage>, StorageError> {
        match self {
            Location::Local(p) => Ok(Arc::new(crate::local::LocalStorage::new(p.clone()))),
            Location::S3 { bucket, prefix } => {
                Ok(Arc::new(crate::s3::S3Storage::open(bucket, prefix, s3)?))
            }
        }
    }
}
