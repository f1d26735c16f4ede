//! The contracts against the schemas and a real registry.

mod codec;
mod compatibility;
mod evolution;
