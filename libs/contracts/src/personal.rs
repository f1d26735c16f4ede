//! Personal fields sealed with their subject's data key (crypto-shredding).
//!
//! An event that carries a person's data names its *subject* (the user
//! whose data it is, [`Contract::subject`](crate::Contract::subject)). The
//! [`Codec`](crate::Codec) seals every string inside a field its schema
//! marks `"orderflow.sensitive": true` with the subject's [`DataKey`]
//! before the event is written, and opens them when a consumer decodes
//! it, so domain code sees clear text or nothing, never ciphertext.
//! Destroying the subject's key (erasure) makes every sealed value of the
//! person unreadable on every topic, in every copy, forever.
//!
//! A sealed value stays an Avro `string` (no schema changes type; every
//! Avro reader still decodes the event):
//! `enc:v1:<key id>:<nonce>:<ciphertext>`, nonce and ciphertext in
//! unpadded base64url; AES-256-GCM with a random 96-bit nonce and, as
//! associated data, the key id, the message's full name and the field's
//! path, so a sealed value cannot be moved to another field, another
//! message type or another person.
//!
//! Opening: a value whose key is destroyed (or unknown) opens as
//! [`Opened::Erased`]; a value that fails authentication as
//! [`Opened::Corrupt`]; both reach domain code as an empty string, never
//! as an error or a dead letter, and are counted. A process that does not hold keys (it does
//! not need anyone's personal data) gets every sealed value withheld the
//! same way. A value without the prefix is clear text written before
//! sealing existed, and stays as it is.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prometheus::{IntCounterVec, register_int_counter_vec};

use crate::json::SENSITIVE;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "enc:v1:";

/// Bytes of a data key (and of a key-encryption key): AES-256.
pub const KEY_LEN: usize = 32;

const NONCE_LEN: usize = 12;

/// Personal values sealed and opened, by `result`: `sealed`, `opened`,
/// `erased` (the key is destroyed), `withheld` (this process holds no
/// keys), `corrupt` (failed authentication).
pub static VALUES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "orderflow_personal_values_total",
        "Personal field values sealed with their subject's data key, and opened, found erased, withheld or corrupt.",
        &["result"]
    )
    .expect("the personal values counter is registered once")
});

/// One subject's data key. Its bytes never leave the process except to
/// the key store; `Debug` shows only the id.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    bytes: [u8; KEY_LEN],
    cipher: Aes256Gcm,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl DataKey {
    /// The key `id` with the key bytes `key` (32 of them).
    pub fn new(id: impl Into<String>, key: &[u8]) -> Result<Self, KeyError> {
        let id = id.into();
        if key.len() != KEY_LEN || id.is_empty() || id.contains(':') {
            return Err(KeyError::Invalid(format!("data key {id:?}: {} bytes, {KEY_LEN} wanted", key.len())));
        }
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let bytes = key.try_into().map_err(|_| KeyError::Invalid(format!("data key {id:?}: not {KEY_LEN} bytes")))?;
        Ok(Self { id, bytes, cipher })
    }

    /// Fresh random key bytes.
    pub fn generate_bytes() -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        key
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's bytes: for the key service that hands it to the
    /// processes that may read its subject's data, nothing else.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = aad(&self.id, context);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain.as_bytes(), aad: aad.as_bytes() })
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        format!("{SEALED_PREFIX}{}:{}:{}", self.id, URL_SAFE_NO_PAD.encode(nonce), URL_SAFE_NO_PAD.encode(sealed))
    }

    fn open(&self, context: &str, sealed: &Sealed<'_>) -> Option<String> {
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD.decode(sealed.nonce).ok()?.try_into().ok()?;
        let body = URL_SAFE_NO_PAD.decode(sealed.body).ok()?;
        let aad = aad(&self.id, context);
        let plain = self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: &body, aad: aad.as_bytes() }).ok()?;
        String::from_utf8(plain).ok()
    }
}

fn aad(key_id: &str, context: &str) -> String {
    format!("{key_id}|{context}")
}

/// A sealed value's parts.
struct Sealed<'a> {
    key_id: &'a str,
    nonce: &'a str,
    body: &'a str,
}

fn parse(value: &str) -> Option<Sealed<'_>> {
    let mut parts = value.strip_prefix(SEALED_PREFIX)?.splitn(3, ':');
    Some(Sealed { key_id: parts.next()?, nonce: parts.next()?, body: parts.next()? })
}

/// Whether `value` is a sealed value.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// A key store's answer.
#[derive(Debug, Clone)]
pub enum Lookup {
    Key(Arc<DataKey>),
    /// The key was destroyed: its subject is erased.
    Erased,
}

