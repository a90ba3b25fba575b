//! Validation of the identifiers that end up in queue names and routing keys.
//!
//! Event names and namespaces are checked once, when an event is built, so that nothing
//! downstream (queue names, SQL identifiers, pattern matching) ever sees an unchecked value.

use crate::error::{excerpt, ValidationError};

/// Longest namespace: PGMQ caps queue names at 47 characters and we append `_domain_events`.
pub const MAX_NAMESPACE_LEN: usize = 33;

/// Longest event name. Names are routing keys and label values, not data: a longer one is
/// almost certainly built from data by mistake.
pub const MAX_EVENT_NAME_LEN: usize = 255;

/// Suffix of every durable queue: `{namespace}_domain_events`.
pub const QUEUE_SUFFIX: &str = "_domain_events";

fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks an event name: lowercase `a-z0-9_` segments joined by single dots, at least one dot,
/// at most [`MAX_EVENT_NAME_LEN`] characters.
pub fn validate_event_name(name: &str) -> Result<(), ValidationError> {
    if name.len() <= MAX_EVENT_NAME_LEN && is_dotted(name.as_bytes()) {
        Ok(())
    } else {
        Err(ValidationError::EventName(excerpt(name)))
    }
}

/// One pass over the bytes, as this runs for every published event: segments of `a-z0-9_`,
/// none empty, at least two.
fn is_dotted(name: &[u8]) -> bool {
    let mut dots = 0;
    let mut segment_len = 0;
    for &byte in name {
        match byte {
            b'.' if segment_len > 0 => {
                dots += 1;
                segment_len = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'_' => segment_len += 1,
            _ => return false,
        }
    }
    dots > 0 && segment_len > 0
}

/// Checks a namespace against `^[a-z0-9_]{1,33}$`.
pub fn validate_namespace(namespace: &str) -> Result<(), ValidationError> {
    if namespace.len() <= MAX_NAMESPACE_LEN && is_segment(namespace) {
        Ok(())
    } else {
        Err(ValidationError::Namespace(excerpt(namespace)))
    }
}

/// The PGMQ queue that receives a namespace's durable events.
pub fn queue_name(namespace: &str) -> String {
    format!("{namespace}{QUEUE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_lowercase_names() {
        for name in ["payment.processed", "a.b", "order_v2.item.shipped_3"] {
            assert!(validate_event_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_malformed_names() {
        let bad = [
            "",
            "payment",
            "Payment.processed",
            "payment..processed",
            ".payment",
            "payment.",
            "payment.processed ",
            "payment-processed.x",
            "x; drop table.y",
            "pаyment.processed",
        ];
        for name in bad {
            let err = validate_event_name(name).unwrap_err();
            assert_eq!(err, ValidationError::EventName(excerpt(name)));
        }
    }

    #[test]
    fn namespace_length_and_charset() {
        assert!(validate_namespace("payments").is_ok());
        assert!(validate_namespace(&"a".repeat(33)).is_ok());
        assert!(validate_namespace(&"a".repeat(34)).is_err());
        assert!(validate_namespace("").is_err());
        assert!(validate_namespace("pay.ments").is_err());
        assert!(validate_namespace("Payments").is_err());
        assert_eq!(queue_name("payments"), "payments_domain_events");
        assert_eq!(queue_name(&"a".repeat(33)).len(), 47);
    }

    #[test]
    fn error_names_the_value() {
        let message = validate_namespace("x'; drop").unwrap_err().to_string();
        assert!(message.contains("\"x'; drop\""), "{message}");
    }

    #[test]
    fn long_input_is_quoted_in_part() {
        let long = "a".repeat(1000);
        let message = validate_event_name(&long).unwrap_err().to_string();
        assert!(message.contains("(1000 characters)"), "{message}");
        assert!(message.len() < 400, "{message}");
    }
}
