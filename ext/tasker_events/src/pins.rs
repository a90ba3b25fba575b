//! Ruby payloads held by events in flight.
//!
//! A fast or broadcast event published from Ruby carries its payload object to the drain
//! thread, so that Ruby subscribers receive that object, as `ActiveSupport::Notifications`
//! subscribers do, instead of a copy rebuilt from JSON. Until the event is delivered or
//! dropped, the object is referenced only from Rust, so it is stored in a slot of a table of
//! Ruby Arrays, which the garbage collector follows like any other.
//!
//! The table is made of fixed-size Arrays (chunks) rather than marked by a function of ours:
//! a minor collection then looks only at the chunks written since the last one, not at every
//! payload queued, which matters when a burst has queued many thousands of events.
//!
//! The event holds a [`Pin`] for its slot. Dropping the last clone may happen on any thread,
//! without the GVL, so it only records the slot as released; the slot is cleared, and its
//! object left to the collector, the next time a Ruby thread pins a payload or the drain
//! thread has delivered a batch.

use std::os::raw::c_long;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::value::{Opaque, ReprValue};
use magnus::{Error, RArray, RModule, Ruby, Value};
use tasker_events_core::{EventDeliveryMode, HostPayload};

/// Slots per chunk.
const CHUNK: usize = 1024;

struct Table {
    /// Bumped when a forked child forgets its parent's events, so that a pin taken before
    /// the fork can neither read nor free a slot that has been reused since.
    epoch: u64,
    /// Slots handed out so far; `len / CHUNK` chunks, rounded up, exist.
    len: usize,
    /// Cleared slots, ready for reuse (most recently freed last, to write few chunks).
    free: Vec<usize>,
    /// Slots whose pin was dropped, still holding their object until a Ruby thread clears
    /// them.
    released: Vec<usize>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    epoch: 0,
    len: 0,
    free: Vec::new(),
    released: Vec::new(),
});

/// The Array of chunks, a permanent GC root.
static CHUNKS: OnceLock<Opaque<RArray>> = OnceLock::new();

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

fn chunks(ruby: &Ruby) -> RArray {
    ruby.get_inner(
        *CHUNKS
            .get()
            .expect("pins::init ran when the extension loaded"),
    )
}

/// One pinned payload; releases its slot when dropped.
struct Pin {
    slot: usize,
    epoch: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut table = table();
        if table.epoch == self.epoch {
            table.released.push(self.slot);
        }
    }
}

/// Keeps `payload` alive for as long as an event carries the returned handle.
/// `converted` says whether the event also carries the payload as JSON.
pub fn pin(ruby: &Ruby, payload: Value, converted: bool) -> Result<HostPayload, Error> {
    let (slot, epoch) = {
        let mut table = table();
        clear_released(ruby, &mut table);
        let slot = table.free.pop().unwrap_or_else(|| {
            table.len += 1;
            table.len - 1
        });
        (slot, table.epoch)
    };
    // Outside the lock: growing the table allocates, and so may collect.
    let chunks = chunks(ruby);
    while chunks.len() <= slot / CHUNK {
        chunks.push(ruby.ary_from_iter(std::iter::repeat_n(ruby.qnil(), CHUNK)))?;
    }
    store(chunks, slot, payload);
    let pin = Arc::new(Pin { slot, epoch });
    Ok(if converted {
        HostPayload::alongside_json(pin)
    } else {
        HostPayload::instead_of_json(pin)
    })
}

/// `payload` pinned for the Ruby subscribers of an event that also carries its JSON form;
/// `None` for a durable event, which reaches no Ruby subscriber.
pub fn alongside_json(
    ruby: &Ruby,
    payload: Value,
    mode: EventDeliveryMode,
) -> Result<Option<HostPayload>, Error> {
    if mode.is_in_process() {
        pin(ruby, payload, true).map(Some)
    } else {
        Ok(None)
    }
}

/// Clears the slots of dropped pins. Storing nil into an existing slot allocates nothing, so
/// this cannot start a collection while the table is locked.
fn clear_released(ruby: &Ruby, table: &mut Table) {
    if table.released.is_empty() {
        return;
    }
    let chunks = chunks(ruby);
    let Table { released, free, .. } = table;
    for slot in released.drain(..) {
        store(chunks, slot, ruby.qnil().as_value());
        free.push(slot);
    }
}

/// Writes a slot. Called once per published event, so without `rb_protect` around each
/// access: storing into an existing, unfrozen Array cannot raise.
fn store(chunks: RArray, slot: usize, value: Value) {
    // SAFETY: called with the GVL; the chunk at `slot / CHUNK` exists (`pin` grows the table
    // first), is an unfrozen Array of `CHUNK` elements, and `slot % CHUNK` is within it.
    unsafe {
        let chunk = rb_sys::rb_ary_entry(chunks.as_raw(), (slot / CHUNK) as c_long);
        rb_sys::rb_ary_store(chunk, (slot % CHUNK) as c_long, value.as_raw());
    }
}

fn load(chunks: RArray, slot: usize) -> Value {
    // SAFETY: as in `store`; `rb_ary_entry` returns nil past the end rather than raising.
    unsafe {
        let chunk = rb_sys::rb_ary_entry(chunks.as_raw(), (slot / CHUNK) as c_long);
        Value::from_raw(rb_sys::rb_ary_entry(chunk, (slot % CHUNK) as c_long))
    }
}

/// Clears what dropped pins left behind; the drain thread calls it after each batch, so that
/// delivered payloads are not kept until the next publish.
pub fn collect(ruby: &Ruby) {
    clear_released(ruby, &mut table());
}

/// The payload object an event carries, if it came from Ruby in this process.
pub fn payload(ruby: &Ruby, host: &HostPayload) -> Option<Value> {
    let pin = host.object().downcast_ref::<Pin>()?;
    if table().epoch != pin.epoch {
        return None;
    }
    Some(load(chunks(ruby), pin.slot))
}

/// How many payloads are pinned now; for the specs that check nothing leaks.
fn count() -> usize {
    let table = table();
    table.len - table.free.len() - table.released.len()
}

/// In a forked child: the parent's queued events are forgotten, never dropped, so their slots
/// are emptied here and their pins made void.
pub fn forget_parent(ruby: &Ruby) -> Result<(), Error> {
    let mut table = table();
    table.epoch += 1;
    table.len = 0;
    table.free.clear();
    table.released.clear();
    chunks(ruby).clear()
}

/// Taken around `fork`, so that the child never inherits the table locked by a runtime thread
/// that was dropping an event.
pub fn hold_for_fork() -> impl Sized {
    table()
}

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let root = ruby.ary_new();
    magnus::gc::register_mark_object(root);
    let _ = CHUNKS.set(root.into());
    native.define_module_function("pinned_payloads", magnus::function!(count, 0))?;
    Ok(())
}
