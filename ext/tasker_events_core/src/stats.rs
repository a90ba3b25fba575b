//! Counters for every event the router accepts, per path, and the settle signal that `flush`
//! waits on.
//!
//! Each path (`durable`, `rust_subscribers`, `ruby_subscribers`) counts what was handed to it
//! (`accepted`), what reached its destination (`delivered`) and what was lost, by reason
//! (`dropped`). `accepted` is counted before the hand-off, so `delivered + dropped` never runs
//! ahead of it and `accepted - delivered - dropped` is what is still queued.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::event::{DomainEvent, EventDeliveryMode};
use crate::metrics::Metrics;

/// Why an event did not reach a path's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The path's bounded channel was full.
    ChannelFull,
    /// A durable event was published but no `database_url` was configured.
    NoDatabase,
    /// PostgreSQL refused or could not be reached for the write.
    DatabaseError,
    /// The event system was not started (counted under `rejected`).
    NotStarted,
    /// The event system was shutting down, or shut down with the event still queued.
    ShuttingDown,
    /// The drain thread was killed after taking the event and before handing it over.
    DrainThreadStopped,
    /// A step completion named a task template that was not loaded.
    UnknownTemplate,
    /// A step completion named a step its task template does not have.
    UnknownStep,
}

impl DropReason {
    pub const ALL: [Self; 8] = [
        Self::ChannelFull,
        Self::NoDatabase,
        Self::DatabaseError,
        Self::NotStarted,
        Self::ShuttingDown,
        Self::DrainThreadStopped,
        Self::UnknownTemplate,
        Self::UnknownStep,
    ];

    /// The name used in logs, metrics and `stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChannelFull => "channel_full",
            Self::NoDatabase => "no_database",
            Self::DatabaseError => "database_error",
            Self::NotStarted => "not_started",
            Self::ShuttingDown => "shutting_down",
            Self::DrainThreadStopped => "drain_thread_stopped",
            Self::UnknownTemplate => "unknown_template",
            Self::UnknownStep => "unknown_step",
        }
    }
}

/// The counters of one path.
#[derive(Debug, Default)]
pub struct PathCounters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl PathCounters {
    pub fn accept(&self, n: u64) {
        self.accepted.fetch_add(n, Relaxed);
    }

    pub fn deliver(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
    }

    pub fn drop_events(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].fetch_add(n, Relaxed);
    }

    fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Events that reached an end, delivered or dropped.
    fn settled(&self) -> u64 {
        self.delivered.load(Relaxed) + self.dropped_total()
    }

    pub fn snapshot(&self) -> PathSnapshot {
        let dropped: Vec<_> = DropReason::ALL
            .iter()
            .map(|&r| (r.as_str(), self.dropped[r as usize].load(Relaxed)))
            .collect();
        let delivered = self.delivered.load(Relaxed);
        let dropped_total: u64 = dropped.iter().map(|(_, n)| n).sum();
        // Read last so that queued is never negative even while other threads count.
        let accepted = self.accepted.load(Relaxed);
        PathSnapshot {
            accepted,
            delivered,
            dropped: dropped.into_iter().collect(),
            queued: accepted.saturating_sub(delivered + dropped_total),
        }
    }
}

/// A point-in-time copy of one path's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathSnapshot {
    pub accepted: u64,
    pub delivered: u64,
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    pub queued: u64,
}

/// All counters of an event system. One instance lives for the whole process, so counts
/// survive `shutdown` and restarts.
#[derive(Debug, Default)]
pub struct Stats {
    published: [AtomicU64; EventDeliveryMode::ALL.len()],
    rejected: [AtomicU64; DropReason::ALL.len()],
    /// Step completions given to `dispatch_step_events`.
    pub dispatch: PathCounters,
    /// Publisher jobs handed to the drain thread.
    pub ruby_publishers: PathCounters,
    /// What became of declared events: see [`DeclaredOutcome`].
    declared: [AtomicU64; DeclaredOutcome::ALL.len()],
    pub durable: PathCounters,
    pub rust_subscribers: PathCounters,
    pub ruby_subscribers: PathCounters,
    subscriber_errors: [AtomicU64; 2],
    subscriber_timeouts: [AtomicU64; 2],
    /// The labelled series: published per event name and namespace, write latencies.
    pub metrics: Metrics,
    settle: Settle,
}

