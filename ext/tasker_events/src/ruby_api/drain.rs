//! What the drain thread calls: register Ruby subscribers' patterns, wait for deliveries
//! without the GVL, and report what it handled.

use std::sync::Arc;
use std::time::Duration;

use magnus::value::LazyId;
use magnus::{function, method, prelude::*, Error, RArray, RHash, RModule, Ruby, Symbol, Value};
use tasker_events_core::drain::{DrainItem, DrainQueue, Wait};
use tasker_events_core::stats::{DropReason, SettleGate, SubscriberKind};
use tasker_events_core::{DomainEvent, EventMetadata};

use super::publish_job::RbPublishJob;
use super::system::{read_system, STATS};
use crate::convert::{frozen_str, interned_str, to_ruby};
use crate::errors::{self, guard};
use crate::gvl::without_gvl;
use crate::pins;

/// `TaskerEvents::Native::DrainQueue`: the drain queue of one started system. Each drain
/// thread holds the queue of the system that started it, so a thread that outlives its system
/// (a subscriber stuck past shutdown) never takes work from the next one.
///
/// Its gate settles who counts what a drain thread took but had not finished when shutdown
/// gave up on it: shutdown counts it as dropped, and the thread's late acknowledgement is then
/// ignored, so the counters add up once shutdown returns and stay that way.
#[magnus::wrap(class = "TaskerEvents::Native::DrainQueue", free_immediately, size)]
pub struct RbDrainQueue {
    queue: Arc<DrainQueue>,
    gate: SettleGate,
}

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_module_function("subscribe", function!(subscribe, 2))?;
    native.define_module_function("unsubscribe", function!(unsubscribe, 1))?;
    native.define_module_function("drain_queue", function!(current_queue, 0))?;

    let class = native.define_class("DrainQueue", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_method("next_batch", method!(next_batch, 2))?;
    class.define_method("ack", method!(ack, 4))?;
    class.define_method("ack_jobs", method!(ack_jobs, 2))?;
    class.define_method("abandon", method!(abandon, 0))?;
    class.define_method("take_logs", method!(take_logs, 0))?;
    Ok(())
}

/// Routes events matching `patterns` to the drain thread under `id`.
/// @return [Boolean] false when the system is not running.
fn subscribe(ruby: &Ruby, id: u64, patterns: Vec<String>) -> Result<bool, Error> {
    guard(ruby, || {
        crate::fork::recover(ruby)?;
        let system = read_system();
        let Some(system) = system.as_ref() else {
            return Ok(false);
        };
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        system
            .bus()
            .subscribe_ruby(id, &patterns)
            .map_err(|e| errors::validation(ruby, e))?;
        Ok(true)
    })
}

fn unsubscribe(id: u64) -> bool {
    read_system()
        .as_ref()
        .is_some_and(|system| system.bus().unsubscribe_ruby(id))
}

/// @return [DrainQueue, nil] the running system's drain queue
fn current_queue() -> Option<RbDrainQueue> {
    read_system().as_ref().map(|system| RbDrainQueue {
        queue: system.drain_queue().clone(),
        gate: SettleGate::default(),
    })
}

/// Waits without the GVL for up to `max` items.
/// @return [Array<Array(Hash, Array<Integer>), PublishJob>, nil] event hashes with the ids of
///   the subscribers they match, and publisher jobs (empty after a timeout or an interrupt);
///   nil once the system has shut down and nothing is left.
fn next_batch(
    ruby: &Ruby,
    rb_self: &RbDrainQueue,
    max: usize,
    timeout: Option<f64>,
) -> Result<Option<RArray>, Error> {
    guard(ruby, || {
        let queue = rb_self.queue.clone();
        let timeout = timeout.map(|t| Duration::from_secs_f64(t.max(0.0)));
        let waiting = Arc::clone(&queue);
        let wait = without_gvl(
            ruby,
            move || waiting.wait_batch(max, timeout),
            || queue.interrupt(),
        )?;
        match wait {
            Some(Wait::Batch(batch)) => {
                let converted = batch_to_ruby(ruby, &batch);
                // The events now live in Ruby hashes; their pinned payloads can be let go.
                drop(batch);
                pins::collect(ruby);
                converted.map(Some)
            }
            Some(Wait::Closed) => Ok(None),
            Some(Wait::TimedOut | Wait::Interrupted) | None => Ok(Some(ruby.ary_new())),
        }
    })
}

