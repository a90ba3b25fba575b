//! The `TaskerEvents::Native` module: small positional functions that the Ruby classes in
//! `lib/tasker_events/` wrap with keyword arguments, defaults and documentation.

mod capture;
mod drain;
mod metrics;
mod publish_job;
mod queues;
mod system;
mod templates;

use magnus::{Error, Module, Ruby};

pub use system::{take_system, STATS};

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.define_module("TaskerEvents")?;
    let native = module.define_module("Native")?;
    system::init(ruby, native)?;
    drain::init(ruby, native)?;
    publish_job::init(ruby, native)?;
    templates::init(ruby, native)?;
    capture::init(ruby, native)?;
    queues::init(ruby, native)?;
    metrics::init(ruby, native)?;
    crate::pins::init(ruby, native)?;
    crate::logging::init();
    crate::fork::init();
    Ok(())
}
