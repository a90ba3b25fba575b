//! Test mode end to end: durable events captured in memory with the message and headers PGMQ
//! would hold, counted as delivered, with a database URL that nothing ever connects to; the
//! event log of every mode; declared events; and captures that outlive their system.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tasker_events_core::dispatch::{StepCompletion, StepContext};
use tasker_events_core::template::{TaskTemplate, TemplateRegistry};
use tasker_events_core::{
    Capture, Config, EventDeliveryMode, EventSystem, NewEvent, Stats, StatsSnapshot,
};
use uuid::Uuid;

/// Long enough for a loaded CI machine, short enough that a hang fails the test quickly.
const PATIENCE: Duration = Duration::from_secs(5);

/// Nothing listens on port 1: a system that tried to write there would count
/// `database_error` drops (after `connect_timeout`) instead of deliveries.
const UNREACHABLE: &str = "postgres://tasker:secret@127.0.0.1:1/nowhere";

fn test_mode() -> Config {
    Config {
        test_mode: true,
        database_url: Some(UNREACHABLE.into()),
        install_pgmq: true,
        connect_timeout: Duration::from_millis(50),
        ..Config::default()
    }
}

fn start(config: Config, capture: &Arc<Capture>) -> EventSystem {
    let templates = Arc::new(TemplateRegistry::default());
    let stats = Arc::new(Stats::new());
    EventSystem::start_with_capture(config, stats, templates, capture.clone())
        .expect("event system starts")
}

fn publish(system: &EventSystem, name: &str, mode: EventDeliveryMode) -> Uuid {
    let event = NewEvent::new(name, "payments", json!({ "amount": 99.99 })).delivery_mode(mode);
    let id = system.publish(event).expect("valid event");
    id.expect("event accepted")
}

fn flush(system: &EventSystem) {
    assert!(system.flush(PATIENCE, &|| false), "flush timed out");
}

fn dropped_total(snapshot: &StatsSnapshot) -> u64 {
    snapshot.durable.dropped.values().sum()
}

#[test]
fn durable_and_broadcast_events_are_captured_as_pgmq_messages() {
    let capture = Arc::new(Capture::default());
    let system = start(test_mode(), &capture);
    let durable = publish(&system, "payment.processed", EventDeliveryMode::Durable);
    let fast = publish(&system, "payment.noted", EventDeliveryMode::Fast);
    let broadcast = publish(&system, "payment.settled", EventDeliveryMode::Broadcast);
    flush(&system);

    let messages = capture.messages();
    let ids: Vec<_> = messages
        .iter()
        .map(|m| m.message["event_id"].clone())
        .collect();
    assert_eq!(ids, [json!(durable), json!(broadcast)]);
    for (message, msg_id) in messages.iter().zip([1, 2]) {
        assert_eq!(message.queue_name, "payments_domain_events");
        assert_eq!(message.msg_id, msg_id);
        assert_eq!(message.read_ct, 0);
        assert_eq!(message.message["payload"], json!({ "amount": 99.99 }));
        assert_eq!(message.message["metadata"]["namespace"], "payments");
        let expected_headers = json!({
            "event_id": message.message["event_id"],
            "event_name": message.message["event_name"],
            "correlation_id": message.message["metadata"]["correlation_id"],
        });
        assert_eq!(message.headers, expected_headers);
    }
    assert!(
        !ids.contains(&json!(fast)),
        "a fast event never reaches the durable path"
    );

    let stats = system.stats().snapshot();
    assert_eq!((stats.durable.accepted, stats.durable.delivered), (2, 2));
    assert_eq!(
        dropped_total(&stats),
        0,
        "nothing may have tried the database"
    );
    system.shutdown();
}

