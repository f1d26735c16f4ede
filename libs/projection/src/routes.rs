//! Which topics a projection reads, and as what.
//!
//! A projection lists its topics once, each with how its messages become
//! the projection's own input type ([`crate::Projection::Input`]): the Avro
//! of one [`Family`], the writer's schema and value (for whatever reads
//! every schema, like the audit log), the headers alone, or the message as
//! it is (a dead letter, whose headers may be what is broken). The engine
//! decodes every message through them before the projection sees it, so
//! a projection matches on its input type and never compares topic names.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use orderflow_bus::{HandlerError, Headers, InboundMessage};
use orderflow_contracts::{Codec, Decoded, Family};

/// How the messages of one topic are read.
trait Read<I>: Send + Sync {
    fn read<'a>(&'a self, message: &'a InboundMessage) -> BoxFuture<'a, Result<I, HandlerError>>;
}

struct AsFamily<F, I> {
    codec: Arc<Codec>,
    wrap: fn(F, Headers) -> I,
}

impl<F: Family + Send + 'static, I: Send + 'static> Read<I> for AsFamily<F, I> {
    fn read<'a>(&'a self, message: &'a InboundMessage) -> BoxFuture<'a, Result<I, HandlerError>> {
        Box::pin(async move {
            let headers = message.headers()?;
            let decoded: F = self.codec.decode(message.payload.as_deref()).await?;
            Ok((self.wrap)(decoded, headers))
        })
    }
}

struct AsWritten<I> {
    codec: Arc<Codec>,
    wrap: fn(Decoded, Headers) -> I,
}

impl<I: Send + 'static> Read<I> for AsWritten<I> {
    fn read<'a>(&'a self, message: &'a InboundMessage) -> BoxFuture<'a, Result<I, HandlerError>> {
        Box::pin(async move {
            let headers = message.headers()?;
            let decoded = self.codec.decode_with_writer(message.payload.as_deref()).await?;
            Ok((self.wrap)(decoded, headers))
        })
    }
}

struct ByHeaders<I> {
    wrap: fn(Headers) -> I,
}

impl<I: Send + 'static> Read<I> for ByHeaders<I> {
    fn read<'a>(&'a self, message: &'a InboundMessage) -> BoxFuture<'a, Result<I, HandlerError>> {
        Box::pin(async move { Ok((self.wrap)(message.headers()?)) })
    }
}

struct AsIs<I> {
    wrap: fn(&InboundMessage) -> Result<I, HandlerError>,
}

impl<I: Send + 'static> Read<I> for AsIs<I> {
    fn read<'a>(&'a self, message: &'a InboundMessage) -> BoxFuture<'a, Result<I, HandlerError>> {
        Box::pin(async move { (self.wrap)(message) })
    }
}

/// A projection's topics (full names, prefix included), each with how its
/// messages are read into `I`.
pub struct Routes<I> {
    routes: HashMap<String, Box<dyn Read<I>>>,
    /// The topics in the order they were added.
    topics: Vec<String>,
}

impl<I> std::fmt::Debug for Routes<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").field("topics", &self.topics).finish()
    }
}

impl<I: Send + 'static> Default for Routes<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Send + 'static> Routes<I> {
    pub fn new() -> Self {
        Self { routes: HashMap::new(), topics: Vec::new() }
    }

    fn with(mut self, topic: String, read: Box<dyn Read<I>>) -> Self {
        if self.routes.insert(topic.clone(), read).is_none() {
            self.topics.push(topic);
        }
        self
    }

    /// `topic`'s messages are the Avro of family `F` (decoded through the
    /// registry, resolved to this build's schemas), with their headers.
    pub fn family<F: Family + Send + 'static>(
        self,
        topic: impl Into<String>,
        codec: &Arc<Codec>,
        wrap: fn(F, Headers) -> I,
    ) -> Self {
        self.with(topic.into(), Box::new(AsFamily { codec: Arc::clone(codec), wrap }))
    }

    /// `topic`'s messages in their writer's schema (any schema), with
    /// their headers.
    pub fn written(self, topic: impl Into<String>, codec: &Arc<Codec>, wrap: fn(Decoded, Headers) -> I) -> Self {
        self.with(topic.into(), Box::new(AsWritten { codec: Arc::clone(codec), wrap }))
    }

    /// `topic`'s messages by their headers alone: the body is not read.
    pub fn headers(self, topic: impl Into<String>, wrap: fn(Headers) -> I) -> Self {
        self.with(topic.into(), Box::new(ByHeaders { wrap }))
    }

    /// `topic`'s messages as they are, read by `wrap` (a dead letter, or a
    /// body that is not Avro).
    pub fn as_is(self, topic: impl Into<String>, wrap: fn(&InboundMessage) -> Result<I, HandlerError>) -> Self {
        self.with(topic.into(), Box::new(AsIs { wrap }))
    }

    /// The same routes without `topic` (its messages are not read at all).
    pub fn without(mut self, topic: &str) -> Self {
        self.routes.remove(topic);
        self.topics.retain(|t| t != topic);
        self
    }

    /// The topics, in the order they were added.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// `message` as the projection reads it; a topic it has no route for
    /// fails permanently.
    pub async fn read(&self, message: &InboundMessage) -> Result<I, HandlerError> {
        match self.routes.get(&message.topic) {
            Some(route) => route.read(message).await,
            None => Err(HandlerError::Permanent(format!("no route reads topic {}", message.topic).into())),
        }
    }
}
