//! Ready-made Rust subscribers: one that logs every event it matches, and one that counts them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tracing::info;

use crate::bus::EventHandler;

/// A subscriber that logs each event at info with its identifiers (never its payload).
pub fn logging_subscriber(prefix: &str) -> EventHandler {
    let prefix: Arc<str> = prefix.into();
    Arc::new(move |event| {
        let prefix = prefix.clone();
        Box::pin(async move {
            let metadata = &event.metadata;
            info!(
                prefix = %prefix,
                event_id = %event.event_id,
                event_name = %event.event_name,
                namespace = %metadata.namespace,
                correlation_id = %metadata.correlation_id,
                task_uuid = metadata.task_uuid.map(display),
                step_name = metadata.step_name.as_deref().unwrap_or("unknown"),
                fired_at = %metadata.fired_at,
                "domain event received"
            );
            Ok(())
        })
    })
}

/// Counts events by outcome, as told by `execution_result.success`.
#[derive(Debug, Default)]
pub struct EventMetricsCollector {
    events_received: AtomicU64,
    success_events: AtomicU64,
    failure_events: AtomicU64,
}

impl EventMetricsCollector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A subscriber that feeds this collector.
    pub fn handler(self: &Arc<Self>) -> EventHandler {
        let metrics = Arc::clone(self);
        Arc::new(move |event| {
            let metrics = Arc::clone(&metrics);
            Box::pin(async move {
                metrics.events_received.fetch_add(1, Relaxed);
                let success = event
                    .execution_result
                    .as_ref()
                    .and_then(|r| r.get("success"))
                    .and_then(serde_json::Value::as_bool);
                match success {
                    Some(true) => metrics.success_events.fetch_add(1, Relaxed),
                    Some(false) => metrics.failure_events.fetch_add(1, Relaxed),
                    None => 0,
                };
                Ok(())
            })
        })
    }

    pub fn events_received(&self) -> u64 {
        self.events_received.load(Relaxed)
    }

    pub fn success_events(&self) -> u64 {
        self.success_events.load(Relaxed)
    }

    pub fn failure_events(&self) -> u64 {
        self.failure_events.load(Relaxed)
    }
}
