//! The durable publisher: writes durable and broadcast events to PGMQ for external consumers.
//!
//! One task takes events from a bounded channel into a [`Backlog`] and writes them, one
//! `send_batch` of up to `durable_batch_size` events of one namespace at a time, so a busy
//! worker makes one round trip per batch rather than one per event, and an idle one writes
//! each event as soon as it arrives. It keeps taking from the channel while a write is under
//! way. Events of one namespace are written in the order they were published. Each queue
//! (`{namespace}_domain_events`) is created once, on first use.
//!
//! **When a write fails** because PostgreSQL is unreachable, restarting, or not ready (no
//! PGMQ, no queue, a lost connection), its events stay at the front of the backlog and the
//! write is tried again after a backoff that doubles from [`FIRST_BACKOFF`] up to
//! [`MAX_BACKOFF`], with jitter so that many workers do not retry in step. Meanwhile new events
//! wait behind them, up to `durable_buffer_size`; once the backlog is full the task stops
//! taking from its channel, which fills, and the router drops further events as
//! `channel_full`. The first failure of an outage, then one line every
//! [`OUTAGE_LOG_INTERVAL`], and the recovery are logged at warn.
//!
//! A write whose outcome is unknown (the connection broke after PostgreSQL received the batch)
//! is written again, so a consumer can see an event twice: delivery is at least once, and
//! consumers deduplicate by `event_id`.
//!
//! **When PostgreSQL refuses the data itself** (SQLSTATE classes 22 and 54, such as a `\u0000`
//! that `jsonb` cannot store, or a message past its size limit), writing it again cannot
//! succeed: the batch is split in halves and each written again at once, so that only the
//! refused event is dropped (`database_error`, logged with PostgreSQL's message) and nothing
//! else is lost with it.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use futures::future::OptionFuture;
use pgmq::{PGMQueueExt, PgmqError};
use serde_json::json;
use serde_json::value::RawValue;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, span, warn, Instrument, Level};

use crate::backlog::Backlog;
use crate::config::{redact_url, Config};
use crate::error::DatabaseError;
use crate::event::DomainEvent;
use crate::log;
use crate::metrics::WriteOutcome;
use crate::names::queue_name;
use crate::outgoing::Outgoing;
use crate::stats::{DropReason, SettleGate, Stats};

/// The wait before the first retry of a failed write.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between retries, so that writing resumes within this long of PostgreSQL
/// coming back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often an outage that goes on is logged again.
pub const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(10);

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
    pool: PgPool,
    created: HashSet<String>,
    install_pending: bool,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    batch_size: usize,
    buffer_size: usize,
    log_dropped_events: bool,
    backlog: Backlog,
    outage: Option<Outage>,
    isolating: Option<Isolation>,
}

/// After PostgreSQL refused a batch: the events of that batch, at the front of its
/// namespace's queue, are written in smaller batches until the refused one is found.
struct Isolation {
    namespace: String,
    /// Events still to write in batches of at most `batch_size`.
    remaining: usize,
    batch_size: usize,
}

/// A run of failed writes, from the first failure to the next success.
struct Outage {
    started: Instant,
    failures: u32,
    last_logged: Instant,
    retry_at: Instant,
}

/// One batch being written, on a task of its own so that the publisher keeps taking events
/// from its channel meanwhile.
struct Write {
    namespace: String,
    events: Vec<Outgoing>,
    install: bool,
    create: bool,
}

