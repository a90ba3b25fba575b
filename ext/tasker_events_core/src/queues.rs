//! Looking at the durable queues from outside a worker, without consuming anything.
//!
//! A [`QueueInspector`] lists every `*_domain_events` queue with PGMQ's own metrics
//! (`pgmq.metrics`: length, age of the oldest and newest message, messages ever sent) and
//! reads the rows of one queue's table, `pgmq.q_<queue>`, with a plain `SELECT` ordered by
//! `msg_id`. It never calls `pgmq.read`, `pop`, `set_vt` or `delete`: every message keeps its
//! read count and visibility timeout, so consumers cannot tell whether an operator looked.
//!
//! What it reads is a snapshot. A message deleted by a consumer a moment later still shows; a
//! message deleted before the read never does. Reading "after msg_id N" relies on ids growing:
//! two writers whose transactions commit in the opposite order of their ids can make a row
//! with a lower id appear after a higher one was already read, and such a row is then missed.
//! The gem's durable publisher writes one batch at a time, so one worker's events are never
//! missed this way; several workers writing to one queue at the same instant can be.
//!
//! Only validated identifiers reach SQL text: a queue table name is built by
//! [`queue_name`] from a namespace that [`validate_namespace`] accepted; every other value is
//! a bind parameter.
//!
//! The inspector owns a single-threaded tokio runtime and a pool of one connection, so a
//! connection lost between two calls is opened again by the next one. Its methods block the
//! calling thread. Each takes a [`Cancel`] that another thread may trigger to end the wait at
//! once; the call then returns [`QueueError::Interrupted`].

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use thiserror::Error;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::config::redact_url;
use crate::error::ValidationError;
use crate::names::{queue_name, validate_namespace, QUEUE_SUFFIX};

/// SQLSTATE of "relation does not exist": the queue table (or PGMQ itself) is missing.
const UNDEFINED_TABLE: &str = "42P01";

/// `enqueued_at` and `vt` as UTC ISO 8601 with microseconds, like an event's `fired_at`.
const TIMESTAMP_FORMAT: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

/// Why the inspector could not answer. Messages never contain a password.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("invalid database URL {url}: {reason}")]
    Url { url: String, reason: String },

    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    #[error("PGMQ is not installed in the database at {url} (there is no pgmq.meta table)")]
    NotInstalled { url: String },

    #[error("queue {queue} does not exist; {}", existing_queues(.existing))]
    Missing {
        queue: String,
        existing: Vec<String>,
    },

    #[error(transparent)]
    Namespace(#[from] ValidationError),

    #[error("PostgreSQL error: {0}")]
    Postgres(String),

    #[error("could not start the tokio runtime: {0}")]
    Runtime(#[from] std::io::Error),

    #[error("interrupted")]
    Interrupted,

    #[error("the queue inspector was closed")]
    Closed,
}

fn existing_queues(existing: &[String]) -> String {
    if existing.is_empty() {
        format!("there are no *{QUEUE_SUFFIX} queues")
    } else {
        format!("existing *{QUEUE_SUFFIX} queues: {}", existing.join(", "))
    }
}

/// One `*_domain_events` queue as `pgmq.metrics` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueMetrics {
    pub queue_name: String,
    /// The queue name without its `_domain_events` suffix.
    pub namespace: String,
    /// Messages in the queue now, visible or not.
    pub queue_length: i64,
    /// Seconds since the newest message was sent; `None` for an empty queue.
    pub newest_msg_age_sec: Option<i32>,
    /// Seconds since the oldest message still in the queue was sent; `None` when empty.
    pub oldest_msg_age_sec: Option<i32>,
    /// Messages ever sent to the queue, deleted and archived ones included.
    pub total_messages: i64,
}

