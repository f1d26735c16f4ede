//! Passwords and tokens.
//!
//! - [`hash_password`] / [`verify_password`]: argon2id in PHC string form.
//!   Plaintext passwords exist only inside the ingress, only for the
//!   duration of a request; what travels (on `users.commands` and
//!   `users.credentials` only) is the hash.
//! - [`Tokens`]: HS256 JWTs with `sub`, `roles`, `exp`, `iat`, `iss`.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("token could not be issued: {0}")]
    Issue(String),
    #[error("token is expired")]
    Expired,
    #[error("token is invalid: {0}")]
    Invalid(String),
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(plain: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `plain` matches `hash`. A malformed hash never matches.
pub fn verify_password(plain: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(plain.as_bytes(), &parsed).is_ok())
}

/// argon2id with a work area that is kept and reused across hashes.
///
/// Each argon2id hash needs its memory cost (19 MiB by default) of blocks.
/// [`hash_password`] and [`verify_password`] allocate them anew each time,
/// and malloc keeps freed blocks in the arena of the thread that freed them:
/// a process hashing on many threads grows by tens of MiB per thread. A
/// `Hasher` per hashing thread holds exactly one work area, so memory for
/// hashing is one area per hashing thread, whatever the load.
#[derive(Default)]
pub struct Hasher {
    memory: Vec<argon2::Block>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("blocks", &self.memory.len()).finish()
    }
}

impl Hasher {
    fn area(&mut self, params: &argon2::Params) -> &mut [argon2::Block] {
        let blocks = params.block_count();
        if self.memory.len() < blocks {
            self.memory.resize(blocks, argon2::Block::default());
        }
        &mut self.memory[..blocks]
    }

    /// Like [`hash_password`]: argon2id with the default parameters and a
    /// random salt, in PHC string form.
    pub fn hash(&mut self, plain: &str) -> Result<String, AuthError> {
        let error = |e: &dyn std::fmt::Display| AuthError::Hash(e.to_string());
        let argon = Argon2::default();
        let params = argon.params().clone();
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buffer = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_buffer).map_err(|e| error(&e))?;
        let length = params.output_len().unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
        let memory = self.area(&params);
        let output = argon2::password_hash::Output::init_with(length, |out| {
            argon
                .hash_password_into_with_memory(plain.as_bytes(), salt_bytes, out, &mut *memory)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(|e| error(&e))?;
        let hash = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: argon2::password_hash::ParamsString::try_from(&params).map_err(|e| error(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(hash.to_string())
    }

    /// Like [`verify_password`]: whether `plain` matches `hash` (compared in
    /// constant time); a malformed hash never matches.
    pub fn verify(&mut self, plain: &str, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        let (Ok(algorithm), Ok(params)) =
            (argon2::Algorithm::try_from(parsed.algorithm), argon2::Params::try_from(&parsed))
        else {
            return false;
        };
        let Ok(version) = parsed.version.map(argon2::Version::try_from).transpose() else { return false };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
        let mut salt_buffer = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_buffer) else { return false };
        let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
        let mut out = vec![0u8; expected.len()];
        let memory = self.area(&params);
        if argon.hash_password_into_with_memory(plain.as_bytes(), salt_bytes, &mut out, &mut *memory).is_err() {
            return false;
        }
        argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected)
    }
}

/// What a token may do. A route allows some of these (the ingress's route
/// table); what belongs to whom is checked by the route itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Operators: every user, order and payment.
    Admin,
    /// A person with an account: their own user, orders and payments.
    User,
    /// Automation (client credentials, no user behind it): reads orders and
    /// payments, ships and delivers orders.
    Service,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::User, Role::Service];

    /// The role's name in a token's `roles` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Service => "service",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub roles: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    /// The version of the user's credentials when the token was issued: a
    /// later password change or deactivation (a newer version) revokes it.
    /// Absent on service tokens (and on tokens issued before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
}

/// Issues and checks tokens with one HS256 key.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    ttl_seconds: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("issuer", &self.issuer).field("ttl_seconds", &self.ttl_seconds).finish()
    }
}

impl Tokens {
    pub fn new(secret: &str, issuer: &str, ttl_seconds: i64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            issuer: issuer.to_owned(),
            ttl_seconds,
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    pub fn issue(&self, user_id: &str, roles: &[String]) -> Result<String, AuthError> {
        self.issue_versioned(user_id, roles, None)
    }

    /// A token that the next change of the user's credentials (a version
    /// above `version`) revokes.
    pub fn issue_versioned(&self, user_id: &str, roles: &[String], version: Option<i64>) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            roles: roles.to_vec(),
            iat: now,
            exp: now + self.ttl_seconds,
            iss: self.issuer.clone(),
            ver: version,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Issue(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn a_reusing_hasher_agrees_with_the_allocating_functions() {
        let mut hasher = Hasher::default();
        let mine = hasher.hash("correct horse").expect("hash");
        assert!(mine.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{mine}");
        assert!(verify_password("correct horse", &mine), "the usual verifier accepts it");
        let theirs = hash_password("correct horse").expect("hash");
        assert!(hasher.verify("correct horse", &theirs));
        assert!(hasher.verify("correct horse", &mine), "the area is reused");
        assert!(!hasher.verify("wrong horse", &theirs));
        assert!(!hasher.verify("correct horse", "not a hash"));
        assert_ne!(hasher.hash("correct horse").expect("hash"), mine, "a fresh salt each time");
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let tokens = Tokens::new("secret-one", "orderflow", 60);
        let token = tokens.issue("u1", &["user".into()]).expect("issue");
        let claims = tokens.verify(&token).expect("verify");
        assert_eq!((claims.sub.as_str(), claims.iss.as_str()), ("u1", "orderflow"));
        assert!(claims.exp > claims.iat);
        assert!(matches!(Tokens::new("other", "orderflow", 60).verify(&token), Err(AuthError::Invalid(_))));
        assert!(matches!(Tokens::new("secret-one", "elsewhere", 60).verify(&token), Err(AuthError::Invalid(_))));
        let expired = Tokens::new("secret-one", "orderflow", -10).issue("u1", &[]).expect("issue");
        assert!(matches!(tokens.verify(&expired), Err(AuthError::Expired)));
    }
}
