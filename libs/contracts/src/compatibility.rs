//! Subject-level compatibility levels, set through the Confluent REST API
//! (`GET`/`PUT /config/{subject}`), which `schema_registry_converter` does
//! not cover.
//!
//! Events are replayed from the beginning of their topics, so an event
//! schema must stay readable against *every* earlier version of its subject
//! (`BACKWARD_TRANSITIVE`, guarantee 6), not only the latest one as the
//! registry's default `BACKWARD` demands. Setting the level before
//! registering makes the registry itself refuse an event schema that breaks
//! an older version; commands are read once, by the current consumer, and
//! stay at the registry default.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::CodecError;

/// The level every event subject gets.
pub const EVENT_LEVEL: &str = "BACKWARD_TRANSITIVE";

/// Levels at least as strict as [`EVENT_LEVEL`]: one of these configured by
/// an operator is kept, not weakened.
const SATISFIES_EVENT_LEVEL: &[&str] = &["BACKWARD_TRANSITIVE", "FULL_TRANSITIVE"];

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Serialize)]
struct ConfigRequest<'a> {
    compatibility: &'a str,
}

#[derive(Debug, Deserialize)]
struct ConfigResponse {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
    compatibility: Option<String>,
}

fn error(message: String, retriable: bool) -> CodecError {
    CodecError::Registry { message, retriable }
}

/// A transport error (no answer, a timeout) may pass. The message carries
/// the cause chain but not the URL, which may hold credentials.
fn transport(subject: &str, e: reqwest::Error) -> CodecError {
    let e = e.without_url();
    let mut message = format!("compatibility of {subject}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    error(message, true)
}

/// Talks to the registry's `/config` resource.
#[derive(Debug)]
pub(crate) struct Config {
    client: reqwest::Client,
    base: Url,
}

impl Config {
    pub(crate) fn new(registry_url: &str) -> Result<Self, CodecError> {
        let base = Url::parse(registry_url).map_err(|e| error(format!("the registry URL is not a URL: {e}"), false))?;
        if base.cannot_be_a_base() {
            return Err(error("the registry URL cannot have a path".into(), false));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| error(format!("cannot create an HTTP client: {e}"), false))?;
        Ok(Self { client, base })
    }

    fn url(&self, subject: &str) -> Url {
        let mut url = self.base.clone();
        // Checked in `new`: the base can have path segments.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["config", subject]);
        }
        url
    }

    /// The level configured for `subject` itself; `None` when it has none
    /// (the registry answers 404) or the answer says nothing usable.
    async fn subject_level(&self, subject: &str) -> Result<Option<String>, CodecError> {
        let response = self
            .client
            .get(self.url(subject))
            .header(ACCEPT, MEDIA_TYPE)
            .send()
            .await
            .map_err(|e| transport(subject, e))?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let body: ConfigResponse = match response.json().await {
            Ok(body) => body,
            Err(_) => return Ok(None),
        };
        Ok(body.compatibility_level.or(body.compatibility))
    }

    /// Makes `subject` (which need not exist yet) demand [`EVENT_LEVEL`],
    /// unless it already demands that or more.
    pub(crate) async fn require_event_level(&self, subject: &str) -> Result<(), CodecError> {
        if let Some(level) = self.subject_level(subject).await?
            && SATISFIES_EVENT_LEVEL.contains(&level.to_ascii_uppercase().as_str())
        {
            return Ok(());
        }
        let response = self
            .client
            .put(self.url(subject))
            .header(CONTENT_TYPE, MEDIA_TYPE)
            .header(ACCEPT, MEDIA_TYPE)
            .json(&ConfigRequest { compatibility: EVENT_LEVEL })
            .send()
            .await
            .map_err(|e| transport(subject, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let retriable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        Err(error(format!("setting {subject} to {EVENT_LEVEL} answered {status}: {}", body.trim()), retriable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_urls_keep_the_registry_path_and_escape_the_subject() {
        let config = Config::new("https://registry.example.com/sr/").expect("a URL");
        assert_eq!(config.url("a.b.C").as_str(), "https://registry.example.com/sr/config/a.b.C");
        assert_eq!(config.url("a/b").as_str(), "https://registry.example.com/sr/config/a%2Fb");
        let config = Config::new("http://127.0.0.1:8081").expect("a URL");
        assert_eq!(config.url("x").as_str(), "http://127.0.0.1:8081/config/x");
    }

    #[test]
    fn a_registry_url_that_is_not_one_is_refused() {
        let error = Config::new("not a url").expect_err("refused");
        assert!(!error.is_transient(), "{error}");
        assert!(Config::new("mailto:someone@example.com").is_err());
    }
}
