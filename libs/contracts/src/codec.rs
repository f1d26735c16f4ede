use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};

use crate::compatibility::Config;
use crate::personal::{self, KeyError, Lookup, Personal, Plans};
use crate::{Contract, Family, SchemaFile};

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The registry could not be reached or answered an error. `retriable`
    /// says whether trying again may help (network) or not (unknown id).
    #[error("schema registry: {message}")]
    Registry { message: String, retriable: bool },
    #[error("payload is not a Confluent-framed Avro message: {0}")]
    Malformed(String),
    #[error("no {family} message is called {full_name}")]
    UnknownType { family: &'static str, full_name: String },
    #[error("{full_name} does not match this build's schema: {problem}")]
    Mismatch { full_name: String, problem: String },
    /// The data keys a message's personal fields need could not be had.
    #[error("personal fields: {0}")]
    Keys(#[from] KeyError),
}

impl CodecError {
    /// Whether retrying may help (the registry is unreachable) rather than
    /// the message being bad.
    pub fn is_transient(&self) -> bool {
        matches!(self, CodecError::Registry { retriable: true, .. } | CodecError::Keys(_))
    }
}

fn registry_error(error: SRCError) -> CodecError {
    CodecError::Registry { message: error.to_string(), retriable: error.retriable }
}

/// This build's schemas, parsed once, by full name.
static READERS: LazyLock<HashMap<&'static str, Schema>> = LazyLock::new(|| {
    crate::all_schemas()
        .into_iter()
        .map(|s| (s.full_name, Schema::parse_str(s.text).expect("schemas/ holds valid Avro (tested)")))
        .collect()
});

/// This build's schema of `C`.
fn reader<C: Contract>() -> Result<&'static Schema, CodecError> {
    READERS.get(C::FULL_NAME).ok_or_else(|| CodecError::Mismatch {
        full_name: C::FULL_NAME.to_owned(),
        problem: "not among this build's schemas".into(),
    })
}

/// Resolves a decoded value to this build's schema of `T` and deserialises it.
pub(crate) fn resolve<T: Contract>(value: Value) -> Result<T, CodecError> {
    let mismatch = |problem: String| CodecError::Mismatch { full_name: T::FULL_NAME.to_owned(), problem };
    let reader = READERS.get(T::FULL_NAME).ok_or_else(|| mismatch("not among this build's schemas".into()))?;
    let resolved = value.resolve(reader).map_err(|e| mismatch(e.to_string()))?;
    apache_avro::from_value::<T>(&resolved).map_err(|e| mismatch(e.to_string()))
}

/// A message decoded with its writer's schema, whatever its type: for
/// consumers that read every message generically (the audit log).
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The writer schema's full name (its registry subject).
    pub full_name: String,
    /// The writer schema, as the registry serves it (custom attributes such
    /// as `orderflow.sensitive` included).
    pub schema: Schema,
    /// The value in the writer's schema, not resolved to this build's.
    pub value: Value,
}

/// Encodes and decodes orderflow messages in the Confluent wire format
/// (magic byte, schema id, Avro body). Schemas are registered on first use
/// and their ids cached. With [`Codec::with_personal`] it seals and opens
/// personal fields ([`crate::personal`]).
pub struct Codec {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    /// For the `/config` calls `schema_registry_converter` does not make.
    registry_url: String,
    personal: Personal,
    /// Where the personal fields of each schema are.
    plans: Plans,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

fn strategy(full_name: &str, text: &str) -> SubjectNameStrategy {
    SubjectNameStrategy::RecordNameStrategyWithSchema(SuppliedSchema::new(
        Some(full_name.to_owned()),
        SchemaType::Avro,
        text.to_owned(),
    ))
}

/// The payload, if it is Confluent-framed (magic byte 0, a 4-byte schema id).
fn framed(payload: Option<&[u8]>) -> Result<&[u8], CodecError> {
    let payload = payload.ok_or_else(|| CodecError::Malformed("the message has no value".into()))?;
    if payload.len() < 5 || payload[0] != 0 {
        return Err(CodecError::Malformed(format!(
            "{} bytes without the Confluent magic byte and schema id",
            payload.len()
        )));
    }
    Ok(payload)
}

impl Codec {
    pub fn new(registry_url: &str) -> Self {
        let registry_url = registry_url.trim_end_matches('/').to_owned();
        let settings = SrSettings::new(registry_url.clone());
        Self {
            encoder: AvroEncoder::new(settings.clone()),
            decoder: AvroDecoder::new(settings),
            registry_url,
            personal: Personal::default(),
            plans: Plans::default(),
        }
    }

    /// This codec seals the personal fields of the messages it encodes
    /// and opens those it decodes with the key stores of `personal`.
    /// Without a store to open with, sealed values decode as empty.
    pub fn with_personal(mut self, personal: Personal) -> Self {
        self.personal = personal;
        self
    }