#[test]
fn the_event_log_holds_every_mode_in_routing_order() {
    let capture = Arc::new(Capture::default());
    let system = start(test_mode(), &capture);
    let mark = capture.mark();
    let modes = [
        ("order.placed", EventDeliveryMode::Durable),
        ("order.viewed", EventDeliveryMode::Fast),
        ("order.paid", EventDeliveryMode::Broadcast),
    ];
    let ids: Vec<_> = modes
        .iter()
        .map(|(name, mode)| publish(&system, name, *mode))
        .collect();
    flush(&system);

    let since = capture.events_since(mark);
    let logged: Vec<_> = since
        .events
        .iter()
        .map(|e| (e.event_id, e.delivery_mode))
        .collect();
    let expected: Vec<_> = ids.into_iter().zip(modes.map(|(_, mode)| mode)).collect();
    assert_eq!(logged, expected);
    assert_eq!(since.missing, 0);
    system.shutdown();
}

#[test]
fn without_test_mode_nothing_is_captured_or_logged() {
    let capture = Arc::new(Capture::default());
    let system = start(Config::default(), &capture);
    publish(&system, "order.viewed", EventDeliveryMode::Fast);
    let dropped = NewEvent::new("order.placed", "payments", Value::Null);
    assert_eq!(
        system.publish(dropped).unwrap(),
        None,
        "no database: dropped"
    );
    flush(&system);
    assert!(capture.events().is_empty());
    assert!(capture.messages().is_empty());
    system.shutdown();
}

const TEMPLATE: &str = r#"
name: refund
namespace_name: billing
version: 1.0.0
steps:
  - name: issue_refund
    publishes_events:
      - name: refund.issued
        condition: success
        delivery_mode: durable
        schema:
          type: object
          required: [amount]
          properties: { amount: { type: number } }
      - name: refund.checked
        condition: always
        delivery_mode: fast
"#;

#[test]
fn declared_events_are_captured_after_their_conditions_and_schemas() {
    let registry = TemplateRegistry::default();
    let template = TaskTemplate::parse(TEMPLATE, "refund.yaml").expect("template parses");
    registry.insert(Arc::new(template)).unwrap();
    let capture = Arc::new(Capture::default());
    let stats = Arc::new(Stats::new());
    let system =
        EventSystem::start_with_capture(test_mode(), stats, Arc::new(registry), capture.clone())
            .expect("event system starts");

    for result in [json!({ "amount": 12.5 }), json!({ "amount": "twelve" })] {
        let context = StepContext {
            task_uuid: Some(Uuid::now_v7()),
            step_uuid: Some(Uuid::now_v7()),
            step_name: "issue_refund".into(),
            namespace: "billing".into(),
            task_name: "refund".into(),
            task_version: "1.0.0".into(),
            correlation_id: None,
            attempt: Some(1),
        };
        let step_result = json!({ "success": true, "result": result });
        let completion = StepCompletion {
            context,
            step_result,
        };
        system.dispatcher().dispatch(completion).expect("accepted");
    }
    flush(&system);

    let messages = capture.messages();
    assert_eq!(messages.len(), 1, "the second payload breaks the schema");
    assert_eq!(messages[0].queue_name, "billing_domain_events");
    assert_eq!(messages[0].message["event_name"], "refund.issued");
    assert_eq!(messages[0].message["payload"], json!({ "amount": 12.5 }));
    let names: Vec<_> = capture
        .events()
        .iter()
        .map(|e| e.event_name.clone())
        .collect();
    assert_eq!(names, ["refund.issued", "refund.checked", "refund.checked"]);
    system.shutdown();
}

#[test]
fn captures_outlive_their_system_and_a_restart() {
    let capture = Arc::new(Capture::default());
    let system = start(test_mode(), &capture);
    publish(&system, "order.placed", EventDeliveryMode::Durable);
    let report = system.shutdown();
    assert_eq!((report.drained, report.dropped), (1, 0));
    assert_eq!(capture.messages().len(), 1);

    let system = start(test_mode(), &capture);
    publish(&system, "order.placed", EventDeliveryMode::Durable);
    flush(&system);
    let ids: Vec<_> = capture.messages().iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, [1, 2], "message ids go on counting per queue");
    system.shutdown();
}
