//! Subscription patterns, one semantics for Rust and Ruby subscribers.
//!
//! - `*` or `#` alone match every event.
//! - Otherwise the pattern and the event name are split on dots: `*` matches exactly one
//!   segment, `#` matches zero or more segments, anything else matches that segment literally.
//!
//! So `payment.*` matches `payment.processed` but neither `payment` nor
//! `payment.card.declined`, while `payment.#` matches all three. Patterns are compiled once, at
//! subscribe time, and matching allocates nothing.

use crate::error::{excerpt, ValidationError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    One,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Compiled {
    All,
    Exact(Box<str>),
    Segments(Box<[Segment]>),
}

/// A compiled subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: Box<str>,
    compiled: Compiled,
}

impl Pattern {
    /// Compiles a pattern; empty patterns and empty segments are errors.
    pub fn new(source: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::Pattern(excerpt(source));
        if source.is_empty() || source.chars().any(char::is_whitespace) {
            return Err(invalid());
        }

        let compiled = if source == "*" || source == "#" {
            Compiled::All
        } else {
            let segments = source
                .split('.')
                .map(|segment| match segment {
                    "" => Err(invalid()),
                    "*" => Ok(Segment::One),
                    "#" => Ok(Segment::Any),
                    literal => Ok(Segment::Literal(literal.into())),
                })
                .collect::<Result<Box<[_]>, _>>()?;
            if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
                Compiled::Exact(source.into())
            } else {
                Compiled::Segments(segments)
            }
        };

        Ok(Self {
            source: source.into(),
            compiled,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether an event name matches this pattern.
    pub fn matches(&self, event_name: &str) -> bool {
        match &self.compiled {
            Compiled::All => true,
            Compiled::Exact(name) => **name == *event_name,
            Compiled::Segments(segments) => matches_from(segments, Some(event_name)),
        }
    }
}

/// `rest` is what remains of the event name, `None` once every segment has been consumed.
fn matches_from(pattern: &[Segment], rest: Option<&str>) -> bool {
    let Some((first, tail)) = pattern.split_first() else {
        return rest.is_none();
    };
    match (first, rest) {
        (Segment::Any, _) if matches_from(tail, rest) => true,
        (Segment::Any, Some(name)) => matches_from(pattern, split_head(name).1),
        (Segment::Any, None) | (_, None) => false,
        (Segment::One, Some(name)) => matches_from(tail, split_head(name).1),
        (Segment::Literal(literal), Some(name)) => {
            let (head, after) = split_head(name);
            **literal == *head && matches_from(tail, after)
        }
    }
}

fn split_head(name: &str) -> (&str, Option<&str>) {
    match name.split_once('.') {
        Some((head, after)) => (head, Some(after)),
        None => (name, None),
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn wildcards_alone_match_everything() {
        for pattern in ["*", "#"] {
            assert!(matches(pattern, "payment.processed"));
            assert!(matches(pattern, "a.b.c.d"));
        }
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(matches("payment.*", "payment.processed"));
        assert!(!matches("payment.*", "payment"));
        assert!(!matches("payment.*", "payment.card.declined"));
        assert!(matches("*.processed", "payment.processed"));
        assert!(matches("*.processed", "order.processed"));
        assert!(!matches("*.processed", "payment.card.processed"));
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.c"));
    }

    #[test]
    fn hash_matches_zero_or_more_segments() {
        assert!(matches("payment.#", "payment"));
        assert!(matches("payment.#", "payment.processed"));
        assert!(matches("payment.#", "payment.card.declined"));
        assert!(!matches("payment.#", "refund.processed"));
        assert!(matches("#.declined", "payment.card.declined"));
        assert!(matches("#.declined", "declined"));
        assert!(matches("a.#.z", "a.z"));
        assert!(matches("a.#.z", "a.b.c.z"));
        assert!(!matches("a.#.z", "a.b.c"));
        assert!(matches("#.b.#", "a.b.c"));
    }

    #[test]
    fn literals_match_whole_segments_only() {
        assert!(matches("payment.processed", "payment.processed"));
        assert!(!matches("payment.processed", "payment.processed_late"));
        assert!(!matches("payment", "payment.processed"));
        assert!(!matches("pay*.processed", "payment.processed"));
    }

    #[test]
    fn rejects_empty_patterns_and_segments() {
        for bad in [
            "",
            ".",
            "payment.",
            ".processed",
            "payment..processed",
            "a b",
        ] {
            assert_eq!(
                Pattern::new(bad),
                Err(ValidationError::Pattern(excerpt(bad)))
            );
        }
    }
}
