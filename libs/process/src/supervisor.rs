//! Owning and watching every background task of a process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether every supervised task is still running. `/health/ready` asks it
/// first: a process with a dead task is not ready, whatever else answers.
#[derive(Debug, Clone, Default)]
pub struct Health {
    failure: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// `Err` with the first failure, once a task has died.
    pub fn check(&self) -> Result<(), String> {
        match &*self.failure.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    fn fail(&self, failure: String) {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(failure);
    }
}

/// A supervised task that ended while the process should have been running.
#[derive(Debug, thiserror::Error)]
#[error("background task `{task}` died: {cause}")]
pub struct TaskFailed {
    pub task: String,
    pub cause: String,
}

/// How long into a shutdown the supervisor says which tasks it waits for.
const SLOW_STOP: Duration = Duration::from_secs(2);

/// Owns the tasks of a process (zero2prod's `select!` over tasks, for any
/// number of them).
#[derive(Debug)]
pub struct Supervisor {
    shutdown: CancellationToken,
    health: Health,
    tasks: JoinSet<Result<(), BoxError>>,
    names: HashMap<tokio::task::Id, &'static str>,
    /// How long tasks get to finish after shutdown began.
    grace: Duration,
}

/// The error and everything it was caused by, on one line.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

impl Supervisor {
    /// Tasks stop when `shutdown` is cancelled; the supervisor cancels it
    /// itself when one of them dies.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            health: Health::default(),
            tasks: JoinSet::new(),
            names: HashMap::new(),
            grace: Duration::from_secs(30),
        }
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` under supervision. It should run until shutdown: ending
    /// earlier, with or without an error, or panicking, is a failure.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let id = self.tasks.spawn(async move { task.await.map_err(Into::into) }).id();
        self.names.insert(id, name);
    }

    /// Waits for every task. The first one to die fails readiness, cancels
    /// the others and becomes the result; after shutdown began, tasks that
    /// do not finish within the grace period are aborted.
    pub async fn wait(mut self) -> Result<(), TaskFailed> {
        let mut failure: Option<TaskFailed> = None;
        // Once, a moment into shutdown: which tasks it still waits for, so
        // a slow stop names its cause.
        let mut named_the_slow = false;
        loop {
            let joined = if self.shutdown.is_cancelled() && !named_the_slow {
                match tokio::time::timeout(SLOW_STOP, self.tasks.join_next_with_id()).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        named_the_slow = true;
                        let mut waiting: Vec<&str> = self.names.values().copied().collect();
                        waiting.sort_unstable();
                        tracing::info!(?waiting, "stopping: waiting for these tasks to finish");
                        continue;
                    }
                }
            } else if self.shutdown.is_cancelled() {
                match tokio::time::timeout(self.grace, self.tasks.join_next_with_id()).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        tracing::warn!(remaining = self.tasks.len(), "tasks did not stop in time; aborting them");
                        self.tasks.abort_all();
                        self.grace = Duration::from_secs(5);
                        continue;
                    }
                }
            } else {
                self.tasks.join_next_with_id().await
            };
            let Some(joined) = joined else { break };
            let id = match &joined {
                Ok((id, _)) => *id,
                Err(join) => join.id(),
            };
            let name = self.name(id);
            self.names.remove(&id);
            let (name, cause) = match joined {
                Ok((_, Ok(()))) if self.shutdown.is_cancelled() => continue,
                Ok((_, Ok(()))) => (name, "it ended while the process was running".to_owned()),
                Ok((_, Err(error))) => (name, cause_chain(error.as_ref())),
                Err(join) if join.is_cancelled() && self.shutdown.is_cancelled() => continue,
                Err(join) => (name, panic_message(join)),
            };
            if failure.is_none() {
                tracing::error!(task = name, cause = %cause, "a background task died; the process stops");
                self.health.fail(format!("task {name} died: {cause}"));
                self.shutdown.cancel();
                failure = Some(TaskFailed { task: name.to_owned(), cause });
            } else {
                tracing::warn!(task = name, cause = %cause, "another task ended with an error during shutdown");
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn name(&self, id: tokio::task::Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("unnamed")
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    if join.is_cancelled() {
        return "it was aborted".to_owned();
    }
    let payload = join.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("relay failed")]
    struct Outer(#[source] std::io::Error);

    #[tokio::test]
    async fn a_panicking_task_fails_health_and_stops_the_others() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone());
        let health = supervisor.health();
        let token = shutdown.clone();
        supervisor.spawn("steady", async move {
            token.cancelled().await;
            Ok::<_, std::io::Error>(())
        });
        supervisor.spawn("doomed", async {
            tokio::task::yield_now().await;
            if true {
                panic!("span vanished");
            }
            Ok::<_, std::io::Error>(())
        });
        let failed = supervisor.wait().await.expect_err("a task died");
        assert_eq!(failed.task, "doomed");
        assert!(failed.cause.contains("span vanished"), "{failed}");
        assert!(shutdown.is_cancelled(), "the other tasks were told to stop");
        assert!(health.check().expect_err("not ready").contains("doomed"));
    }

    #[tokio::test]
    async fn errors_keep_their_cause_chain_and_early_ends_count() {
        let mut supervisor = Supervisor::new(CancellationToken::new());
        supervisor.spawn("relay", async { Err(Outer(std::io::Error::other("connection reset"))) });
        let failed = supervisor.wait().await.expect_err("failed");
        assert_eq!(failed.cause, "relay failed: connection reset");

        let mut supervisor = Supervisor::new(CancellationToken::new());
        supervisor.spawn("consumer", async { Ok::<_, std::io::Error>(()) });
        let failed = supervisor.wait().await.expect_err("ended early");
        assert!(failed.cause.contains("ended"), "{failed}");
    }

    #[tokio::test]
    async fn a_clean_shutdown_is_ok() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone());
        let token = shutdown.clone();
        supervisor.spawn("steady", async move {
            token.cancelled().await;
            Ok::<_, std::io::Error>(())
        });
        shutdown.cancel();
        supervisor.wait().await.expect("clean");
    }
}