/// Which kind of subscriber an error or timeout came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberKind {
    Rust,
    Ruby,
}

impl SubscriberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Ruby => "ruby",
        }
    }
}

fn per_kind(counters: &[AtomicU64; 2]) -> std::collections::BTreeMap<&'static str, u64> {
    [SubscriberKind::Rust, SubscriberKind::Ruby]
        .iter()
        .map(|&k| (k.as_str(), counters[k as usize].load(Relaxed)))
        .collect()
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub published: std::collections::BTreeMap<&'static str, u64>,
    /// Events refused before routing (`not_started`, `shutting_down`).
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
    pub dispatch: PathSnapshot,
    pub ruby_publishers: PathSnapshot,
    pub declared_events: std::collections::BTreeMap<&'static str, u64>,
    pub durable: PathSnapshot,
    pub rust_subscribers: PathSnapshot,
    pub ruby_subscribers: PathSnapshot,
    pub subscriber_errors: std::collections::BTreeMap<&'static str, u64>,
    pub subscriber_timeouts: std::collections::BTreeMap<&'static str, u64>,
}

/// What `flush` waits for: the `accepted` counts of every path at the time of the call.
#[derive(Debug, Clone, Copy)]
pub struct SettleMark([u64; 5]);

/// What became of an event declared in a task template, once its step completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclaredOutcome {
    /// Built and handed to the router.
    Published,
    /// Its condition did not match the step's outcome.
    ConditionNotMet,
    /// The same step completion (step_uuid, attempt, event name) was dispatched before.
    Deduplicated,
    /// The payload did not match the declared JSON Schema.
    SchemaViolation,
    /// The publisher's `should_publish?` returned false.
    PublisherSkipped,
    /// A publisher hook raised.
    PublisherError,
    /// It needs a Ruby publisher, but `ffi_integration_enabled` is false.
    FfiDisabled,
    /// The drain thread's queue was full, or the system stopped, before its publisher ran.
    Dropped,
}

impl DeclaredOutcome {
    pub const ALL: [Self; 8] = [
        Self::Published,
        Self::ConditionNotMet,
        Self::Deduplicated,
        Self::SchemaViolation,
        Self::PublisherSkipped,
        Self::PublisherError,
        Self::FfiDisabled,
        Self::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::ConditionNotMet => "condition_not_met",
            Self::Deduplicated => "deduplicated",
            Self::SchemaViolation => "schema_violation",
            Self::PublisherSkipped => "publisher_skipped",
            Self::PublisherError => "publisher_error",
            Self::FfiDisabled => "ffi_disabled",
            Self::Dropped => "dropped",
        }
    }
}

