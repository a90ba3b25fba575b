//! Declared events end to end, without PostgreSQL: step completions become events according
//! to their template's conditions, schemas and publishers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tasker_events_core::dispatch::{Refusal, StepCompletion, StepContext};
use tasker_events_core::drain::{DrainItem, Wait};
use tasker_events_core::template::{TaskTemplate, TemplateRegistry};
use tasker_events_core::{Config, DomainEvent, EventHandler, EventSystem, Stats};
use uuid::Uuid;

const TEMPLATE: &str = r#"
name: credit_card_payment
namespace_name: payments
version: 1.0.0
steps:
  - name: process_payment
    handler: { callable: ProcessPaymentHandler }
    retry: { retryable: true, limit: 3 }
    publishes_events:
      - name: payment.processed
        condition: success
        delivery_mode: fast
        schema:
          type: object
          required: [transaction_id, amount]
          properties:
            transaction_id: { type: string }
            amount: { type: number }
      - name: payment.attempted
        condition: always
        delivery_mode: fast
      - name: payment.retrying
        condition: retryable_failure
        delivery_mode: fast
      - name: payment.failed
        condition: permanent_failure
        delivery_mode: fast
      - name: payment.any_failure
        condition: failure
        delivery_mode: fast
  - name: notify
    publishes_events:
      - name: receipt.prepared
        delivery_mode: fast
      - name: receipt.sent
        delivery_mode: fast
        publisher: ReceiptPublisher
"#;

fn start(config: Config) -> EventSystem {
    let registry = TemplateRegistry::default();
    let template = TaskTemplate::parse(TEMPLATE, "test.yaml").expect("template parses");
    registry.insert(Arc::new(template)).unwrap();
    EventSystem::start_with_templates(config, Arc::new(Stats::new()), Arc::new(registry))
        .expect("system starts")
}

fn context(step_name: &str, step_uuid: Uuid, attempt: u32) -> StepContext {
    StepContext {
        task_uuid: Some(Uuid::now_v7()),
        step_uuid: Some(step_uuid),
        step_name: step_name.into(),
        namespace: "payments".into(),
        task_name: "credit_card_payment".into(),
        task_version: "1.0.0".into(),
        correlation_id: None,
        attempt: Some(attempt),
    }
}

fn completion(step: &str, attempt: u32, result: Value) -> StepCompletion {
    StepCompletion {
        context: context(step, Uuid::now_v7(), attempt),
        step_result: result,
    }
}

/// Subscribes to every event and returns what arrives, in order.
fn record(system: &EventSystem) -> Arc<Mutex<Vec<Arc<DomainEvent>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handler: EventHandler = Arc::new(move |event| {
        sink.lock().unwrap().push(event);
        Box::pin(async { Ok(()) })
    });
    system.bus().subscribe("#", handler).unwrap();
    seen
}

fn names(seen: &Mutex<Vec<Arc<DomainEvent>>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|e| e.event_name.clone())
        .collect()
}

fn dispatch_and_flush(system: &EventSystem, completion: StepCompletion) {
    system.dispatcher().dispatch(completion).expect("accepted");
    assert!(system.flush(Duration::from_secs(5), &|| false));
}

#[test]
fn each_condition_matches_its_outcome_in_declaration_order() {
    let cases = [
        (
            json!({"success": true, "result": {"transaction_id": "T", "amount": 1.5}}),
            1,
            vec!["payment.processed", "payment.attempted"],
        ),
        (
            json!({"success": false, "retryable": true, "result": {}}),
            1,
            vec![
                "payment.attempted",
                "payment.retrying",
                "payment.any_failure",
            ],
        ),
        (
            json!({"success": false, "retryable": false, "result": {}}),
            1,
            vec!["payment.attempted", "payment.failed", "payment.any_failure"],
        ),
        // Retryable by policy, but the third attempt is the last one the template allows.
        (
            json!({"success": false, "result": {}}),
            3,
            vec!["payment.attempted", "payment.failed", "payment.any_failure"],
        ),
    ];
    for (result, attempt, expected) in cases {
        let system = start(Config::default());
        let seen = record(&system);
        dispatch_and_flush(
            &system,
            completion("process_payment", attempt, result.clone()),
        );
        assert_eq!(names(&seen), expected, "{result} attempt {attempt}");
        system.shutdown();
    }
}

#[test]
fn events_carry_the_step_result_context_and_default_publisher() {
    let system = start(Config::default());
    let seen = record(&system);
    let result = json!({"success": true, "result": {"transaction_id": "T", "amount": 2}});
    let completion = completion("process_payment", 1, result.clone());
    let context = completion.context.clone();
    dispatch_and_flush(&system, completion);

    let events = seen.lock().unwrap();
    let processed = &events[0];
    assert_eq!(
        processed.payload,
        json!({"transaction_id": "T", "amount": 2})
    );
    assert_eq!(processed.execution_result, Some(result));
    assert_eq!(processed.metadata.fired_by, "default");
    assert_eq!(
        processed.metadata.step_name.as_deref(),
        Some("process_payment")
    );
    assert_eq!(processed.metadata.step_uuid, context.step_uuid);
    assert_eq!(Some(processed.metadata.correlation_id), context.task_uuid);
}

