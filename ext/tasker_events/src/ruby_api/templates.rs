//! Task templates and worker.toml files, read by the core and shown to Ruby as Hashes.

use std::path::Path;
use std::sync::Arc;

use magnus::{function, Error, RHash, RModule, Ruby};
use tasker_events_core::config_file::WorkerSettings;
use tasker_events_core::template::{EventDeclaration, TaskTemplate, TemplateRegistry};

use super::publish_job::{declaration_json, json_to_hash};
use crate::errors::{self, guard};

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_module_function("load_template", function!(load_template, 1))?;
    native.define_module_function("load_worker_config", function!(load_worker_config, 2))?;
    Ok(())
}

/// Reads and validates the templates at `paths` into one registry.
pub fn registry(ruby: &Ruby, paths: &[String]) -> Result<Arc<TemplateRegistry>, Error> {
    let registry = TemplateRegistry::default();
    for path in paths {
        let template = TaskTemplate::load(Path::new(path))
            .map_err(|e| errors::error(ruby, "TemplateError", e.to_string()))?;
        registry
            .insert(Arc::new(template))
            .map_err(|e| errors::error(ruby, "TemplateError", e.to_string()))?;
    }
    Ok(Arc::new(registry))
}

/// @return [Hash] the template as the gem understood it
fn load_template(ruby: &Ruby, path: String) -> Result<RHash, Error> {
    guard(ruby, || {
        let template = TaskTemplate::load(Path::new(&path))
            .map_err(|e| errors::error(ruby, "TemplateError", e.to_string()))?;
        template_to_ruby(ruby, &template)
    })
}

fn template_to_ruby(ruby: &Ruby, template: &TaskTemplate) -> Result<RHash, Error> {
    let declarations =
        |events: &[EventDeclaration]| events.iter().map(declaration_json).collect::<Vec<_>>();
    let steps: Vec<_> = template
        .steps
        .iter()
        .map(|step| {
            serde_json::json!({
                "name": step.name,
                "retry": { "retryable": step.retry.retryable, "limit": step.retry.limit },
                "publishes_events": declarations(&step.publishes_events),
            })
        })
        .collect();
    let json = serde_json::json!({
        "name": template.name,
        "namespace": template.namespace,
        "version": template.version,
        "description": template.description,
        "source": template.source,
        "steps": steps,
        "domain_events": declarations(&template.domain_events),
    });
    json_to_hash(ruby, json)
}

/// Reads `<dir>/base/worker.toml` overlaid with `<dir>/environments/<environment>/worker.toml`.
/// @return [Hash] the eight settings, symbol keys
fn load_worker_config(ruby: &Ruby, dir: String, environment: String) -> Result<RHash, Error> {
    guard(ruby, || {
        let settings = WorkerSettings::load(Path::new(&dir), &environment)
            .map_err(|e| errors::error(ruby, "ConfigError", e.to_string()))?;
        json_to_hash(
            ruby,
            serde_json::json!({
                "broadcast_buffer_size": settings.broadcast_buffer_size,
                "log_subscriber_errors": settings.log_subscriber_errors,
                "dispatch_timeout_ms": settings.dispatch_timeout_ms,
                "command_buffer_size": settings.command_buffer_size,
                "shutdown_drain_timeout_ms": settings.shutdown_drain_timeout_ms,
                "log_dropped_events": settings.log_dropped_events,
                "ffi_integration_enabled": settings.ffi_integration_enabled,
                "deduplication_cache_size": settings.deduplication_cache_size,
            }),
        )
    })
}
