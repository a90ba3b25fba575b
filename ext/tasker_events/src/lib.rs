//! Ruby bindings of the tasker_events core. This crate only converts values and calls
//! `tasker_events_core`; every behaviour lives in the core.

mod convert;
mod errors;
mod fork;
mod gvl;
mod logging;
mod pins;
mod ruby_api;

#[magnus::init]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    ruby_api::init(ruby)
}
