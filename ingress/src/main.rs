use anyhow::Context;
use orderflow_ingress::{Listeners, Settings, run};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("the async runtime")?;
    let stopped = runtime.block_on(serve());
    // A blocking call still under way (the bus monitor's Kafka request,
    // abandoned at shutdown, runs until its own timeout) does not hold the
    // exit: everything that matters has stopped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    stopped
}

async fn serve() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--hash-secret") {
        // For `service_clients[].secret_hash`: the secret on stdin, its hash on stdout.
        let mut secret = String::new();
        std::io::stdin().read_line(&mut secret).context("read the secret from stdin")?;
        println!("{}", orderflow_auth::hash_password(secret.trim_end_matches(['\r', '\n']))?);
        return Ok(());
    }
    if std::env::args().any(|a| a == "--print-graphql-schema") {
        // `schemas/graphql/schema.graphql` is this output.
        print!("{}", orderflow_ingress::graphql::sdl());
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
