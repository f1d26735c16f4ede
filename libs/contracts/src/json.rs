//! A message's Avro value as JSON, without what its writer schema marks
//! sensitive ([`redacted_json`], the audit log's and, by default, the
//! operator's CLI's) or whole ([`plain_json`], asked for explicitly).
//!
//! A record field with the attribute `"orderflow.sensitive": true` in its
//! Avro schema (`schemas/**/*.avsc`) is dropped, at any depth: in records
//! nested in records, arrays, maps and unions, and through named references.
//! The writer schema comes from the registry with the message; a field is
//! dropped if the writer schema marks it **or** this build's schemas mark
//! the same field of the same named record ([`Marks`]): marking a field
//! later also hides it in messages written before it was marked. Nothing
//! here knows any message type.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use serde_json::{Map, Value as Json};

/// The attribute that marks a field sensitive.
pub const SENSITIVE: &str = "orderflow.sensitive";

#[derive(Debug, thiserror::Error)]
#[error("the value does not fit its writer schema: {0}")]
pub struct RedactError(String);

/// The sensitive fields of a set of schemas, as `(record full name, field)`.
#[derive(Debug, Clone, Default)]
pub struct Marks(HashSet<(String, String)>);

impl Marks {
    /// The fields `schemas` mark sensitive, in every named record they hold.
    pub fn of<'a>(schemas: impl IntoIterator<Item = &'a Schema>) -> Self {
        let mut marks = HashSet::new();
        for schema in schemas {
            let Ok(resolved) = ResolvedSchema::try_from(schema) else { continue };
            for named in resolved.get_names().values() {
                if let Schema::Record(record) = named {
                    for field in record.fields.iter().filter(|f| is_marked(f)) {
                        marks.insert((record.name.fullname(None), field.name.clone()));
                    }
                }
            }
        }
        Self(marks)
    }

    /// This build's schemas (`schemas/`).
    pub fn of_this_build() -> Self {
        let parsed: Vec<Schema> = crate::all_schemas().iter().filter_map(|s| Schema::parse_str(s.text).ok()).collect();
        Self::of(&parsed)
    }

    fn contains(&self, record: &Name, field: &str) -> bool {
        self.0.contains(&(record.fullname(None), field.to_owned()))
    }
}

fn is_marked(field: &apache_avro::schema::RecordField) -> bool {
    field.custom_attributes.get(SENSITIVE) == Some(&Json::Bool(true))
}

/// `value` (decoded with `schema`) as JSON, without the fields `schema` or
/// `also` mark sensitive. Unions become their branch's value; logical types
/// their JSON form.
pub fn redacted_json(schema: &Schema, value: &Value, also: &Marks) -> Result<Json, RedactError> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| RedactError(e.to_string()))?;
    let names: HashMap<Name, &Schema> = resolved.get_names().clone();
    walk(schema, value, &Walk { names, also, keep: false })
}

/// `value` (decoded with `schema`) as JSON, every field included — the
/// sensitive ones too.
pub fn plain_json(schema: &Schema, value: &Value) -> Result<Json, RedactError> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| RedactError(e.to_string()))?;
    let names: HashMap<Name, &Schema> = resolved.get_names().clone();
    walk(schema, value, &Walk { names, also: &Marks::default(), keep: true })
}

struct Walk<'a> {
    names: HashMap<Name, &'a Schema>,
    also: &'a Marks,
    /// Sensitive fields kept.
    keep: bool,
}

fn walk(schema: &Schema, value: &Value, ctx: &Walk<'_>) -> Result<Json, RedactError> {
    match (schema, value) {
        (Schema::Ref { name }, _) => {
            let target = ctx.names.get(name).ok_or_else(|| RedactError(format!("unknown named type {name}")))?;
            walk(target, value, ctx)
        }
        (Schema::Record(record), Value::Record(fields)) => {
            let mut out = Map::new();
            for (field_name, field_value) in fields {
                let field = record
                    .lookup
                    .get(field_name)
                    .and_then(|i| record.fields.get(*i))
                    .ok_or_else(|| RedactError(format!("field {field_name} is not in {}", record.name)))?;
                if !ctx.keep && (is_marked(field) || ctx.also.contains(&record.name, field_name)) {
                    continue;
                }
                out.insert(field_name.clone(), walk(&field.schema, field_value, ctx)?);
            }
            Ok(Json::Object(out))
        }
        (Schema::Union(union), Value::Union(branch, inner)) => {
            let schema = union
                .variants()
                .get(*branch as usize)
                .ok_or_else(|| RedactError(format!("union branch {branch} does not exist")))?;
            walk(schema, inner, ctx)
        }
        (Schema::Array(array), Value::Array(items)) => {
            items.iter().map(|item| walk(&array.items, item, ctx)).collect::<Result<_, _>>().map(Json::Array)
        }
        (Schema::Map(map), Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| walk(&map.types, v, ctx).map(|v| (k.clone(), v)))
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
        let json = redacted_json(&schema, &value, &Marks::default()).expect("redact");
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
    fn a_field_this_build_marks_is_dropped_from_messages_written_before_it_was_marked() {
        let unmarked = SCHEMA.replace(r#","orderflow.sensitive":true"#, "");
        let writer = Schema::parse_str(&unmarked).expect("writer");
        let value = Value::Record(vec![
            ("id".into(), Value::String("o1".into())),
            ("email".into(), Value::String("ada@example.com".into())),
            ("lines".into(), Value::Array(vec![line("A", "4111-1")])),
            ("contact".into(), Value::Union(0, Box::new(Value::Null))),
            ("previous".into(), Value::Union(0, Box::new(Value::Null))),
            ("extra".into(), Value::Map(Default::default())),
            ("public".into(), Value::String("shown".into())),
        ]);
        let stored = redacted_json(&writer, &value, &Marks::default()).expect("redact").to_string();
        assert!(stored.contains("ada@example.com"), "unmarked writer, no other marks: kept");
        let now = Marks::of([&Schema::parse_str(SCHEMA).expect("marked")]);
        let stored = redacted_json(&writer, &value, &now).expect("redact").to_string();
        assert!(!stored.contains("ada@example.com") && !stored.contains("4111"), "{stored}");
        assert!(stored.contains("shown"), "{stored}");
    }

    #[test]
    fn the_users_events_keep_no_pii() {
        // The committed schemas, as the registry would serve them.
        for file in crate::all_schemas().into_iter().filter(|s| s.namespace().ends_with(".events")) {
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