/// What became of a [`Write`].
struct Written {
    write: Write,
    result: Result<Vec<i64>, PgmqError>,
    took: Duration,
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
            buffer_size: config.durable_buffer_size,
            log_dropped_events: config.log_dropped_events,
            backlog: Backlog::default(),
            outage: None,
            isolating: None,
        }
    }

    /// Runs until the channel is closed and every event in the backlog is written or dropped
    /// (or the runtime stops, at the shutdown deadline).
    pub(crate) async fn run(mut self, mut receiver: mpsc::Receiver<Arc<DomainEvent>>) {
        let mut incoming = Vec::with_capacity(self.batch_size);
        let mut in_flight: Option<(JoinHandle<Written>, usize)> = None;
        let mut open = true;
        loop {
            if in_flight.is_none() {
                in_flight = self.next_write();
            }
            if !open && in_flight.is_none() && self.backlog.is_empty() {
                return;
            }
            // The batch being written still counts against the buffer: it may come back.
            let writing = in_flight.as_ref().map_or(0, |(_, n)| *n);
            let room = self
                .buffer_size
                .saturating_sub(self.backlog.len() + writing)
                .min(self.batch_size);
            let retry_at = self.outage.as_ref().map(|o| o.retry_at);
            let waiting_to_retry = in_flight.is_none() && retry_at.is_some();

            tokio::select! {
                received = receiver.recv_many(&mut incoming, room.max(1)), if open && room > 0 => {
                    if received == 0 {
                        open = false;
                    }
                    for event in incoming.drain(..) {
                        self.accept(&event);
                    }
                }
                Some(joined) = OptionFuture::from(in_flight.as_mut().map(|(task, _)| task)) => {
                    in_flight = None;
                    // A write task ends only by finishing, or by the runtime stopping.
                    if let Ok(written) = joined {
                        self.on_written(written);
                    }
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)),
                    if waiting_to_retry => {
                    if let Some(outage) = &mut self.outage {
                        outage.retry_at = Instant::now();
                    }
                }
            }
        }
    }

    /// Starts writing the next batch, unless the backlog is empty or a retry is not due.
    /// Returns the task and how many events it writes.
    fn next_write(&mut self) -> Option<(JoinHandle<Written>, usize)> {
        if self
            .outage
            .as_ref()
            .is_some_and(|o| o.retry_at > Instant::now())
        {
            return None;
        }
        let (namespace, events) = self.backlog.take_batch(|namespace| match &self.isolating {
            Some(isolation) if isolation.namespace == namespace => isolation.batch_size,
            _ => self.batch_size,
        })?;
        let write = Write {
            create: !self.created.contains(&namespace),
            install: self.install_pending,
            namespace,
            events,
        };
        let span = span!(
            // One span per batch costs little, so it is on whenever warnings are: what is
            // logged about this write, its outcome included, names the queue.
            Level::WARN,
            "durable_write",
            namespace = %write.namespace,
            queue_name = %queue_name(&write.namespace),
            event_count = write.events.len()
        );
        let count = write.events.len();
        let job = run_write(self.queue.clone(), self.pool.clone(), write);
        Some((tokio::spawn(job.instrument(span)), count))
    }

    /// Keeps an event from the channel in the backlog, as the text it will be written as.
    fn accept(&mut self, event: &DomainEvent) {
        match Outgoing::encode(event) {
            Ok(outgoing) => self.backlog.push(outgoing),
            // Unreachable for events built by `NewEvent::build`, whose JSON always has a form;
            // counted and logged all the same rather than lost without a trace.
            Err(error) => {
                let reason = DropReason::DatabaseError;
                self.gate
                    .count(|| self.stats.durable.drop_events(reason, 1));
                let detail = format!("the event could not be serialized: {error}");
                log::event_dropped(event, "durable", reason, &detail);
            }
        }
    }

    fn on_written(&mut self, written: Written) {
        let Written {
            write,
            result,
            took,
        } = written;
        let outcome = match result {
            Ok(_) => WriteOutcome::Ok,
            Err(_) => WriteOutcome::Error,
        };
        self.stats
            .metrics
            .record_durable_write(&write.namespace, outcome, took);
        match result {
            Ok(message_ids) => self.on_success(write, &message_ids),
            Err(error) if refused_data(&error) => self.on_refused(write, &error),
            Err(error) => self.on_failure(write, &error),
        }
        self.stats.notify_progress();
    }

    fn on_success(&mut self, write: Write, message_ids: &[i64]) {
        self.install_pending = false;
        self.isolated(&write.namespace, write.events.len());
        self.created.insert(write.namespace.clone());
        if let Some(outage) = self.outage.take() {
            warn!(
                queue_name = %queue_name(&write.namespace),
                failed_writes = outage.failures,
                outage_ms = outage.started.elapsed().as_millis() as u64,
                buffered = self.backlog.len(),
                "durable writes resumed; buffered events are being written"
            );
        }
        // A write that outlived shutdown's wait was already counted as lost.
        let events = &write.events;
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
                namespace = %event.namespace,
                correlation_id = %event.correlation_id,
                queue_name = %queue_name(&event.namespace),
                message_id,
                "domain event written to PGMQ"
            );
        }
    }

    /// Keeps the batch for a retry after a backoff.
    fn on_failure(&mut self, write: Write, error: &PgmqError) {
        // The queue may have been dropped behind our back; create it again next time.
        self.created.remove(&write.namespace);
        let now = Instant::now();
        let outage = self.outage.get_or_insert(Outage {
            started: now,
            failures: 0,
            last_logged: now,
            retry_at: now,
        });
        outage.failures += 1;
        let delay = backoff(outage.failures);
        outage.retry_at = now + delay;
        let first = outage.failures == 1;
        let log_again = now.duration_since(outage.last_logged) >= OUTAGE_LOG_INTERVAL;
        if first || log_again {
            outage.last_logged = now;
            warn!(
                queue_name = %queue_name(&write.namespace),
                event_count = write.events.len(),
                failed_writes = outage.failures,
                buffered = self.backlog.len() + write.events.len(),
                retry_in_ms = delay.as_millis() as u64,
                error = %error,
                "durable write failed; its events are kept and the write will be retried"
            );
        }
        self.backlog.push_front(&write.namespace, write.events);
    }

    /// PostgreSQL refused the batch's data: write it again in halves, to find the event it
    /// refuses, or drop that one event.
    fn on_refused(&mut self, write: Write, error: &PgmqError) {
        let events = write.events;
        if events.len() > 1 {
            self.isolating = Some(Isolation {
                namespace: write.namespace.clone(),
                remaining: events.len(),
                batch_size: events.len().div_ceil(2),
            });
            self.backlog.push_front(&write.namespace, events);
            return;
        }
        self.isolated(&write.namespace, events.len());
        let reason = DropReason::DatabaseError;
        let counted = self
            .gate
            .count(|| self.stats.durable.drop_events(reason, events.len() as u64));
        if !counted || !self.log_dropped_events {
            return;
        }
        let detail = format!(
            "PostgreSQL refused the event for {}: {error}",
            queue_name(&write.namespace)
        );
        for event in &events {
            log::event_dropped(event, "durable", reason, &detail);
        }
    }
}

