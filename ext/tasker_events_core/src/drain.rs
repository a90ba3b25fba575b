//! The hand-off to the drain thread: the one thread of the host language that calls its
//! subscribers (with events from the bus) and its publishers (with jobs from dispatch), and
//! writes the core's log lines to the host's logger.
//!
//! The queue is bounded: when it is full, `try_push` hands the delivery back and the bus counts
//! it as dropped, so a slow subscriber costs events, never memory or the publisher's time. The
//! drain thread blocks in [`DrainQueue::wait_batch`] without holding any lock of the host
//! language; [`DrainQueue::interrupt`] ends that wait at once (the host's unblock function
//! calls it) and [`DrainQueue::close`] ends it for good once the queue is empty. Deliveries come
//! out in the order they went in.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::dispatch::PublishJob;
use crate::event::DomainEvent;

/// One event and the ids of the host-language subscribers whose patterns match it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Arc<DomainEvent>,
    /// Shared by every delivery of events with the same name (see the bus's route cache).
    pub subscriber_ids: Arc<[u64]>,
}

/// Work for the drain thread.
#[derive(Debug, Clone)]
pub enum DrainItem {
    /// Call these subscribers with this event.
    Delivery(Delivery),
    /// Run the publishers of a completed step's declared events.
    Publish(Arc<PublishJob>),
}
/// What a wait on the queue ended with.
#[derive(Debug)]
pub enum Wait {
    /// One or more items, oldest first.
    Batch(Vec<DrainItem>),
    /// Nothing arrived before the timeout.
    TimedOut,
    /// [`DrainQueue::interrupt`] was called.
    Interrupted,
    /// The queue is closed and empty: the drain thread should end.
    Closed,
}

/// Log lines kept for the drain thread; past this, new lines are counted and not kept, so a
/// burst of warnings cannot grow memory.
pub const LOG_CAPACITY: usize = 1000;

/// One line the core logged, for the host language's logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    pub message: String,
    /// Structured fields in the order they were logged.
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<DrainItem>,
    logs: VecDeque<LogRecord>,
    logs_dropped: u64,
    closed: bool,
    interrupted: bool,
    /// Threads waiting on `ready`; pushes wake one only when there is one, since a condition
    /// variable's wake is a system call even when nobody waits.
    waiters: usize,
}

/// A bounded, blocking, interruptible queue of deliveries for the drain thread.
#[derive(Debug)]
pub struct DrainQueue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

