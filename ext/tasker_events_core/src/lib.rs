//! The core of the `tasker_events` gem: domain events routed by delivery mode.
//!
//! - **durable** events are written to the PGMQ queue `{namespace}_domain_events` for external
//!   consumers ([`durable`]);
//! - **fast** events go to in-process subscribers: Rust handlers and, through the
//!   [`drain::DrainQueue`], the host language's drain thread ([`bus`]);
//! - **broadcast** events go to both, as one event with one id ([`router`]).
//!
//! In test mode durable events are captured in memory instead of written to PGMQ
//! ([`capture`]).
//!
//! Publishing never blocks and never fails for a delivery problem: every event that is not
//! delivered is counted by reason in [`stats::Stats`] and logged at warn. This crate has no
//! Ruby in it; the extension crate only converts values and calls [`system::EventSystem`].

mod backlog;
pub mod bus;
pub mod capture;
pub mod config;
pub mod config_file;
pub mod dispatch;
pub mod drain;
pub mod durable;
pub mod error;
pub mod event;
pub mod log;
pub mod metrics;
pub mod names;
mod outgoing;
pub mod pattern;
pub mod queues;
pub mod router;
pub mod schema;
pub mod stats;
pub mod subscribers;
pub mod system;
pub mod template;

pub use bus::{EventHandler, HandlerError, InProcessEventBus, SubscriptionId};
pub use capture::{Capture, CapturedMessage};
pub use config::Config;
pub use error::{DatabaseError, ValidationError};
pub use event::{DomainEvent, EventDeliveryMode, EventMetadata, HostPayload, NewEvent};
pub use pattern::Pattern;
pub use router::EventRouter;
pub use stats::{DropReason, Stats, StatsSnapshot};
pub use system::{EventSystem, ShutdownReport, StartError};
