use anyhow::Context;
use orderflow_ingress::{Listeners, Settings, run};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--hash-secret") {
        // For `service_clients[].secret_hash`: the secret on stdin, its hash on stdout.
        let mut secret = String::new();
        std::io::stdin().read_line(&mut secret).context("read the secret from stdin")?;
        println!("{}", orderflow_auth::hash_password(secret.trim_end_matches(['\r', '\n']))?);
        return Ok(());
    }
    let settings: Settings = orderflow_config::load().context("ingress settings")?;
    if std::env::args().any(|a| a == "--check-config") {
        println!("ingress: configuration is valid");
        return Ok(());
    }
    let _exporter = orderflow_telemetry::init("ingress", orderflow_runtime::LOG_FILTER, &settings.telemetry)
        .context("trace export")?;
    let listeners = Listeners::bind(&settings).await.context("ingress")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(orderflow_telemetry::cancel_on_signal(shutdown.clone()));
    run(settings, listeners, shutdown).await.context("ingress")?;
    tracing::info!("ingress stopped");
    Ok(())
}
