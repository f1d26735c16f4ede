//! Passwords and tokens.
//!
//! - [`hash_password`] / [`verify_password`]: argon2id in PHC string form.
//!   Plaintext passwords exist only inside the ingress, only for the
//!   duration of a request; what travels (on `users.commands` and
//!   `users.credentials` only) is the hash.
//! - [`Tokens`]: HS256 JWTs with `sub`, `roles`, `exp`, `iat`, `iss`, and
//!   on a user's tokens `ver` (credentials version) and `sid` (session);
//!   `jti` on every token. Tokens without the shape issued here are refused.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, or `service:<client>` ([`SERVICE_PREFIX`]).
    pub sub: String,
    /// The roles when the token was issued: informative for the client
    /// only. The ingress decides access by the roles the read model has
    /// now, so a token forged or issued before a role change grants nothing
    /// the user does not have.
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    /// The version of the user's credentials when the token was issued: a
    /// later password change or deactivation (a newer version) revokes it.
    /// Required on user tokens; absent on service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
    /// [`REFRESH`] for a refresh token; absent (or [`ACCESS`]) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The session (one login) the token belongs to: every access and
    /// refresh token a login and its refreshes issue shares it, so ending
    /// the session (logout, a reused refresh token) revokes them all.
    /// Required on user tokens; absent on service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The token's own id: which refresh token of a session is the current
    /// one (an older one presented again is a reuse). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }

    /// The client id of a service token (`sub` = `service:<client>`);
    /// `None` for a user's token.
    pub fn service_client(&self) -> Option<&str> {
        self.sub.strip_prefix(SERVICE_PREFIX)
    }
}

/// The key id of [`Tokens::new`]'s one key, and the ingress's default.
pub const DEFAULT_KID: &str = "default";

/// What a token is for: `access` (the default, also of tokens without a
/// `typ`) or `refresh` (only good for getting a new access token).
pub const ACCESS: &str = "access";
pub const REFRESH: &str = "refresh";

/// The subject prefix of service (client-credentials) tokens.
pub const SERVICE_PREFIX: &str = "service:";

/// How far in the future a token's `iat` may be: the clocks of the
/// replica that issued it and the one checking it may differ a little;
/// more than this is a forgery or a broken clock, refused either way.
pub const CLOCK_SKEW_SECONDS: i64 = 30;

/// A freshly signed token and what its issuer must remember about it.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub jti: Uuid,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"***")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Clone)]
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(kid: &str, secret: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }
}

/// Issues and checks HS256 tokens. One key signs (its `kid` in every
/// token's header); others are accepted too, so keys rotate without
/// downtime: first every replica accepts the next key, then it signs, and
/// the old one is dropped once the tokens it signed have expired.
///
/// A token is accepted only with the shape this issuer gives its tokens:
/// a `kid` naming an accepted key, a `jti`, a lifetime (`exp - iat`) no
/// longer than the configured one for its type, an `iat` not in the
/// future (beyond [`CLOCK_SKEW_SECONDS`]), and on a user's token `ver` and
/// `sid`. A token that lacks any of these was not issued here (or by a
/// version that no longer counts), so even one signed with a real key
/// cannot skip revocation or live for years.
#[derive(Clone)]
pub struct Tokens {
    signing: Key,
    /// Every key a token may be signed with, the signing one first.
    accepted: Vec<Key>,
    issuer: String,
    ttl_seconds: i64,
    refresh_ttl_seconds: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.accepted.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Tokens")
            .field("signing", &self.signing.kid)
            .field("accepted", &kids)
            .field("issuer", &self.issuer)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("refresh_ttl_seconds", &self.refresh_ttl_seconds)
            .finish()
    }
}

impl Tokens {
    /// One key ([`DEFAULT_KID`]); refresh tokens live a day.
    pub fn new(secret: &str, issuer: &str, ttl_seconds: i64) -> Self {
        Self::with_keys((DEFAULT_KID, secret), &[], issuer, ttl_seconds, 86_400)
    }

