//! The durable publisher: writes durable and broadcast events to PGMQ for external consumers.
//!
//! One task drains a bounded channel. Whatever is waiting when it wakes (up to
//! `durable_batch_size` events) is written with one `send_batch` per namespace, so a busy
//! worker makes one round trip per batch rather than one per event, and an idle one writes
//! each event as soon as it arrives. Events of one namespace are written in the order they were
//! published. Each queue (`{namespace}_domain_events`) is created once, on first use.
//!
//! A batch that PostgreSQL refuses, or that cannot be sent because the database is
//! unreachable, is handed to [`DurablePublisher::on_write_failure`], which counts its events as
//! dropped (`database_error`) and logs each at warn. That method is the one place a retry
//! policy belongs; nothing else assumes a failed batch is gone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use pgmq::PGMQueueExt;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::mpsc;
use tracing::{debug, span, warn, Instrument, Level};

use crate::config::{redact_url, Config};
use crate::error::DatabaseError;
use crate::event::DomainEvent;
use crate::log;
use crate::metrics::WriteOutcome;
use crate::names::queue_name;
use crate::stats::{DropReason, SettleGate, Stats};

/// Opens a lazy pool: nothing connects until the first write, so a database that is down at
/// start costs nothing until then.
pub fn lazy_pool(url: &str, config: &Config) -> Result<PgPool, DatabaseError> {
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| DatabaseError::Url {
        url: redact_url(url),
        reason: e.to_string(),
    })?;
    Ok(PgPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(config.connect_timeout)
        .connect_lazy_with(options.application_name("tasker_events")))
}

/// Installs PGMQ as plain SQL when it is missing or older than the bundled version.
/// Never runs `CREATE EXTENSION`.
pub async fn install_pgmq(pool: &PgPool) -> Result<(), DatabaseError> {
    pgmq::install::install_sql_from_embedded(pool)
        .await
        .map_err(DatabaseError::from_pgmq)
}

pub(crate) struct DurablePublisher {
    queue: PGMQueueExt,
    pool: sqlx::Pool<Postgres>,
    created: HashSet<String>,
    install_pending: bool,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    batch_size: usize,
    log_dropped_events: bool,
}

impl DurablePublisher {
    pub(crate) async fn new(
        pool: PgPool,
        config: &Config,
        stats: Arc<Stats>,
        gate: Arc<SettleGate>,
    ) -> Self {
        Self {
            queue: PGMQueueExt::new_with_pool(pool.clone()).await,
            pool,
            created: HashSet::new(),
            install_pending: config.install_pgmq,
            stats,
            gate,
            batch_size: config.durable_batch_size,
            log_dropped_events: config.log_dropped_events,
        }
    }

    /// Runs until the channel is closed and empty.
    pub(crate) async fn run(mut self, mut receiver: mpsc::Receiver<Arc<DomainEvent>>) {
        let mut batch = Vec::with_capacity(self.batch_size);
        while receiver.recv_many(&mut batch, self.batch_size).await > 0 {
            self.install_if_pending().await;
            for (namespace, events) in group_by_namespace(&batch) {
                // What is logged about this write, its outcome included, names the queue. One
                // span per batch costs little, so it is on whenever warnings are.
                let span = span!(
                    Level::WARN,
                    "durable_write",
                    namespace,
                    queue_name = %queue_name(namespace),
                    event_count = events.len()
                );
                self.write_and_count(namespace, &events)
                    .instrument(span)
                    .await;
            }
            batch.clear();
            self.stats.notify_progress();
        }
    }

    async fn write_and_count(&mut self, namespace: &str, events: &[&DomainEvent]) {
        let started = Instant::now();
        let written = self.write(namespace, events).await;
        let outcome = match &written {
            Ok(_) => WriteOutcome::Ok,
            Err(_) => WriteOutcome::Error,
        };
        self.stats
            .metrics
            .record_durable_write(namespace, outcome, started.elapsed());
        match written {
            Ok(message_ids) => self.on_written(events, &message_ids),
            Err(error) => self.on_write_failure(namespace, events, &error),
        }
    }