/// The flow of a step completion, in order: dispatch, then Ruby publishers, then events. Flush
/// waits stage by stage so that events an earlier stage produces while it waits are included.
const FLUSH_STAGES: [usize; 3] = [1, 2, 5];

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts an event the router accepted for routing.
    pub fn record_published(&self, event: &DomainEvent) {
        self.published[event.delivery_mode as usize].fetch_add(1, Relaxed);
        self.metrics
            .record_published(&event.metadata.namespace, &event.event_name);
    }

    /// Counts an event refused before it reached any path.
    pub fn record_rejected(&self, reason: DropReason) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn record_subscriber_errors(&self, kind: SubscriberKind, n: u64) {
        self.subscriber_errors[kind as usize].fetch_add(n, Relaxed);
    }

    pub fn record_subscriber_timeout(&self, kind: SubscriberKind) {
        self.record_subscriber_timeouts(kind, 1);
    }

    pub fn record_subscriber_timeouts(&self, kind: SubscriberKind, n: u64) {
        self.subscriber_timeouts[kind as usize].fetch_add(n, Relaxed);
    }

    pub fn record_declared(&self, outcome: DeclaredOutcome, n: u64) {
        self.declared[outcome as usize].fetch_add(n, Relaxed);
    }

    /// Every path, upstream first (see [`FLUSH_STAGES`]).
    fn paths(&self) -> [&PathCounters; 5] {
        [
            &self.dispatch,
            &self.ruby_publishers,
            &self.durable,
            &self.rust_subscribers,
            &self.ruby_subscribers,
        ]
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            published: EventDeliveryMode::ALL
                .iter()
                .map(|&m| (m.as_str(), self.published[m as usize].load(Relaxed)))
                .collect(),
            rejected: [DropReason::NotStarted, DropReason::ShuttingDown]
                .iter()
                .map(|&r| (r.as_str(), self.rejected[r as usize].load(Relaxed)))
                .collect(),
            dispatch: self.dispatch.snapshot(),
            ruby_publishers: self.ruby_publishers.snapshot(),
            declared_events: DeclaredOutcome::ALL
                .iter()
                .map(|&o| (o.as_str(), self.declared[o as usize].load(Relaxed)))
                .collect(),
            durable: self.durable.snapshot(),
            rust_subscribers: self.rust_subscribers.snapshot(),
            ruby_subscribers: self.ruby_subscribers.snapshot(),
            subscriber_errors: per_kind(&self.subscriber_errors),
            subscriber_timeouts: per_kind(&self.subscriber_timeouts),
        }
    }

    /// Sets every counter back to zero: for a forked child process, whose counters must
    /// describe that process only.
    pub fn reset(&self) {
        let paths = self.paths();
        let arrays: [&[AtomicU64]; 5] = [
            &self.published,
            &self.rejected,
            &self.declared,
            &self.subscriber_errors,
            &self.subscriber_timeouts,
        ];
        for counter in arrays.into_iter().flatten() {
            counter.store(0, Relaxed);
        }
        for path in paths {
            path.accepted.store(0, Relaxed);
            path.delivered.store(0, Relaxed);
            path.dropped.iter().for_each(|c| c.store(0, Relaxed));
        }
        self.metrics.reset();
    }

    /// Holds every lock of the counters until the guard drops, so that a `fork` taken
    /// meanwhile cannot copy one held by a thread the child will not have.
    pub fn hold_for_fork(&self) -> impl Sized + '_ {
        let settle = self
            .settle
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (settle, self.metrics.hold_for_fork())
    }

    /// Marks what has been accepted so far, for [`Stats::wait_settled`].
    pub fn settle_mark(&self) -> SettleMark {
        SettleMark(self.paths().map(|p| p.accepted.load(Relaxed)))
    }

    /// Wakes `wait_settled` callers; paths call it after they deliver or drop.
    pub fn notify_progress(&self) {
        self.settle.notify();
    }

    /// Blocks until everything accepted before the call, and everything that produces in
    /// turn (the publisher jobs and events of dispatched step completions), has been
    /// delivered or dropped; or until the deadline passes or `interrupted` says to stop.
    /// Returns whether it settled.
    pub fn flush(&self, deadline: Instant, interrupted: &dyn Fn() -> bool) -> bool {
        FLUSH_STAGES.iter().all(|&upstream| {
            let mark = self.settle_mark();
            self.wait_paths(upstream, mark, deadline, interrupted)
        })
    }

    /// Blocks until every event accepted before `mark` has been delivered or dropped, the
    /// deadline passes, or `interrupted` says to stop. Returns whether it settled.
    pub fn wait_settled(
        &self,
        mark: SettleMark,
        deadline: Instant,
        interrupted: &dyn Fn() -> bool,
    ) -> bool {
        self.wait_paths(mark.0.len(), mark, deadline, interrupted)
    }

    /// Waits for the first `count` paths of [`Stats::paths`] to reach `mark`.
    fn wait_paths(
        &self,
        count: usize,
        mark: SettleMark,
        deadline: Instant,
        interrupted: &dyn Fn() -> bool,
    ) -> bool {
        let settled = || {
            self.paths()
                .iter()
                .zip(mark.0)
                .take(count)
                .all(|(p, target)| p.settled() >= target)
        };
        loop {
            if settled() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || interrupted() {
                return false;
            }
            // Short slices bound how long a missed notification or an interrupt can go unseen.
            self.settle
                .wait((deadline - now).min(Duration::from_millis(10)));
        }
    }
}

