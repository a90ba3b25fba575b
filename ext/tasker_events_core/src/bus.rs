//! The in-process event bus: fast and broadcast events reach Rust subscribers and the drain
//! thread here.
//!
//! Publishing to the bus never blocks: patterns are matched on the publisher's thread and each
//! matching subscriber gets the event through its own bounded channel. A full channel drops the
//! event for that subscriber only (counted as `channel_full`), so one slow subscriber never
//! holds back the others or the publisher.
//!
//! Each Rust subscriber runs on its own task and sees its events in publish order. Every call
//! is isolated: an error, a panic, or running past `dispatch_timeout` is logged and counted,
//! and the subscriber goes on with the next event. Ruby subscribers are not called here: the
//! events they match go, with the ids of the matching subscribers, to the [`DrainQueue`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use rustc_hash::FxHashMap;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::drain::{Delivery, DrainItem, DrainQueue};
use crate::error::ValidationError;
use crate::event::DomainEvent;
use crate::log;
use crate::pattern::Pattern;
use crate::stats::{DropReason, SettleGate, Stats, SubscriberKind};

/// What a Rust subscriber returns when it fails.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The future a Rust subscriber returns for one event.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// A Rust subscriber: an async function of the event.
pub type EventHandler = Arc<dyn Fn(Arc<DomainEvent>) -> HandlerFuture + Send + Sync>;

/// Identifies a Rust subscription, for [`InProcessEventBus::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

/// How the bus behaves; taken from [`crate::Config`].
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub buffer_size: usize,
    /// When false, nothing goes to the drain queue: only Rust subscribers receive events.
    pub ffi_integration_enabled: bool,
    pub dispatch_timeout: Duration,
    pub log_subscriber_errors: bool,
    pub log_dropped_events: bool,
}

struct RustSubscription {
    id: SubscriptionId,
    pattern: Pattern,
    sender: mpsc::Sender<Arc<DomainEvent>>,
}

struct RubySubscription {
    id: u64,
    patterns: Vec<Pattern>,
}

/// Event names remembered by the route cache; past this many (names built from data, say),
/// the Ruby subscribers of further names are found by matching every time.
const ROUTE_CACHE_CAPACITY: usize = 4096;

/// Fan-out of in-process events to Rust subscribers and to the drain thread.
pub struct InProcessEventBus {
    rust: RwLock<Vec<RustSubscription>>,
    /// How many Rust subscriptions exist, so that a process without any (the usual Ruby
    /// worker) never takes their lock while publishing.
    rust_count: AtomicUsize,
    ruby: RwLock<Vec<RubySubscription>>,
    /// The ids of the Ruby subscribers each event name matches, so that patterns are matched
    /// once per name rather than once per event; emptied whenever a Ruby subscription changes.
    ruby_routes: RwLock<FxHashMap<Box<str>, Arc<[u64]>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    drain: Arc<DrainQueue>,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    settings: BusSettings,
    runtime: Handle,
    next_id: AtomicU64,
}

impl InProcessEventBus {
    /// `gate` is shared with shutdown, which counts what subscribers still hold.
    pub fn new(
        settings: BusSettings,
        drain: Arc<DrainQueue>,
        stats: Arc<Stats>,
        gate: Arc<SettleGate>,
        runtime: Handle,
    ) -> Self {
        Self {
            rust: RwLock::default(),
            rust_count: AtomicUsize::new(0),
            ruby: RwLock::default(),
            ruby_routes: RwLock::default(),
            tasks: Mutex::default(),
            drain,
            stats,
            gate,
            settings,
            runtime,
            next_id: AtomicU64::new(1),
        }
    }

    /// Calls `handler` for every in-process event whose name matches `pattern`.
    pub fn subscribe(
        &self,
        pattern: &str,
        handler: EventHandler,
    ) -> Result<SubscriptionId, ValidationError> {
        let pattern = Pattern::new(pattern)?;
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (sender, receiver) = mpsc::channel(self.settings.buffer_size);
        let task = SubscriberTask {
            pattern: pattern.clone(),
            handler,
            stats: self.stats.clone(),
            gate: self.gate.clone(),
            settings: self.settings.clone(),
        };
        let handle = self.runtime.spawn(task.run(receiver));
        lock(&self.tasks).push(handle);
        let mut subscriptions = write(&self.rust);
        subscriptions.push(RustSubscription {
            id,
            pattern,
            sender,
        });
        self.rust_count
            .store(subscriptions.len(), Ordering::Release);
        Ok(id)
    }

