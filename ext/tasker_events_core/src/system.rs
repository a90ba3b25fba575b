//! The event system: a tokio runtime of its own, the router, the bus, the durable publisher,
//! the step-completion dispatcher, and the queue to the drain thread, started and stopped
//! together.
//!
//! The runtime's threads are the core's own, so a host that has no async runtime (a Ruby
//! worker) can publish from any thread. `shutdown` stops accepting step completions, lets the
//! dispatcher turn what it holds into events, then stops accepting events and lets every path
//! finish what it holds, all within `shutdown_drain_timeout`; what is left is counted as
//! dropped (`shutting_down`), so the counters always add up.
//!
//! In test mode the durable path captures events in memory instead of writing them to PGMQ;
//! see [`crate::capture`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug_span;
use uuid::Uuid;

use crate::bus::{BusSettings, InProcessEventBus};
use crate::capture::{Capture, CaptureSink};
use crate::config::Config;
use crate::dispatch::{DispatchProcessor, Dispatcher};
use crate::drain::DrainQueue;
use crate::durable::{lazy_pool, DurablePublisher};
use crate::error::{DatabaseError, ValidationError};
use crate::event::{DomainEvent, EventDeliveryMode, NewEvent};
use crate::router::EventRouter;
use crate::stats::{DropReason, PathCounters, SettleGate, Stats};
use crate::template::TemplateRegistry;

/// Why an event system could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ValidationError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("could not start the tokio runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// What `shutdown` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Events and completions delivered while shutting down.
    pub drained: u64,
    /// Events and completions still queued at the deadline, now counted as dropped.
    pub dropped: u64,
    pub duration: Duration,
}

impl ShutdownReport {
    /// Whether everything queued was delivered before the deadline.
    pub fn is_complete(&self) -> bool {
        self.dropped == 0
    }
}

/// A running event system.
pub struct EventSystem {
    runtime: Runtime,
    router: Arc<EventRouter>,
    bus: Arc<InProcessEventBus>,
    drain: Arc<DrainQueue>,
    dispatcher: Option<Dispatcher>,
    dispatch_task: Option<JoinHandle<()>>,
    durable_task: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    capture: Arc<Capture>,
    config: Config,
}

/// The durable path's sender and task; both `None` when durable events have nowhere to go.
type DurablePath = (
    Option<mpsc::Sender<Arc<DomainEvent>>>,
    Option<JoinHandle<()>>,
);

impl EventSystem {
    /// Starts with no task templates; see [`EventSystem::start_with_templates`].
    pub fn start(config: Config, stats: Arc<Stats>) -> Result<Self, StartError> {
        Self::start_with_templates(config, stats, Arc::new(TemplateRegistry::default()))
    }

    /// Starts the runtime and every path. Never connects to PostgreSQL: the pool is lazy, so a
    /// database that is down at start only shows once durable events are written.
    ///
    /// The system owns its runtime, so `start` and [`EventSystem::shutdown`] must be called
    /// from outside any tokio runtime (tokio panics when a runtime is blocked on or dropped
    /// from within another).
    pub fn start_with_templates(
        config: Config,
        stats: Arc<Stats>,
        templates: Arc<TemplateRegistry>,
    ) -> Result<Self, StartError> {
        Self::start_with_capture(config, stats, templates, Arc::default())
    }

    /// Starts like [`EventSystem::start_with_templates`]; in test mode, durable events are
    /// captured in `capture`, which the caller may keep beyond this system's life.
    pub fn start_with_capture(
        config: Config,
        stats: Arc<Stats>,
        templates: Arc<TemplateRegistry>,
        capture: Arc<Capture>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tasker-events")
            .enable_all()
            .build()?;

        let drain = Arc::new(DrainQueue::new(config.broadcast_buffer_size));
        let gate = Arc::new(SettleGate::default());
        let settings = BusSettings {
            buffer_size: config.broadcast_buffer_size,
            dispatch_timeout: config.dispatch_timeout,
            log_subscriber_errors: config.log_subscriber_errors,
            log_dropped_events: config.log_dropped_events,
            ffi_integration_enabled: config.ffi_integration_enabled,
        };
        let bus = Arc::new(InProcessEventBus::new(
            settings,
            drain.clone(),
            stats.clone(),
            gate.clone(),
            runtime.handle().clone(),
        ));

        let (durable_sender, durable_task) =
            start_durable_path(&runtime, &config, &stats, &gate, &capture)?;
        let router = EventRouter::new(
            durable_sender,
            bus.clone(),
            stats.clone(),
            config.log_dropped_events,
        );
        let router = Arc::new(if config.test_mode {
            router.capturing(capture.clone())
        } else {
            router
        });

        let (sender, receiver) = mpsc::channel(config.command_buffer_size);
        let processor = DispatchProcessor::new(
            router.clone(),
            drain.clone(),
            stats.clone(),
            gate.clone(),
            &config,
        );
        let dispatch_task = Some(runtime.spawn(processor.run(receiver)));
        let log_dropped_events = config.log_dropped_events;
        let dispatcher = Some(Dispatcher::new(
            sender,
            templates,
            stats.clone(),
            log_dropped_events,
        ));

        Ok(Self {
            runtime,
            router,
            bus,
            drain,
            dispatcher,
            dispatch_task,
            durable_task,
            stats,
            gate,
            capture,
            config,
        })
    }