/// Decides who counts an event that is in flight when its system shuts down: the task that
/// finishes it, or shutdown, which counts what is still queued as dropped. Whichever comes
/// second does nothing, so nothing is counted twice. One gate per running system.
#[derive(Debug, Default)]
pub struct SettleGate {
    closed: Mutex<bool>,
}

impl SettleGate {
    /// Runs `count` unless shutdown has already accounted for what is left.
    pub fn count(&self, count: impl FnOnce()) -> bool {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return false;
        }
        count();
        true
    }

    /// Runs `count_lost` once; later [`SettleGate::count`] calls do nothing.
    pub fn close(&self, count_lost: impl FnOnce()) {
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if !*closed {
            *closed = true;
            count_lost();
        }
    }
}

#[derive(Debug, Default)]
struct Settle {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Settle {
    fn notify(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation = generation.wrapping_add(1);
        self.changed.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let start = *generation;
        let _unused = self
            .changed
            .wait_timeout_while(generation, timeout, |g| *g == start)
            .unwrap_or_else(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_is_accepted_minus_settled() {
        let stats = Stats::new();
        stats.durable.accept(5);
        stats.durable.deliver(2);
        stats.durable.drop_events(DropReason::DatabaseError, 1);
        let snap = stats.snapshot().durable;
        assert_eq!((snap.accepted, snap.delivered, snap.queued), (5, 2, 2));
        assert_eq!(snap.dropped["database_error"], 1);
        assert_eq!(snap.dropped["channel_full"], 0);
    }

    #[test]
    fn reset_zeroes_every_counter_and_series() {
        let stats = Stats::new();
        stats.durable.accept(3);
        stats.durable.deliver(1);
        stats.durable.drop_events(DropReason::ChannelFull, 1);
        stats.record_subscriber_errors(SubscriberKind::Ruby, 2);
        stats.record_declared(DeclaredOutcome::Published, 4);
        stats.metrics.record_published("ns", "a.b");

        stats.reset();
        assert_eq!(stats.snapshot(), Stats::new().snapshot());
        assert_eq!(
            crate::metrics::prometheus_text(&stats),
            crate::metrics::prometheus_text(&Stats::new())
        );
    }

    #[test]
    fn wait_settled_returns_once_marked_events_settle() {
        let stats = std::sync::Arc::new(Stats::new());
        stats.ruby_subscribers.accept(3);
        let mark = stats.settle_mark();
        let far = Instant::now() + Duration::from_secs(5);
        assert!(!stats.wait_settled(mark, Instant::now(), &|| false));

        let worker = {
            let stats = stats.clone();
            std::thread::spawn(move || {
                stats.ruby_subscribers.deliver(2);
                stats
                    .ruby_subscribers
                    .drop_events(DropReason::ChannelFull, 1);
                stats.notify_progress();
            })
        };
        assert!(stats.wait_settled(mark, far, &|| false));
        worker.join().unwrap();

        stats.durable.accept(1);
        assert!(!stats.wait_settled(stats.settle_mark(), far, &|| true));
    }
}