fn batch_to_ruby(ruby: &Ruby, batch: &[DrainItem]) -> Result<RArray, Error> {
    let array = ruby.ary_new_capa(batch.len());
    // Deliveries of events with the same name share their ids; so do their frozen arrays.
    let mut last_ids: Option<(&Arc<[u64]>, RArray)> = None;
    for item in batch {
        match item {
            DrainItem::Delivery(delivery) => {
                let ids = match last_ids {
                    Some((shared, ids)) if Arc::ptr_eq(shared, &delivery.subscriber_ids) => ids,
                    _ => {
                        let ids = ruby.ary_from_iter(delivery.subscriber_ids.iter().copied());
                        ids.freeze();
                        last_ids = Some((&delivery.subscriber_ids, ids));
                        ids
                    }
                };
                array.push((event_to_ruby(ruby, &delivery.event)?, ids))?;
            }
            DrainItem::Publish(job) => array.push(RbPublishJob(job.clone()))?,
        }
    }
    Ok(array)
}

/// The keys of every event hash, interned once rather than looked up per event.
static EVENT_ID: LazyId = LazyId::new("event_id");
static EVENT_NAME: LazyId = LazyId::new("event_name");
static EVENT_VERSION: LazyId = LazyId::new("event_version");
static DELIVERY_MODE: LazyId = LazyId::new("delivery_mode");
static PAYLOAD: LazyId = LazyId::new("payload");
static METADATA: LazyId = LazyId::new("metadata");
static EXECUTION_RESULT: LazyId = LazyId::new("execution_result");
static TASK_UUID: LazyId = LazyId::new("task_uuid");
static STEP_UUID: LazyId = LazyId::new("step_uuid");
static STEP_NAME: LazyId = LazyId::new("step_name");
static NAMESPACE: LazyId = LazyId::new("namespace");
static CORRELATION_ID: LazyId = LazyId::new("correlation_id");
static FIRED_AT: LazyId = LazyId::new("fired_at");
static FIRED_BY: LazyId = LazyId::new("fired_by");

fn key(ruby: &Ruby, id: &LazyId) -> Value {
    Symbol::from(LazyId::get_inner_with(id, ruby)).as_value()
}

/// The event as subscribers see it: a frozen Hash with symbol keys. Its payload is the object
/// published from Ruby, or, for events built in Rust, a frozen Hash with symbol keys all the
/// way down.
pub fn event_to_ruby(ruby: &Ruby, event: &DomainEvent) -> Result<RHash, Error> {
    // Built field by field: serializing the event to JSON first would copy its payload once
    // more for every event the drain thread delivers.
    let payload = match event
        .host_payload
        .as_ref()
        .and_then(|h| pins::payload(ruby, h))
    {
        Some(object) => object,
        None => to_ruby(ruby, &event.payload)?,
    };
    let result = match &event.execution_result {
        Some(result) => to_ruby(ruby, result)?,
        None => ruby.qnil().as_value(),
    };
    let pairs = [
        key(ruby, &EVENT_ID),
        uuid_str(ruby, event.event_id),
        key(ruby, &EVENT_NAME),
        interned_str(ruby, &event.event_name),
        key(ruby, &EVENT_VERSION),
        interned_str(ruby, &event.event_version),
        key(ruby, &DELIVERY_MODE),
        interned_str(ruby, event.delivery_mode.as_str()),
        key(ruby, &PAYLOAD),
        payload,
        key(ruby, &METADATA),
        metadata_to_ruby(ruby, &event.metadata)?.as_value(),
        key(ruby, &EXECUTION_RESULT),
        result,
    ];
    frozen_hash(ruby, &pairs)
}

/// A frozen Hash of these key, value, key, value... pairs, inserted at once.
fn frozen_hash(ruby: &Ruby, pairs: &[Value]) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    hash.bulk_insert(pairs)?;
    hash.freeze();
    Ok(hash)
}