    /// `signing` (kid, secret) signs; it and `others` are accepted.
    pub fn with_keys(
        signing: (&str, &str),
        others: &[(&str, &str)],
        issuer: &str,
        ttl_seconds: i64,
        refresh_ttl_seconds: i64,
    ) -> Self {
        let signing = Key::new(signing.0, signing.1);
        let mut accepted = vec![signing.clone()];
        accepted.extend(others.iter().map(|(kid, secret)| Key::new(kid, secret)));
        Self { signing, accepted, issuer: issuer.to_owned(), ttl_seconds, refresh_ttl_seconds }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    pub fn refresh_ttl_seconds(&self) -> i64 {
        self.refresh_ttl_seconds
    }

    /// A user's access token in `session`, revoked by the next change of
    /// the user's credentials (a version above `version`) or the end of
    /// the session.
    pub fn issue_access(
        &self,
        user_id: &str,
        roles: &[String],
        version: i64,
        session: Uuid,
    ) -> Result<Issued, AuthError> {
        self.sign(user_id, roles, Some(version), Some(session), None, self.ttl_seconds)
    }

    /// A refresh token of `session`: good only at the refresh endpoint,
    /// once (it rotates), for `refresh_ttl_seconds`, revoked like the
    /// access token.
    pub fn issue_refresh(
        &self,
        user_id: &str,
        roles: &[String],
        version: i64,
        session: Uuid,
    ) -> Result<Issued, AuthError> {
        self.sign(user_id, roles, Some(version), Some(session), Some(REFRESH.to_owned()), self.refresh_ttl_seconds)
    }

    /// An access token for the machine client `client` (subject
    /// `service:<client>`), without a session: revoked by removing the
    /// client from the configuration.
    pub fn issue_service(&self, client: &str, roles: &[String]) -> Result<Issued, AuthError> {
        self.sign(&format!("{SERVICE_PREFIX}{client}"), roles, None, None, None, self.ttl_seconds)
    }

    fn sign(
        &self,
        sub: &str,
        roles: &[String],
        version: Option<i64>,
        session: Option<Uuid>,
        typ: Option<String>,
        ttl: i64,
    ) -> Result<Issued, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let jti = Uuid::new_v4();
        let claims = Claims {
            sub: sub.to_owned(),
            roles: roles.to_vec(),
            iat: now,
            exp: now + ttl,
            iss: self.issuer.clone(),
            ver: version,
            typ,
            sid: session,
            jti: Some(jti),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing.encoding)
            .map_err(|e| AuthError::Issue(e.to_string()))?;
        Ok(Issued { token, jti, expires_at: claims.exp })
    }