#[test]
fn a_payload_that_breaks_its_schema_is_skipped_and_counted() {
    let system = start(Config::default());
    let seen = record(&system);
    let result = json!({"success": true, "result": {"transaction_id": 7}});
    dispatch_and_flush(&system, completion("process_payment", 1, result));
    assert_eq!(names(&seen), ["payment.attempted"]);
    let declared = system.stats().snapshot().declared_events;
    assert_eq!(declared["schema_violation"], 1);
    assert_eq!(declared["published"], 1);
}

#[test]
fn the_same_completion_twice_publishes_once() {
    let system = start(Config::default());
    let seen = record(&system);
    let step_uuid = Uuid::now_v7();
    let result = json!({"success": false, "retryable": true});
    for attempt in [1, 1, 2] {
        let completion = StepCompletion {
            context: context("process_payment", step_uuid, attempt),
            step_result: result.clone(),
        };
        dispatch_and_flush(&system, completion);
    }
    assert_eq!(
        names(&seen).len(),
        6,
        "attempt 1 once, attempt 2 once: {:?}",
        names(&seen)
    );
    assert_eq!(system.stats().snapshot().declared_events["deduplicated"], 3);
}

#[test]
fn deduplication_can_be_turned_off() {
    let system = start(Config {
        deduplication_cache_size: 0,
        ..Config::default()
    });
    let seen = record(&system);
    let step_uuid = Uuid::now_v7();
    for _ in 0..2 {
        let completion = StepCompletion {
            context: context("process_payment", step_uuid, 1),
            step_result: json!({"success": false}),
        };
        dispatch_and_flush(&system, completion);
    }
    assert_eq!(names(&seen).len(), 6);
}

#[test]
fn steps_with_a_publisher_go_to_the_drain_thread_as_one_ordered_job() {
    let system = start(Config::default());
    let result = json!({"success": true, "result": {"to": "a@example.com"}});
    system
        .dispatcher()
        .dispatch(completion("notify", 1, result))
        .unwrap();
    let Wait::Batch(batch) = system
        .drain_queue()
        .wait_batch(10, Some(Duration::from_secs(5)))
    else {
        panic!("expected a publisher job");
    };
    let [DrainItem::Publish(job)] = batch.as_slice() else {
        panic!("expected exactly one publisher job, got {batch:?}");
    };
    let names: Vec<_> = job.declarations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["receipt.prepared", "receipt.sent"]);
    assert_eq!(
        job.declarations[1].publisher.as_deref(),
        Some("ReceiptPublisher")
    );
    assert_eq!(system.stats().snapshot().ruby_publishers.accepted, 1);
}

#[test]
fn without_ffi_publisher_jobs_are_counted_not_queued() {
    let system = start(Config {
        ffi_integration_enabled: false,
        ..Config::default()
    });
    dispatch_and_flush(&system, completion("notify", 1, json!({"success": true})));
    assert!(system.drain_queue().is_empty());
    assert_eq!(system.stats().snapshot().declared_events["ffi_disabled"], 2);
}

#[test]
fn unknown_templates_and_a_full_channel_are_refused_and_counted() {
    let system = start(Config {
        command_buffer_size: 1,
        ..Config::default()
    });
    let mut unknown = completion("process_payment", 1, json!({"success": true}));
    unknown.context.task_version = "9.9.9".into();
    assert_eq!(
        system.dispatcher().dispatch(unknown),
        Err(Refusal::UnknownTemplate)
    );
    let stray = completion("no_such_step", 1, json!({"success": true}));
    assert_eq!(
        system.dispatcher().dispatch(stray),
        Err(Refusal::UnknownStep)
    );

    let refused = (0..1000)
        .map(|_| completion("process_payment", 1, json!({"success": false})))
        .filter(|c| system.dispatcher().dispatch(c.clone()) == Err(Refusal::ChannelFull))
        .count();
    assert!(
        refused > 0,
        "a one-slot channel must refuse some of 1000 completions"
    );
    let dispatch = system.stats().snapshot().dispatch;
    assert_eq!(dispatch.dropped["unknown_template"], 1);
    assert_eq!(dispatch.dropped["unknown_step"], 1);
    assert_eq!(dispatch.dropped["channel_full"], refused as u64);
}

#[test]
fn shutdown_publishes_what_was_dispatched() {
    let system = start(Config::default());
    let seen = record(&system);
    for _ in 0..20 {
        let result = json!({"success": false, "retryable": false});
        system
            .dispatcher()
            .dispatch(completion("process_payment", 1, result))
            .unwrap();
    }
    let report = system.shutdown();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(names(&seen).len(), 60);
}