fn uuid_str(ruby: &Ruby, id: uuid::Uuid) -> Value {
    let mut buffer = uuid::Uuid::encode_buffer();
    frozen_str(ruby, id.as_hyphenated().encode_lower(&mut buffer))
}

/// The metadata as its JSON form reads: standard fields, then the caller's extras.
fn metadata_to_ruby(ruby: &Ruby, metadata: &EventMetadata) -> Result<RHash, Error> {
    let nil = ruby.qnil().as_value();
    let optional_uuid = |value: Option<uuid::Uuid>| value.map_or(nil, |id| uuid_str(ruby, id));
    let step_name = metadata
        .step_name
        .as_ref()
        .map_or(nil, |name| interned_str(ruby, name));
    let pairs = [
        key(ruby, &TASK_UUID),
        optional_uuid(metadata.task_uuid),
        key(ruby, &STEP_UUID),
        optional_uuid(metadata.step_uuid),
        key(ruby, &STEP_NAME),
        step_name,
        key(ruby, &NAMESPACE),
        interned_str(ruby, &metadata.namespace),
        key(ruby, &CORRELATION_ID),
        uuid_str(ruby, metadata.correlation_id),
        key(ruby, &FIRED_AT),
        frozen_str(ruby, &metadata.fired_at_rfc3339()),
        key(ruby, &FIRED_BY),
        interned_str(ruby, &metadata.fired_by),
    ];
    if metadata.extra.is_empty() {
        return frozen_hash(ruby, &pairs);
    }
    let hash = ruby.hash_new();
    hash.bulk_insert(&pairs)?;
    for (key, value) in &metadata.extra {
        hash.aset(ruby.to_symbol(key), to_ruby(ruby, value)?)?;
    }
    hash.freeze();
    Ok(hash)
}

/// Records that the drain thread handed `delivered` events to their subscribers (`errors`
/// subscriber calls raised, `timeouts` were abandoned) and lost `lost` events it had taken,
/// because it was stopped mid-batch.
fn ack(rb_self: &RbDrainQueue, delivered: u64, errors: u64, timeouts: u64, lost: u64) {
    rb_self.gate.count(|| {
        STATS.ruby_subscribers.deliver(delivered);
        STATS
            .ruby_subscribers
            .drop_events(DropReason::DrainThreadStopped, lost);
    });
    STATS.record_subscriber_errors(SubscriberKind::Ruby, errors);
    STATS.record_subscriber_timeouts(SubscriberKind::Ruby, timeouts);
    STATS.notify_progress();
}

/// Records that the drain thread ran `done` publisher jobs and lost `lost` it had taken.
fn ack_jobs(rb_self: &RbDrainQueue, done: u64, lost: u64) {
    rb_self.gate.count(|| {
        STATS.ruby_publishers.deliver(done);
        STATS
            .ruby_publishers
            .drop_events(DropReason::DrainThreadStopped, lost);
    });
    STATS.notify_progress();
}

/// Takes the core's waiting log lines.
/// @return [Array(Array<Array(String, String, Hash)>, Integer)] `[level, message, fields]`
///   per line, and how many lines were dropped because too many were waiting
fn take_logs(ruby: &Ruby, rb_self: &RbDrainQueue) -> Result<(RArray, u64), Error> {
    let (logs, dropped) = rb_self.queue.take_logs();
    let lines = ruby.ary_new_capa(logs.len());
    for record in logs {
        let fields = ruby.hash_new();
        for (key, value) in record.fields {
            fields.aset(ruby.to_symbol(key), value)?;
        }
        lines.push((record.level, record.message, fields))?;
    }
    Ok((lines, dropped))
}

/// Gives up on the drain thread, for a shutdown that cannot wait any longer: everything still
/// queued for it, or taken and not yet acknowledged, is counted as dropped (`shutting_down`).
/// @return [Integer] how many events and publisher jobs were dropped
fn abandon(rb_self: &RbDrainQueue) -> u64 {
    rb_self.queue.take_all();
    let mut lost = 0;
    rb_self.gate.close(|| {
        for path in [&STATS.ruby_subscribers, &STATS.ruby_publishers] {
            let queued = path.snapshot().queued;
            path.drop_events(DropReason::ShuttingDown, queued);
            lost += queued;
        }
    });
    STATS.notify_progress();
    lost
}