/// One row of a queue table, as it is; nothing about it changes by reading it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedMessage {
    pub msg_id: i64,
    /// How often consumers have read the message.
    pub read_ct: i32,
    pub enqueued_at: String,
    /// When the message becomes visible to consumers again.
    pub vt: String,
    /// The event, as consumers receive it.
    pub message: serde_json::Value,
    pub headers: serde_json::Value,
}

/// Where [`QueueInspector::peek`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The newest messages: the last `limit` rows, returned oldest first.
    Latest,
    /// The first `limit` rows whose `msg_id` is greater than this one.
    After(i64),
}

/// Ends a blocking call of the inspector from another thread. One token serves one call: once
/// triggered, it stays triggered.
#[derive(Debug, Default)]
pub struct Cancel(Notify);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the call using this token return [`QueueError::Interrupted`] now, or as soon as
    /// it starts.
    pub fn cancel(&self) {
        // notify_one keeps a permit when nobody waits yet, so an early cancel is not lost.
        self.0.notify_one();
    }
}

/// A read-only view of the durable queues of one database. See the module docs.
pub struct QueueInspector {
    runtime: Runtime,
    pool: PgPool,
    url: String,
    connect_timeout: Duration,
}

impl QueueInspector {
    /// Connects to `url`, waiting at most `connect_timeout`. A first connection is opened
    /// right away, so that a wrong URL, a server that is down or a refused login is reported
    /// here, with PostgreSQL's reason.
    pub fn connect(
        url: &str,
        connect_timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Self, QueueError> {
        let redacted = redact_url(url);
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| QueueError::Url {
            url: redacted.clone(),
            reason: e.to_string(),
        })?;
        let options = options.application_name("tasker-events");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let opening = open_pool(options, connect_timeout, &redacted);
        let pool = runtime.block_on(cancellable(cancel, opening))?;
        Ok(Self {
            runtime,
            pool,
            url: redacted,
            connect_timeout,
        })
    }

    /// The database URL with its password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every `*_domain_events` queue with its metrics, by queue name.
    pub fn queues(&self, cancel: &Cancel) -> Result<Vec<QueueMetrics>, QueueError> {
        self.block_on(cancel, async {
            if !self.pgmq_installed().await? {
                return Err(QueueError::NotInstalled {
                    url: self.url.clone(),
                });
            }
            let sql = "SELECT m.queue_name::text, m.queue_length, m.newest_msg_age_sec, \
                       m.oldest_msg_age_sec, m.total_messages \
                       FROM pgmq.meta q CROSS JOIN LATERAL pgmq.metrics(q.queue_name) m \
                       WHERE right(q.queue_name, length($1)) = $1 ORDER BY q.queue_name";
            let rows: Vec<MetricsRow> = sqlx::query_as(sql)
                .bind(QUEUE_SUFFIX)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.sql_error(e))?;
            Ok(rows.into_iter().map(metrics_from_row).collect())
        })
    }

    /// Up to `limit` messages of `namespace`'s queue from `position`, oldest first, read with
    /// a plain `SELECT` (see the module docs).
    pub fn peek(
        &self,
        namespace: &str,
        position: Position,
        limit: u32,
        cancel: &Cancel,
    ) -> Result<Vec<QueuedMessage>, QueueError> {
        validate_namespace(namespace)?;
        let queue = queue_name(namespace);
        let sql = peek_sql(&queue, position);
        self.block_on(cancel, async {
            let query = sqlx::query_as(&sql);
            let query = match position {
                Position::Latest => query.bind(i64::from(limit)),
                Position::After(msg_id) => query.bind(msg_id).bind(i64::from(limit)),
            };
            let rows: Vec<MessageRow> = match query.fetch_all(&self.pool).await {
                Ok(rows) => rows,
                Err(e) if is_undefined_table(&e) => return Err(self.missing(queue).await),
                Err(e) => return Err(self.sql_error(e)),
            };
            Ok(rows.into_iter().map(message_from_row).collect())
        })
    }

    /// Closes the connection; later calls return [`QueueError::Closed`].
    pub fn close(&self) {
        self.runtime.block_on(self.pool.close());
    }

    fn block_on<T>(
        &self,
        cancel: &Cancel,
        work: impl Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        self.runtime.block_on(cancellable(cancel, work))
    }

    async fn pgmq_installed(&self) -> Result<bool, QueueError> {
        sqlx::query_scalar("SELECT to_regclass('pgmq.meta') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.sql_error(e))
    }

    /// The error for a queue table that does not exist, naming the queues that do.
    async fn missing(&self, queue: String) -> QueueError {
        match self.pgmq_installed().await {
            Ok(true) => {}
            Ok(false) => {
                return QueueError::NotInstalled {
                    url: self.url.clone(),
                }
            }
            Err(e) => return e,
        }
        let sql = "SELECT queue_name::text FROM pgmq.meta \
                   WHERE right(queue_name, length($1)) = $1 ORDER BY queue_name";
        match sqlx::query_scalar(sql)
            .bind(QUEUE_SUFFIX)
            .fetch_all(&self.pool)
            .await
        {
            Ok(existing) => QueueError::Missing { queue, existing },
            Err(e) => self.sql_error(e),
        }
    }

    /// Connection failures are told apart from refused statements, since an operator fixes
    /// them differently.
    fn sql_error(&self, error: sqlx::Error) -> QueueError {
        let reason = match error {
            sqlx::Error::PoolTimedOut => format!(
                "no connection within {} ms",
                self.connect_timeout.as_millis()
            ),
            sqlx::Error::Io(e) => e.to_string(),
            sqlx::Error::Tls(e) => e.to_string(),
            sqlx::Error::PoolClosed => return QueueError::Closed,
            other => return QueueError::Postgres(other.to_string()),
        };
        QueueError::Unreachable {
            url: self.url.clone(),
            reason,
        }
    }
}