impl DurablePublisher {
    /// Counts `written` events of `namespace` as settled for an isolation under way.
    fn isolated(&mut self, namespace: &str, written: usize) {
        let Some(isolation) = &mut self.isolating else {
            return;
        };
        if isolation.namespace == namespace {
            isolation.remaining = isolation.remaining.saturating_sub(written);
            if isolation.remaining == 0 {
                self.isolating = None;
            }
        }
    }
}

async fn run_write(queue: PGMQueueExt, pool: PgPool, write: Write) -> Written {
    let started = Instant::now();
    let result = send(&queue, &pool, &write).await;
    Written {
        write,
        result,
        took: started.elapsed(),
    }
}

async fn send(queue: &PGMQueueExt, pool: &PgPool, write: &Write) -> Result<Vec<i64>, PgmqError> {
    if write.install {
        pgmq::install::install_sql_from_embedded(pool).await?;
    }
    let name = queue_name(&write.namespace);
    if write.create {
        queue.create(&name).await?;
    }
    let messages: Vec<Json<&RawValue>> = write.events.iter().map(|e| Json(&*e.message)).collect();
    let headers: Vec<Json<&RawValue>> = write.events.iter().map(|e| Json(&*e.headers)).collect();
    // The call the pgmq crate makes, with JSON encoded as the events arrived rather than
    // rebuilt as `serde_json::Value` trees here.
    let ids = sqlx::query_scalar(
        "SELECT * FROM pgmq.send_batch(queue_name => $1::text, msgs => $2::jsonb[], \
         headers => $3::jsonb[], delay => 0)",
    )
    .bind(&name)
    .bind(&messages[..])
    .bind(&headers[..])
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

/// Whether PostgreSQL refused the data itself (data exceptions, program limits), so that
/// sending the same events again cannot succeed.
fn refused_data(error: &PgmqError) -> bool {
    match error {
        PgmqError::DatabaseError(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|code| code.starts_with("22") || code.starts_with("54")),
        PgmqError::JsonParsingError(_) => true,
        _ => false,
    }
}

/// The wait before retry number `failures` (from 1): doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`], then a random 50 to 100 % of that.
fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let ceiling = doubled.min(MAX_BACKOFF);
    let random = RandomState::new().hash_one(failures);
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    ceiling.mul_f64(fraction)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling_with_jitter() {
        for failures in 1..40 {
            let ceiling = FIRST_BACKOFF
                .saturating_mul(1 << (failures - 1).min(16))
                .min(MAX_BACKOFF);
            let delay = backoff(failures);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{failures}: {delay:?}"
            );
        }
        assert!(backoff(1) <= FIRST_BACKOFF);
        assert!(backoff(30) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn only_refused_data_is_final() {
        let io = PgmqError::DatabaseError(sqlx::Error::PoolTimedOut);
        assert!(!refused_data(&io));
        let install = PgmqError::InstallationError("connection refused".into());
        assert!(!refused_data(&install));
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert!(refused_data(&PgmqError::JsonParsingError(json)));
    }

    #[tokio::test]
    async fn bad_url_is_reported_without_password() {
        let config = Config::default();
        let err = lazy_pool("postgres://u:secret@h:port/db", &config);
        let err = err.map(|_| ()).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
