//! The event system: a tokio runtime of its own, the router, the bus, the durable publisher,
//! and the queue to the drain thread, started and stopped together.
//!
//! The runtime's threads are the core's own, so a host that has no async runtime (a Ruby
//! worker) can publish from any thread. `shutdown` stops accepting events, lets every path
//! finish what it holds for up to `shutdown_drain_timeout`, and counts what is left as dropped
//! (`shutting_down`), so the counters always add up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bus::{BusSettings, InProcessEventBus};
use crate::config::Config;
use crate::drain::DrainQueue;
use crate::durable::{lazy_pool, DurablePublisher};
use crate::error::{DatabaseError, ValidationError};
use crate::event::NewEvent;
use crate::router::EventRouter;
use crate::stats::{DropReason, PathCounters, SettleGate, Stats};

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

/// A running event system.
pub struct EventSystem {
    runtime: Runtime,
    router: EventRouter,
    bus: Arc<InProcessEventBus>,
    drain: Arc<DrainQueue>,
    durable_task: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    config: Config,
}

impl EventSystem {
    /// Starts the runtime and every path. Never connects to PostgreSQL: the pool is lazy, so a
    /// database that is down at start only shows once durable events are written.
    ///
    /// The system owns its runtime, so `start` and [`EventSystem::shutdown`] must be called
    /// from outside any tokio runtime (tokio panics when a runtime is blocked on or dropped
    /// from within another).
    pub fn start(config: Config, stats: Arc<Stats>) -> Result<Self, StartError> {
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
        let router = EventRouter::new(
            durable_sender,
            bus.clone(),
            stats.clone(),
            config.log_dropped_events,
        );

        Ok(Self {
            runtime,
            router,
            bus,
            drain,
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

    pub fn router(&self) -> &EventRouter {
        &self.router
    }

    pub fn bus(&self) -> &Arc<InProcessEventBus> {
        &self.bus
    }

    /// The queue the drain thread takes Ruby subscribers' deliveries from.
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
        let mark = self.stats.settle_mark();
        self.stats
            .wait_settled(mark, Instant::now() + timeout, interrupted)
    }

    /// Stops accepting events and lets the durable publisher and Rust subscribers finish what
    /// they hold, for up to `shutdown_drain_timeout`. The drain queue is closed, so the drain
    /// thread ends once it has taken what is left; the caller waits for that. Returns whether
    /// the durable publisher and Rust subscribers finished in time.
    pub fn shutdown(mut self) -> bool {
        self.router.close();
        let mut tasks = self.bus.close();
        tasks.extend(self.durable_task.take());
        // Dropping the router drops the durable channel's last sender, which ends the
        // publisher's loop once the channel is empty.
        let Self {
            runtime,
            router,
            drain,
            stats,
            gate,
            config,
            ..
        } = self;
        drop(router);

        let drained = runtime.block_on(async {
            let all = futures::future::join_all(tasks);
            tokio::time::timeout(config.shutdown_drain_timeout, all)
                .await
                .is_ok()
        });
        runtime.shutdown_timeout(Duration::from_millis(100));
        drain.close();

        // Whatever is still counted as queued was lost with the runtime; the gate keeps a
        // straggling task from counting it again.
        gate.close(|| {
            for path in [&stats.durable, &stats.rust_subscribers] {
                count_lost(path);
            }
        });
        stats.notify_progress();
        drained
    }
}

fn count_lost(path: &PathCounters) {
    let queued = path.snapshot().queued;
    if queued > 0 {
        path.drop_events(DropReason::ShuttingDown, queued);
        tracing::warn!(
            dropped = queued,
            reason = DropReason::ShuttingDown.as_str(),
            "domain events still queued at shutdown were dropped"
        );
    }
}
