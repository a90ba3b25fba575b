//! Raising the gem's Ruby exceptions from Rust. The hierarchy is declared once, in
//! `lib/tasker_events/errors.rb`; Rust only looks the classes up.

use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{exception::ExceptionClass, prelude::*, Error, RModule, Ruby};
use tasker_events_core::bus::panic_message;
use tasker_events_core::{DatabaseError, StartError, ValidationError};

/// Builds an exception of class `TaskerEvents::<name>`, falling back to `TaskerEvents::Error`
/// and then `StandardError` if the Ruby side was not loaded as expected.
pub fn error(ruby: &Ruby, name: &str, message: impl Into<String>) -> Error {
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("TaskerEvents")
        .and_then(|module| module.const_get::<_, ExceptionClass>(name))
        .unwrap_or_else(|_| ruby.exception_standard_error());
    Error::new(class, message.into())
}

pub fn validation(ruby: &Ruby, err: ValidationError) -> Error {
    error(ruby, "ValidationError", err.to_string())
}

pub fn database(ruby: &Ruby, err: DatabaseError) -> Error {
    match err {
        DatabaseError::Url { .. } => error(ruby, "ConfigError", err.to_string()),
        other => error(ruby, "DatabaseError", other.to_string()),
    }
}

pub fn start(ruby: &Ruby, err: StartError) -> Error {
    match err {
        StartError::Config(e) => error(ruby, "ConfigError", e.to_string()),
        StartError::Database(e) => database(ruby, e),
        StartError::Runtime(e) => error(ruby, "Error", e.to_string()),
    }
}

/// Runs a binding's body so that a Rust panic becomes `TaskerEvents::Error` instead of
/// reaching Ruby as `fatal`, which would end the process.
pub fn guard<T>(ruby: &Ruby, body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let message = format!(
            "internal error in tasker_events: {}",
            panic_message(&*panic)
        );
        Err(error(ruby, "Error", message))
    })
}
