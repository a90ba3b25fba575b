//! The one warning every lost event gets, so that logs of all paths carry the same fields:
//! event_id, event_name, namespace, correlation_id, the path, the reason, and what went wrong.
//!
//! A burst of drops (a full channel under load, an outage that filled the durable buffer) must
//! not become a burst of log lines that slows the process further: each path logs at most
//! [`LINES_PER_SECOND`] dropped events a second. The rest are only counted (as every drop is,
//! in `stats`), and the first line of the next second says how many went unlogged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;
use uuid::Uuid;

use crate::event::DomainEvent;
use crate::outgoing::Outgoing;
use crate::stats::DropReason;

/// Most dropped events logged one by one per path and second.
pub(crate) const LINES_PER_SECOND: u32 = 20;

const WINDOW: Duration = Duration::from_secs(1);

/// Per path: when its window opened, lines logged in it, drops not logged since the last line.
struct Window {
    path: String,
    opened: Instant,
    logged: u32,
    unlogged: u64,
}

static WINDOWS: Mutex<Vec<Window>> = Mutex::new(Vec::new());

/// Holds the log's lock until the guard drops; see [`crate::Stats::hold_for_fork`].
pub fn hold_for_fork() -> impl Sized {
    WINDOWS.lock().unwrap_or_else(|e| e.into_inner())
}

/// What log lines name an event by; never its payload.
pub(crate) struct EventIds<'a> {
    pub(crate) event_id: Uuid,
    pub(crate) event_name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) correlation_id: Uuid,
}

impl<'a> From<&'a DomainEvent> for EventIds<'a> {
    fn from(event: &'a DomainEvent) -> Self {
        Self {
            event_id: event.event_id,
            event_name: &event.event_name,
            namespace: &event.metadata.namespace,
            correlation_id: event.metadata.correlation_id,
        }
    }
}

impl<'a> From<&'a Outgoing> for EventIds<'a> {
    fn from(event: &'a Outgoing) -> Self {
        Self {
            event_id: event.event_id,
            event_name: &event.event_name,
            namespace: &event.namespace,
            correlation_id: event.correlation_id,
        }
    }
}

/// Logs at warn that `event` will not reach `path` (`durable`, `rust_subscribers`,
/// `ruby_subscribers`), unless the path has used up this second's lines. Never logs the
/// payload.
pub(crate) fn event_dropped<'a>(
    event: impl Into<EventIds<'a>>,
    path: &str,
    reason: DropReason,
    detail: &str,
) {
    let Some(unlogged) = admit(path, Instant::now()) else {
        return;
    };
    let event = event.into();
    warn!(
        event_id = %event.event_id,
        event_name = event.event_name,
        namespace = event.namespace,
        correlation_id = %event.correlation_id,
        path,
        reason = reason.as_str(),
        detail,
        "domain event dropped"
    );
    if unlogged > 0 {
        warn!(
            path,
            unlogged,
            "more domain events were dropped than logged in the last second; stats counts all"
        );
    }
}

/// Whether a line may be logged for `path` now; if so, how many drops went unlogged before it.
fn admit(path: &str, now: Instant) -> Option<u64> {
    let mut windows = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
    let index = match windows.iter().position(|w| w.path == path) {
        Some(index) => index,
        None => {
            windows.push(Window {
                path: path.to_owned(),
                opened: now,
                logged: 0,
                unlogged: 0,
            });
            windows.len() - 1
        }
    };
    let window = &mut windows[index];
    if now.duration_since(window.opened) >= WINDOW {
        window.opened = now;
        window.logged = 0;
    }
    if window.logged >= LINES_PER_SECOND {
        window.unlogged += 1;
        return None;
    }
    window.logged += 1;
    Some(std::mem::take(&mut window.unlogged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_logs_a_bounded_number_of_lines_per_second() {
        let start = Instant::now();
        let path = "test_path_a";
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(admit(path, start), Some(0));
        }
        assert_eq!(admit(path, start), None);
        assert_eq!(admit(path, start + Duration::from_millis(500)), None);
        assert_eq!(
            admit("test_path_b", start),
            Some(0),
            "paths are limited apart"
        );

        let next = start + WINDOW;
        assert_eq!(
            admit(path, next),
            Some(2),
            "the next line reports the unlogged drops"
        );
        assert_eq!(admit(path, next), Some(0));
    }
}
