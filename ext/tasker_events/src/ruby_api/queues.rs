//! `TaskerEvents::Native::QueueInspector`: the core's read-only view of the durable queues
//! (`tasker_events_core::queues`), wrapped by `TaskerEvents::QueueInspector` and used by the
//! `tasker-events` CLI. Every database call runs without the GVL, and an interrupt of the
//! calling thread (Ctrl-C, SIGTERM, `Thread#raise`) cancels it instead of waiting for
//! PostgreSQL.

use std::time::Duration;

use magnus::{function, method, prelude::*, Error, RModule, Ruby, Value};
use tasker_events_core::config::redact_url;
use tasker_events_core::queues::{Cancel, Position, QueueError, QueueInspector};

use crate::convert::to_ruby;
use crate::errors::{self, guard};
use crate::gvl::without_gvl;

#[magnus::wrap(class = "TaskerEvents::Native::QueueInspector", free_immediately, size)]
struct RbQueueInspector(QueueInspector);

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_module_function("redact_url", function!(redact, 1))?;
    let class = native.define_class("QueueInspector", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("connect", function!(RbQueueInspector::connect, 2))?;
    class.define_method("url", method!(RbQueueInspector::url, 0))?;
    class.define_method("queues", method!(RbQueueInspector::queues, 0))?;
    class.define_method("peek", method!(RbQueueInspector::peek, 3))?;
    class.define_method("close", method!(RbQueueInspector::close, 0))?;
    Ok(())
}

/// @return [String] the URL with its password masked, safe to print
fn redact(url: String) -> String {
    redact_url(&url)
}

impl RbQueueInspector {
    /// @return [QueueInspector] connected; raises when the first connection fails
    fn connect(ruby: &Ruby, url: String, connect_timeout_ms: u64) -> Result<Self, Error> {
        guard(ruby, || {
            let timeout = Duration::from_millis(connect_timeout_ms);
            blocking(ruby, |cancel| {
                QueueInspector::connect(&url, timeout, cancel)
            })
            .map(Self)
        })
    }

    fn url(&self) -> String {
        self.0.url().to_owned()
    }

    /// @return [Array<Hash>] queue_name, namespace, queue_length, newest_msg_age_sec,
    ///   oldest_msg_age_sec, total_messages; by queue name
    fn queues(ruby: &Ruby, rb_self: &Self) -> Result<Value, Error> {
        guard(ruby, || {
            let queues = blocking(ruby, |cancel| rb_self.0.queues(cancel))?;
            json_to_ruby(ruby, serde_json::to_value(queues))
        })
    }

    /// @param after [Integer, nil] nil for the newest rows, else the msg_id to start after
    /// @return [Array<Hash>] msg_id, read_ct, enqueued_at, vt, message, headers; oldest first
    fn peek(
        ruby: &Ruby,
        rb_self: &Self,
        namespace: String,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Value, Error> {
        guard(ruby, || {
            let position = after.map_or(Position::Latest, Position::After);
            let messages = blocking(ruby, |cancel| {
                rb_self.0.peek(&namespace, position, limit, cancel)
            })?;
            json_to_ruby(ruby, serde_json::to_value(messages))
        })
    }

    fn close(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        guard(ruby, || {
            without_gvl(ruby, || rb_self.0.close(), || {})?;
            Ok(())
        })
    }
}

/// Runs `work` without the GVL, cancelling it when Ruby interrupts the thread; pending
/// interrupts are raised once the GVL is back.
fn blocking<T>(
    ruby: &Ruby,
    work: impl FnOnce(&Cancel) -> Result<T, QueueError>,
) -> Result<T, Error> {
    let cancel = Cancel::new();
    let outcome = without_gvl(ruby, || work(&cancel), || cancel.cancel())?;
    outcome
        .unwrap_or(Err(QueueError::Interrupted))
        .map_err(|e| raise(ruby, e))
}

fn json_to_ruby(ruby: &Ruby, json: serde_json::Result<serde_json::Value>) -> Result<Value, Error> {
    let json = json.map_err(|e| errors::error(ruby, "Error", e.to_string()))?;
    to_ruby(ruby, &json)
}

/// Each failure gets the class the CLI maps to its exit status.
fn raise(ruby: &Ruby, error: QueueError) -> Error {
    let class = match &error {
        QueueError::Url { .. } => "ConfigError",
        QueueError::Unreachable { .. } => "DatabaseUnreachableError",
        QueueError::NotInstalled { .. } => "PgmqNotInstalledError",
        QueueError::Missing { .. } => "QueueNotFoundError",
        QueueError::Namespace(_) => "ValidationError",
        QueueError::Interrupted | QueueError::Closed => "Error",
        QueueError::Postgres(_) | QueueError::Runtime(_) => "DatabaseError",
    };
    errors::error(ruby, class, error.to_string())
}