    /// Stops a Rust subscription; events already queued for it are still handled.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut subscriptions = write(&self.rust);
        let before = subscriptions.len();
        subscriptions.retain(|s| s.id != id);
        self.rust_count
            .store(subscriptions.len(), Ordering::Release);
        before != subscriptions.len()
    }

    /// Routes matching events to the drain thread, tagged with `id`. Replaces any earlier
    /// registration under the same id.
    pub fn subscribe_ruby(&self, id: u64, patterns: &[&str]) -> Result<(), ValidationError> {
        let patterns = patterns
            .iter()
            .map(|p| Pattern::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut subscriptions = write(&self.ruby);
        subscriptions.retain(|s| s.id != id);
        subscriptions.push(RubySubscription { id, patterns });
        // Cleared while the subscriptions are still locked, so no route computed from the old
        // ones can be cached after this.
        write(&self.ruby_routes).clear();
        Ok(())
    }

    pub fn unsubscribe_ruby(&self, id: u64) -> bool {
        let mut subscriptions = write(&self.ruby);
        let before = subscriptions.len();
        subscriptions.retain(|s| s.id != id);
        write(&self.ruby_routes).clear();
        before != subscriptions.len()
    }

    /// The ids of the Ruby subscribers whose patterns match `event_name`.
    fn ruby_route(&self, event_name: &str) -> Arc<[u64]> {
        if let Some(ids) = read(&self.ruby_routes).get(event_name) {
            return ids.clone();
        }
        let subscriptions = read(&self.ruby);
        let ids: Arc<[u64]> = subscriptions
            .iter()
            .filter(|s| s.patterns.iter().any(|p| p.matches(event_name)))
            .map(|s| s.id)
            .collect();
        let mut routes = write(&self.ruby_routes);
        if routes.len() < ROUTE_CACHE_CAPACITY {
            routes.insert(event_name.into(), ids.clone());
        }
        ids
    }

    /// Whether a Rust subscriber would receive an event of this name, and so needs its payload
    /// as JSON.
    pub fn has_rust_subscriber_for(&self, event_name: &str) -> bool {
        if self.rust_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        read(&self.rust)
            .iter()
            .any(|s| s.pattern.matches(event_name))
    }

    /// Hands an event to every matching subscriber without blocking.
    pub fn publish(&self, event: &Arc<DomainEvent>) {
        // An event without a JSON payload was published when no Rust subscriber matched it;
        // one subscribed since then starts with the events published after it.
        if event.has_json_payload() {
            self.publish_to_rust(event);
        }
        self.publish_to_ruby(event);
    }

    fn publish_to_rust(&self, event: &Arc<DomainEvent>) {
        if self.rust_count.load(Ordering::Acquire) == 0 {
            return;
        }
        for subscription in read(&self.rust).iter() {
            if subscription.pattern.matches(&event.event_name) {
                self.stats.rust_subscribers.accept(1);
                if subscription.sender.try_send(event.clone()).is_err() {
                    self.dropped(event, SubscriberKind::Rust, subscription.pattern.as_str());
                }
            }
        }
    }

    fn publish_to_ruby(&self, event: &Arc<DomainEvent>) {
        if !self.settings.ffi_integration_enabled {
            return;
        }
        let subscriber_ids = self.ruby_route(&event.event_name);
        if !subscriber_ids.is_empty() {
            self.stats.ruby_subscribers.accept(1);
            let delivery = Delivery {
                event: event.clone(),
                subscriber_ids,
            };
            if self.drain.try_push(DrainItem::Delivery(delivery)).is_err() {
                self.dropped(event, SubscriberKind::Ruby, "drain thread");
            }
        }
    }

    fn dropped(&self, event: &DomainEvent, kind: SubscriberKind, subscriber: &str) {
        let (counters, path) = match kind {
            SubscriberKind::Rust => (&self.stats.rust_subscribers, "rust_subscribers"),
            SubscriberKind::Ruby => (&self.stats.ruby_subscribers, "ruby_subscribers"),
        };
        counters.drop_events(DropReason::ChannelFull, 1);
        self.stats.notify_progress();
        if self.settings.log_dropped_events {
            let detail = format!("channel of {subscriber} is full");
            log::event_dropped(event, path, DropReason::ChannelFull, &detail);
        }
    }

    /// Closes every Rust subscriber's channel and returns their tasks, which end once they
    /// have handled what was queued.
    pub(crate) fn close(&self) -> Vec<JoinHandle<()>> {
        write(&self.rust).clear();
        self.rust_count.store(0, Ordering::Release);
        write(&self.ruby).clear();
        write(&self.ruby_routes).clear();
        std::mem::take(&mut *lock(&self.tasks))
    }
}

struct SubscriberTask {
    pattern: Pattern,
    handler: EventHandler,
    stats: Arc<Stats>,
    gate: Arc<SettleGate>,
    settings: BusSettings,
}

impl SubscriberTask {
    async fn run(self, mut receiver: mpsc::Receiver<Arc<DomainEvent>>) {
        while let Some(event) = receiver.recv().await {
            let call = call_isolated(&self.handler, event.clone());
            match tokio::time::timeout(self.settings.dispatch_timeout, call).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    self.stats.record_subscriber_errors(SubscriberKind::Rust, 1);
                    self.log_failure(&event, &error);
                }
                Err(_) => {
                    self.stats.record_subscriber_timeout(SubscriberKind::Rust);
                    let timeout = self.settings.dispatch_timeout;
                    self.log_failure(&event, &format!("timed out after {timeout:?}"));
                }
            }
            // A handler that blocked its thread past shutdown was already counted as lost.
            self.gate.count(|| self.stats.rust_subscribers.deliver(1));
            self.stats.notify_progress();
        }
    }

    fn log_failure(&self, event: &DomainEvent, error: &str) {
        if self.settings.log_subscriber_errors {
            warn!(
                event_id = %event.event_id,
                event_name = %event.event_name,
                namespace = %event.metadata.namespace,
                correlation_id = %event.metadata.correlation_id,
                pattern = self.pattern.as_str(),
                error,
                "rust subscriber failed"
            );
        }
    }
}

/// Runs one handler call so that neither its error nor its panic escapes.
async fn call_isolated(handler: &EventHandler, event: Arc<DomainEvent>) -> Result<(), String> {
    let future = std::panic::catch_unwind(AssertUnwindSafe(|| handler(event)))
        .map_err(|panic| panic_message(&*panic))?;
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(panic_message(&*panic)),
    }
}

/// The text of a panic payload, for logs and errors.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    format!("panicked: {text}")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
