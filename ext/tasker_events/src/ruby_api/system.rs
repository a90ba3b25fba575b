//! Starting, stopping and publishing through the process-wide event system.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use magnus::value::{IntoId, LazyId};
use magnus::{function, prelude::*, Error, RHash, RModule, RString, Ruby, Symbol, Value};
use tasker_events_core::dispatch::{StepCompletion, StepContext};
use tasker_events_core::event::parse_uuid;
use tasker_events_core::{
    durable, Config, DatabaseError, DropReason, EventDeliveryMode, EventSystem, HostPayload,
    NewEvent, Pattern, Stats,
};

use crate::convert::{find_nul, find_nul_in, object_to_ruby, set_max_bytes, to_json};
use crate::errors::{self, guard};
use crate::gvl::without_gvl;
use crate::pins;

/// Counters live for the whole process, so they survive `shutdown` and a later `start`.
pub static STATS: LazyLock<Arc<Stats>> = LazyLock::new(|| Arc::new(Stats::new()));

/// The running event system, if any. Publishing takes the read lock only long enough to hand
/// the event over; `start` and `shutdown` take the write lock only to swap the value.
pub static SYSTEM: RwLock<Option<EventSystem>> = RwLock::new(None);

pub fn read_system() -> std::sync::RwLockReadGuard<'static, Option<EventSystem>> {
    SYSTEM.read().unwrap_or_else(|e| e.into_inner())
}

fn write_system() -> std::sync::RwLockWriteGuard<'static, Option<EventSystem>> {
    SYSTEM.write().unwrap_or_else(|e| e.into_inner())
}

/// Takes the system out without stopping it; see `crate::fork`.
pub fn take_system() -> Option<EventSystem> {
    write_system().take()
}

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_module_function("start", function!(start, 2))?;
    native.define_module_function("dispatch", function!(dispatch, 9))?;
    native.define_module_function("template_publishers", function!(template_publishers, 0))?;
    native.define_module_function("log_level=", function!(set_log_level, 1))?;
    native.define_module_function("detach_logs", function!(detach_logs, 0))?;
    native.define_module_function("running?", function!(is_running, 0))?;
    native.define_module_function("forked?", function!(crate::fork::pending, 0))?;
    native.define_module_function(
        "forget_parent_system",
        function!(crate::fork::forget_parent, 0),
    )?;
    native.define_module_function("shutdown", function!(shutdown, 0))?;
    native.define_module_function("publish", function!(publish, 10))?;
    native.define_module_function("flush", function!(flush, 1))?;
    native.define_module_function("stats", function!(stats, 0))?;
    native.define_module_function("install_pgmq", function!(install_pgmq, 2))?;
    native.define_module_function("validate_pattern", function!(validate_pattern, 1))?;
    native.define_module_function("pattern_matches?", function!(pattern_matches, 2))?;
    Ok(())
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Builds the core's settings from the Hash that `TaskerEvents.start` assembled.
fn config_from(options: RHash) -> Result<Config, Error> {
    let defaults = Config::default();
    let get_u64 = |key: &str, default: u64| -> Result<u64, Error> {
        Ok(options.lookup::<_, Option<u64>>(key)?.unwrap_or(default))
    };
    Ok(Config {
        database_url: options.lookup("database_url")?,
        install_pgmq: options
            .lookup::<_, Option<bool>>("install_pgmq")?
            .unwrap_or(false),
        command_buffer_size: get_u64("command_buffer_size", 1000)? as usize,
        durable_buffer_size: get_u64(
            "durable_buffer_size",
            tasker_events_core::config::DEFAULT_DURABLE_BUFFER_SIZE as u64,
        )? as usize,
        broadcast_buffer_size: get_u64("broadcast_buffer_size", 2000)? as usize,
        dispatch_timeout: millis(get_u64("dispatch_timeout_ms", 5000)?),
        shutdown_drain_timeout: millis(get_u64("shutdown_drain_timeout_ms", 5000)?),
        log_subscriber_errors: options
            .lookup::<_, Option<bool>>("log_subscriber_errors")?
            .unwrap_or(defaults.log_subscriber_errors),
        log_dropped_events: options
            .lookup::<_, Option<bool>>("log_dropped_events")?
            .unwrap_or(defaults.log_dropped_events),
        durable_batch_size: get_u64("durable_batch_size", 500)? as usize,
        pool_size: get_u64("pool_size", 2)? as u32,
        ffi_integration_enabled: options
            .lookup::<_, Option<bool>>("ffi_integration_enabled")?
            .unwrap_or(defaults.ffi_integration_enabled),
        deduplication_cache_size: get_u64("deduplication_cache_size", 10_000)? as usize,
        connect_timeout: millis(get_u64("connect_timeout_ms", 2000)?),
        test_mode: options
            .lookup::<_, Option<bool>>("test_mode")?
            .unwrap_or(defaults.test_mode),
    })
}