impl DrainQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent: every critical
        // section is a single push, pop or flag change.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues without blocking; hands the item back when the queue is full or closed.
    pub fn try_push(&self, item: DrainItem) -> Result<(), DrainItem> {
        let mut state = self.lock();
        if state.closed || state.items.len() >= self.capacity {
            return Err(item);
        }
        state.items.push_back(item);
        let wake = state.waiters > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Keeps a log line for the drain thread and wakes it; returns false (and counts the line)
    /// when [`LOG_CAPACITY`] lines are already waiting.
    pub fn push_log(&self, record: LogRecord) -> bool {
        let mut state = self.lock();
        if state.logs.len() >= LOG_CAPACITY {
            state.logs_dropped += 1;
            return false;
        }
        state.logs.push_back(record);
        let wake = state.waiters > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// Takes the waiting log lines, and how many were dropped since the last call.
    pub fn take_logs(&self) -> (Vec<LogRecord>, u64) {
        let mut state = self.lock();
        let dropped = std::mem::take(&mut state.logs_dropped);
        (state.logs.drain(..).collect(), dropped)
    }

    /// Waits up to `timeout` (forever with `None`) for deliveries and takes up to `max`. Log
    /// lines also end the wait, with an empty batch: the caller takes them with
    /// [`DrainQueue::take_logs`].
    pub fn wait_batch(&self, max: usize, timeout: Option<Duration>) -> Wait {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.lock();
        loop {
            if state.interrupted {
                state.interrupted = false;
                return Wait::Interrupted;
            }
            if !state.items.is_empty() || !state.logs.is_empty() {
                let n = max.max(1).min(state.items.len());
                return Wait::Batch(state.items.drain(..n).collect());
            }
            if state.closed {
                return Wait::Closed;
            }
            let left = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Wait::TimedOut,
                },
            };
            state.waiters += 1;
            state = match left {
                None => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(left) => {
                    let woken = self.ready.wait_timeout(state, left);
                    woken.unwrap_or_else(|e| e.into_inner()).0
                }
            };
            state.waiters -= 1;
        }
    }

    /// Ends the current (or next) wait with [`Wait::Interrupted`].
    pub fn interrupt(&self) {
        self.lock().interrupted = true;
        self.ready.notify_all();
    }

    /// Refuses new deliveries; waits end with [`Wait::Closed`] once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Reopens a closed queue, for a restarted event system.
    pub fn reopen(&self) {
        let mut state = self.lock();
        state.closed = false;
        state.interrupted = false;
    }

    /// Removes and returns what is still queued.
    pub fn take_all(&self) -> Vec<DrainItem> {
        self.lock().items.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;

    fn delivery(n: u64) -> DrainItem {
        let event = NewEvent::new("a.b", "ns", serde_json::json!(n))
            .build()
            .unwrap();
        DrainItem::Delivery(Delivery {
            event: Arc::new(event),
            subscriber_ids: Arc::from([n]),
        })
    }

    fn id(item: &DrainItem) -> u64 {
        match item {
            DrainItem::Delivery(delivery) => delivery.subscriber_ids[0],
            DrainItem::Publish(_) => panic!("expected a delivery"),
        }
    }

    #[test]
    fn bounded_and_ordered() {
        let queue = DrainQueue::new(2);
        assert!(queue.try_push(delivery(1)).is_ok());
        assert!(queue.try_push(delivery(2)).is_ok());
        let refused = queue.try_push(delivery(3)).unwrap_err();
        assert_eq!(id(&refused), 3);
        match queue.wait_batch(10, None) {
            Wait::Batch(batch) => {
                let ids: Vec<_> = batch.iter().map(id).collect();
                assert_eq!(ids, [1, 2]);
            }
            other => panic!("expected a batch, got {other:?}"),
        }
        assert!(matches!(
            queue.wait_batch(10, Some(Duration::from_millis(5))),
            Wait::TimedOut
        ));
    }

    #[test]
    fn log_lines_wake_the_drain_thread_and_are_bounded() {
        let queue = Arc::new(DrainQueue::new(4));
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.wait_batch(1, None))
        };
        let record = LogRecord {
            level: "WARN",
            message: "m".into(),
            fields: vec![("k".into(), "v".into())],
        };
        assert!(queue.push_log(record.clone()));
        assert!(matches!(waiter.join().unwrap(), Wait::Batch(b) if b.is_empty()));
        for _ in 1..LOG_CAPACITY {
            assert!(queue.push_log(record.clone()));
        }
        assert!(!queue.push_log(record.clone()));
        let (logs, dropped) = queue.take_logs();
        assert_eq!((logs.len(), dropped), (LOG_CAPACITY, 1));
        assert_eq!(logs[0], record);
        assert_eq!(queue.take_logs(), (vec![], 0));
    }

    #[test]
    fn interrupt_ends_a_blocked_wait() {
        let queue = Arc::new(DrainQueue::new(4));
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.wait_batch(1, None))
        };
        std::thread::sleep(Duration::from_millis(20));
        queue.interrupt();
        assert!(matches!(waiter.join().unwrap(), Wait::Interrupted));
    }

    #[test]
    fn close_drains_then_ends() {
        let queue = DrainQueue::new(4);
        queue.try_push(delivery(1)).unwrap();
        queue.close();
        assert!(queue.try_push(delivery(2)).is_err());
        assert!(matches!(queue.wait_batch(4, None), Wait::Batch(b) if b.len() == 1));
        assert!(matches!(queue.wait_batch(4, None), Wait::Closed));
        queue.reopen();
        assert!(queue.try_push(delivery(3)).is_ok());
    }
}
