//! The router: sends each event to the paths its delivery mode names.
//!
//! `route` never blocks and never fails its caller. Durable events go into the bounded channel
//! of the durable publisher; in-process events go to the bus. A broadcast event is one
//! `Arc<DomainEvent>` handed to both, so both paths see the same `event_id`. Anything a path
//! cannot take is counted as dropped, with its reason, and logged at warn.
//!
//! In test mode the router also logs every event it accepts to the system's
//! [`Capture`](crate::capture::Capture).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, debug_span};

use crate::bus::InProcessEventBus;
use crate::capture::Capture;
use crate::event::DomainEvent;
use crate::log;
use crate::stats::{DropReason, Stats};

/// Routes events by delivery mode to PGMQ, the in-process bus, or both.
pub struct EventRouter {
    /// Taken out at shutdown, which closes the channel whoever else still holds the router
    /// (a publisher job waiting for the drain thread, say).
    durable: RwLock<Option<mpsc::Sender<Arc<DomainEvent>>>>,
    has_database: bool,
    bus: Arc<InProcessEventBus>,
    stats: Arc<Stats>,
    closed: AtomicBool,
    log_dropped_events: bool,
    /// Set in test mode only, so that production keeps no copy of its events.
    capture: Option<Arc<Capture>>,
}

impl EventRouter {
    /// `durable` is `None` when no database is configured: durable events are then dropped
    /// with reason `no_database`.
    pub fn new(
        durable: Option<mpsc::Sender<Arc<DomainEvent>>>,
        bus: Arc<InProcessEventBus>,
        stats: Arc<Stats>,
        log_dropped_events: bool,
    ) -> Self {
        Self {
            has_database: durable.is_some(),
            durable: RwLock::new(durable),
            bus,
            stats,
            closed: AtomicBool::new(false),
            log_dropped_events,
            capture: None,
        }
    }

    /// Logs every accepted event to `capture`; for test mode.
    pub fn capturing(mut self, capture: Arc<Capture>) -> Self {
        self.capture = Some(capture);
        self
    }

    /// Routes an event; returns whether at least one of its paths accepted it.
    pub fn route(&self, event: DomainEvent) -> bool {
        if self.closed.load(Ordering::Acquire) {
            self.stats.record_rejected(DropReason::ShuttingDown);
            return false;
        }
        let event = Arc::new(event);
        let mode = event.delivery_mode;
        self.stats.record_published(&event);
        let _span = debug_span!(
            "route",
            event_id = %event.event_id,
            event_name = %event.event_name,
            namespace = %event.metadata.namespace,
            correlation_id = %event.metadata.correlation_id,
            delivery_mode = mode.as_str(),
        )
        .entered();
        if event.has_json_payload() {
            debug!(payload = %event.payload, "routing domain event");
        } else {
            debug!("routing domain event (its payload is a host-language object)");
        }

        let mut accepted = false;
        if mode.is_in_process() {
            // Logged before the bus has it, so that events its subscribers publish in turn
            // come after it. The bus takes every event, so it is accepted.
            self.log_captured(&event);
            accepted |= self.route_in_process(&event);
        }
        if mode.is_durable() {
            let written = self.route_durable(event.clone());
            if written && !mode.is_in_process() {
                self.log_captured(&event);
            }
            accepted |= written;
        }
        accepted
    }

    fn log_captured(&self, event: &Arc<DomainEvent>) {
        if let Some(capture) = &self.capture {
            capture.log(event.clone());
        }
    }

    fn route_in_process(&self, event: &Arc<DomainEvent>) -> bool {
        self.bus.publish(event);
        true
    }

    fn route_durable(&self, event: Arc<DomainEvent>) -> bool {
        self.stats.durable.accept(1);
        if !self.has_database {
            self.drop_durable(&event, DropReason::NoDatabase);
            return false;
        }
        let sender = self.durable.read().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = sender.as_ref() else {
            self.drop_durable(&event, DropReason::ShuttingDown);
            return false;
        };
        match sender.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(event)) => {
                self.drop_durable(&event, DropReason::ChannelFull);
                false
            }
            Err(TrySendError::Closed(event)) => {
                self.drop_durable(&event, DropReason::ShuttingDown);
                false
            }
        }
    }

    fn drop_durable(&self, event: &DomainEvent, reason: DropReason) {
        self.stats.durable.drop_events(reason, 1);
        self.stats.notify_progress();
        if self.log_dropped_events {
            log::event_dropped(
                event,
                "durable",
                reason,
                "not accepted by the durable publisher",
            );
        }
    }

    /// Refuses every event from now on and closes the durable channel, so the durable
    /// publisher ends once it has written what the channel holds. Used by shutdown.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.durable
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}
