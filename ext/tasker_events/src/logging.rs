//! Where the core's `tracing` output goes: standard error, at the level named by the
//! `TASKER_EVENTS_LOG` environment variable (error, warn, info, debug, trace; default warn).
//! Payloads are only logged at debug and below.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

pub fn init() {
    let level = std::env::var("TASKER_EVENTS_LOG")
        .ok()
        .and_then(|value| value.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::WARN);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(level);
    // Another library in the process may have set a global subscriber first; then its
    // configuration wins and ours is not installed.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
