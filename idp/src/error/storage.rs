//! [`StorageError`]: why a store failed, with the underlying error kept.

use super::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StorageCause {
    /// The database refused or failed a statement, or could not be opened.
    Backend,
    /// A stored row could not be read (or a value could not be encoded).
    Corrupt,
    /// A row kept changing under concurrent writers; nothing was written.
    Conflict,
    /// A shared store (the registry object) could not be reached.
    Unavailable,
    /// No usable encryption key for secrets at rest.
    NoKey,
}

/// A store failure: its cause, what was being done, and the underlying error
/// when there is one ([`std::error::Error::source`]).
#[derive(Debug, Clone)]
pub struct StorageError {
    /// Why.
    pub cause: StorageCause,
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure of `cause`, described by `message`.
    pub fn new(cause: StorageCause, message: impl Into<String>) -> Self {
        Self {
            cause,
            message: message.into(),
            source: None,
        }
    }

    /// The same, keeping the underlying error as its source.
    pub fn with_source(
        cause: StorageCause,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            cause,
            message: message.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }
}

impl PartialEq for StorageError {
    fn eq(&self, other: &Self) -> bool {
        self.cause == other.cause && self.message == other.message
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// A store failure of `cause`.
    pub fn storage(cause: StorageCause, message: impl Into<String>) -> Self {
        Error::Storage(StorageError::new(cause, message))
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}
