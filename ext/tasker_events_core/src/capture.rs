//! Test mode: durable events captured in memory instead of written to PGMQ, and a log of the
//! events routed, so that a test suite can assert on both without PostgreSQL.
//!
//! With [`Config::test_mode`](crate::Config::test_mode) the durable path's task is a
//! [`CaptureSink`] instead of the PGMQ publisher. It takes events from the same bounded channel,
//! in the same batches, and appends each to a [`Capture`] as the message PGMQ would hold: the
//! same JSON body, the same headers, the queue `{namespace}_domain_events`, and a `msg_id`
//! counting from 1 per queue, as PGMQ's does. Each captured event is counted `delivered`, like
//! a write. Nothing connects to PostgreSQL. Everything else runs as in production: routing, the
//! channel (a full one still drops as `channel_full`), subscribers, `flush` and shutdown.
//!
//! The router of a test-mode system also records every event it accepts, whatever its delivery
//! mode, in the capture's event log, in routing order. Tests thus see fast events without a
//! subscriber of their own, which would add to the `ruby_subscribers` counters a test may
//! assert on.
//!
//! A capture is bounded: the messages and the event log each keep the latest `limit` entries
//! ([`DEFAULT_CAPTURE_LIMIT`] unless chosen otherwise). Past that the oldest entry is discarded
//! to make room and counted in [`Capture::discarded`]; the counters still show the event as
//! delivered, since the write itself succeeded. A capture lives as long as its owner keeps it,
//! not as long as the system: the Ruby extension keeps one per process, so captures survive
//! `shutdown` until [`Capture::clear`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::debug;

use crate::config::Config;
use crate::durable::headers;
use crate::event::DomainEvent;
use crate::names::queue_name;
use crate::stats::{SettleGate, Stats};

/// How many messages, and how many logged events, a capture keeps unless told otherwise.
pub const DEFAULT_CAPTURE_LIMIT: usize = 10_000;

/// A durable event as PGMQ would hold it in its queue, plus the queue's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapturedMessage {
    pub queue_name: String,
    /// Counts from 1 per queue; clearing the capture does not restart it, as purging a PGMQ
    /// queue does not restart its sequence.
    pub msg_id: i64,
    /// Always 0: nothing reads a captured message.
    pub read_ct: i32,
    #[serde(serialize_with = "rfc3339")]
    pub enqueued_at: DateTime<Utc>,
    /// Equal to `enqueued_at`: events are sent without delay, so they are visible at once.
    #[serde(serialize_with = "rfc3339")]
    pub vt: DateTime<Utc>,
    /// The event as JSON, exactly as the PGMQ publisher sends it.
    pub message: Value,
    /// `event_id`, `event_name` and `correlation_id`, as the PGMQ publisher sends them.
    pub headers: Value,
}

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// How many entries a capture discarded to stay within its limit, since it began or was
/// last cleared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Discarded {
    pub messages: u64,
    pub events: u64,
}

/// The events logged after a [`Capture::mark`].
#[derive(Debug, Clone, Default)]
pub struct EventsSince {
    /// In routing order.
    pub events: Vec<Arc<DomainEvent>>,
    /// Events logged after the mark that the capture no longer holds: discarded past its
    /// limit, or cleared.
    pub missing: u64,
}

/// Durable messages and logged events of test mode; see the module documentation.
#[derive(Debug)]
pub struct Capture {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<CapturedMessage>,
    /// Each event with its sequence number: the value of `logged` once it was added.
    events: VecDeque<(u64, Arc<DomainEvent>)>,
    /// Events ever logged; never goes back, so marks stay valid across `clear`.
    logged: u64,
    last_msg_ids: HashMap<String, i64>,
    discarded: Discarded,
}

impl Default for Capture {
    fn default() -> Self {
        Self::new(DEFAULT_CAPTURE_LIMIT)
    }
}

impl Capture {
    /// A capture that keeps at most `limit` messages and `limit` logged events (at least 1).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            state: Mutex::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends the message PGMQ would hold for `event`; returns its `msg_id`.
    pub(crate) fn write(&self, event: &DomainEvent) -> i64 {
        let queue = queue_name(event.namespace());
        let enqueued_at = Utc::now();
        // An event is plain JSON values under string keys, which always serialize.
        let message = serde_json::to_value(event).unwrap_or_default();
        let mut state = self.state();
        let msg_id = state.last_msg_ids.entry(queue.clone()).or_insert(0);
        *msg_id += 1;
        let msg_id = *msg_id;
        if state.messages.len() == self.limit {
            state.messages.pop_front();
            state.discarded.messages += 1;
        }
        state.messages.push_back(CapturedMessage {
            queue_name: queue,
            msg_id,
            read_ct: 0,
            enqueued_at,
            vt: enqueued_at,
            message,
            headers: headers(event),
        });
        msg_id
    }

    /// Adds an event the router accepted to the event log.
    pub(crate) fn log(&self, event: Arc<DomainEvent>) {
        let mut state = self.state();
        if state.events.len() == self.limit {
            state.events.pop_front();
            state.discarded.events += 1;
        }
        state.logged += 1;
        let sequence = state.logged;
        state.events.push_back((sequence, event));
    }

    /// The messages held, oldest first.
    pub fn messages(&self) -> Vec<CapturedMessage> {
        self.state().messages.iter().cloned().collect()
    }

    /// The logged events held, in routing order.
    pub fn events(&self) -> Vec<Arc<DomainEvent>> {
        self.events_since(0).events
    }

