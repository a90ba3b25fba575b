//! Ruby payloads held by events in flight.
//!
//! A fast or broadcast event published from Ruby carries its payload object to the drain
//! thread, so that Ruby subscribers receive that object, as `ActiveSupport::Notifications`
//! subscribers do, instead of a copy rebuilt from JSON. Until the event is delivered or
//! dropped, the object is referenced only from Rust, so it sits in a slot of one table that the
//! garbage collector marks (pinning it, so compaction leaves it in place). The event holds a
//! [`Pin`] for the slot; dropping the last clone, on whichever thread, frees the slot. No Ruby
//! call is made while the table is locked, so marking can never wait on a thread that waits
//! for the GVL.

use std::sync::{Arc, Mutex, MutexGuard};

use magnus::gc::Marker;
use magnus::typed_data::DataTypeFunctions;
use magnus::value::Opaque;
use magnus::{prelude::*, Error, RModule, Ruby, TypedData, Value};
use tasker_events_core::HostPayload;

struct Table {
    /// Bumped when a forked child forgets its parent's events, so that a pin taken before
    /// the fork can neither read nor free a slot that has been reused since.
    epoch: u64,
    slots: Vec<Option<Opaque<Value>>>,
    free: Vec<usize>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    epoch: 0,
    slots: Vec::new(),
    free: Vec::new(),
});

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// One pinned payload; frees its slot when dropped.
struct Pin {
    slot: usize,
    epoch: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut table = table();
        if table.epoch == self.epoch {
            table.slots[self.slot] = None;
            table.free.push(self.slot);
        }
    }
}

/// Keeps `payload` alive for as long as an event carries the returned handle.
/// `converted` says whether the event also carries the payload as JSON.
pub fn pin(payload: Value, converted: bool) -> HostPayload {
    let mut table = table();
    let value = Some(Opaque::from(payload));
    let slot = match table.free.pop() {
        Some(slot) => {
            table.slots[slot] = value;
            slot
        }
        None => {
            table.slots.push(value);
            table.slots.len() - 1
        }
    };
    let pin = Arc::new(Pin {
        slot,
        epoch: table.epoch,
    });
    if converted {
        HostPayload::alongside_json(pin)
    } else {
        HostPayload::instead_of_json(pin)
    }
}

/// The payload object an event carries, if it came from Ruby in this process.
pub fn payload(ruby: &Ruby, host: &HostPayload) -> Option<Value> {
    let pin = host.object().downcast_ref::<Pin>()?;
    let table = table();
    if table.epoch != pin.epoch {
        return None;
    }
    table.slots[pin.slot].map(|value| ruby.get_inner(value))
}

/// How many payloads are pinned now; for the specs that check nothing leaks.
pub fn count() -> usize {
    let table = table();
    table.slots.len() - table.free.len()
}

/// In a forked child: the parent's queued events are forgotten, never dropped, so their slots
/// are emptied here and their pins made void.
pub fn forget_parent() {
    let mut table = table();
    table.epoch += 1;
    table.slots.clear();
    table.free.clear();
}

/// Taken around `fork`, so that the child never inherits the table locked by a runtime thread
/// that was dropping an event.
pub fn hold_for_fork() -> impl Sized {
    table()
}

/// The object the garbage collector reaches the table through.
#[derive(TypedData)]
#[magnus(class = "TaskerEvents::Native::PayloadPins", free_immediately, mark)]
struct Root;

impl DataTypeFunctions for Root {
    fn mark(&self, marker: &Marker) {
        let table = table();
        for value in table.slots.iter().flatten() {
            marker.mark(*value);
        }
    }
}

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("PayloadPins", ruby.class_object())?;
    class.undef_default_alloc_func();
    let root = ruby.obj_wrap(Root);
    magnus::gc::register_mark_object(root);
    native.define_module_function("pinned_payloads", magnus::function!(count, 0))?;
    Ok(())
}
