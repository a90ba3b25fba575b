//! Task templates loaded from the fixture files, the way a worker loads them at boot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tasker_events_core::template::{
    PublicationCondition, RetryPolicy, StepOutcome, TaskTemplate, TemplateError, TemplateRegistry,
};
use tasker_events_core::EventDeliveryMode;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/templates")
        .join(path)
}

fn credit_card_payment() -> TaskTemplate {
    let path = fixture("valid/payments/credit_card_payment/1.0.0.yaml");
    TaskTemplate::load(&path).unwrap()
}

/// Loads an invalid fixture and checks the error's parts and its whole message.
fn assert_refused(
    name: &str,
    step: Option<&str>,
    event: Option<&str>,
    line: Option<usize>,
    message: &str,
) -> TemplateError {
    let path = fixture(&format!("invalid/{name}"));
    let err = TaskTemplate::load(&path).unwrap_err();
    let file = path.display().to_string();
    let expected = TemplateError {
        file: file.clone(),
        step: step.map(str::to_owned),
        event: event.map(str::to_owned),
        line,
        message: message.to_owned(),
    };
    assert_eq!(err, expected);
    assert!(err.to_string().starts_with(&file), "{err}");
    assert!(err.to_string().ends_with(message), "{err}");
    err
}

#[test]
fn credit_card_payment_parses_with_the_declared_values() {
    let template = credit_card_payment();
    assert_eq!(template.name, "credit_card_payment");
    assert_eq!(template.namespace, "payments");
    assert_eq!(template.version, "1.0.0");
    assert_eq!(
        template.description.as_deref(),
        Some("Process credit card payments with validation and fraud detection")
    );
    assert!(template.domain_events.is_empty());
    assert!(template.source.ends_with("credit_card_payment/1.0.0.yaml"));

    let names: Vec<&str> = template.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["validate_payment", "process_payment"]);
    let validate = template.step("validate_payment").unwrap();
    assert_eq!(
        validate.retry,
        RetryPolicy {
            retryable: false,
            limit: None
        }
    );
    assert!(validate.publishes_events.is_empty());

    let step = template.step("process_payment").unwrap();
    assert_eq!(
        step.retry,
        RetryPolicy {
            retryable: true,
            limit: Some(3)
        }
    );
    assert_eq!(step.publishes_events.len(), 2);

    let processed = step.event("payment.processed").unwrap();
    assert_eq!(
        processed.description.as_deref(),
        Some("Payment successfully processed")
    );
    assert_eq!(processed.condition, PublicationCondition::Success);
    assert_eq!(processed.delivery_mode, EventDeliveryMode::Broadcast);
    assert_eq!(
        processed.publisher.as_deref(),
        Some("PaymentEventPublisher")
    );
    let schema = processed.schema.as_ref().unwrap();
    assert_eq!(
        schema.source()["required"],
        json!(["transaction_id", "amount"])
    );

    let failed = step.event("payment.failed").unwrap();
    assert_eq!(failed.condition, PublicationCondition::PermanentFailure);
    assert_eq!(failed.delivery_mode, EventDeliveryMode::Durable);
    assert_eq!(failed.publisher, None);
    assert!(failed.schema.is_some());
}

