//! JSON Schemas of event payloads, compiled once and shared.
//!
//! A task template declares a schema for each event it publishes. The schema is checked against
//! the JSON Schema meta-schema and compiled when the template is loaded, so a broken schema is a
//! load error naming the template, never a surprise at publish time. A [`CompiledSchema`] is
//! immutable, `Send` and `Sync`: one compiled copy is shared behind an `Arc` by every thread that
//! validates payloads.
//!
//! The draft is taken from the schema's `$schema` keyword, and is draft 2020-12 when there is
//! none. References are resolved only inside the schema itself: the crate is built without the
//! network and file resolvers, so a `$ref` to a URL or a file is a compile error rather than a
//! request made while a worker boots.
//!
//! [`CompiledSchema::validate`] reports every violation, not only the first, each with the JSON
//! pointer of the offending part of the payload.

use std::fmt;

use serde_json::Value;

/// A JSON Schema checked and compiled once; cheap to validate against many times.
pub struct CompiledSchema {
    source: Value,
    validator: jsonschema::Validator,
}

/// One way in which a payload breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer to the offending value, such as `/amount`; empty for the payload itself.
    pub instance_path: String,
    /// What is wrong, naming the value, such as `"abc" is not of type "number"`.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.instance_path.is_empty() {
            "(root)"
        } else {
            &self.instance_path
        };
        write!(f, "{path}: {}", self.message)
    }
}

impl CompiledSchema {
    /// Checks `schema` against its meta-schema and compiles it.
    ///
    /// The error says what is wrong with the schema and where, as a JSON pointer into it.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema).map_err(|err| {
            let at = err.instance_path().as_str();
            if at.is_empty() {
                err.to_string()
            } else {
                format!("at {at}: {err}")
            }
        })?;
        Ok(Self {
            source: schema.clone(),
            validator,
        })
    }

    /// Validates a payload, returning every violation in the order the validator found them.
    pub fn validate(&self, instance: &Value) -> Result<(), Vec<SchemaViolation>> {
        let violations: Vec<SchemaViolation> = self
            .validator
            .iter_errors(instance)
            .map(|err| SchemaViolation {
                instance_path: err.instance_path().as_str().to_owned(),
                message: err.to_string(),
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// Whether a payload satisfies the schema; faster than [`Self::validate`] on failure.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// The schema as it was declared.
    pub fn source(&self) -> &Value {
        &self.source
    }
}

impl fmt::Debug for CompiledSchema {
    // The compiled form is an internal tree of keyword validators; the source says it all.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledSchema").field(&self.source).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn payment_schema() -> CompiledSchema {
        CompiledSchema::compile(&json!({
            "type": "object",
            "required": ["transaction_id", "amount"],
            "properties": {
                "transaction_id": { "type": "string" },
                "amount": { "type": "number" }
            }
        }))
        .unwrap()
    }

    #[test]
    fn accepts_a_conforming_payload() {
        let schema = payment_schema();
        let payload = json!({ "transaction_id": "tx_1", "amount": 12.5, "extra": true });
        assert_eq!(schema.validate(&payload), Ok(()));
        assert!(schema.is_valid(&payload));
    }

    #[test]
    fn reports_every_violation_with_its_path() {
        let schema = payment_schema();
        let violations = schema.validate(&json!({ "amount": "abc" })).unwrap_err();
        assert_eq!(violations.len(), 2, "{violations:?}");

        let wrong_type = violations
            .iter()
            .find(|v| v.instance_path == "/amount")
            .expect("a violation at /amount");
        assert_eq!(wrong_type.message, r#""abc" is not of type "number""#);
        assert_eq!(
            wrong_type.to_string(),
            r#"/amount: "abc" is not of type "number""#
        );

        let missing = violations
            .iter()
            .find(|v| v.instance_path.is_empty())
            .expect("a violation at the root");
        assert!(missing.message.contains("\"transaction_id\""), "{missing}");
        assert!(missing.to_string().starts_with("(root): "), "{missing}");
        assert!(!schema.is_valid(&json!({ "amount": "abc" })));
    }

    #[test]
    fn root_type_mismatch_is_reported_at_the_root() {
        let violations = payment_schema().validate(&json!([1, 2])).unwrap_err();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].instance_path, "");
        assert_eq!(
            violations[0].to_string(),
            r#"(root): [1,2] is not of type "object""#
        );
    }

    #[test]
    fn invalid_schema_names_the_bad_part() {
        let err = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": { "amount": { "type": "nubmer" } }
        }))
        .unwrap_err();
        assert!(err.contains("/properties/amount/type"), "{err}");
        assert!(err.contains("\"nubmer\""), "{err}");

        let err = CompiledSchema::compile(&json!("object")).unwrap_err();
        assert!(err.contains("\"object\""), "{err}");
    }

    #[test]
    fn never_fetches_remote_references() {
        let remote = json!({ "$ref": "https://example.com/payment.json" });
        let err = CompiledSchema::compile(&remote).unwrap_err();
        assert!(err.contains("https://example.com/payment.json"), "{err}");
    }

    #[test]
    fn resolves_references_inside_the_schema() {
        let schema = CompiledSchema::compile(&json!({
            "$defs": { "money": { "type": "number", "minimum": 0 } },
            "properties": { "amount": { "$ref": "#/$defs/money" } }
        }))
        .unwrap();
        assert!(schema.is_valid(&json!({ "amount": 3 })));
        let violations = schema.validate(&json!({ "amount": -1 })).unwrap_err();
        assert_eq!(violations[0].instance_path, "/amount");
    }

    #[test]
    fn keeps_the_source_and_is_shareable_across_threads() {
        let source = json!({ "type": "integer" });
        let schema = Arc::new(CompiledSchema::compile(&source).unwrap());
        assert_eq!(schema.source(), &source);

        let shared = Arc::clone(&schema);
        let from_thread = std::thread::spawn(move || shared.is_valid(&json!(7)))
            .join()
            .unwrap();
        assert!(from_thread);
        assert!(format!("{schema:?}").contains("integer"));
    }
}