impl From<DataKey> for Lookup {
    fn from(key: DataKey) -> Self {
        Lookup::Key(Arc::new(key))
    }
}

/// Why a key store could not answer. Always worth retrying: the message
/// that needs the key waits (it is not dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

/// A boxed future of a key store.
pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Result<Lookup, KeyError>> + Send + 'a>>;

/// Where data keys live. The user service owns them (its database, each
/// wrapped by a key-encryption key); other processes reach them over
/// HTTP. A KMS can stand behind the same trait.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// The subject's key, created on first use; [`Lookup::Erased`] once the
    /// subject is erased (nothing personal is written for them again).
    fn sealing_key<'a>(&'a self, subject: &'a str) -> KeyFuture<'a>;
    /// The key with this id; [`Lookup::Erased`] if it is destroyed or was
    /// never known.
    fn opening_key<'a>(&'a self, key_id: &'a str) -> KeyFuture<'a>;
}

/// What a codec does with personal fields.
#[derive(Clone, Default)]
pub struct Personal {
    /// Seals the personal fields of what is encoded (a producer of events
    /// about people). None: encoded as they are.
    pub seal: Option<Arc<dyn KeyStore>>,
    /// Opens sealed values of what is decoded. None: they are withheld.
    pub open: Option<Arc<dyn KeyStore>>,
}

impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Personal").field("seals", &self.seal.is_some()).field("opens", &self.open.is_some()).finish()
    }
}

/// How a sealed value opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Clear(String),
    /// Its key is destroyed: the subject is erased.
    Erased,
    /// This process holds no keys.
    Withheld,
    /// It did not authenticate (tampered with, or a key id reused).
    Corrupt,
}

/// Where the sensitive strings of a schema are.
#[derive(Debug)]
enum Node {
    /// Every string inside (a marked field).
    All,
    Record(Vec<(String, Node)>),
    Array(Box<Node>),
    Map(Box<Node>),
    /// By branch index.
    Union(Vec<Option<Node>>),
}

fn plan(schema: &Schema, names: &HashMap<Name, &Schema>, visiting: &mut HashSet<Name>) -> Option<Node> {
    match schema {
        Schema::Ref { name } => {
            if !visiting.insert(name.clone()) {
                return None;
            }
            let node = names.get(name).and_then(|target| plan(target, names, visiting));
            visiting.remove(name);
            node
        }
        Schema::Record(record) => {
            visiting.insert(record.name.clone());
            let fields: Vec<(String, Node)> = record
                .fields
                .iter()
                .filter_map(|field| {
                    let node = if field.custom_attributes.get(SENSITIVE) == Some(&serde_json::Value::Bool(true)) {
                        Some(Node::All)
                    } else {
                        plan(&field.schema, names, visiting)
                    };
                    node.map(|n| (field.name.clone(), n))
                })
                .collect();
            visiting.remove(&record.name);
            (!fields.is_empty()).then_some(Node::Record(fields))
        }
        Schema::Array(array) => plan(&array.items, names, visiting).map(|n| Node::Array(Box::new(n))),
        Schema::Map(map) => plan(&map.types, names, visiting).map(|n| Node::Map(Box::new(n))),
        Schema::Union(union) => {
            let branches: Vec<Option<Node>> = union.variants().iter().map(|v| plan(v, names, visiting)).collect();
            branches.iter().any(Option::is_some).then_some(Node::Union(branches))
        }
        _ => None,
    }
}

/// The sensitive strings of messages of one schema, or none.
#[derive(Debug)]
pub(crate) struct Plan {
    full_name: String,
    root: Option<Node>,
}

impl Plan {
    pub(crate) fn of(full_name: &str, schema: &Schema) -> Self {
        let root = ResolvedSchema::try_from(schema)
            .ok()
            .and_then(|resolved| plan(schema, resolved.get_names(), &mut HashSet::new()));
        Self { full_name: full_name.to_owned(), root }
    }

    /// Whether messages of this schema carry no personal field.
    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Calls `f` with each sensitive string of `value` and its context
    /// (the message's full name and the field's path).
    fn visit(&self, value: &mut Value, f: &mut dyn FnMut(&str, &mut String)) {
        if let Some(root) = &self.root {
            let mut path = self.full_name.clone();
            visit(root, value, &mut path, f);
        }
    }
}

