//! Key-encryption keys: what wraps each data key at rest.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use orderflow_config::Secret;
use orderflow_contracts::personal::KEY_LEN;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("keys.keks: {0}")]
    Invalid(String),
    #[error("data key {key_id} is wrapped by key-encryption key `{kek_id}`, which the settings do not hold")]
    Unknown { key_id: String, kek_id: String },
    #[error("data key {key_id} does not unwrap with key-encryption key `{kek_id}`")]
    Unwrap { key_id: String, kek_id: String },
}

/// The key-encryption keys: the first wraps, every one unwraps.
pub struct Keks(Vec<(String, Aes256Gcm)>);

impl std::fmt::Debug for Keks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(id, _)| id)).finish()
    }
}

impl Keks {
    /// From the settings' `<id>:<base64 of 32 bytes>` entries.
    pub fn from_settings(keks: &[Secret]) -> Result<Self, KekError> {
        let mut ring = Vec::with_capacity(keks.len());
        for kek in keks {
            let (id, key) =
                kek.expose().split_once(':').ok_or_else(|| KekError::Invalid("an entry has no `<id>:`".into()))?;
            let bytes = STANDARD
                .decode(key)
                .or_else(|_| URL_SAFE.decode(key))
                .map_err(|e| KekError::Invalid(format!("key `{id}` is not base64: {e}")))?;
            if bytes.len() != KEY_LEN {
                return Err(KekError::Invalid(format!("key `{id}` has {} bytes, {KEY_LEN} wanted", bytes.len())));
            }
            if ring.iter().any(|(other, _)| other == id) {
                return Err(KekError::Invalid(format!("key id `{id}` is given twice")));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|e| KekError::Invalid(e.to_string()))?;
            ring.push((id.to_owned(), cipher));
        }
        if ring.is_empty() {
            return Err(KekError::Invalid("no key-encryption key".into()));
        }
        Ok(Self(ring))
    }

    /// The id of the key new data keys are wrapped with.
    pub fn current(&self) -> &str {
        &self.0[0].0
    }

    /// `key` wrapped by the current key-encryption key: nonce and
    /// ciphertext, bound to `key_id`.
    pub fn wrap(&self, key_id: &str, key: &[u8]) -> (String, Vec<u8>) {
        let (kek_id, cipher) = &self.0[0];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: key, aad: key_id.as_bytes() })
            .expect("AES-GCM wraps 32 bytes");
        let mut wrapped = nonce.to_vec();
        wrapped.extend(sealed);
        (kek_id.clone(), wrapped)
    }

    /// The data key `key_id` that `kek_id` wrapped.
    pub fn unwrap(&self, key_id: &str, kek_id: &str, wrapped: &[u8]) -> Result<Vec<u8>, KekError> {
        let cipher = self
            .0
            .iter()
            .find(|(id, _)| id == kek_id)
            .map(|(_, c)| c)
            .ok_or_else(|| KekError::Unknown { key_id: key_id.to_owned(), kek_id: kek_id.to_owned() })?;
        let fail = || KekError::Unwrap { key_id: key_id.to_owned(), kek_id: kek_id.to_owned() };
        if wrapped.len() <= NONCE_LEN {
            return Err(fail());
        }
        let (nonce, body) = wrapped.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
        cipher.decrypt(&Nonce::from(nonce), Payload { msg: body, aad: key_id.as_bytes() }).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(id: &str, byte: u8) -> Secret {
        Secret::new(format!("{id}:{}", STANDARD.encode([byte; 32])))
    }

    #[test]
    fn wraps_with_the_first_and_unwraps_with_any() {
        let old = Keks::from_settings(&[kek("k1", 1)]).expect("test value");
        let (kek_id, wrapped) = old.wrap("key-a", &[9; 32]);
        assert_eq!(kek_id, "k1");
        let rotated = Keks::from_settings(&[kek("k2", 2), kek("k1", 1)]).expect("test value");
        assert_eq!(rotated.unwrap("key-a", "k1", &wrapped).expect("test value"), vec![9; 32]);
        assert_eq!(rotated.current(), "k2");
        assert!(matches!(rotated.unwrap("key-b", "k1", &wrapped), Err(KekError::Unwrap { .. })), "bound to its id");
        let forgotten = Keks::from_settings(&[kek("k2", 2)]).expect("test value");
        assert!(matches!(forgotten.unwrap("key-a", "k1", &wrapped), Err(KekError::Unknown { .. })));
    }

    #[test]
    fn refuses_bad_entries_by_name() {
        for (entries, says) in [
            (vec![Secret::new("no-colon")], "no `<id>:`"),
            (vec![Secret::new("k:!!!")], "not base64"),
            (vec![Secret::new(format!("k:{}", STANDARD.encode([1; 16])))], "16 bytes"),
            (vec![kek("k", 1), kek("k", 2)], "twice"),
            (vec![], "no key-encryption key"),
        ] {
            let error = Keks::from_settings(&entries).expect_err("refused").to_string();
            assert!(error.contains(says), "{error}");
        }
        assert!(!format!("{:?}", Keks::from_settings(&[kek("k", 1)]).expect("test value")).contains("AAA"));
    }
}
