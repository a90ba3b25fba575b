//! The event system: a tokio runtime of its own, the router, the bus, the durable publisher,
//! the step-completion dispatcher, and the queue to the drain thread, started and stopped
//! together.
//!
//! The runtime's threads are the core's own, so a host that has no async runtime (a Ruby
//! worker) can publish from any thread. `shutdown` stops accepting step completions, lets the
//! dispatcher turn what it holds into events, then stops accepting events and lets every path
//! finish what it holds, all within `shutdown_drain_timeout`; what is left is counted as
//! dropped (`shutting_down`), so the counters always add up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bus::{BusSettings, InProcessEventBus};
use crate::config::Config;
use crate::dispatch::{DispatchProcessor, Dispatcher};
use crate::drain::DrainQueue;
use crate::durable::{lazy_pool, DurablePublisher};
use crate::error::{DatabaseError, ValidationError};
use crate::event::NewEvent;
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
    config: Config,
}

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

        let (durable_sender, durable_task) = match &config.database_url {
            Some(url) => {
                let (sender, receiver) = mpsc::channel(config.command_buffer_size);
                let pool = runtime.block_on(async { lazy_pool(url, &config) })?;
                let publisher = DurablePublisher::new(pool, &config, stats.clone(), gate.clone());
                let publisher = runtime.block_on(publisher);
                (Some(sender), Some(runtime.spawn(publisher.run(receiver))))
            }
            None => (None, None),
        };
        let router = Arc::new(EventRouter::new(
            durable_sender,
            bus.clone(),
            stats.clone(),
            config.log_dropped_events,
        ));

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
            config,
        })
    }

    /// Validates and routes an event. `Ok(Some(id))` when a path accepted it, `Ok(None)` when
    /// it was dropped (and counted); `Err` only for input that can never be delivered.
    pub fn publish(&self, event: NewEvent) -> Result<Option<Uuid>, ValidationError> {
        let event = event.build()?;
        let id = event.event_id;
        Ok(self.router.route(event).then_some(id))
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