    /// Marks the end of the event log so far, for [`Capture::events_since`].
    pub fn mark(&self) -> u64 {
        self.state().logged
    }

    /// The events logged after `mark`, and how many of them are no longer held.
    pub fn events_since(&self, mark: u64) -> EventsSince {
        let state = self.state();
        let events: Vec<_> = state
            .events
            .iter()
            .filter(|(sequence, _)| *sequence > mark)
            .map(|(_, event)| event.clone())
            .collect();
        let missing = state.logged.saturating_sub(mark) - events.len() as u64;
        EventsSince { events, missing }
    }

    pub fn discarded(&self) -> Discarded {
        self.state().discarded
    }

    /// Forgets every message and logged event, and the discarded counts. Message ids and
    /// marks keep counting from where they were.
    pub fn clear(&self) {
        let mut state = self.state();
        state.messages.clear();
        state.events.clear();
        state.discarded = Discarded::default();
    }
}

/// The durable path's task in test mode: captures instead of writing to PGMQ.
pub(crate) struct CaptureSink {
    capture: Arc<Capture>,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    batch_size: usize,
}

impl CaptureSink {
    pub(crate) fn new(
        capture: Arc<Capture>,
        config: &Config,
        stats: Arc<Stats>,
        gate: Arc<SettleGate>,
    ) -> Self {
        Self {
            capture,
            stats,
            gate,
            batch_size: config.durable_batch_size,
        }
    }

    /// Runs until the channel is closed and empty.
    pub(crate) async fn run(self, mut receiver: mpsc::Receiver<Arc<DomainEvent>>) {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut message_ids = Vec::with_capacity(self.batch_size);
        while receiver.recv_many(&mut batch, self.batch_size).await > 0 {
            // Once shutdown has counted these events as lost, they are not captured either,
            // so the capture and the counters agree.
            self.gate.count(|| {
                message_ids.extend(batch.iter().map(|event| self.capture.write(event)));
                self.stats.durable.deliver(batch.len() as u64);
            });
            for (event, message_id) in batch.iter().zip(&message_ids) {
                debug!(
                    event_id = %event.event_id,
                    event_name = %event.event_name,
                    namespace = %event.metadata.namespace,
                    correlation_id = %event.metadata.correlation_id,
                    queue_name = %queue_name(&event.metadata.namespace),
                    message_id,
                    "domain event captured (test mode)"
                );
            }
            batch.clear();
            message_ids.clear();
            self.stats.notify_progress();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use serde_json::json;

    fn event(name: &str, namespace: &str) -> Arc<DomainEvent> {
        let event = NewEvent::new(name, namespace, json!({ "amount": 1 }));
        Arc::new(event.build().unwrap())
    }

    #[test]
    fn messages_carry_the_pgmq_body_and_headers() {
        let capture = Capture::default();
        let processed = event("payment.processed", "payments");
        assert_eq!(capture.write(&processed), 1);

        let message = capture.messages().remove(0);
        assert_eq!(message.queue_name, "payments_domain_events");
        assert_eq!(message.message, serde_json::to_value(&*processed).unwrap());
        assert_eq!(message.headers, headers(&processed));
        assert_eq!(message.headers["event_id"], json!(processed.event_id));
        assert_eq!((message.read_ct, message.vt), (0, message.enqueued_at));
    }

    #[test]
    fn message_ids_count_per_queue_and_survive_clear() {
        let capture = Capture::default();
        let ids: Vec<_> = ["a", "b", "a"]
            .iter()
            .map(|ns| capture.write(&event("x.y", ns)))
            .collect();
        assert_eq!(ids, [1, 1, 2]);
        capture.clear();
        assert!(capture.messages().is_empty());
        assert_eq!(capture.write(&event("x.y", "a")), 3);
    }

    #[test]
    fn the_oldest_entries_are_discarded_past_the_limit() {
        let capture = Capture::new(2);
        for n in 0..3 {
            let logged = event(&format!("x.e{n}"), "a");
            capture.write(&logged);
            capture.log(logged);
        }
        let names: Vec<_> = capture
            .events()
            .iter()
            .map(|e| e.event_name.clone())
            .collect();
        assert_eq!(names, ["x.e1", "x.e2"]);
        let ids: Vec<_> = capture.messages().iter().map(|m| m.msg_id).collect();
        assert_eq!(ids, [2, 3]);
        let expected = Discarded {
            messages: 1,
            events: 1,
        };
        assert_eq!(capture.discarded(), expected);
        capture.clear();
        assert_eq!(capture.discarded(), Discarded::default());
    }

    #[test]
    fn events_since_a_mark_count_what_is_no_longer_held() {
        let capture = Capture::new(2);
        capture.log(event("x.before", "a"));
        let mark = capture.mark();
        for name in ["x.one", "x.two", "x.three"] {
            capture.log(event(name, "a"));
        }
        let since = capture.events_since(mark);
        let names: Vec<_> = since.events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(names, ["x.two", "x.three"]);
        assert_eq!(since.missing, 1);

        let mark = capture.mark();
        capture.log(event("x.four", "a"));
        capture.clear();
        let since = capture.events_since(mark);
        assert!(since.events.is_empty());
        assert_eq!(since.missing, 1);
    }

    #[test]
    fn a_limit_of_zero_keeps_one() {
        let capture = Capture::new(0);
        capture.log(event("x.y", "a"));
        assert_eq!((capture.limit(), capture.events().len()), (1, 1));
    }
}