    /// Registers every schema of `schemas/` (start-up: a schema the registry
    /// refuses stops the service before it writes anything). Event subjects
    /// are set to `BACKWARD_TRANSITIVE` first, so the registry checks a new
    /// event schema against every earlier version, not only the latest.
    pub async fn register_all(&self) -> Result<(), CodecError> {
        let config = Config::new(&self.registry_url)?;
        for schema in crate::all_schemas().iter().filter(|s| s.is_event()) {
            config.require_event_level(schema.full_name).await?;
        }
        for SchemaFile { full_name, text, .. } in crate::all_schemas() {
            self.encoder.get_schema_and_id(full_name, strategy(full_name, text)).await.map_err(|e| {
                self.encoder.remove_errors_from_cache();
                registry_error(e)
            })?;
        }
        Ok(())
    }

    /// Encodes `message`; the personal fields of a message about a person
    /// sealed with the person's key when this codec seals.
    pub async fn encode<C: Contract>(&self, message: &C) -> Result<Vec<u8>, CodecError> {
        let strategy = strategy(C::FULL_NAME, C::SCHEMA);
        let encoded = match self.sealed(message).await? {
            Some(value) => self.encoder.encode_value(value, &strategy).await,
            None => self.encoder.encode_struct(message, &strategy).await,
        };
        encoded.map_err(|e| {
            if e.retriable {
                self.encoder.remove_errors_from_cache();
            }
            registry_error(e)
        })
    }

    /// `message` as an Avro value with its personal strings sealed with its
    /// subject's key, when this codec seals and `message` has any; `None`:
    /// it is encoded as it is.
    async fn sealed<C: Contract>(&self, message: &C) -> Result<Option<Value>, CodecError> {
        let (Some(subject), Some(store)) = (message.subject(), &self.personal.seal) else { return Ok(None) };
        let plan = self.plans.get(C::FULL_NAME, C::FULL_NAME, reader::<C>()?);
        if plan.is_empty() {
            return Ok(None);
        }
        let mut value = apache_avro::to_value(message)
            .map_err(|e| CodecError::Mismatch { full_name: C::FULL_NAME.to_owned(), problem: e.to_string() })?;
        // Nothing personal to seal (an erasure's empty credentials): no
        // key is asked for.
        if personal::needs_sealing(&plan, &mut value) {
            let key = match store.sealing_key(subject).await? {
                Lookup::Key(key) => Some(key),
                Lookup::Erased => None,
            };
            personal::seal(&plan, &mut value, key.as_deref());
        }
        Ok(Some(value))
    }

    /// Decodes a framed payload with the writer schema from the registry,
    /// without resolving it to any type of this build: a message of a type
    /// this build does not know is decoded too.
    pub async fn decode_with_writer(&self, payload: Option<&[u8]>) -> Result<Decoded, CodecError> {
        let payload = framed(payload)?;
        let decoded = self
            .decoder
            .decode_with_schema(Some(payload))
            .await
            .map_err(|e| self.decode_error(e))?
            .ok_or_else(|| CodecError::Malformed("the message has no value".into()))?;
        let full_name = decoded
            .name
            .map(|n| n.fullname(None))
            .ok_or_else(|| CodecError::Malformed("the writer schema is not a named record".into()))?;
        Ok(Decoded { full_name, schema: decoded.schema.parsed.clone(), value: decoded.value })
    }

    fn decode_error(&self, e: SRCError) -> CodecError {
        if e.retriable {
            self.decoder.remove_errors_from_cache();
            registry_error(e)
        } else {
            CodecError::Malformed(e.to_string())
        }
    }

    /// Decodes a framed payload into the family's variant its schema names,
    /// its sealed personal values opened (or, without keys, withheld).
    pub async fn decode<F: Family>(&self, payload: Option<&[u8]>) -> Result<F, CodecError> {
        let payload = framed(payload)?;
        let decoded = self.decoder.decode_with_schema(Some(payload)).await.map_err(|e| self.decode_error(e))?;
        let decoded = decoded.ok_or_else(|| CodecError::Malformed("the message has no value".into()))?;
        let name = decoded
            .name
            .map(|n| n.fullname(None))
            .ok_or_else(|| CodecError::Malformed("the writer schema is not a named record".into()))?;
        let mut value = decoded.value;
        let plan = self.plans.get(&format!("id:{}", decoded.schema.id), &name, &decoded.schema.parsed);
        if !plan.is_empty() {
            let ids = personal::key_ids(&plan, &mut value);
            let mut keys = HashMap::with_capacity(ids.len());
            if let Some(store) = &self.personal.open {
                for id in ids {
                    let lookup = store.opening_key(&id).await?;
                    keys.insert(id, lookup);
                }
            }
            personal::open(&plan, &mut value, &keys);
        }
        F::from_avro(&name, value)
    }
}