    /// Validates and routes an event. `Ok(Some(id))` when a path accepted it, `Ok(None)` when
    /// it was dropped (and counted); `Err` only for input that can never be delivered.
    pub fn publish(&self, event: NewEvent) -> Result<Option<Uuid>, ValidationError> {
        let span = debug_span!(
            "publish",
            event_name = %event.event_name,
            namespace = %event.namespace,
            event_id = tracing::field::Empty,
        );
        let _entered = span.enter();
        let event = event.build()?;
        let id = event.event_id;
        span.record("event_id", tracing::field::display(id));
        Ok(self.router.route(event).then_some(id))
    }

    /// Whether an event of this name and mode needs its payload as JSON: for PGMQ, or for a
    /// Rust subscriber. When neither applies, a host language may hand its own subscribers the
    /// payload object itself (see [`crate::event::HostPayload`]) and skip the conversion.
    pub fn needs_json_payload(&self, event_name: &str, mode: EventDeliveryMode) -> bool {
        mode.is_durable() || self.bus.has_rust_subscriber_for(event_name)
    }

    pub fn router(&self) -> &Arc<EventRouter> {
        &self.router
    }

    pub fn bus(&self) -> &Arc<InProcessEventBus> {
        &self.bus
    }

    /// Where step completions go; see [`crate::dispatch`].
    pub fn dispatcher(&self) -> &Dispatcher {
        self.dispatcher
            .as_ref()
            .expect("the dispatcher lives until shutdown")
    }

    /// The queue the drain thread takes Ruby subscribers' deliveries and publisher jobs from.
    pub fn drain_queue(&self) -> &Arc<DrainQueue> {
        &self.drain
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where test mode captures durable messages and logs events; unused otherwise.
    pub fn capture(&self) -> &Arc<Capture> {
        &self.capture
    }

    /// Waits until everything accepted so far has been written or handed to its subscribers
    /// (or dropped), or until `timeout`. `interrupted` is polled to end the wait early.
    pub fn flush(&self, timeout: Duration, interrupted: &dyn Fn() -> bool) -> bool {
        self.stats.flush(Instant::now() + timeout, interrupted)
    }

    /// Stops accepting step completions and events, lets the dispatcher, the durable
    /// publisher and Rust subscribers finish what they hold until `shutdown_drain_timeout`,
    /// and counts the rest as dropped. The drain queue is closed, so the drain thread ends once
    /// it has taken what is left; the caller waits for that.
    pub fn shutdown(mut self) -> ShutdownReport {
        let started = Instant::now();
        let deadline = started + self.config.shutdown_drain_timeout;
        let settled_before = settled(&self.stats);

        // Completions first: the events they produce still need an open router.
        drop(self.dispatcher.take());
        let dispatch_task = self.dispatch_task.take();
        self.runtime.block_on(async {
            if let Some(task) = dispatch_task {
                let _ = tokio::time::timeout_at(deadline.into(), task).await;
            }
        });

        self.router.close();
        let mut tasks = self.bus.close();
        tasks.extend(self.durable_task.take());
        let Self {
            runtime,
            drain,
            stats,
            gate,
            config,
            ..
        } = self;
        runtime.block_on(async {
            let all = futures::future::join_all(tasks);
            let _ = tokio::time::timeout_at(deadline.into(), all).await;
        });
        runtime.shutdown_timeout(Duration::from_millis(100));
        drain.close();

        // Whatever is still counted as queued was lost with the runtime; the gate keeps a
        // straggling task from counting it again.
        let mut dropped = 0;
        gate.close(|| {
            for path in [&stats.dispatch, &stats.durable, &stats.rust_subscribers] {
                dropped += count_lost(path, config.log_dropped_events);
            }
        });
        stats.notify_progress();
        ShutdownReport {
            drained: settled(&stats).saturating_sub(settled_before + dropped),
            dropped,
            duration: started.elapsed(),
        }
    }
}

/// Spawns the durable path's task: the capture sink in test mode, else the PGMQ publisher
/// when a database is configured.
fn start_durable_path(
    runtime: &Runtime,
    config: &Config,
    stats: &Arc<Stats>,
    gate: &Arc<SettleGate>,
    capture: &Arc<Capture>,
) -> Result<DurablePath, StartError> {
    let (sender, receiver) = mpsc::channel(config.command_buffer_size);
    let task = if config.test_mode {
        let sink = CaptureSink::new(capture.clone(), config, stats.clone(), gate.clone());
        runtime.spawn(sink.run(receiver))
    } else if let Some(url) = &config.database_url {
        let pool = runtime.block_on(async { lazy_pool(url, config) })?;
        let publisher = DurablePublisher::new(pool, config, stats.clone(), gate.clone());
        let publisher = runtime.block_on(publisher);
        runtime.spawn(publisher.run(receiver))
    } else {
        return Ok((None, None));
    };
    Ok((Some(sender), Some(task)))
}

/// Delivered plus dropped over the paths this system settles itself.
fn settled(stats: &Stats) -> u64 {
    let snapshot = stats.snapshot();
    [
        snapshot.dispatch,
        snapshot.durable,
        snapshot.rust_subscribers,
    ]
    .iter()
    .map(|p| p.delivered + p.dropped.values().sum::<u64>())
    .sum()
}

fn count_lost(path: &PathCounters, log_dropped_events: bool) -> u64 {
    let queued = path.snapshot().queued;
    if queued > 0 {
        path.drop_events(DropReason::ShuttingDown, queued);
    }
    if queued > 0 && log_dropped_events {
        tracing::warn!(
            dropped = queued,
            reason = DropReason::ShuttingDown.as_str(),
            "domain events still queued at shutdown were dropped"
        );
    }
    queued
}