fn visit(node: &Node, value: &mut Value, path: &mut String, f: &mut dyn FnMut(&str, &mut String)) {
    match (node, value) {
        (Node::All, value) => every_string(value, path, f),
        (Node::Record(fields), Value::Record(values)) => {
            for (name, node) in fields {
                if let Some((_, inner)) = values.iter_mut().find(|(n, _)| n == name) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(name);
                    visit(node, inner, path, f);
                    path.truncate(len);
                }
            }
        }
        (Node::Array(node), Value::Array(items)) => items.iter_mut().for_each(|item| visit(node, item, path, f)),
        (Node::Map(node), Value::Map(entries)) => entries.values_mut().for_each(|item| visit(node, item, path, f)),
        (Node::Union(branches), Value::Union(index, inner)) => {
            if let Some(Some(node)) = branches.get(*index as usize) {
                visit(node, inner, path, f);
            }
        }
        _ => {}
    }
}

fn every_string(value: &mut Value, path: &mut String, f: &mut dyn FnMut(&str, &mut String)) {
    match value {
        Value::String(s) => f(path, s),
        Value::Union(_, inner) => every_string(inner, path, f),
        Value::Array(items) => items.iter_mut().for_each(|item| every_string(item, path, f)),
        Value::Map(entries) => entries.values_mut().for_each(|item| every_string(item, path, f)),
        Value::Record(fields) => {
            for (name, inner) in fields {
                let len = path.len();
                path.push('.');
                path.push_str(name);
                every_string(inner, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Whether `value` has a personal string to seal (one not empty and not
/// sealed already): if not, no key is needed.
pub(crate) fn needs_sealing(plan: &Plan, value: &mut Value) -> bool {
    let mut needs = false;
    plan.visit(value, &mut |_, s| needs |= !s.is_empty() && !is_sealed(s));
    needs
}

/// Seals the personal strings of `value` with `key`; with no key (the
/// subject is erased) empties them. Empty strings stay empty.
pub(crate) fn seal(plan: &Plan, value: &mut Value, key: Option<&DataKey>) {
    let mut sealed = 0;
    plan.visit(value, &mut |context, s| {
        if s.is_empty() || is_sealed(s) {
            return;
        }
        *s = match key {
            Some(key) => {
                sealed += 1;
                key.seal(context, s)
            }
            None => String::new(),
        };
    });
    VALUES.with_label_values(&["sealed"]).inc_by(sealed);
}

/// The key ids the sealed values of `value` name.
pub(crate) fn key_ids(plan: &Plan, value: &mut Value) -> HashSet<String> {
    let mut ids = HashSet::new();
    plan.visit(value, &mut |_, s| {
        if let Some(sealed) = parse(s) {
            ids.insert(sealed.key_id.to_owned());
        }
    });
    ids
}

/// Opens the sealed strings of `value` with `keys` (by id; a missing id is
/// withheld); what does not open becomes empty.
pub(crate) fn open(plan: &Plan, value: &mut Value, keys: &HashMap<String, Lookup>) {
    let mut counts = [0u64; 4];
    plan.visit(value, &mut |context, s| {
        let Some(sealed) = parse(s) else { return };
        let opened = match keys.get(sealed.key_id) {
            None => Opened::Withheld,
            Some(Lookup::Erased) => Opened::Erased,
            Some(Lookup::Key(key)) => key.open(context, &sealed).map_or(Opened::Corrupt, Opened::Clear),
        };
        let slot = match opened {
            Opened::Clear(plain) => {
                *s = plain;
                counts[0] += 1;
                return;
            }
            Opened::Erased => 1,
            Opened::Withheld => 2,
            Opened::Corrupt => {
                tracing::warn!(
                    field = context,
                    key_id = sealed.key_id,
                    "a sealed value did not authenticate: read as empty"
                );
                3
            }
        };
        counts[slot] += 1;
        s.clear();
    });
    for (result, count) in ["opened", "erased", "withheld", "corrupt"].into_iter().zip(counts) {
        if count > 0 {
            VALUES.with_label_values(&[result]).inc_by(count);
        }
    }
}

/// Plans by schema id (writer schemas) or full name (this build's), made
/// once each.
#[derive(Debug, Default)]
pub(crate) struct Plans(Mutex<HashMap<String, Arc<Plan>>>);

impl Plans {
    pub(crate) fn get(&self, cache_key: &str, full_name: &str, schema: &Schema) -> Arc<Plan> {
        let mut plans = self.0.lock().expect("plans lock");
        Arc::clone(plans.entry(cache_key.to_owned()).or_insert_with(|| Arc::new(Plan::of(full_name, schema))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address_schema() -> Schema {
        Schema::parse_str(
            r#"{"type": "record", "name": "Placed", "namespace": "t", "fields": [
                {"name": "id", "type": "string"},
                {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
                    {"name": "sku", "type": "string"},
                    {"name": "gift_note", "type": ["null", "string"], "orderflow.sensitive": true}]}}},
                {"name": "address", "orderflow.sensitive": true, "type": {"type": "record", "name": "Address", "fields": [
                    {"name": "line1", "type": "string"}, {"name": "line2", "type": ["null", "string"]}]}},
                {"name": "billing", "type": "Address"}
            ]}"#,
        )
        .expect("test value")
    }

    fn value() -> Value {
        let address = |l1: &str| {
            Value::Record(vec![
                ("line1".into(), Value::String(l1.into())),
                ("line2".into(), Value::Union(1, Box::new(Value::String("flat 2".into())))),
            ])
        };
        Value::Record(vec![
            ("id".into(), Value::String("o-1".into())),
            (
                "lines".into(),
                Value::Array(vec![Value::Record(vec![
                    ("sku".into(), Value::String("sku-1".into())),
                    ("gift_note".into(), Value::Union(1, Box::new(Value::String("for Ann".into())))),
                ])]),
            ),
            ("address".into(), address("1 Main St")),
            ("billing".into(), address("2 Side St")),
        ])
    }

    fn strings(value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Union(_, inner) => strings(inner),
            Value::Array(items) => items.iter().flat_map(strings).collect(),
            Value::Record(fields) => fields.iter().flat_map(|(_, v)| strings(v)).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn seals_marked_fields_at_any_depth_and_opens_them_back() {
        let plan = Plan::of("t.Placed", &address_schema());
        let key = DataKey::new("k1", &DataKey::generate_bytes()).expect("test value");
        let mut sealed = value();
        seal(&plan, &mut sealed, Some(&key));
        let texts = strings(&sealed);
        assert_eq!(texts[0], "o-1");
        assert_eq!(texts[1], "sku-1");
        assert!(texts[2].starts_with("enc:v1:k1:"), "the gift note inside an array is sealed: {texts:?}");
        assert!(texts[3].starts_with("enc:v1:k1:") && texts[4].starts_with("enc:v1:k1:"), "{texts:?}");
        assert_eq!(&texts[5..], ["2 Side St", "flat 2"], "an unmarked use of the same record stays clear");

        assert_eq!(key_ids(&plan, &mut sealed), HashSet::from(["k1".to_owned()]));
        let mut opened = sealed.clone();
        open(&plan, &mut opened, &HashMap::from([("k1".to_owned(), Lookup::from(key.clone()))]));
        assert_eq!(opened, value());

        let mut erased = sealed.clone();
        open(&plan, &mut erased, &HashMap::from([("k1".to_owned(), Lookup::Erased)]));
        assert_eq!(strings(&erased), ["o-1", "sku-1", "", "", "", "2 Side St", "flat 2"]);
        let mut withheld = sealed;
        open(&plan, &mut withheld, &HashMap::new());
        assert_eq!(strings(&withheld), ["o-1", "sku-1", "", "", "", "2 Side St", "flat 2"]);
    }

    #[test]
    fn a_sealed_value_opens_only_where_and_with_what_it_was_sealed() {
        let key = DataKey::new("k1", &DataKey::generate_bytes()).expect("test value");
        let sealed = key.seal("t.Placed.address.line1", "1 Main St");
        let parts = parse(&sealed).expect("test value");
        assert_eq!(key.open("t.Placed.address.line1", &parts).as_deref(), Some("1 Main St"));
        assert_eq!(key.open("t.Placed.address.line2", &parts), None, "moved to another field");
        let other = DataKey::new("k1", &DataKey::generate_bytes()).expect("test value");
        assert_eq!(other.open("t.Placed.address.line1", &parts), None, "another key under the same id");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open("t.Placed.address.line1", &parse(&tampered).expect("test value")), None);
        assert_ne!(key.seal("c", "same"), key.seal("c", "same"), "a fresh nonce each time");
    }

    #[test]
    fn erased_subjects_get_nothing_written_and_clear_text_from_before_stays_readable() {
        let plan = Plan::of("t.Placed", &address_schema());
        let mut value = value();
        seal(&plan, &mut value, None);
        assert_eq!(strings(&value), ["o-1", "sku-1", "", "", "", "2 Side St", "flat 2"]);
        let mut clear = self::value();
        open(&plan, &mut clear, &HashMap::new());
        assert_eq!(clear, self::value(), "values without the prefix are not touched");
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert!(DataKey::new("k", &[0u8; 16]).is_err());
        assert!(DataKey::new("a:b", &[0u8; 32]).is_err());
        let key = DataKey::new("k", &[7u8; 32]).expect("test value");
        assert_eq!(format!("{key:?}"), "DataKey { id: \"k\", .. }");
    }
}
