//! The one warning every lost event gets, so that logs of all paths carry the same fields:
//! event_id, event_name, namespace, correlation_id, the path, the reason, and what went wrong.

use tracing::warn;

use crate::event::DomainEvent;
use crate::stats::DropReason;

/// Logs at warn that `event` will not reach `path` (`durable`, `rust_subscribers`,
/// `ruby_subscribers`). Never logs the payload.
pub(crate) fn event_dropped(event: &DomainEvent, path: &str, reason: DropReason, detail: &str) {
    warn!(
        event_id = %event.event_id,
        event_name = %event.event_name,
        namespace = %event.metadata.namespace,
        correlation_id = %event.metadata.correlation_id,
        path,
        reason = reason.as_str(),
        detail,
        "domain event dropped"
    );
}
