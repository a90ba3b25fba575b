//! `TaskerEvents::Native::PublishJob`: the declared events of one completed step, handed to
//! the drain thread so that Ruby publishers decide their payload and metadata.

use std::sync::Arc;

use magnus::{method, prelude::*, Error, RArray, RHash, RModule, Ruby, Value};
use tasker_events_core::dispatch::{publish_declared, PublishJob};
use tasker_events_core::stats::DeclaredOutcome;
use tasker_events_core::template::EventDeclaration;

use super::system::STATS;
use crate::convert::{object_to_ruby, to_json, to_ruby};
use crate::errors::{self, guard};

#[magnus::wrap(class = "TaskerEvents::Native::PublishJob", free_immediately, size)]
pub struct RbPublishJob(pub Arc<PublishJob>);

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("PublishJob", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_method("context", method!(RbPublishJob::context, 0))?;
    class.define_method("step_result", method!(RbPublishJob::step_result, 0))?;
    class.define_method("declarations", method!(RbPublishJob::declarations, 0))?;
    class.define_method("publish", method!(RbPublishJob::publish, 4))?;
    class.define_method("record", method!(RbPublishJob::record, 2))?;
    Ok(())
}

pub fn json_to_hash(ruby: &Ruby, json: serde_json::Value) -> Result<RHash, Error> {
    match json {
        serde_json::Value::Object(map) => object_to_ruby(ruby, &map),
        _ => Ok(ruby.hash_new()),
    }
}

/// A declaration as publishers and `TaskTemplate` see it.
pub fn declaration_json(declaration: &EventDeclaration) -> serde_json::Value {
    serde_json::json!({
        "name": declaration.name,
        "description": declaration.description,
        "condition": declaration.condition.as_str(),
        "delivery_mode": declaration.delivery_mode.as_str(),
        "publisher": declaration.publisher,
        "schema": declaration.schema.as_ref().map(|s| s.source().clone()),
    })
}

impl RbPublishJob {
    /// @return [Hash] the step context, symbol keys
    fn context(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let json = serde_json::to_value(&rb_self.0.completion.context)
            .map_err(|e| errors::error(ruby, "Error", e.to_string()))?;
        json_to_hash(ruby, json)
    }

    /// @return [Hash] the step result as the worker reported it, symbol keys
    fn step_result(ruby: &Ruby, rb_self: &Self) -> Result<Value, Error> {
        to_ruby(ruby, &rb_self.0.completion.step_result)
    }

    /// @return [Array<Hash>] the matching event declarations, in template order
    fn declarations(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let array = ruby.ary_new_capa(rb_self.0.declarations.len());
        for declaration in &rb_self.0.declarations {
            array.push(json_to_hash(ruby, declaration_json(declaration))?)?;
        }
        Ok(array)
    }

    /// Checks the payload against the declaration's schema and routes the event.
    /// @return [String, nil] the event id, or nil when rejected or dropped (counted)
    fn publish(
        ruby: &Ruby,
        rb_self: &Self,
        index: usize,
        payload: Value,
        metadata: Value,
        fired_by: String,
    ) -> Result<Option<String>, Error> {
        guard(ruby, || {
            let job = &rb_self.0;
            let Some(declaration) = job.declarations.get(index) else {
                let message = format!("no declaration at index {index}");
                return Err(errors::error(ruby, "Error", message));
            };
            let payload = to_json(ruby, payload, "payload")?;
            let metadata = match to_json(ruby, metadata, "additional_metadata")? {
                serde_json::Value::Object(map) => map,
                serde_json::Value::Null => serde_json::Map::new(),
                _ => {
                    let message = "additional_metadata must return a Hash";
                    return Err(errors::error(ruby, "ValidationError", message));
                }
            };
            let id = publish_declared(
                &job.router,
                &STATS,
                &job.completion,
                declaration,
                payload,
                metadata,
                &fired_by,
            );
            Ok(id.map(|id| id.to_string()))
        })
    }

    /// Counts what a publisher decided for `n` events: "publisher_skipped",
    /// "publisher_error" or "dropped".
    fn record(ruby: &Ruby, _rb_self: &Self, outcome: String, n: u64) -> Result<(), Error> {
        let outcome = match outcome.as_str() {
            "publisher_skipped" => DeclaredOutcome::PublisherSkipped,
            "publisher_error" => DeclaredOutcome::PublisherError,
            "dropped" => DeclaredOutcome::Dropped,
            other => {
                let message = format!("unknown declared-event outcome {other:?}");
                return Err(errors::error(ruby, "ValidationError", message));
            }
        };
        STATS.record_declared(outcome, n);
        Ok(())
    }
}
