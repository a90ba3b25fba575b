//! The event model: what a subscriber receives and what a PGMQ consumer reads.
//!
//! An event is built once, validated once, and then shared (`Arc<DomainEvent>`) by every path
//! it is routed to, so a broadcast event carries the same `event_id` to PGMQ and to the bus.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::timestamp::context::{ContextV7, ThreadLocalContext};
use uuid::{Timestamp, Uuid};

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
    pub fired_by: Cow<'static, str>,
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

/// The payload object as the host language (Ruby) published it, carried for that language's
/// own subscribers, which receive the object itself rather than a copy made from JSON. The
/// core never looks inside; dropping the last clone releases the host's hold on the object.
#[derive(Clone)]
pub struct HostPayload {
    object: Arc<dyn Any + Send + Sync>,
    converted: bool,
}

impl HostPayload {
    /// A payload the event also carries as JSON (`DomainEvent::payload`).
    pub fn alongside_json(object: Arc<dyn Any + Send + Sync>) -> Self {
        Self {
            object,
            converted: true,
        }
    }

    /// A payload never converted to JSON, because nothing that reads JSON was going to see
    /// the event: `DomainEvent::payload` is then `null`, and only host subscribers can read it.
    pub fn instead_of_json(object: Arc<dyn Any + Send + Sync>) -> Self {
        Self {
            object,
            converted: false,
        }
    }

    pub fn object(&self) -> &(dyn Any + Send + Sync) {
        &*self.object
    }
}

impl fmt::Debug for HostPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPayload")
            .field("converted", &self.converted)
            .finish_non_exhaustive()
    }
}

impl PartialEq for HostPayload {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.object, &other.object)
    }
}

/// A business event, as delivered to subscribers and written to PGMQ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    /// UUIDv7, minted once per event.
    pub event_id: Uuid,
    pub event_name: String,
    pub event_version: Cow<'static, str>,
    pub delivery_mode: EventDeliveryMode,
    pub payload: Value,
    pub metadata: EventMetadata,
    pub execution_result: Option<Value>,
    /// Set for in-process events published from the host language.
    #[serde(skip)]
    pub host_payload: Option<HostPayload>,
}

impl DomainEvent {
    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    /// Whether `payload` holds the payload's JSON form; false only for an event whose payload
    /// lives in the host language alone.
    pub fn has_json_payload(&self) -> bool {
        self.host_payload.as_ref().is_none_or(|host| host.converted)
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
    pub host_payload: Option<HostPayload>,
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
        // One reading of the clock serves the id, a fresh correlation id and `fired_at`.
        let now = SystemTime::now();
        let correlation_id = self
            .correlation_id
            .or(self.task_uuid)
            .unwrap_or_else(|| uuid_v7_at(now));

        Ok(DomainEvent {
            event_id: uuid_v7_at(now),
            event_name: self.event_name,
            event_version: Cow::Borrowed(EVENT_VERSION),
            delivery_mode: self.delivery_mode,
            payload: self.payload,
            metadata: EventMetadata {
                task_uuid: self.task_uuid,
                step_uuid: self.step_uuid,
                step_name: self.step_name,
                namespace: self.namespace,
                correlation_id,
                fired_at: now.into(),
                fired_by: self
                    .fired_by
                    .map_or(Cow::Borrowed(DEFAULT_FIRED_BY), Cow::Owned),
                extra,
            },
            execution_result: self.execution_result,
            host_payload: self.host_payload,
        })
    }
}

/// A UUIDv7 for the time `now`. The context, one per thread so that publishing threads never
/// wait on each other, keeps the ids a thread mints in the same millisecond in order.
fn uuid_v7_at(now: SystemTime) -> Uuid {
    thread_local! {
        static CONTEXT: ContextV7 = const { ContextV7::new() };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let timestamp = Timestamp::from_unix(
        ThreadLocalContext::new(&CONTEXT),
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
    );
    Uuid::new_v7(timestamp)
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
