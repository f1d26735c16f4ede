//! `projector [run]`, `projector rebuild`, `projector --check-config`.

/// The read-model projector's binary.
struct Projector;

/// The projector has no commands of its own.
#[derive(Debug, clap::Subcommand)]
enum NoCommands {}

impl orderflow_runtime::ProjectionBinary for Projector {
    const ABOUT: &'static str = "The read-model projector.";
    const PROJECTION: &'static str = orderflow_projector::projection::NAME;
    type Domain = orderflow_projector::settings::ReadModels;
    type Commands = NoCommands;
    const PERSONAL_DATA: orderflow_runtime::PersonalData = orderflow_runtime::PersonalData::Opens;

    async fn connect(settings: &orderflow_projector::Settings) -> Result<sqlx::PgPool, orderflow_runtime::RunError> {
        orderflow_projector::connect(settings).await
    }

    async fn run(
        settings: orderflow_projector::Settings,
        listener: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), orderflow_runtime::RunError> {
        orderflow_projector::run(settings, listener, shutdown).await
    }

    async fn command(_: orderflow_projector::Settings, command: NoCommands) -> anyhow::Result<()> {
        match command {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_runtime::projection_main::<Projector>().await
}