/// Starts the system with the task templates at `template_paths`.
/// @return [Boolean] true when this call started the system, false when it was running.
fn start(ruby: &Ruby, options: RHash, template_paths: Vec<String>) -> Result<bool, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let config = config_from(options)?;
        let max_payload_bytes = options.lookup::<_, Option<u64>>("max_payload_bytes")?;
        let templates = super::templates::registry(ruby, &template_paths)?;
        let mut slot = write_system();
        if slot.is_some() {
            return Ok(false);
        }
        let ffi = config.ffi_integration_enabled;
        let capture = super::capture::CAPTURE.clone();
        let system = EventSystem::start_with_capture(config, STATS.clone(), templates, capture)
            .map_err(|e| errors::start(ruby, e))?;
        // Without a drain thread nobody would write the lines; they stay on standard error.
        if ffi {
            crate::logging::set_sink(Some(system.drain_queue().clone()));
        }
        set_max_bytes(max_payload_bytes.map_or(crate::convert::DEFAULT_MAX_BYTES, |n| n as usize));
        *slot = Some(system);
        Ok(true)
    })
}

fn is_running(ruby: &Ruby) -> Result<bool, Error> {
    crate::fork::recover(ruby)?;
    Ok(read_system().is_some())
}

/// Stops the system, waiting without the GVL for queued events. The drain thread is told to
/// end through its queue; the Ruby side joins it.
/// @return [Hash{Symbol => Integer}] drained, dropped, duration_ms
fn shutdown(ruby: &Ruby) -> Result<RHash, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let report = match write_system().take() {
            Some(system) => without_gvl(ruby, move || system.shutdown(), || {})?,
            None => None,
        };
        let hash = ruby.hash_new();
        let (drained, dropped, duration) = report.map_or((0, 0, 0), |r| {
            (r.drained, r.dropped, r.duration.as_millis() as u64)
        });
        hash.aset(ruby.to_symbol("drained"), drained)?;
        hash.aset(ruby.to_symbol("dropped"), dropped)?;
        hash.aset(ruby.to_symbol("duration_ms"), duration)?;
        Ok(hash)
    })
}

/// Hands a completed step to the dispatcher.
/// @return [Boolean] false when the completion was dropped (counted and logged)
#[allow(clippy::too_many_arguments)]
fn dispatch(
    ruby: &Ruby,
    task_uuid: Option<String>,
    step_uuid: Option<String>,
    step_name: String,
    namespace: String,
    task_name: String,
    task_version: String,
    correlation_id: Option<String>,
    attempt: Option<u32>,
    step_result: Value,
) -> Result<bool, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let step_result = to_json(ruby, step_result, "step_result")?;
        if !step_result.is_object() {
            return Err(errors::error(
                ruby,
                "ValidationError",
                "step_result must be a Hash",
            ));
        }
        let task_uuid = optional_uuid("task_uuid", task_uuid)?;
        let correlation_id = optional_uuid("correlation_id", correlation_id)?.or(task_uuid);
        let context = StepContext {
            task_uuid,
            step_uuid: optional_uuid("step_uuid", step_uuid)?,
            step_name,
            namespace,
            task_name,
            task_version,
            correlation_id,
            attempt,
        };
        let completion = StepCompletion {
            context,
            step_result,
        };
        let system = read_system();
        let Some(system) = system.as_ref() else {
            STATS.dispatch.accept(1);
            STATS.dispatch.drop_events(DropReason::NotStarted, 1);
            return Ok(false);
        };
        Ok(system.dispatcher().dispatch(completion).is_ok())
    })
}

/// Sets the most verbose level the core logs (`error` ... `trace`, or `off`), to match the
/// Ruby logger's.
fn set_log_level(ruby: &Ruby, level: String) -> Result<String, Error> {
    if crate::logging::set_level(&level) {
        Ok(level)
    } else {
        let message = format!("invalid log level {level:?}: expected error, warn, info, debug");
        Err(errors::error(ruby, "ValidationError", message))
    }
}

/// Sends the core's log lines to standard error again, once the drain thread has ended.
fn detach_logs() {
    crate::logging::set_sink(None);
}

/// @return [Array<String>] every `publisher:` named by the loaded templates
fn template_publishers() -> Vec<String> {
    read_system()
        .as_ref()
        .map(|s| s.dispatcher().templates().publisher_names())
        .unwrap_or_default()
}

