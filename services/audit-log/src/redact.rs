//! The payload as JSON, without what its writer schema marks sensitive.
//!
//! A record field with the attribute `"orderflow.sensitive": true` in its
//! Avro schema (`schemas/**/*.avsc`) is dropped, at any depth: in records
//! nested in records, arrays, maps and unions, and through named references.
//! The writer schema comes from the registry with the message, so a field
//! marked in a newer (or older) schema version than this build's is judged
//! by the version that wrote it; nothing here knows any message type.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use serde_json::{Map, Value as Json};

/// The attribute that marks a field sensitive.
pub const SENSITIVE: &str = "orderflow.sensitive";

#[derive(Debug, thiserror::Error)]
#[error("the value does not fit its writer schema: {0}")]
pub struct RedactError(String);

/// `value` (decoded with `schema`) as JSON, sensitive fields removed.
/// Unions become their branch's value; logical types their JSON form.
pub fn redacted_json(schema: &Schema, value: &Value) -> Result<Json, RedactError> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| RedactError(e.to_string()))?;
    let names: HashMap<Name, &Schema> = resolved.get_names().clone();
    walk(schema, value, &names)
}

fn walk(schema: &Schema, value: &Value, names: &HashMap<Name, &Schema>) -> Result<Json, RedactError> {
    match (schema, value) {
        (Schema::Ref { name }, _) => {
            let target = names.get(name).ok_or_else(|| RedactError(format!("unknown named type {name}")))?;
            walk(target, value, names)
        }
        (Schema::Record(record), Value::Record(fields)) => {
            let mut out = Map::new();
            for (field_name, field_value) in fields {
                let field = record
                    .lookup
                    .get(field_name)
                    .and_then(|i| record.fields.get(*i))
                    .ok_or_else(|| RedactError(format!("field {field_name} is not in {}", record.name)))?;
                if field.custom_attributes.get(SENSITIVE) == Some(&Json::Bool(true)) {
                    continue;
                }
                out.insert(field_name.clone(), walk(&field.schema, field_value, names)?);
            }
            Ok(Json::Object(out))
        }
        (Schema::Union(union), Value::Union(branch, inner)) => {
            let schema = union
                .variants()
                .get(*branch as usize)
                .ok_or_else(|| RedactError(format!("union branch {branch} does not exist")))?;
            walk(schema, inner, names)
        }
        (Schema::Array(array), Value::Array(items)) => {
            items.iter().map(|item| walk(&array.items, item, names)).collect::<Result<_, _>>().map(Json::Array)
        }
        (Schema::Map(map), Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| walk(&map.types, v, names).map(|v| (k.clone(), v)))
            .collect::<Result<Map<_, _>, _>>()
            .map(Json::Object),
        (_, Value::Record(_) | Value::Union(..) | Value::Array(_) | Value::Map(_)) => {
            Err(RedactError(format!("a {} value where the schema has {schema:?}", kind(value))))
        }
        // A leaf: nothing inside it can be marked.
        (_, leaf) => Json::try_from(leaf.clone()).map_err(|e| RedactError(e.to_string())),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Record(_) => "record",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        _ => "scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"t","fields":[
        {"name":"id","type":"string"},
        {"name":"email","type":"string","orderflow.sensitive":true},
        {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
            {"name":"sku","type":"string"},
            {"name":"card","type":"string","orderflow.sensitive":true}]}}},
        {"name":"contact","type":["null",{"type":"record","name":"Contact","fields":[
            {"name":"phone","type":"string","orderflow.sensitive":true},
            {"name":"city","type":"string"}]}],"default":null},
        {"name":"previous","type":["null","Contact"],"default":null},
        {"name":"extra","type":{"type":"map","values":"Line"}},
        {"name":"public","type":"string","orderflow.sensitive":false}]}"#;

    fn line(sku: &str, card: &str) -> Value {
        Value::Record(vec![("sku".into(), Value::String(sku.into())), ("card".into(), Value::String(card.into()))])
    }

    fn contact(phone: &str, city: &str) -> Value {
        Value::Record(vec![("phone".into(), Value::String(phone.into())), ("city".into(), Value::String(city.into()))])
    }

    #[test]
    fn marked_fields_are_dropped_at_every_depth() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let value = Value::Record(vec![
            ("id".into(), Value::String("o1".into())),
            ("email".into(), Value::String("ada@example.com".into())),
            ("lines".into(), Value::Array(vec![line("A", "4111-1"), line("B", "4111-2")])),
            ("contact".into(), Value::Union(1, Box::new(contact("+44 1", "London")))),
            ("previous".into(), Value::Union(1, Box::new(contact("+44 2", "Paris")))),
            ("extra".into(), Value::Map([("gift".to_owned(), line("C", "4111-3"))].into())),
            ("public".into(), Value::String("shown".into())),
        ]);
        assert!(value.validate(&schema), "the test value fits the schema");
        let json = redacted_json(&schema, &value).expect("redact");
        assert_eq!(
            json,
            serde_json::json!({
                "id": "o1",
                "lines": [{"sku": "A"}, {"sku": "B"}],
                "contact": {"city": "London"},
                "previous": {"city": "Paris"},
                "extra": {"gift": {"sku": "C"}},
                "public": "shown",
            })
        );
        let text = json.to_string();
        for secret in ["ada@example.com", "4111", "+44"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn the_users_events_keep_no_pii() {
        // The committed schemas, as the registry would serve them.
        for file in orderflow_contracts::all_schemas().into_iter().filter(|s| s.namespace().ends_with(".events")) {
            let schema = Schema::parse_str(file.text).expect("schema");
            let Schema::Record(record) = &schema else { panic!("{} is not a record", file.full_name) };
            for field in &record.fields {
                if ["email", "first_name", "last_name", "password_hash", "password"].contains(&field.name.as_str()) {
                    assert_eq!(
                        field.custom_attributes.get(SENSITIVE),
                        Some(&Json::Bool(true)),
                        "{}.{} must be marked {SENSITIVE}",
                        file.full_name,
                        field.name
                    );
                }
            }
        }
    }
}
