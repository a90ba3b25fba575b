//! Errors of the core. Publishing itself never returns one of these for a delivery problem:
//! delivery problems are counted as drops (see [`crate::stats::DropReason`]) and logged. These
//! errors are for input that can never be delivered and for set-up that cannot proceed.

use thiserror::Error;

/// Input that the core refuses, naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error(
        "invalid event name {0:?}: expected lowercase a-z0-9_ segments joined by single dots, \
         with at least one dot and at most 255 characters (e.g. \"payment.processed\")"
    )]
    EventName(String),

    #[error("invalid namespace {0:?}: expected 1 to 33 characters of a-z, 0-9 and _")]
    Namespace(String),

    #[error(
        "invalid pattern {0:?}: expected \"*\", \"#\", or dot-separated segments that are \
         names, \"*\" (one segment) or \"#\" (any number of segments), none empty"
    )]
    Pattern(String),

    #[error("invalid delivery mode {0:?}: expected durable, fast or broadcast")]
    DeliveryMode(String),

    #[error("invalid {field}: {value:?} is not a UUID")]
    Uuid { field: &'static str, value: String },

    #[error("invalid execution_result: expected a JSON object, got {0}")]
    ExecutionResult(&'static str),

    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Longest input quoted whole in an error message.
const MAX_QUOTED_CHARS: usize = 100;

/// The input an error names: whole when short, else its start and its length, so that a
/// 1,000-character name does not become a 1,000-character log line.
pub(crate) fn excerpt(value: &str) -> String {
    let count = value.chars().count();
    if count <= MAX_QUOTED_CHARS {
        return value.to_owned();
    }
    let start: String = value.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{start}… ({count} characters)")
}

/// A failure to talk to PostgreSQL. The message never contains credentials.
#[derive(Debug, Error)]
pub enum DatabaseError {
    #[error("invalid database_url {url}: {reason}")]
    Url { url: String, reason: String },

    #[error("PostgreSQL error: {0}")]
    Postgres(String),

    #[error("PGMQ installation failed: {0}")]
    Install(String),
}

impl DatabaseError {
    pub(crate) fn from_pgmq(err: pgmq::PgmqError) -> Self {
        match err {
            pgmq::PgmqError::InstallationError(msg) => Self::Install(msg),
            other => Self::Postgres(other.to_string()),
        }
    }
}
