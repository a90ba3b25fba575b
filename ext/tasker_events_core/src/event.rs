//! The event model: what a subscriber receives and what a PGMQ consumer reads.
//!
//! An event is built once, validated once, and then shared (`Arc<DomainEvent>`) by every path
//! it is routed to, so a broadcast event carries the same `event_id` to PGMQ and to the bus.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{excerpt, ValidationError};
use crate::names::{validate_event_name, validate_namespace};

/// Version of the event envelope written into every event.
pub const EVENT_VERSION: &str = "1.0";

/// `fired_by` when the caller names no publisher.
pub const DEFAULT_FIRED_BY: &str = "default";

/// Metadata keys owned by the gem; extra metadata under these names is ignored.
pub const STANDARD_METADATA_KEYS: [&str; 7] = [
    "task_uuid",
    "step_uuid",
    "step_name",
    "namespace",
    "correlation_id",
    "fired_at",
    "fired_by",
];

/// Where an event goes: PGMQ, the in-process bus, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventDeliveryMode {
    /// The namespace's PGMQ queue, for external consumers.
    #[default]
    Durable,
    /// In-process subscribers only; never reaches PostgreSQL.
    Fast,
    /// Both paths, with one event id.
    Broadcast,
}

impl EventDeliveryMode {
    pub const ALL: [Self; 3] = [Self::Durable, Self::Fast, Self::Broadcast];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Durable => "durable",
            Self::Fast => "fast",
            Self::Broadcast => "broadcast",
        }
    }

    /// Whether events of this mode are written to PGMQ.
    pub fn is_durable(self) -> bool {
        matches!(self, Self::Durable | Self::Broadcast)
    }

    /// Whether events of this mode reach in-process subscribers.
    pub fn is_in_process(self) -> bool {
        matches!(self, Self::Fast | Self::Broadcast)
    }
}

impl FromStr for EventDeliveryMode {
    type Err = ValidationError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == value)
            .ok_or_else(|| ValidationError::DeliveryMode(excerpt(value)))
    }
}

/// Where and why an event was fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMetadata {
    pub task_uuid: Option<Uuid>,
    pub step_uuid: Option<Uuid>,
    pub step_name: Option<String>,
    pub namespace: String,
    pub correlation_id: Uuid,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub fired_at: DateTime<Utc>,
    pub fired_by: String,
    /// Caller-supplied fields; never holds one of [`STANDARD_METADATA_KEYS`].
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn serialize_rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(at))
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl EventMetadata {
    /// `fired_at` as its JSON form writes it (UTC, microseconds).
    pub fn fired_at_rfc3339(&self) -> String {
        rfc3339(&self.fired_at)
    }
}

/// A business event, as delivered to subscribers and written to PGMQ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    /// UUIDv7, minted once per event.
    pub event_id: Uuid,
    pub event_name: String,
    pub event_version: String,
    pub delivery_mode: EventDeliveryMode,
    pub payload: Value,
    pub metadata: EventMetadata,
    pub execution_result: Option<Value>,
}

impl DomainEvent {
    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }
}

/// Everything a caller says about an event; [`NewEvent::build`] validates it.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub event_name: String,
    pub namespace: String,
    pub payload: Value,
    pub delivery_mode: EventDeliveryMode,
    pub task_uuid: Option<Uuid>,
    pub step_uuid: Option<Uuid>,
    pub step_name: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub fired_by: Option<String>,
    pub extra_metadata: Map<String, Value>,
    pub execution_result: Option<Value>,
}

impl NewEvent {
    pub fn new(
        event_name: impl Into<String>,
        namespace: impl Into<String>,
        payload: Value,
    ) -> Self {
        Self {
            event_name: event_name.into(),
            namespace: namespace.into(),
            payload,
            ..Self::default()
        }
    }

    pub fn delivery_mode(mut self, mode: EventDeliveryMode) -> Self {
        self.delivery_mode = mode;
        self
    }

