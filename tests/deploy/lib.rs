//! Nothing to link: the deploy checks are the integration tests in `main.rs`.