    async fn install_if_pending(&mut self) {
        if !self.install_pending {
            return;
        }
        match install_pgmq(&self.pool).await {
            Ok(()) => self.install_pending = false,
            Err(error) => warn!(%error, "PGMQ installation failed; will retry on next write"),
        }
    }

    async fn write(
        &mut self,
        namespace: &str,
        events: &[&DomainEvent],
    ) -> Result<Vec<i64>, DatabaseError> {
        let queue = queue_name(namespace);
        if !self.created.contains(&queue) {
            self.queue
                .create(&queue)
                .await
                .map_err(DatabaseError::from_pgmq)?;
            self.created.insert(queue.clone());
        }

        let headers: Vec<_> = events.iter().map(|e| headers(e)).collect();
        let result = self
            .queue
            .send_batch_with_delay_with_headers(&queue, events, Some(&headers), 0)
            .await;
        result.map_err(|error| {
            // The queue may have been dropped behind our back; create it again next time.
            self.created.remove(&queue);
            DatabaseError::from_pgmq(error)
        })
    }

    fn on_written(&self, events: &[&DomainEvent], message_ids: &[i64]) {
        // A write that outlived shutdown's wait was already counted as lost.
        if !self
            .gate
            .count(|| self.stats.durable.deliver(events.len() as u64))
        {
            return;
        }
        for (event, message_id) in events.iter().zip(message_ids) {
            debug!(
                event_id = %event.event_id,
                event_name = %event.event_name,
                namespace = %event.metadata.namespace,
                correlation_id = %event.metadata.correlation_id,
                queue_name = %queue_name(&event.metadata.namespace),
                message_id,
                "domain event written to PGMQ"
            );
        }
    }

    fn on_write_failure(&self, namespace: &str, events: &[&DomainEvent], error: &DatabaseError) {
        let reason = DropReason::DatabaseError;
        let counted = self
            .gate
            .count(|| self.stats.durable.drop_events(reason, events.len() as u64));
        if !counted || !self.log_dropped_events {
            return;
        }
        let detail = format!("write to {} failed: {error}", queue_name(namespace));
        for event in events {
            log::event_dropped(event, "durable", reason, &detail);
        }
    }
}

/// The PGMQ headers of an event's message, so a consumer can route without parsing the body.
/// Test mode captures the same headers ([`crate::capture`]).
pub(crate) fn headers(event: &DomainEvent) -> serde_json::Value {
    json!({
        "event_id": event.event_id,
        "event_name": event.event_name,
        "correlation_id": event.metadata.correlation_id,
    })
}

/// Splits a batch by namespace, keeping first-seen order of namespaces and events.
fn group_by_namespace(batch: &[Arc<DomainEvent>]) -> Vec<(&str, Vec<&DomainEvent>)> {
    let mut groups: Vec<(&str, Vec<&DomainEvent>)> = Vec::new();
    for event in batch {
        let namespace = event.namespace();
        match groups.iter_mut().find(|(ns, _)| *ns == namespace) {
            Some((_, events)) => events.push(event),
            None => groups.push((namespace, vec![event])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;

    #[test]
    fn groups_keep_order_within_namespace() {
        let event =
            |ns: &str, n: u64| Arc::new(NewEvent::new("a.b", ns, json!(n)).build().unwrap());
        let batch = [event("x", 1), event("y", 2), event("x", 3)];
        let groups = group_by_namespace(&batch);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0, "x");
        let payloads: Vec<_> = groups[0].1.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(payloads, [json!(1), json!(3)]);
    }

    #[tokio::test]
    async fn bad_url_is_reported_without_password() {
        let config = Config::default();
        let err = lazy_pool("postgres://u:secret@h:port/db", &config);
        let err = err.map(|_| ()).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