    /// Validates the input and mints the event id and timestamp.
    pub fn build(self) -> Result<DomainEvent, ValidationError> {
        validate_event_name(&self.event_name)?;
        validate_namespace(&self.namespace)?;
        if let Some(result) = &self.execution_result {
            if !result.is_object() {
                return Err(ValidationError::ExecutionResult(json_type(result)));
            }
        }

        let mut extra = self.extra_metadata;
        extra.retain(|key, _| !STANDARD_METADATA_KEYS.contains(&key.as_str()));
        let correlation_id = self
            .correlation_id
            .or(self.task_uuid)
            .unwrap_or_else(Uuid::now_v7);

        Ok(DomainEvent {
            event_id: Uuid::now_v7(),
            event_name: self.event_name,
            event_version: EVENT_VERSION.to_owned(),
            delivery_mode: self.delivery_mode,
            payload: self.payload,
            metadata: EventMetadata {
                task_uuid: self.task_uuid,
                step_uuid: self.step_uuid,
                step_name: self.step_name,
                namespace: self.namespace,
                correlation_id,
                fired_at: Utc::now(),
                fired_by: self.fired_by.unwrap_or_else(|| DEFAULT_FIRED_BY.to_owned()),
                extra,
            },
            execution_result: self.execution_result,
        })
    }
}

/// Parses a UUID given as text, naming the field when it is not one.
pub fn parse_uuid(field: &'static str, value: &str) -> Result<Uuid, ValidationError> {
    Uuid::parse_str(value).map_err(|_| ValidationError::Uuid {
        field,
        value: excerpt(value),
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payment() -> NewEvent {
        NewEvent::new("payment.processed", "payments", json!({"amount": 99.99}))
    }

    #[test]
    fn build_mints_v7_id_and_defaults() {
        let event = payment().build().unwrap();
        assert_eq!(event.event_id.get_version_num(), 7);
        assert_eq!(event.event_version, "1.0");
        assert_eq!(event.delivery_mode, EventDeliveryMode::Durable);
        assert_eq!(event.metadata.fired_by, "default");
        assert_eq!(event.metadata.correlation_id.get_version_num(), 7);
        assert_ne!(event.metadata.correlation_id, event.event_id);
    }

    #[test]
    fn correlation_defaults_to_task_uuid() {
        let task = Uuid::now_v7();
        let event = NewEvent {
            task_uuid: Some(task),
            ..payment()
        }
        .build()
        .unwrap();
        assert_eq!(event.metadata.correlation_id, task);

        let given = Uuid::now_v7();
        let event = NewEvent {
            task_uuid: Some(task),
            correlation_id: Some(given),
            ..payment()
        }
        .build()
        .unwrap();
        assert_eq!(event.metadata.correlation_id, given);
    }

    #[test]
    fn standard_metadata_wins_over_extras() {
        let extra = json!({"namespace": "evil", "fired_by": "x", "region": "eu"});
        let event = NewEvent {
            extra_metadata: extra.as_object().unwrap().clone(),
            ..payment()
        }
        .build()
        .unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["metadata"]["namespace"], "payments");
        assert_eq!(json["metadata"]["fired_by"], "default");
        assert_eq!(json["metadata"]["region"], "eu");
    }

    #[test]
    fn serializes_the_documented_shape() {
        let event = payment()
            .delivery_mode(EventDeliveryMode::Broadcast)
            .build()
            .unwrap();
        let json = serde_json::to_value(&event).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "delivery_mode",
                "event_id",
                "event_name",
                "event_version",
                "execution_result",
                "metadata",
                "payload",
            ]
        );
        assert_eq!(json["delivery_mode"], "broadcast");
        let fired_at = json["metadata"]["fired_at"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(fired_at).is_ok(), "{fired_at}");
        assert!(fired_at.ends_with('Z'));
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        let err = NewEvent::new("Payment", "payments", json!({}))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("\"Payment\""));
        let err = NewEvent::new("a.b", "bad-ns", json!({}))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("\"bad-ns\""));
        let err = NewEvent {
            execution_result: Some(json!([1])),
            ..payment()
        }
        .build();
        assert!(err.unwrap_err().to_string().contains("array"));
        assert!("loud".parse::<EventDeliveryMode>().is_err());
        assert!(parse_uuid("task_uuid", "nope")
            .unwrap_err()
            .to_string()
            .contains("task_uuid"));
    }
}
