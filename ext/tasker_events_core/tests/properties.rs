//! Property tests: generated input for the parts that take text from users (patterns, names,
//! task templates, worker.toml). Each property states what must hold for every input, and a
//! failure shrinks to the smallest input that breaks it.

use proptest::prelude::*;
use tasker_events_core::config_file::WorkerSettings;
use tasker_events_core::names::{validate_event_name, validate_namespace};
use tasker_events_core::template::TaskTemplate;
use tasker_events_core::Pattern;

/// The pattern rules, written as plainly as possible, to compare the compiled matcher with.
fn reference_match(pattern: &str, name: &str) -> bool {
    if pattern == "*" || pattern == "#" {
        return true;
    }
    fn go(pattern: &[&str], name: &[&str]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((&"#", rest)) => (0..=name.len()).any(|skip| go(rest, &name[skip..])),
            Some((&"*", rest)) => !name.is_empty() && go(rest, &name[1..]),
            Some((literal, rest)) => name.first() == Some(literal) && go(rest, &name[1..]),
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let name: Vec<&str> = name.split('.').collect();
    go(&pattern, &name)
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_owned()), Just("b".to_owned()), "[a-z0-9_]{1,6}"]
}

fn event_name() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 2..6).prop_map(|segments| segments.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    let part = prop_oneof![segment(), Just("*".to_owned()), Just("#".to_owned())];
    prop::collection::vec(part, 1..6).prop_map(|parts| parts.join("."))
}

proptest! {
    #[test]
    fn compiled_patterns_match_exactly_as_the_rules_say(
        pattern in pattern(),
        name in event_name(),
    ) {
        let compiled = Pattern::new(&pattern).unwrap();
        prop_assert_eq!(compiled.matches(&name), reference_match(&pattern, &name));
    }

    #[test]
    fn any_text_compiles_or_is_refused_without_panicking(text in ".{0,40}") {
        if let Ok(pattern) = Pattern::new(&text) {
            prop_assert!(!text.is_empty());
            prop_assert!(!text.split('.').any(str::is_empty) || text == "*" || text == "#");
            let _ = pattern.matches("a.b");
        }
    }

    #[test]
    fn event_names_are_accepted_exactly_when_they_follow_the_rules(
        text in "[a-z0-9_.A-Z;' -]{0,30}",
    ) {
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let rule = text.len() <= 255 && text.contains('.') && text.split('.').all(segment_ok);
        prop_assert_eq!(validate_event_name(&text).is_ok(), rule);
    }

    #[test]
    fn generated_event_names_are_valid(name in event_name()) {
        prop_assert!(validate_event_name(&name).is_ok());
    }

    #[test]
    fn namespaces_are_accepted_exactly_when_they_match_the_rule(
        text in "[a-z0-9_A-Z.;' ]{0,40}",
    ) {
        let rule = (1..=33).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        prop_assert_eq!(validate_namespace(&text).is_ok(), rule);
    }

    #[test]
    fn any_text_as_a_template_loads_or_names_its_file(text in ".{0,200}") {
        if let Err(error) = TaskTemplate::parse(&text, "generated.yaml") {
            prop_assert!(error.to_string().starts_with("generated.yaml"), "{}", error);
        }
    }

    #[test]
    fn template_like_yaml_loads_or_names_its_file(
        name in "[a-z_]{0,8}",
        namespace in "[a-z_A-Z ]{0,8}",
        event in "[a-z_.A-Z]{0,12}",
        condition in prop_oneof![Just("success"), Just("failure"), Just("sometimes"), Just("")],
        mode in prop_oneof![Just("durable"), Just("fast"), Just("broadcast"), Just("slow")],
    ) {
        let yaml = [
            format!("name: {name:?}"),
            format!("namespace_name: {namespace:?}"),
            "version: 1.0.0".to_owned(),
            "steps:".to_owned(),
            "  - name: s".to_owned(),
            "    publishes_events:".to_owned(),
            format!("      - name: {event:?}"),
            format!("        condition: {condition:?}"),
            format!("        delivery_mode: {mode}"),
        ]
        .join("\n");
        match TaskTemplate::parse(&yaml, "generated.yaml") {
            Ok(template) => {
                prop_assert!(validate_namespace(&namespace).is_ok());
                let names_valid = template
                    .declarations()
                    .all(|d| validate_event_name(&d.name).is_ok());
                prop_assert!(names_valid);
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("generated.yaml"), "{}", message);
            }
        }
    }

    #[test]
    fn any_text_as_worker_toml_parses_or_names_its_file(text in ".{0,200}") {
        if let Err(error) = WorkerSettings::from_toml_str(&text, "worker.toml") {
            prop_assert!(error.to_string().contains("worker.toml"), "{}", error);
        }
    }

    #[test]
    fn worker_toml_values_are_taken_or_refused_by_range(
        size in any::<i64>(),
        timeout in any::<i64>(),
    ) {
        let text = format!(
            "[worker.mpsc_channels.in_process_events]\nbroadcast_buffer_size = {size}\n\
             dispatch_timeout_ms = {timeout}\n"
        );
        let parsed = WorkerSettings::from_toml_str(&text, "worker.toml");
        if size < 1 || timeout < 1 {
            prop_assert!(parsed.is_err());
        }
        if let Err(error) = parsed {
            prop_assert!(error.to_string().contains("worker.toml"), "{}", error);
        }
    }
}