    /// The claims of a valid access token.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.decode(token)?;
        match claims.typ.as_deref() {
            None | Some(ACCESS) => {}
            Some(other) => return Err(AuthError::Invalid(format!("a {other} token is not an access token"))),
        }
        self.check_shape(&claims, self.ttl_seconds)?;
        Ok(claims)
    }

    /// The claims of a valid refresh token (always a user's).
    pub fn verify_refresh(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.decode(token)?;
        if claims.typ.as_deref() != Some(REFRESH) {
            return Err(AuthError::Invalid("not a refresh token".into()));
        }
        if claims.service_client().is_some() {
            return Err(AuthError::Invalid("a service has no refresh token".into()));
        }
        self.check_shape(&claims, self.refresh_ttl_seconds)?;
        Ok(claims)
    }

    /// What every token issued here has (see [`Tokens`]).
    fn check_shape(&self, claims: &Claims, max_lifetime: i64) -> Result<(), AuthError> {
        let invalid = |why: &str| Err(AuthError::Invalid(why.to_owned()));
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime <= 0 || lifetime > max_lifetime {
            return invalid("its lifetime is not the one configured for its type");
        }
        if claims.iat > chrono::Utc::now().timestamp() + CLOCK_SKEW_SECONDS {
            return invalid("issued in the future");
        }
        if claims.jti.is_none() {
            return invalid("no jti");
        }
        if claims.service_client().is_none() && (claims.ver.is_none() || claims.sid.is_none()) {
            return invalid("a user's token without ver or sid");
        }
        Ok(())
    }

    fn decode(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        // Every token issued here names its key: one without a kid was not.
        let kid = header.kid.as_deref().ok_or_else(|| AuthError::Invalid("no kid in the header".into()))?;
        let key = self
            .accepted
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AuthError::Invalid(format!("no key `{kid}` is accepted")))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map(|d| d.claims).map_err(|e| {
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

    fn user_token(tokens: &Tokens) -> String {
        tokens.issue_access("u1", &[], 1, Uuid::new_v4()).expect("issue").token
    }

    #[test]
    fn keys_rotate_by_kid_and_refresh_tokens_are_not_access_tokens() {
        let old = Tokens::with_keys(("k1", "secret-one"), &[("k2", "secret-two")], "orderflow", 60, 600);
        let new = Tokens::with_keys(("k2", "secret-two"), &[("k1", "secret-one")], "orderflow", 60, 600);
        let retired = Tokens::with_keys(("k2", "secret-two"), &[], "orderflow", 60, 600);
        let by_old = user_token(&old);
        let by_new = user_token(&new);
        assert_eq!(jsonwebtoken::decode_header(&by_new).expect("header").kid.as_deref(), Some("k2"));
        for tokens in [&old, &new] {
            tokens.verify(&by_old).expect("during the rotation both keys are accepted");
            tokens.verify(&by_new).expect("on both kinds of replica");
        }
        assert!(matches!(retired.verify(&by_old), Err(AuthError::Invalid(_))), "a retired key is refused");
        retired.verify(&by_new).expect("the new key");
        let session = Uuid::new_v4();
        let refresh = new.issue_refresh("u1", &[], 3, session).expect("refresh");
        assert!(new.verify(&refresh.token).is_err(), "a refresh token is no access token");
        let claims = new.verify_refresh(&refresh.token).expect("refresh");
        assert_eq!((claims.ver, claims.sid, claims.jti), (Some(3), Some(session), Some(refresh.jti)));
        assert!(new.verify_refresh(&by_new).is_err(), "an access token is no refresh token");
        // Forged kid: a key we do not have.
        let stranger = user_token(&Tokens::with_keys(("k9", "secret-nine"), &[], "orderflow", 60, 600));
        assert!(matches!(new.verify(&stranger), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let tokens = Tokens::new("secret-one", "orderflow", 60);
        let session = Uuid::new_v4();
        let issued = tokens.issue_access("u1", &["user".into()], 7, session).expect("issue");
        let claims = tokens.verify(&issued.token).expect("verify");
        assert_eq!((claims.sub.as_str(), claims.iss.as_str()), ("u1", "orderflow"));
        assert_eq!((claims.ver, claims.sid, claims.jti), (Some(7), Some(session), Some(issued.jti)));
        assert_eq!(claims.exp - claims.iat, 60);
        assert_ne!(user_token(&tokens), user_token(&tokens), "every token has its own jti");
        assert!(matches!(Tokens::new("other", "orderflow", 60).verify(&issued.token), Err(AuthError::Invalid(_))));
        assert!(matches!(Tokens::new("secret-one", "elsewhere", 60).verify(&issued.token), Err(AuthError::Invalid(_))));
        let expired = Tokens::new("secret-one", "orderflow", -10).issue_access("u1", &[], 1, session).expect("issue");
        assert!(matches!(tokens.verify(&expired.token), Err(AuthError::Expired)));
        let service = tokens.issue_service("fulfilment", &["service".into()]).expect("service");
        let claims = tokens.verify(&service.token).expect("a service token needs no ver or sid");
        assert_eq!((claims.service_client(), claims.sid), (Some("fulfilment"), None));
    }

    /// Signs `claims` with `secret` as a forger with the key could.
    fn forge(claims: serde_json::Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"secret-one")).expect("encode")
    }

    #[test]
    fn tokens_without_the_issued_shape_are_refused_even_with_the_key() {
        let tokens = Tokens::with_keys(("k1", "secret-one"), &[], "orderflow", 60, 600);
        let now = chrono::Utc::now().timestamp();
        let good = serde_json::json!({
            "sub": "u1", "roles": [], "iat": now, "exp": now + 60, "iss": "orderflow",
            "ver": 1, "sid": Uuid::new_v4(), "jti": Uuid::new_v4(),
        });
        tokens.verify(&forge(good.clone(), Some("k1"))).expect("the shape issued here");
        let without = |field: &str| {
            let mut claims = good.clone();
            claims.as_object_mut().expect("object").remove(field);
            claims
        };
        let with = |field: &str, value: serde_json::Value| {
            let mut claims = good.clone();
            claims[field] = value;
            claims
        };
        let mut exp_before_iat = with("iat", (now + 10).into());
        exp_before_iat["exp"] = (now + 5).into();
        let refused = [
            ("no kid", forge(good.clone(), None)),
            ("an unknown kid", forge(good.clone(), Some("k2"))),
            ("no ver", forge(without("ver"), Some("k1"))),
            ("no sid", forge(without("sid"), Some("k1"))),
            ("no jti", forge(without("jti"), Some("k1"))),
            ("a sid that is no uuid", forge(with("sid", "s1".into()), Some("k1"))),
            ("exp 10^9 s ahead", forge(with("exp", (now + 1_000_000_000).into()), Some("k1"))),
            ("iat in the future", forge(with("iat", (now + 3600).into()), Some("k1"))),
            ("exp before iat", forge(exp_before_iat, Some("k1"))),
        ];
        for (what, token) in refused {
            assert!(matches!(tokens.verify(&token), Err(AuthError::Invalid(_))), "{what}");
        }
        // A refresh token may live the refresh lifetime, an access token not.
        let long = with("exp", (now + 600).into());
        assert!(tokens.verify(&forge(long.clone(), Some("k1"))).is_err());
        let mut refresh = long;
        refresh["typ"] = REFRESH.into();
        tokens.verify_refresh(&forge(refresh.clone(), Some("k1"))).expect("a refresh token's lifetime");
        refresh["exp"] = (now + 601).into();
        assert!(tokens.verify_refresh(&forge(refresh, Some("k1"))).is_err(), "beyond the refresh lifetime");
    }
}
