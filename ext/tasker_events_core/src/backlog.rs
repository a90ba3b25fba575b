//! The durable publisher's buffer: events taken from its channel and not yet written, kept per
//! namespace in publish order.
//!
//! While PostgreSQL is unreachable the buffer is what keeps events: it grows up to its
//! capacity (`durable_buffer_size`), and once it is full the publisher stops taking from its
//! channel, so further events are dropped at the router as `channel_full`. Batches are taken
//! from the namespaces in turn, so a busy namespace does not starve a quiet one, and a batch
//! that must be written again goes back to the front of its namespace, keeping the order.

use std::collections::VecDeque;

use crate::outgoing::Outgoing;

#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// One queue per namespace, in the order the namespaces were first seen.
    namespaces: Vec<(String, VecDeque<Outgoing>)>,
    /// Where the next batch is taken from.
    cursor: usize,
    len: usize,
}

impl Backlog {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, event: Outgoing) {
        let queue = self.queue_of(&event.namespace);
        queue.push_back(event);
        self.len += 1;
    }

    /// Puts a batch back in front of its namespace's queue, as if it had never been taken.
    pub(crate) fn push_front(&mut self, namespace: &str, events: Vec<Outgoing>) {
        self.len += events.len();
        let queue = self.queue_of(namespace);
        for event in events.into_iter().rev() {
            queue.push_front(event);
        }
    }

    /// Takes the oldest events of the next namespace that has any: at most `max(namespace)`.
    pub(crate) fn take_batch(
        &mut self,
        max: impl Fn(&str) -> usize,
    ) -> Option<(String, Vec<Outgoing>)> {
        let count = self.namespaces.len();
        for step in 0..count {
            let index = (self.cursor + step) % count;
            let (namespace, queue) = &mut self.namespaces[index];
            if queue.is_empty() {
                continue;
            }
            let take = queue.len().min(max(namespace).max(1));
            let batch: Vec<_> = queue.drain(..take).collect();
            self.len -= batch.len();
            self.cursor = (index + 1) % count;
            return Some((namespace.clone(), batch));
        }
        None
    }

    fn queue_of(&mut self, namespace: &str) -> &mut VecDeque<Outgoing> {
        let index = match self.namespaces.iter().position(|(ns, _)| ns == namespace) {
            Some(index) => index,
            None => {
                self.namespaces
                    .push((namespace.to_owned(), VecDeque::new()));
                self.namespaces.len() - 1
            }
        };
        &mut self.namespaces[index].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use serde_json::json;

    fn event(namespace: &str, n: u64) -> Outgoing {
        let event = NewEvent::new("a.b", namespace, json!(n)).build().unwrap();
        Outgoing::encode(&event).unwrap()
    }

    fn payloads(batch: &[Outgoing]) -> Vec<u64> {
        let payload = |e: &Outgoing| {
            let message: serde_json::Value = serde_json::from_str(e.message.get()).unwrap();
            message["payload"].as_u64().unwrap()
        };
        batch.iter().map(payload).collect()
    }

    #[test]
    fn batches_come_from_namespaces_in_turn_in_publish_order() {
        let mut backlog = Backlog::default();
        for n in 1..=5 {
            backlog.push(event("x", n));
        }
        backlog.push(event("y", 10));
        assert_eq!(backlog.len(), 6);

        let (ns, batch) = backlog.take_batch(|_| 2).unwrap();
        assert_eq!((ns.as_str(), payloads(&batch)), ("x", vec![1, 2]));
        let (ns, batch) = backlog.take_batch(|_| 2).unwrap();
        assert_eq!((ns.as_str(), payloads(&batch)), ("y", vec![10]));
        let (ns, batch) = backlog.take_batch(|_| 10).unwrap();
        assert_eq!((ns.as_str(), payloads(&batch)), ("x", vec![3, 4, 5]));
        assert!(backlog.take_batch(|_| 10).is_none());
        assert!(backlog.is_empty());
    }

    #[test]
    fn a_batch_put_back_is_taken_again_before_newer_events() {
        let mut backlog = Backlog::default();
        for n in 1..=4 {
            backlog.push(event("x", n));
        }
        let (ns, batch) = backlog.take_batch(|_| 3).unwrap();
        backlog.push(event("x", 5));
        backlog.push_front(&ns, batch);
        assert_eq!(backlog.len(), 5);
        let (_, batch) = backlog.take_batch(|_| 10).unwrap();
        assert_eq!(payloads(&batch), vec![1, 2, 3, 4, 5]);
    }
}
