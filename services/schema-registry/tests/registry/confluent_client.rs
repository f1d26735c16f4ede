//! Real Confluent clients against the registry: `confluent-kafka`'s Python
//! `SchemaRegistryClient` and `AvroSerializer`, and `schema_registry_converter`.

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};

use crate::{Registry, USER_V1, USER_V2_REQUIRED};

#[tokio::test]
async fn schema_registry_converter_registers_encodes_and_decodes() {
    let r = Registry::start().await;
    let settings = SrSettings::new(r.handle.url.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let strategy = SubjectNameStrategy::RecordNameStrategyWithSchema(SuppliedSchema::new(
        Some("t.User".into()),
        SchemaType::Avro,
        USER_V1.into(),
    ));
    let bytes = encoder.encode(vec![("id", Value::String("u1".into()))], strategy).await.expect("encode");
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    assert_eq!(r.get("/subjects/t.User/versions/latest").await.1["id"], serde_json::json!(id));

    let decoded = AvroDecoder::new(settings).decode(Some(&bytes)).await.expect("decode");
    assert_eq!(decoded.value, Value::Record(vec![("id".into(), Value::String("u1".into()))]));
}

/// Runs a Python script with the Confluent client from the test venv.
fn python(script: &str, args: &[&str]) -> std::process::Output {
    let python = std::env::var("OF_TEST_PYTHON").expect("OF_TEST_PYTHON is not set: run the tests with scripts/test");
    std::process::Command::new(python).args(["-W", "ignore", "-c", script]).args(args).output().expect("run python")
}

#[tokio::test]
async fn confluent_python_client_works_unchanged() {
    let r = Registry::start().await;
    let script = r#"
import sys, json
from confluent_kafka.schema_registry import SchemaRegistryClient, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroSerializer, AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField

c = SchemaRegistryClient({"url": sys.argv[1]})
V1, V2 = sys.argv[2], sys.argv[3]
v1 = Schema(V1, "AVRO")
sid = c.register_schema("py-value", v1)
assert c.register_schema("py-value", v1) == sid
assert c.get_subjects() == ["py-value"], c.get_subjects()
assert c.get_versions("py-value") == [1]
latest = c.get_latest_version("py-value")
assert latest.schema_id == sid and latest.version == 1, latest
assert json.loads(c.get_schema(sid).schema_str)["name"] == "User"
found = c.lookup_schema("py-value", v1)
assert found.version == 1
assert c.test_compatibility("py-value", Schema(V2, "AVRO")) is False
try:
    c.register_schema("py-value", Schema(V2, "AVRO"))
    raise SystemExit("incompatible schema was accepted")
except SchemaRegistryError as e:
    assert e.http_status_code == 409, e
try:
    c.get_version("py-value", 9)
    raise SystemExit("missing version was found")
except SchemaRegistryError as e:
    assert e.error_code == 40402, e
c.set_compatibility("py-value", "NONE")
assert c.get_compatibility("py-value") == "NONE"

ser = AvroSerializer(c, V1, conf={"auto.register.schemas": True})
ctx = SerializationContext("py", MessageField.VALUE)
data = ser({"id": "u7"}, ctx)
assert data[0] == 0
des = AvroDeserializer(c)
assert des(data, ctx) == {"id": "u7"}
assert c.delete_subject("py-value") == [1]
assert c.delete_subject("py-value", permanent=True) == [1]
print("confluent client ok")
"#;
    let url = r.handle.url.clone();
    let output = tokio::task::spawn_blocking(move || python(script, &[&url, USER_V1, USER_V2_REQUIRED]))
        .await
        .expect("python task");
    assert!(
        output.status.success(),
        "python client failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
