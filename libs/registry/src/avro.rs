//! Parsing, normalising and comparing Avro schemas.

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};

/// A schema as the registry stores it.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub schema: Schema,
    /// The parsed schema serialised again: whitespace and the order of JSON
    /// attributes no longer matter, but defaults, docs and aliases (which
    /// Avro's Parsing Canonical Form drops, and which decide compatibility)
    /// are kept. This is what `GET /schemas/ids/{id}` answers.
    pub normalized: String,
    /// sha256 of `normalized`, the identity under which ids are shared.
    pub fingerprint: String,
}

pub fn parse(raw: &str) -> Result<ParsedSchema> {
    let schema = Schema::parse_str(raw).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let normalized = serde_json::to_string(&schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let fingerprint = hex::encode(Sha256::digest(normalized.as_bytes()));
    Ok(ParsedSchema { schema, normalized, fingerprint })
}

/// A subject's compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    Forward,
    Full,
    BackwardTransitive,
    ForwardTransitive,
    FullTransitive,
}

impl Level {
    pub const DEFAULT: Level = Level::Backward;

    pub fn parse(raw: &str) -> Result<Level> {
        Ok(match raw.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "FORWARD" => Level::Forward,
            "FULL" => Level::Full,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel(raw.to_owned())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::Forward => "FORWARD",
            Level::Full => "FULL",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether a new schema is judged against every earlier version or only
    /// the latest.
    pub fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    fn backward(self) -> bool {
        matches!(self, Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive)
    }

    fn forward(self) -> bool {
        matches!(self, Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive)
    }
}

/// Judges `candidate` against `existing` (oldest first) under `level` by the
/// Avro schema-resolution rules. Returns one message per problem; empty means
/// compatible. A resolution that only *may* fail (an enum symbol or union
/// branch the reader lacks) counts as incompatible, as in Confluent's
/// registry.
pub fn check(level: Level, candidate: &Schema, existing: &[(i32, Schema)]) -> Vec<String> {
    let against: &[(i32, Schema)] = match level {
        Level::None => &[],
        _ if level.transitive() => existing,
        _ => existing.last().map(std::slice::from_ref).unwrap_or(&[]),
    };
    let mut problems = Vec::new();
    for (version, old) in against {
        if level.backward()
            && let Some(problem) = can_read(old, candidate)
        {
            problems.push(format!(
                    "{{readerVersion: new, writerVersion: {version}, direction: BACKWARD, problem: the new schema cannot read data written with version {version}: {problem}}}"
                ));
        }
        if level.forward()
            && let Some(problem) = can_read(candidate, old)
        {
            problems.push(format!(
                    "{{readerVersion: {version}, writerVersion: new, direction: FORWARD, problem: version {version} cannot read data written with the new schema: {problem}}}"
                ));
        }
    }
    problems
}

fn can_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => {
            Some("resolution may fail: an enum symbol or union branch of the writer is missing in the reader".into())
        }
        Err(error) => Some(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(raw: &str) -> Schema {
        parse(raw).expect("valid schema").schema
    }

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"},{"name":"email","type":"string","default":""}]}"#;
    const V2_REQUIRED: &str =
        r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"},{"name":"email","type":"string"}]}"#;

    #[test]
    fn whitespace_and_attribute_order_do_not_change_identity() {
        let a = parse(V1).expect("valid");
        let b = parse(r#"{ "name" : "User", "fields":[ {"type":"string", "name":"id"} ], "type":"record" }"#)
            .expect("valid");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, parse(V2_DEFAULT).expect("valid").fingerprint);
    }

    #[test]
    fn defaults_are_kept_in_the_normalized_form() {
        assert!(parse(V2_DEFAULT).expect("valid").normalized.contains("\"default\""));
    }

    #[test]
    fn backward_allows_new_field_with_default_only() {
        let old = vec![(1, schema(V1))];
        assert!(check(Level::Backward, &schema(V2_DEFAULT), &old).is_empty());
        assert_eq!(check(Level::Backward, &schema(V2_REQUIRED), &old).len(), 1);
        assert!(check(Level::Forward, &schema(V2_REQUIRED), &old).is_empty());
        assert!(check(Level::None, &schema(r#""string""#), &old).is_empty());
    }

    #[test]
    fn transitive_checks_every_version() {
        // v3 drops the default v2 gave `email`: it still reads v2 data (which
        // has the field) but not v1 data (which lacks it).
        let history = vec![(1, schema(V1)), (2, schema(V2_DEFAULT))];
        let v3 = schema(V2_REQUIRED);
        assert!(check(Level::Backward, &v3, &history).is_empty());
        assert_eq!(check(Level::BackwardTransitive, &v3, &history).len(), 1);
    }

    #[test]
    fn custom_field_attributes_survive_parse_and_reserialisation() {
        // Consumers (the audit log) decide what to store by attributes such
        // as `orderflow.sensitive` on the writer schema this registry serves:
        // they must come back out of `GET /schemas/ids/{id}` (`normalized`),
        // also on fields of records nested in arrays and unions.
        let raw = r#"{"type":"record","name":"User","fields":[
            {"name":"id","type":"string"},
            {"name":"email","type":"string","orderflow.sensitive":true},
            {"name":"cards","type":{"type":"array","items":{"type":"record","name":"Card","fields":[
                {"name":"pan","type":"string","orderflow.sensitive":true}]}}},
            {"name":"backup","type":["null",{"type":"record","name":"Contact","fields":[
                {"name":"phone","type":"string","orderflow.sensitive":true}]}],"default":null}]}"#;
        let parsed = parse(raw).expect("valid");
        let json: serde_json::Value = serde_json::from_str(&parsed.normalized).expect("json");
        let fields = &json["fields"];
        assert_eq!(fields[1]["orderflow.sensitive"], true, "{}", parsed.normalized);
        assert_eq!(fields[2]["type"]["items"]["fields"][0]["orderflow.sensitive"], true, "{}", parsed.normalized);
        assert_eq!(fields[3]["type"][1]["fields"][0]["orderflow.sensitive"], true, "{}", parsed.normalized);
        assert!(fields[0].get("orderflow.sensitive").is_none());
        // Parsing the served text again keeps them (what a client does).
        let again = parse(&parsed.normalized).expect("valid");
        assert_eq!(again.normalized, parsed.normalized);
        // The attribute is part of the schema's identity: marking a field is a new version.
        let unmarked = parse(&raw.replace(r#","orderflow.sensitive":true"#, "")).expect("valid");
        assert_ne!(unmarked.fingerprint, parsed.fingerprint);
    }
}
