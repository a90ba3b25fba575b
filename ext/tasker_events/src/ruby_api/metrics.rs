//! The process's metrics, read from Ruby: as OpenTelemetry-shaped instruments for
//! `TaskerEvents.metrics` and the OpenTelemetry bridge, and as Prometheus text for
//! `TaskerEvents.metrics_text` and `TaskerEvents::MetricsApp`.

use magnus::{function, Error, RArray, RModule, Ruby};
use tasker_events_core::metrics;

use super::system::STATS;
use crate::convert::to_ruby;
use crate::errors::{self, guard};

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_module_function("metrics", function!(instruments, 0))?;
    native.define_module_function("metrics_text", function!(metrics_text, 0))?;
    native.define_module_function("keep_latency_samples", function!(keep_samples, 1))?;
    native.define_module_function("take_latency_samples", function!(take_samples, 0))?;
    Ok(())
}

/// What the core serialized to a JSON array, as a frozen Array with symbol-keyed Hashes.
fn array_of(ruby: &Ruby, json: serde_json::Result<serde_json::Value>) -> Result<RArray, Error> {
    let json = json.map_err(|e| errors::error(ruby, "Error", e.to_string()))?;
    RArray::from_value(to_ruby(ruby, &json)?)
        .ok_or_else(|| errors::error(ruby, "Error", "expected an array"))
}

/// @return [Array<Hash>] name, prometheus_name, kind, unit, description and points
///   (attributes, value) of every instrument
fn instruments(ruby: &Ruby) -> Result<RArray, Error> {
    guard(ruby, || {
        array_of(ruby, serde_json::to_value(metrics::instruments(&STATS)))
    })
}

/// @return [String] every instrument in the Prometheus text exposition format
fn metrics_text(ruby: &Ruby) -> Result<String, Error> {
    guard(ruby, || Ok(metrics::prometheus_text(&STATS)))
}

fn keep_samples(keep: bool) {
    STATS.metrics.keep_samples(keep);
}

/// @return [Array(Array<Hash>, Integer)] the durable write latencies observed since the last
///   call (namespace, outcome, seconds), and how many were discarded in total
fn take_samples(ruby: &Ruby) -> Result<(RArray, u64), Error> {
    guard(ruby, || {
        let (samples, discarded) = STATS.metrics.take_samples();
        Ok((array_of(ruby, serde_json::to_value(samples))?, discarded))
    })
}