impl Drop for QueueInspector {
    fn drop(&mut self) {
        // Ends the session politely instead of leaving PostgreSQL to log an unexpected EOF.
        self.close();
    }
}

async fn cancellable<T>(
    cancel: &Cancel,
    work: impl Future<Output = Result<T, QueueError>>,
) -> Result<T, QueueError> {
    tokio::select! {
        result = work => result,
        () = cancel.0.notified() => Err(QueueError::Interrupted),
    }
}

/// Opens one connection to learn why it fails, if it does (a pool on its own would only say
/// that it timed out), then a pool of one for the calls that follow.
async fn open_pool(
    options: PgConnectOptions,
    timeout: Duration,
    url: &str,
) -> Result<PgPool, QueueError> {
    let unreachable = |reason: String| QueueError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let connection = tokio::time::timeout(timeout, PgConnection::connect_with(&options))
        .await
        .map_err(|_| unreachable(format!("no connection within {} ms", timeout.as_millis())))?
        .map_err(|e| unreachable(e.to_string()))?;
    // Closing is courtesy; the check already succeeded.
    let _ignored = connection.close().await;
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_lazy_with(options))
}

/// The statement for one page of a queue table. `queue` comes from [`queue_name`] of a
/// validated namespace, so it is only `a-z0-9_` and safe inside the quoted identifier.
fn peek_sql(queue: &str, position: Position) -> String {
    let columns = format!(
        "msg_id, read_ct, to_char(enqueued_at AT TIME ZONE 'UTC', {TIMESTAMP_FORMAT}), \
         to_char(vt AT TIME ZONE 'UTC', {TIMESTAMP_FORMAT}), message, headers"
    );
    let table = format!("pgmq.\"q_{queue}\"");
    match position {
        Position::Latest => format!(
            "SELECT * FROM (SELECT {columns} FROM {table} ORDER BY msg_id DESC LIMIT $1) \
             AS latest ORDER BY msg_id"
        ),
        Position::After(_) => {
            format!("SELECT {columns} FROM {table} WHERE msg_id > $1 ORDER BY msg_id LIMIT $2")
        }
    }
}

