//! Test mode's capture, read from Ruby: the durable messages a test-mode system captured
//! instead of writing them to PGMQ, and the log of every event it routed. One capture serves
//! the process, like the counters, so what was captured survives `shutdown` until cleared.

use std::sync::{Arc, LazyLock};

use magnus::{function, Error, RArray, RHash, RModule, Ruby, Value};
use tasker_events_core::{Capture, NewEvent};

use super::drain::event_to_ruby;
use crate::convert::{object_to_ruby, to_json};
use crate::errors::{self, guard};

/// Handed to every system started in test mode.
pub static CAPTURE: LazyLock<Arc<Capture>> = LazyLock::new(|| Arc::new(Capture::default()));

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_module_function("captured_messages", function!(captured_messages, 0))?;
    native.define_module_function("capture_mark", function!(capture_mark, 0))?;
    native.define_module_function("captured_events_since", function!(events_since, 1))?;
    native.define_module_function("capture_discarded", function!(discarded, 0))?;
    native.define_module_function("capture_limit", function!(capture_limit, 0))?;
    native.define_module_function("clear_captured", function!(clear, 0))?;
    native.define_module_function("build_event", function!(build_event, 5))?;
    Ok(())
}

/// What the core serialized to a JSON object, as a frozen Hash with symbol keys.
fn hash_of(ruby: &Ruby, json: serde_json::Result<serde_json::Value>) -> Result<RHash, Error> {
    match json {
        Ok(serde_json::Value::Object(map)) => object_to_ruby(ruby, &map),
        Ok(_) => Err(errors::error(ruby, "Error", "expected a JSON object")),
        Err(e) => Err(errors::error(ruby, "Error", e.to_string())),
    }
}

/// @return [Array<Hash>] queue_name, msg_id, read_ct, enqueued_at, vt, message, headers;
///   oldest first
fn captured_messages(ruby: &Ruby) -> Result<RArray, Error> {
    guard(ruby, || {
        let messages = CAPTURE.messages();
        let array = ruby.ary_new_capa(messages.len());
        for message in &messages {
            array.push(hash_of(ruby, serde_json::to_value(message))?)?;
        }
        Ok(array)
    })
}

/// @return [Integer] the end of the event log so far, for `captured_events_since`
fn capture_mark() -> u64 {
    CAPTURE.mark()
}

/// @return [Array(Array<Hash>, Integer)] the events logged after `mark`, as subscribers
///   receive them, and how many of those the capture no longer holds
fn events_since(ruby: &Ruby, mark: u64) -> Result<(RArray, u64), Error> {
    guard(ruby, || {
        let since = CAPTURE.events_since(mark);
        let array = ruby.ary_new_capa(since.events.len());
        for event in &since.events {
            array.push(event_to_ruby(ruby, event)?)?;
        }
        Ok((array, since.missing))
    })
}

/// @return [Hash] `messages` and `events` discarded past the limit since the last clear
fn discarded(ruby: &Ruby) -> Result<RHash, Error> {
    guard(ruby, || {
        hash_of(ruby, serde_json::to_value(CAPTURE.discarded()))
    })
}

fn capture_limit() -> usize {
    CAPTURE.limit()
}

fn clear() {
    CAPTURE.clear();
}

/// Builds an event as `publish` would, without publishing it: for tests that call a subscriber
/// directly. The payload is checked as for PGMQ whatever the mode, so that a test learns of a
/// value no consumer could read; an in-process event then carries the object itself.
/// @return [Hash] frozen, with symbol keys
fn build_event(
    ruby: &Ruby,
    event_name: String,
    payload: Value,
    namespace: String,
    delivery_mode: String,
    metadata: Value,
) -> Result<RHash, Error> {
    guard(ruby, || {
        let delivery_mode = delivery_mode
            .parse()
            .map_err(|e| errors::validation(ruby, e))?;
        let extra_metadata = match to_json(ruby, metadata, "metadata")? {
            serde_json::Value::Object(map) => map,
            _ => {
                let message = "metadata must be a Hash";
                return Err(errors::error(ruby, "ValidationError", message));
            }
        };
        let json = to_json(ruby, payload, "payload")?;
        let event = NewEvent {
            delivery_mode,
            extra_metadata,
            host_payload: crate::pins::alongside_json(ruby, payload, delivery_mode)?,
            ..NewEvent::new(event_name, namespace, json)
        };
        let event = event.build().map_err(|e| errors::validation(ruby, e))?;
        event_to_ruby(ruby, &event)
    })
}
