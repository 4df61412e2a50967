//! Values of the SQL layer: what a statement binds and a column holds, the
//! connection a runtime provides, and rows' JSON encoding.

use crate::error::{Error, Result, StorageCause, StorageError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A value bound to a `?` placeholder or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float (JavaScript SQLite drivers may answer integers as floats).
    Real(f64),
    /// Text.
    Text(String),
}

impl SqlValue {
    /// The text, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if it is one (or a float with no fraction).
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            #[allow(clippy::cast_possible_truncation)]
            SqlValue::Real(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }
}

/// Seconds since the epoch as an SQL integer.
pub fn secs(t: u64) -> SqlValue {
    SqlValue::Integer(i64::try_from(t).unwrap_or(i64::MAX))
}

/// Text as an SQL value.
pub fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// Runs statements on one SQLite database.
pub trait SqlRun {
    /// Runs one statement with `?` placeholders; the rows it returns, each
    /// as its column values in order. The error says what the database said.
    fn run(&self, statement: &str, args: Vec<SqlValue>) -> Result<Vec<Vec<SqlValue>>, String>;
}

/// A SQLite database as a runtime holds it.
pub trait SqlConnection {
    /// Statements run through this are not interleaved with other writers'.
    type Atomic<'a>: SqlRun
    where
        Self: 'a;
    /// Enters a section no other writer can interleave with (a lock, or
    /// nothing where the runtime is single-threaded and the section has no
    /// `.await`).
    fn atomic(&self) -> Self::Atomic<'_>;
}

/// Encodes a row's `data`.
pub fn json(value: &impl Serialize) -> Result<SqlValue> {
    serde_json::to_string(value)
        .map(SqlValue::Text)
        .map_err(|e| {
            StorageError::with_source(StorageCause::Corrupt, "could not encode a row", e).into()
        })
}

/// Decodes a row's `data`.
pub fn decode<T: DeserializeOwned>(value: &SqlValue) -> Result<T> {
    let text = value
        .as_text()
        .ok_or_else(|| Error::storage(StorageCause::Corrupt, "a data column is not text"))?;
    serde_json::from_str(text).map_err(|e| {
        StorageError::with_source(StorageCause::Corrupt, "a stored row is unreadable", e).into()
    })
}

pub(crate) fn from_doc<T: DeserializeOwned>(doc: Value) -> Result<T> {
    // Through text rather than `from_value`: the decoders the crate already
    // has for text serve, instead of a second copy for `Value` (smaller wasm;
    // a row is a few hundred bytes).
    serde_json::from_str(&doc.to_string()).map_err(|e| {
        StorageError::with_source(StorageCause::Corrupt, "a stored row is unreadable", e).into()
    })
}