fn optional_uuid(field: &'static str, value: Option<String>) -> Result<Option<uuid::Uuid>, Error> {
    let ruby = Ruby::get().expect("called from Ruby");
    value
        .map(|v| parse_uuid(field, &v).map_err(|e| errors::validation(&ruby, e)))
        .transpose()
}

/// A name given as a String or a Symbol; checked here rather than in Ruby, where the checks
/// would cost more than the rest of `publish`.
fn name_text(ruby: &Ruby, field: &str, value: Value) -> Result<String, Error> {
    if let Some(string) = RString::from_value(value) {
        return string.to_string();
    }
    if let Some(symbol) = Symbol::from_value(value) {
        return Ok(symbol.name()?.into_owned());
    }
    let message = format!(
        "{field} must be a String or Symbol, got {}",
        value.inspect()
    );
    Err(errors::error(ruby, "ValidationError", message))
}

/// The delivery mode, given as a Symbol (compared without looking up its name) or a String.
fn delivery_mode_of(ruby: &Ruby, value: Value) -> Result<EventDeliveryMode, Error> {
    static NAMES: [LazyId; 3] = [
        LazyId::new("durable"),
        LazyId::new("fast"),
        LazyId::new("broadcast"),
    ];
    if let Some(symbol) = Symbol::from_value(value) {
        let given = symbol.as_static().map(|s| s.into_id_with(ruby));
        for (mode, name) in EventDeliveryMode::ALL.into_iter().zip(&NAMES) {
            if given == Some(LazyId::get_inner_with(name, ruby)) {
                return Ok(mode);
            }
        }
    }
    name_text(ruby, "delivery_mode", value)?
        .parse()
        .map_err(|e| errors::validation(ruby, e))
}

/// `to_json`, without the conversion for the usual empty Hash.
fn json_unless_empty(ruby: &Ruby, value: Value, path: &str) -> Result<serde_json::Value, Error> {
    match RHash::from_value(value) {
        Some(hash) if hash.is_empty() => Ok(serde_json::Value::Object(serde_json::Map::new())),
        _ => to_json(ruby, value, path),
    }
}

/// nil, or anything with a text form (a String, a UUID object).
fn optional_text(value: Value) -> Result<Option<String>, Error> {
    if value.is_nil() {
        return Ok(None);
    }
    match RString::from_value(value) {
        Some(string) => string.to_string().map(Some),
        None => value.to_r_string()?.to_string().map(Some),
    }
}

/// @return [String, nil] the event id, or nil when every path dropped the event.
#[allow(clippy::too_many_arguments)]
fn publish(
    ruby: &Ruby,
    event_name: Value,
    payload: Value,
    namespace: Value,
    delivery_mode: Value,
    task_uuid: Value,
    step_uuid: Value,
    step_name: Value,
    correlation_id: Value,
    metadata: Value,
    execution_result: Value,
) -> Result<Option<RString>, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let event_name = name_text(ruby, "event_name", event_name)?;
        let namespace = name_text(ruby, "namespace", namespace)?;
        let delivery_mode = delivery_mode_of(ruby, delivery_mode)?;
        let task_uuid = optional_text(task_uuid)?;
        let step_uuid = optional_text(step_uuid)?;
        let step_name = optional_text(step_name)?;
        let correlation_id = optional_text(correlation_id)?;
        let extra_metadata = match json_unless_empty(ruby, metadata, "metadata")? {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            _ => {
                return Err(errors::error(
                    ruby,
                    "ValidationError",
                    "metadata must be a Hash",
                ))
            }
        };
        let execution_result = match to_json(ruby, execution_result, "execution_result")? {
            serde_json::Value::Null => None,
            other => Some(other),
        };
        let (payload, host_payload) = convert_payload(ruby, &event_name, delivery_mode, payload)?;
        let event = NewEvent {
            payload,
            host_payload,
            delivery_mode,
            task_uuid: optional_uuid("task_uuid", task_uuid)?,
            step_uuid: optional_uuid("step_uuid", step_uuid)?,
            step_name,
            correlation_id: optional_uuid("correlation_id", correlation_id)?,
            extra_metadata,
            execution_result,
            ..NewEvent::new(event_name, namespace, serde_json::Value::Null)
        };
        if event.delivery_mode.is_durable() {
            refuse_nul(ruby, &event)?;
        }

        let system = read_system();
        let Some(system) = system.as_ref() else {
            event.build().map_err(|e| errors::validation(ruby, e))?;
            STATS.record_rejected(DropReason::NotStarted);
            return Ok(None);
        };
        let id = system
            .publish(event)
            .map_err(|e| errors::validation(ruby, e))?;
        let mut text = uuid::Uuid::encode_buffer();
        Ok(id.map(|id| ruby.str_new(id.as_hyphenated().encode_lower(&mut text))))
    })
}