#[test]
fn declared_schemas_check_payloads() {
    let template = credit_card_payment();
    let processed = template
        .step("process_payment")
        .unwrap()
        .event("payment.processed")
        .unwrap();
    let good = json!({ "transaction_id": "tx_123", "amount": 99.95 });
    assert_eq!(processed.validate_payload(&good), Ok(()));

    let bad = json!({ "transaction_id": "tx_123", "amount": "99.95" });
    let violations = processed.validate_payload(&bad).unwrap_err();
    let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(messages, [r#"/amount: "99.95" is not of type "number""#]);
}

#[test]
fn the_step_retry_policy_decides_which_failure_event_fires() {
    let template = credit_card_payment();
    let step = template.step("process_payment").unwrap();
    let fired = |success, attempt| -> Vec<String> {
        let outcome = StepOutcome::evaluate(success, None, Some(attempt), &step.retry);
        step.events_for(outcome).map(|e| e.name.clone()).collect()
    };
    assert_eq!(fired(true, 1), ["payment.processed"]);
    // Attempts 1 and 2 of 3 will be retried: payment.failed is for permanent failures only.
    assert!(fired(false, 1).is_empty());
    assert!(fired(false, 2).is_empty());
    assert_eq!(fired(false, 3), ["payment.failed"]);

    // A handler that reports a non-retryable error fails permanently at once.
    let outcome = StepOutcome::evaluate(false, Some(false), Some(1), &step.retry);
    let names: Vec<&str> = step.events_for(outcome).map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["payment.failed"]);
}

#[test]
fn unreadable_file_names_the_file_and_the_os_error() {
    let path = fixture("invalid/does_not_exist.yaml");
    let err = TaskTemplate::load(&path).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("cannot read template: "), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
}

#[test]
fn yaml_syntax_error_reports_the_parser_line() {
    let err = assert_refused(
        "bad_yaml.yaml",
        None,
        None,
        Some(8),
        "invalid YAML: did not find expected ',' or ']' at line 8 column 51, \
         while parsing a flow sequence at line 8 column 43",
    );
    assert!(
        err.to_string().contains("bad_yaml.yaml:8: invalid YAML"),
        "{err}"
    );
}

#[test]
fn invalid_schema_names_the_event_and_the_schema_path() {
    assert_refused(
        "bad_schema.yaml",
        Some("process_payment"),
        Some("payment.processed"),
        Some(7),
        "invalid schema: at /properties/amount/type: \"nubmer\" is not valid under any of \
         the schemas listed in the 'anyOf' keyword",
    );
}

#[test]
fn task_level_schema_must_be_a_mapping() {
    let err = assert_refused(
        "bad_task_event.yaml",
        None,
        Some("payment.task_completed"),
        Some(5),
        "\"schema\" must be a mapping or a boolean, got a string (\"payment.json\")",
    );
    let shown = err.to_string();
    assert!(
        shown.contains(":5: task-level event \"payment.task_completed\": "),
        "{shown}"
    );
}

#[test]
fn invalid_event_name_is_refused() {
    assert_refused(
        "bad_event_name.yaml",
        Some("process_payment"),
        Some("Payment.Failed"),
        Some(9),
        "invalid event name \"Payment.Failed\": expected lowercase a-z0-9_ segments joined by \
         single dots, with at least one dot and at most 255 characters \
         (e.g. \"payment.processed\")",
    );
}

#[test]
fn invalid_namespace_is_refused() {
    assert_refused(
        "bad_namespace.yaml",
        None,
        None,
        Some(3),
        "invalid namespace \"Payments-EU\": expected 1 to 33 characters of a-z, 0-9 and _",
    );
}

#[test]
fn misspelt_condition_names_file_line_step_and_event() {
    let err = assert_refused(
        "bad_condition.yaml",
        Some("process_payment"),
        Some("payment.processed"),
        Some(15),
        "invalid condition \"sucess\" (expected one of success, failure, retryable_failure, \
         permanent_failure, always)",
    );
    let file = fixture("invalid/bad_condition.yaml").display().to_string();
    assert_eq!(
        err.to_string(),
        format!(
            "{file}:15: step \"process_payment\", event \"payment.processed\": invalid \
             condition \"sucess\" (expected one of success, failure, retryable_failure, \
             permanent_failure, always)"
        )
    );
}

#[test]
fn invalid_delivery_mode_is_refused() {
    assert_refused(
        "bad_delivery_mode.yaml",
        Some("process_payment"),
        Some("payment.processed"),
        Some(7),
        "invalid delivery mode \"realtime\": expected durable, fast or broadcast",
    );
}

#[test]
fn steps_must_be_a_list() {
    assert_refused(
        "steps_not_a_list.yaml",
        None,
        None,
        Some(4),
        "\"steps\" must be a list, got a mapping",
    );
}

#[test]
fn publishes_events_must_be_a_list() {
    assert_refused(
        "publishes_events_string.yaml",
        Some("process_payment"),
        None,
        Some(5),
        "\"publishes_events\" must be a list, got a string (\"payment.processed\")",
    );
}

#[test]
fn retry_limit_must_be_a_non_negative_integer() {
    assert_refused(
        "wrong_retry_limit.yaml",
        Some("process_payment"),
        None,
        Some(5),
        "\"retry.limit\" must be an integer from 0 to 4294967295, got a number (-1)",
    );
}

#[test]
fn duplicate_event_in_a_step_points_at_both_declarations() {
    assert_refused(
        "duplicate_event.yaml",
        Some("process_payment"),
        Some("payment.processed"),
        Some(11),
        "duplicate event name (first declared at line 7)",
    );
}

#[test]
fn duplicate_step_points_at_both_declarations() {
    assert_refused(
        "duplicate_step.yaml",
        Some("process_payment"),
        None,
        Some(7),
        "duplicate step name (first declared at line 5)",
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_refused(
        "missing_version.yaml",
        None,
        None,
        None,
        "missing required key \"version\"",
    );
    assert_refused(
        "missing_step_name.yaml",
        None,
        None,
        None,
        "step #2: missing required key \"name\"",
    );
    assert_refused(
        "missing_event_name.yaml",
        Some("process_payment"),
        None,
        None,
        "publishes_events entry #2: missing required key \"name\"",
    );
}

#[test]
fn parse_names_the_given_label_and_checks_every_required_key() {
    let full = "name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps: []\n";
    assert!(TaskTemplate::parse(full, "inline").is_ok());
    for key in ["name", "namespace_name", "version", "steps"] {
        let yaml: String = full
            .lines()
            .filter(|line| !line.starts_with(&format!("{key}:")))
            .map(|line| format!("{line}\n"))
            .collect();
        let err = TaskTemplate::parse(&yaml, "inline").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("inline: missing required key {key:?}")
        );
    }

    let err = TaskTemplate::parse("- just\n- a list\n", "inline").unwrap_err();
    assert_eq!(
        err.to_string(),
        "inline: expected a mapping of template keys, got a list"
    );
    let err = TaskTemplate::parse("", "inline").unwrap_err();
    assert_eq!(
        err.to_string(),
        "inline: expected a mapping of template keys, got null"
    );
}

#[test]
fn registry_loads_a_directory_tree() {
    let registry = TemplateRegistry::new();
    assert_eq!(registry.load_dir(&fixture("valid")).unwrap(), 2);
    assert_eq!(registry.len(), 2);

    let payment = registry
        .get("payments", "credit_card_payment", "1.0.0")
        .unwrap();
    assert_eq!(payment.steps.len(), 2);

    // `version: 1.0` is a YAML float; it is kept as written.
    let stock = registry.get("inventory", "reserve_stock", "1.0").unwrap();
    assert_eq!(stock.domain_events[0].name, "inventory.task_completed");
    assert_eq!(
        stock.domain_events[0].condition,
        PublicationCondition::Always
    );
    assert_eq!(stock.step("reserve").unwrap().retry.limit, Some(5));

    let keys: Vec<(String, String)> = registry
        .iter()
        .map(|t| (t.namespace.clone(), t.name.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("inventory".to_owned(), "reserve_stock".to_owned()),
            ("payments".to_owned(), "credit_card_payment".to_owned()),
        ]
    );
    assert_eq!(
        registry.publisher_names(),
        ["InventoryAuditPublisher", "PaymentEventPublisher"]
    );

    // Loading the same files again replaces them rather than conflicting.
    assert_eq!(registry.load_dir(&fixture("valid")).unwrap(), 2);
    assert_eq!(registry.len(), 2);
}

#[test]
fn registry_refuses_one_template_in_two_files_and_keeps_what_it_had() {
    let registry = TemplateRegistry::new();
    registry.insert(Arc::new(credit_card_payment())).unwrap();

    let err = registry.load_dir(&fixture("conflicting")).unwrap_err();
    let first = fixture("conflicting/first.yaml").display().to_string();
    let second = fixture("conflicting/second.yaml").display().to_string();
    assert_eq!(
        err.to_string(),
        format!("{second}: template payments/refund version 1.0.0 is already loaded from {first}")
    );
    assert_eq!(registry.len(), 1, "a failed load_dir adds nothing");
    assert!(registry.get("payments", "refund", "1.0.0").is_none());
}

#[test]
fn registry_load_dir_stops_at_an_invalid_template_and_adds_nothing() {
    let registry = TemplateRegistry::new();
    let err = registry.load_dir(&fixture("invalid")).unwrap_err();
    assert!(err.file.contains("/invalid/"), "{err}");
    assert!(registry.is_empty());

    let missing = fixture("no_such_dir");
    let err = registry.load_dir(&missing).unwrap_err();
    assert_eq!(err.file, missing.display().to_string());
    assert!(
        err.message.starts_with("cannot read template directory: "),
        "{err}"
    );
}
