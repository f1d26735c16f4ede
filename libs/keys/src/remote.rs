//! The keeper's keys over HTTP, for the processes that seal or open
//! personal fields of events they do not own the keys of.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_contracts::personal::{DataKey, KeyError, KeyFuture, KeyStore, Lookup};
use reqwest::StatusCode;

use crate::routes::KeyBody;

/// The key service at `url` ([`crate::routes`]), with a bearer token.
#[derive(Clone)]
pub struct RemoteKeyStore {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for RemoteKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeyStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl RemoteKeyStore {
    pub fn new(url: &str, token: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client with timeouts builds");
        Self { client, url: url.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    async fn ask(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Lookup, KeyError> {
        let unavailable = |problem: String| KeyError::Unavailable(format!("{what} from {}: {problem}", self.url));
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| unavailable(e.to_string()))?;
        match response.status() {
            StatusCode::OK => {
                let body: KeyBody = response.json().await.map_err(|e| unavailable(e.to_string()))?;
                let bytes = STANDARD.decode(&body.key).map_err(|e| unavailable(e.to_string()))?;
                DataKey::new(body.key_id, &bytes).map(Lookup::from)
            }
            StatusCode::GONE => Ok(Lookup::Erased),
            StatusCode::UNAUTHORIZED => Err(unavailable("the key service refuses keys.token".into())),
            status => Err(unavailable(format!("{status}: {}", response.text().await.unwrap_or_default()))),
        }
    }
}

impl KeyStore for RemoteKeyStore {
    fn sealing_key<'a>(&'a self, subject: &'a str) -> KeyFuture<'a> {
        let request = self.client.post(format!("{}/keys/subjects/{subject}", self.url));
        Box::pin(self.ask(request, "the sealing key"))
    }

    fn opening_key<'a>(&'a self, key_id: &'a str) -> KeyFuture<'a> {
        let request = self.client.get(format!("{}/keys/{key_id}", self.url));
        Box::pin(self.ask(request, "a data key"))
    }
}