/// The payload as JSON, where PGMQ or a Rust subscriber will read it, and as the Ruby object
/// itself for Ruby subscribers of an in-process event. A fast event that only Ruby subscribers
/// can receive is not converted at all: the caller pays for no copy, and the subscribers get
/// what was published, as with `ActiveSupport::Notifications`.
///
/// The system lock is not held while converting: `as_json` may run any Ruby code, including
/// `shutdown` on this thread or on another that would then wait for the lock with the GVL.
fn convert_payload(
    ruby: &Ruby,
    event_name: &str,
    mode: EventDeliveryMode,
    payload: Value,
) -> Result<(serde_json::Value, Option<HostPayload>), Error> {
    let needs_json = read_system()
        .as_ref()
        .is_none_or(|s| s.needs_json_payload(event_name, mode));
    if !needs_json {
        let host = pins::pin(ruby, payload, false)?;
        return Ok((serde_json::Value::Null, Some(host)));
    }
    let json = to_json(ruby, payload, "payload")?;
    Ok((json, pins::alongside_json(ruby, payload, mode)?))
}

/// A durable event whose strings hold U+0000 could never be written (PostgreSQL's `jsonb`
/// refuses it), so it is refused here, where the caller learns which value it was.
fn refuse_nul(ruby: &Ruby, event: &NewEvent) -> Result<(), Error> {
    let found = find_nul(&event.payload, "payload")
        .or_else(|| find_nul_in(&event.extra_metadata, "metadata"))
        .or_else(|| {
            let result = event.execution_result.as_ref()?;
            find_nul(result, "execution_result")
        });
    match found {
        Some(path) => Err(errors::error(
            ruby,
            "ValidationError",
            format!(
                "{path}: contains U+0000, which PostgreSQL cannot store in jsonb; durable and \
                 broadcast events cannot carry it"
            ),
        )),
        None => Ok(()),
    }
}

/// Waits, without the GVL, until everything accepted so far is delivered or dropped.
fn flush(ruby: &Ruby, timeout_seconds: f64) -> Result<bool, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let timeout = Duration::try_from_secs_f64(timeout_seconds.max(0.0))
            .map_err(|e| errors::error(ruby, "ValidationError", format!("timeout: {e}")))?;
        let stats = STATS.clone();
        let deadline = std::time::Instant::now() + timeout;
        let interrupted = std::sync::atomic::AtomicBool::new(false);
        let settled = without_gvl(
            ruby,
            || stats.flush(deadline, &|| interrupted.load(Relaxed)),
            || {
                interrupted.store(true, Relaxed);
                stats.notify_progress();
            },
        )?;
        Ok(settled.unwrap_or(false))
    })
}

use std::sync::atomic::Ordering::Relaxed;

fn stats(ruby: &Ruby) -> Result<RHash, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let snapshot = serde_json::to_value(STATS.snapshot())
            .map_err(|e| errors::error(ruby, "Error", e.to_string()))?;
        match &snapshot {
            serde_json::Value::Object(map) => object_to_ruby(ruby, map),
            _ => unreachable!("stats serialize to an object"),
        }
    })
}

/// Installs PGMQ's SQL into the database at `url` (never `CREATE EXTENSION`).
fn install_pgmq(ruby: &Ruby, url: String, connect_timeout_ms: u64) -> Result<bool, Error> {
    guard(ruby, || {
        let config = Config {
            database_url: Some(url.clone()),
            connect_timeout: millis(connect_timeout_ms),
            ..Config::default()
        };
        let install = move || -> Result<(), DatabaseError> {
            let runtime = tokio_runtime()?;
            runtime.block_on(async {
                let pool = durable::lazy_pool(&url, &config)?;
                let result = durable::install_pgmq(&pool).await;
                pool.close().await;
                result
            })
        };
        match without_gvl(ruby, install, || {})? {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(errors::database(ruby, e)),
            None => Ok(false),
        }
    })
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, DatabaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DatabaseError::Postgres(e.to_string()))
}

fn validate_pattern(ruby: &Ruby, pattern: String) -> Result<String, Error> {
    guard(ruby, || {
        Pattern::new(&pattern).map_err(|e| errors::validation(ruby, e))?;
        Ok(pattern)
    })
}

fn pattern_matches(ruby: &Ruby, pattern: String, event_name: String) -> Result<bool, Error> {
    guard(ruby, || {
        let pattern = Pattern::new(&pattern).map_err(|e| errors::validation(ruby, e))?;
        Ok(pattern.matches(&event_name))
    })
}
