//! Running blocking Rust code without the GVL, so other Ruby threads run meanwhile.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, Ruby};

/// How often `work` is offered again after an interrupt that raised nothing.
const INTERRUPT_RETRIES: usize = 3;

/// Runs `work` with the GVL released and returns its result, or `None` when an interrupt
/// (`Thread#kill`, `Thread#raise`, a signal) was already pending and `work` never ran.
///
/// Ruby calls `unblock` from another thread when this one is interrupted; `work` must then
/// return promptly. Pending interrupts are handled afterwards, with the GVL held, through
/// `Thread.check_ints`, so an exception they raise reaches Ruby as an ordinary error instead of
/// a jump across Rust frames. A pending interrupt that raises nothing, such as another thread
/// asking for the GVL, would otherwise make `work` silently not run (a shutdown that shuts
/// nothing down, a flush that reports false at once), so `work` is then offered again. A panic
/// in `work` is caught where no Ruby API may be touched and resumed once the GVL is back (the
/// binding's guard turns it into a Ruby error).
pub fn without_gvl<R, W, U>(ruby: &Ruby, work: W, unblock: U) -> Result<Option<R>, Error>
where
    W: FnOnce() -> R,
    U: Fn() + Sync,
{
    struct Call<W, R> {
        work: Option<W>,
        result: Option<std::thread::Result<R>>,
    }

    unsafe extern "C" fn run<W: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
        let call = &mut *(data as *mut Call<W, R>);
        if let Some(work) = call.work.take() {
            call.result = Some(catch_unwind(AssertUnwindSafe(work)));
        }
        std::ptr::null_mut()
    }

    unsafe extern "C" fn unblock_fn<U: Fn()>(data: *mut c_void) {
        let unblock = &*(data as *const U);
        // Unwinding into the C frame that calls us would abort the process.
        let _ = catch_unwind(AssertUnwindSafe(unblock));
    }

    let mut call = Call {
        work: Some(work),
        result: None,
    };
    for _ in 0..=INTERRUPT_RETRIES {
        unsafe {
            rb_sys::rb_thread_call_without_gvl2(
                Some(run::<W, R>),
                &mut call as *mut Call<W, R> as *mut c_void,
                Some(unblock_fn::<U>),
                &unblock as *const U as *mut c_void,
            );
        }
        let result = call.result.take();
        if let Some(Err(panic)) = result {
            std::panic::resume_unwind(panic);
        }
        ruby.thread_check_ints()?;
        if let Some(Ok(value)) = result {
            return Ok(Some(value));
        }
    }
    Ok(None)
}
