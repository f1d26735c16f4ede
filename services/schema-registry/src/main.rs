use anyhow::Context;
use orderflow_registry::{Settings, run};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_telemetry::init_tracing("info,sqlx=warn");
    let settings: Settings = orderflow_config::load().context("schema registry settings")?;
    if std::env::args().any(|a| a == "--check-config") {
        println!("schema-registry: configuration is valid");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&settings.http.addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.http.addr))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(orderflow_telemetry::cancel_on_signal(shutdown.clone()));
    run(settings, listener, shutdown).await.context("schema registry")?;
    tracing::info!("schema registry stopped");
    Ok(())
}
