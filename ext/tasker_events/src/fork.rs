//! Surviving `fork` (Puma's cluster mode, Sidekiq swarm, Unicorn, Resque).
//!
//! A forked child has only the thread that called `fork`: the runtime's threads, the pool's
//! connections (shared with the parent's sockets) and the drain thread are the parent's, and
//! the child must use none of them. So the child forgets the parent's system without running
//! any of its destructors (which would wait for threads that do not exist, or talk on the
//! parent's connections), starts a fresh one with the same settings, and counts from zero.
//! Events the parent had queued stay the parent's to deliver: the child never sends them.
//!
//! The child notices on its first call into the gem (`publish`, `dispatch_step_events`,
//! `flush`, `stats`, ...), through a flag set by a `pthread_atfork` handler, so no user code is
//! needed; `TaskerEvents.after_fork` does the same at a moment of the caller's choosing.
//!
//! A lock held by a runtime thread at the moment of `fork` would stay locked forever in the
//! child. The handlers therefore take every lock that both the runtime's threads and the child
//! use (the counters', the log's and the payload pins') just before `fork`, and release them
//! on both sides after.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use magnus::{prelude::*, Error, RModule, Ruby};

use crate::ruby_api::STATS;

/// Set in a child process until its first call into the gem restarts the system there.
static FORKED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The locks taken by `prepare`, released by `after_in_parent` and `after_in_child` (which
    /// run on the same thread as `prepare`).
    static HELD: RefCell<Option<Box<dyn std::any::Any>>> = RefCell::new(None);
}

/// Installs the `fork` handlers, once per process.
pub fn init() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: the handlers are plain functions that only take and release this crate's
        // locks and set an atomic flag; none of them calls into Ruby.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(after_in_parent), Some(after_in_child));
        }
    });
}

extern "C" fn prepare() {
    let held: Box<dyn std::any::Any> = Box::new((
        crate::logging::hold_for_fork(),
        STATS.hold_for_fork(),
        tasker_events_core::log::hold_for_fork(),
        crate::pins::hold_for_fork(),
    ));
    HELD.with(|slot| *slot.borrow_mut() = Some(held));
}

extern "C" fn after_in_parent() {
    HELD.with(|slot| slot.borrow_mut().take());
}

extern "C" fn after_in_child() {
    HELD.with(|slot| slot.borrow_mut().take());
    FORKED.store(true, Ordering::SeqCst);
}

/// Called at the start of every binding that uses the system: in a child process that has not
/// recovered yet, hands over to `TaskerEvents.after_fork`, which restarts the system here.
pub fn recover(ruby: &Ruby) -> Result<(), Error> {
    if !FORKED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let module: RModule = ruby.class_object().const_get("TaskerEvents")?;
    module.funcall::<_, _, magnus::Value>("after_fork", ())?;
    Ok(())
}

/// The child's half of recovering: forgets the parent's system and counters.
/// @return [Boolean] whether a system was running when the process forked
pub fn forget_parent(ruby: &Ruby) -> Result<bool, Error> {
    FORKED.store(false, Ordering::SeqCst);
    let inherited = crate::ruby_api::take_system();
    crate::logging::set_sink(None);
    STATS.reset();
    let was_running = inherited.is_some();
    // Its destructor would join threads this process does not have and close connections the
    // parent still uses.
    std::mem::forget(inherited);
    crate::pins::forget_parent(ruby)?;
    Ok(was_running)
}

/// Whether this process forked and has not recovered yet.
pub fn pending() -> bool {
    FORKED.load(Ordering::Relaxed)
}
