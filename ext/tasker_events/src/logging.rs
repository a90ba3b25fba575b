//! Where the core's `tracing` output goes.
//!
//! While a system runs with a drain thread, each line is handed to its drain queue and the
//! drain thread writes it to the Ruby `Logger` given to `start`: Ruby code never runs on a
//! Rust thread, and a Rust thread never waits for the GVL to log. Otherwise (before `start`,
//! after `shutdown`, or with `ffi_integration_enabled = false`) lines go to standard error.
//!
//! Lines for the drain thread follow the Ruby logger's level (`TaskerEvents::Native.log_level=`);
//! lines for standard error follow the `TASKER_EVENTS_LOG` environment variable (default warn),
//! so a logger set to debug while a system ran does not flood standard error after
//! `shutdown`. Payloads are logged at debug only;
//! any field that holds a connection URL has its password masked before it leaves here.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use tasker_events_core::config::redact_url;
use tasker_events_core::drain::{DrainQueue, LogRecord};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The most verbose level handed to the drain thread: 0 = off, 1 = error ... 5 = trace.
static LOGGER_LEVEL: AtomicU8 = AtomicU8::new(2);

/// The most verbose level written to standard error when no drain thread takes lines.
static STDERR_LEVEL: AtomicU8 = AtomicU8::new(2);

/// Whether `SINK` holds a queue; read on every callsite check, so kept lock-free.
static SINK_SET: AtomicBool = AtomicBool::new(false);

/// The drain queue that takes log lines, while a drain thread runs.
static SINK: RwLock<Option<Arc<DrainQueue>>> = RwLock::new(None);

pub fn init() {
    let from_env = std::env::var("TASKER_EVENTS_LOG")
        .ok()
        .and_then(|v| level_rank(&v));
    STDERR_LEVEL.store(from_env.unwrap_or(2), Ordering::Relaxed);
    // Another library in the process may have set a global subscriber first; then its
    // configuration wins and ours is not installed.
    let _ = tracing_subscriber::registry().with(BridgeLayer).try_init();
}

/// Sets the most verbose level handed to the drain thread, by name (`error` ... `trace`, or
/// `off`).
pub fn set_level(name: &str) -> bool {
    match level_rank(name) {
        Some(rank) => {
            LOGGER_LEVEL.store(rank, Ordering::Relaxed);
            // Recomputes the global most verbose level from `max_level_hint`, which lets every
            // `debug_span!` on the publish path skip the subscriber entirely while debug is off.
            tracing::callsite::rebuild_interest_cache();
            true
        }
        None => false,
    }
}

/// Holds the sink's lock until the guard drops; see `crate::fork`.
pub fn hold_for_fork() -> impl Sized {
    SINK.write().unwrap_or_else(|e| e.into_inner())
}

/// Sends log lines to `queue`'s drain thread from now on; `None` sends them to standard error.
pub fn set_sink(queue: Option<Arc<DrainQueue>>) {
    let mut sink = SINK.write().unwrap_or_else(|e| e.into_inner());
    SINK_SET.store(queue.is_some(), Ordering::Relaxed);
    *sink = queue;
}

fn max_level(to_sink: bool) -> u8 {
    let level = if to_sink {
        &LOGGER_LEVEL
    } else {
        &STDERR_LEVEL
    };
    level.load(Ordering::Relaxed)
}

fn level_rank(name: &str) -> Option<u8> {
    match name.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "fatal" | "unknown" => Some(0),
        "error" => Some(1),
        "warn" | "warning" => Some(2),
        "info" => Some(3),
        "debug" => Some(4),
        "trace" => Some(5),
        _ => None,
    }
}

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct BridgeLayer;

impl<S> Layer<S> for BridgeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The level can change at run time, so no callsite may be cached as always off.
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let most_verbose = max_level(true).max(max_level(false));
        Some(match most_verbose {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        rank(metadata.level()) <= max_level(SINK_SET.load(Ordering::Relaxed))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut recorded = Fields::default();
        values.record(&mut recorded);
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            fields.extend(recorded.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The spans an event happens in (publish, route, durable write) carry the event's
        // identifiers, so lines logged inside them name the event without repeating fields.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanFields(inherited)) = span.extensions().get::<SpanFields>() {
                    fields.inherit(inherited);
                }
            }
        }
        let record = LogRecord {
            level: event.metadata().level().as_str(),
            message: fields.message,
            fields: fields.fields,
        };
        let sink = SINK.read().unwrap_or_else(|e| e.into_inner()).clone();
        match sink {
            Some(queue) => {
                queue.push_log(record);
            }
            // The sink may have gone since `enabled` saw it.
            None if rank(event.metadata().level()) <= max_level(false) => write_stderr(&record),
            None => {}
        }
    }
}

/// The fields a span was created or recorded with, already masked.
struct SpanFields(Vec<(String, String)>);

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Fields {
    /// Adds a span's fields that the event does not set itself.
    fn inherit(&mut self, inherited: &[(String, String)]) {
        for (key, value) in inherited {
            if !self.fields.iter().any(|(k, _)| k == key) {
                self.fields.push((key.clone(), value.clone()));
            }
        }
    }

    fn add(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.push((field.name().to_owned(), mask(value)));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, format!("{value:?}"));
    }
}

/// Masks the password of any connection URL inside a value.
fn mask(value: String) -> String {
    if !value.contains("://") {
        return value;
    }
    value
        .split(' ')
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `LEVEL message key=value ...`, with values quoted when they contain spaces.
pub fn format_line(record: &LogRecord) -> String {
    let mut line = format!("{} {}", record.level, record.message);
    for (key, value) in &record.fields {
        if value.is_empty() || value.contains(char::is_whitespace) || value.contains('"') {
            let _ = write!(line, " {key}={value:?}");
        } else {
            let _ = write!(line, " {key}={value}");
        }
    }
    line
}

fn write_stderr(record: &LogRecord) {
    let line = format!("tasker_events: {}\n", format_line(record));
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_any_url_field() {
        let value = "connect to postgres://u:secret@h/db failed".to_owned();
        assert_eq!(mask(value), "connect to postgres://u:***@h/db failed");
        assert_eq!(mask("plain".to_owned()), "plain");
    }

    #[test]
    fn formats_key_values_quoting_spaces() {
        let record = LogRecord {
            level: "WARN",
            message: "domain event dropped".into(),
            fields: vec![
                ("event_name".into(), "a.b".into()),
                ("detail".into(), "x y".into()),
            ],
        };
        assert_eq!(
            format_line(&record),
            "WARN domain event dropped event_name=a.b detail=\"x y\""
        );
    }

    #[test]
    fn level_names() {
        assert_eq!(level_rank("WARN"), Some(2));
        assert_eq!(level_rank("debug"), Some(4));
        assert_eq!(level_rank("loud"), None);
    }
}
