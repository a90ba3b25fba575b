//! A durable event as the durable publisher keeps it until it is written: its PGMQ message and
//! headers as JSON text, and what log lines name it by.
//!
//! Events are encoded as they arrive from the channel, on the publisher's task, while the
//! previous batch is in PostgreSQL. A write then only hands text to the server, and a buffer
//! of tens of thousands of events during an outage holds about what PostgreSQL will store,
//! not the events' in-memory JSON trees (several times larger for a nested payload).

use serde_json::value::{to_raw_value, RawValue};
use uuid::Uuid;

use crate::durable::headers;
use crate::event::DomainEvent;

#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) event_id: Uuid,
    pub(crate) event_name: String,
    pub(crate) namespace: String,
    pub(crate) correlation_id: Uuid,
    /// The event, exactly as PGMQ's `message` column will hold it.
    pub(crate) message: Box<RawValue>,
    /// `event_id`, `event_name` and `correlation_id`, for PGMQ's `headers` column.
    pub(crate) headers: Box<RawValue>,
}

impl Outgoing {
    pub(crate) fn encode(event: &DomainEvent) -> serde_json::Result<Self> {
        Ok(Self {
            event_id: event.event_id,
            event_name: event.event_name.clone(),
            namespace: event.metadata.namespace.clone(),
            correlation_id: event.metadata.correlation_id,
            message: to_raw_value(event)?,
            headers: to_raw_value(&headers(event))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use serde_json::{json, Value};

    #[test]
    fn holds_the_message_and_headers_pgmq_receives() {
        let event = NewEvent::new("payment.processed", "payments", json!({"amount": 99.99}))
            .build()
            .unwrap();
        let outgoing = Outgoing::encode(&event).unwrap();
        let message: Value = serde_json::from_str(outgoing.message.get()).unwrap();
        assert_eq!(message, serde_json::to_value(&event).unwrap());
        let headers: Value = serde_json::from_str(outgoing.headers.get()).unwrap();
        assert_eq!(headers, super::headers(&event));
        assert_eq!(
            (outgoing.event_id, outgoing.namespace.as_str()),
            (event.event_id, "payments")
        );
    }
}
