//! The deployment artefacts against the workspace (issue #10): the Helm
//! chart (`chart`), docker-compose.yml (`compose`) and the Dockerfile
//! (`image`). They need no broker and no database: they run the tools
//! scripts/test installs (helm-python-sdk, kubernetes-validate, checkov,
//! hadolint, docker-compose; `OF_TEST_*`) and the workspace's own binaries
//! with `--check-config`.
//!
//! A binary that is not deployed, not probed or not locked down fails
//! here, and so does a deployment of a binary the workspace does not have.

mod alerts;
mod chart;
mod compose;
mod dashboards;
mod image;
mod support;