fn is_undefined_table(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some(UNDEFINED_TABLE))
}

type MessageRow = (
    i64,
    i32,
    String,
    String,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
);

fn message_from_row(row: MessageRow) -> QueuedMessage {
    let (msg_id, read_ct, enqueued_at, vt, message, headers) = row;
    QueuedMessage {
        msg_id,
        read_ct,
        enqueued_at,
        vt,
        message: message.unwrap_or_default(),
        headers: headers.unwrap_or_default(),
    }
}

type MetricsRow = (String, i64, Option<i32>, Option<i32>, i64);

fn metrics_from_row(row: MetricsRow) -> QueueMetrics {
    let (queue_name, queue_length, newest_msg_age_sec, oldest_msg_age_sec, total_messages) = row;
    QueueMetrics {
        namespace: namespace_of(&queue_name).to_owned(),
        queue_name,
        queue_length,
        newest_msg_age_sec,
        oldest_msg_age_sec,
        total_messages,
    }
}

/// The namespace part of a `{namespace}_domain_events` queue name.
fn namespace_of(queue_name: &str) -> &str {
    queue_name.strip_suffix(QUEUE_SUFFIX).unwrap_or(queue_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    #[test]
    fn namespace_is_the_queue_name_without_its_suffix() {
        assert_eq!(namespace_of("payments_domain_events"), "payments");
        assert_eq!(namespace_of("odd"), "odd");
    }

    #[test]
    fn peek_sql_names_only_the_validated_table_and_binds_values() {
        let latest = peek_sql("payments_domain_events", Position::Latest);
        assert!(
            latest.contains("FROM pgmq.\"q_payments_domain_events\""),
            "{latest}"
        );
        assert!(latest.contains("DESC LIMIT $1"), "{latest}");
        assert!(latest.ends_with("ORDER BY msg_id"), "{latest}");

        let after = peek_sql("payments_domain_events", Position::After(7));
        assert!(after.contains("WHERE msg_id > $1"), "{after}");
        assert!(after.ends_with("LIMIT $2"), "{after}");
        assert!(!after.contains('7'), "the position is a parameter: {after}");
        for sql in [latest, after] {
            assert!(!sql.contains("pgmq.read"), "{sql}");
        }
    }

    #[test]
    fn missing_queue_names_the_queues_that_exist() {
        let error = QueueError::Missing {
            queue: "x_domain_events".into(),
            existing: vec!["a_domain_events".into(), "b_domain_events".into()],
        };
        assert_eq!(
            error.to_string(),
            "queue x_domain_events does not exist; existing *_domain_events queues: \
             a_domain_events, b_domain_events"
        );
        let none = QueueError::Missing {
            queue: "x_domain_events".into(),
            existing: vec![],
        };
        assert!(none
            .to_string()
            .ends_with("there are no *_domain_events queues"));
    }

    #[test]
    fn bad_url_is_reported_without_its_password() {
        let result =
            QueueInspector::connect("postgres://u:secret@h:port/db", PATIENCE, &Cancel::new());
        let error = result.err().expect("the URL does not parse");
        assert!(matches!(error, QueueError::Url { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("u:***@h"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn closed_port_is_unreachable_with_the_reason() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("postgres://u:secret@127.0.0.1:{port}/db");
        let error = QueueInspector::connect(&url, PATIENCE, &Cancel::new())
            .err()
            .expect("nothing listens there");
        let message = error.to_string();
        assert!(matches!(error, QueueError::Unreachable { .. }), "{error:?}");
        assert!(message.contains("refused"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn a_cancelled_token_ends_the_wait() {
        let cancel = Cancel::new();
        cancel.cancel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pending = std::future::pending::<Result<(), QueueError>>();
        let result = runtime.block_on(cancellable(&cancel, pending));
        assert!(matches!(result, Err(QueueError::Interrupted)));
    }
}
