//! Running a projection: become active, feed the live generation, serve
//! rebuilds, and stop — with an error — as soon as it cannot go on.

use std::sync::Arc;
use std::time::Duration;

use orderflow_config::KafkaSettings;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::generation::{self, Offsets};
use crate::lease::Lease;
use crate::rebuild;
use crate::runner::{Runner, RunnerHandle, high_watermarks};
use crate::{Error, Projection};

/// How a projection runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub kafka: KafkaSettings,
    /// Messages applied per transaction at most.
    pub batch_size: usize,
    /// Attempts for a message that fails permanently before it is dead-lettered.
    pub max_attempts: usize,
    /// Transient failures in a row (database or registry down) are retried
    /// this long; then the projection gives up and [`Engine::run`] fails.
    pub give_up_after: Duration,
    /// How often the lock connection and the lease are checked, and rebuild
    /// requests looked for.
    pub check_interval: Duration,
    /// How long a rebuilt generation may take, once the live runner was
    /// stopped for the switch, to catch up with it; after that the rebuild
    /// fails and the old generation serves on.
    pub switch_timeout: Duration,
}

impl Options {
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            batch_size: 200,
            max_attempts: 4,
            give_up_after: Duration::from_secs(60),
            check_interval: Duration::from_secs(1),
            switch_timeout: Duration::from_secs(60),
        }
    }
}

/// One projection, run by [`Engine::run`].
#[derive(Debug)]
pub struct Engine<P> {
    pool: PgPool,
    projection: Arc<P>,
    options: Options,
}

/// A generation being rebuilt.
#[derive(Debug)]
struct Candidate {
    /// The request it serves (`None`: started because the template changed).
    request: Option<i64>,
    runner: RunnerHandle,
    /// The high watermarks when it started: reaching them is step 1.
    target: Offsets,
}

enum Progress {
    Reached,
    Ended(String),
}

fn ended_because(result: Result<(), Error>) -> String {
    match result {
        Ok(()) => "it stopped".into(),
        Err(error) => error.to_string(),
    }
}

/// Resolves when the live runner ends (it never should): why.
async fn live_ended(live: &mut Option<RunnerHandle>) -> Error {
    let Some(runner) = live.as_mut() else { return std::future::pending().await };
    match runner.finished().await {
        Err(fenced @ Error::Fenced { .. }) => fenced,
        result => Error::RunnerEnded { generation: runner.generation, cause: ended_because(result) },
    }
}

/// Resolves when a candidate reached its target, or its runner ended.
async fn candidate_progress(candidate: &mut Option<Candidate>) -> Progress {
    let Some(candidate) = candidate.as_mut() else { return std::future::pending().await };
    let mut progress = candidate.runner.progress.clone();
    let target = &candidate.target;
    tokio::select! {
        reached = progress.wait_for(|now| generation::reached(now, target)) => match reached {
            Ok(_) => Progress::Reached,
            Err(_) => Progress::Ended("its runner went away".into()),
        },
        result = candidate.runner.finished() => Progress::Ended(ended_because(result)),
    }
}

impl<P: Projection> Engine<P> {
    pub fn new(pool: PgPool, projection: P, options: Options) -> Self {
        Self { pool, projection: Arc::new(projection), options }
    }

    fn name(&self) -> &str {
        &self.projection.definition().name
    }

    fn runner(&self, generation: i32, epoch: i64) -> Runner<P> {
        Runner {
            pool: self.pool.clone(),
            projection: Arc::clone(&self.projection),
            kafka: self.options.kafka.clone(),
            generation,
            epoch,
            batch_size: self.options.batch_size,
            max_attempts: self.options.max_attempts,
            give_up_after: self.options.give_up_after,
        }
    }

    /// Runs the projection until `shutdown` (then `Ok`), or until it cannot
    /// go on (then the error): waits as a standby until this instance holds
    /// the projection's lock, takes the next lease epoch, feeds the live
    /// generation and carries out rebuilds.
    ///
    /// Losing the database (the lock connection, a Postgres restart) or the
    /// lease (another instance took over) is not the end: the instance
    /// stops feeding, and stands by to take the lock again, with a backoff.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        self.projection.definition().validate()?;
        if self.projection.routes().topics().is_empty() {
            return Err(Error::Definition { projection: self.name().to_owned(), problem: "it reads no topics".into() });
        }
        let mut pause = Duration::from_millis(250);
        loop {
            match self.run_active(&shutdown).await {
                Err(error) if error.is_recoverable() && !shutdown.is_cancelled() => {
                    tracing::warn!(
                        projection = self.name(),
                        %error,
                        retry_in_ms = pause.as_millis() as u64,
                        "projection lost its database or its lease; standing by to take over again"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                outcome => return outcome,
            }
        }
    }

    /// One term as the active instance: from taking the lock until
    /// `shutdown` or an error.
    async fn run_active(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let definition = self.projection.definition();
        crate::install(&self.pool).await?;
        let Some(mut lease) = Lease::acquire(&self.pool, self.name(), shutdown).await? else {
            return Ok(());
        };
        let epoch = lease.epoch;
        tracing::info!(projection = self.name(), epoch, "projection active");
        rebuild::fail_interrupted(&self.pool, self.name()).await?;
        generation::fail_abandoned(&self.pool, self.name()).await?;

        let mut live: Option<RunnerHandle> = None;
        let mut candidate: Option<Candidate> = None;
        match generation::live(&self.pool, self.name()).await? {
            Some((g, template)) if template == generation::fingerprint(&definition.template) => {
                live = Some(self.runner(g, epoch).spawn());
            }
            Some((g, _)) => {
                // Its tables have another shape than the code expects:
                // readers keep the old one (not fed) until the rebuild switches.
                tracing::warn!(
                    projection = self.name(),
                    generation = g,
                    "the live generation was made from another template; rebuilding it"
                );
                candidate = Some(self.start_candidate(None, epoch).await?);
            }
            None => {
                let g = generation::create(&self.pool, definition).await?;
                generation::switch_to(&self.pool, definition, g).await?;
                live = Some(self.runner(g, epoch).spawn());
            }
        }

        let mut check = tokio::time::interval(self.options.check_interval);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                error = live_ended(&mut live) => break Err(error),
                _ = check.tick() => {
                    if let Err(error) = lease.check().await {
                        break Err(error);
                    }
                    if let Some(id) = candidate.as_ref().and_then(|c| c.request) {
                        match rebuild::cancel_requested(&self.pool, id).await {
                            Ok(true) => {
                                if let Some(rebuilt) = candidate.take() {
                                    self.abandon(rebuilt, "cancelled by an operator".into()).await;
                                }
                            }
                            Ok(false) => {}
                            Err(error) => break Err(error.into()),
                        }
                    }
                    if candidate.is_none() {
                        match rebuild::next_request(&self.pool, self.name()).await {
                            Ok(Some(id)) => match self.start_candidate(Some(id), epoch).await {
                                Ok(started) => candidate = Some(started),
                                Err(error) => self.finish_request(Some(id), Err(error.to_string())).await,
                            },
                            Ok(None) => {}
                            Err(error) => break Err(error.into()),
                        }
                    }
                }
                progress = candidate_progress(&mut candidate) => {
                    let Some(rebuilt) = candidate.take() else { continue };
                    match progress {
                        Progress::Reached => {
                            if let Err(error) = self.switch(&mut live, rebuilt, epoch).await {
                                break Err(error);
                            }
                        }
                        Progress::Ended(cause) => {
                            let generation = rebuilt.runner.generation;
                            self.abandon(rebuilt, cause.clone()).await;
                            if live.is_none() {
                                break Err(Error::RunnerEnded { generation, cause });
                            }
                        }
                    }
                }
            }
        };
        if let Some(rebuilt) = candidate.take() {
            self.abandon(rebuilt, "the instance stopped before the rebuild finished".into()).await;
        }
        if let Some(runner) = live.take() {
            let generation = runner.generation;
            if let Err(error) = runner.stop().await {
                tracing::warn!(projection = self.name(), generation, %error, "the live runner ended with an error");
            }
        }
        match &outcome {
            Ok(()) => tracing::info!(projection = self.name(), "projection stopped"),
            Err(error) => tracing::error!(projection = self.name(), %error, "projection cannot go on"),
        }
        outcome
    }

    /// Step 1 of a rebuild: a new generation, the watermarks read once, and
    /// its runner replaying from the beginning.
    async fn start_candidate(&self, request: Option<i64>, epoch: i64) -> Result<Candidate, Error> {
        let definition = self.projection.definition();
        let generation = generation::create(&self.pool, definition).await?;
        let target = match high_watermarks(&self.options.kafka, self.projection.routes().topics()).await {
            Ok(target) => target,
            Err(error) => {
                let _ = generation::mark_failed(&self.pool, self.name(), generation).await;
                return Err(error);
            }
        };
        tracing::info!(
            projection = self.name(),
            generation,
            ?request,
            "rebuild started: replaying up to the current end of every topic"
        );
        Ok(Candidate { request, runner: self.runner(generation, epoch).spawn(), target })
    }

    /// Steps 2 and 3: stop the live runner, let the candidate catch up to
    /// where it stopped, switch. If that fails, the old generation serves on.
    async fn switch(&self, live: &mut Option<RunnerHandle>, mut rebuilt: Candidate, epoch: i64) -> Result<(), Error> {
        let definition = self.projection.definition();
        let mut previous = None;
        let mut target = Offsets::new();
        if let Some(runner) = live.take() {
            let generation = runner.generation;
            runner.stop().await.map_err(|error| match error {
                fenced @ Error::Fenced { .. } => fenced,
                other => Error::RunnerEnded { generation, cause: other.to_string() },
            })?;
            let mut conn = self.pool.acquire().await?;
            target = generation::offsets(&mut conn, self.name(), generation).await?;
            previous = Some(generation);
        }
        let caught_up = {
            let mut progress = rebuilt.runner.progress.clone();
            let target = &target;
            let runner = &mut rebuilt.runner;
            tokio::time::timeout(self.options.switch_timeout, async move {
                tokio::select! {
                    reached = progress.wait_for(|now| generation::reached(now, target)) => reached.is_ok(),
                    _ = runner.finished() => false,
                }
            })
            .await
            .unwrap_or(false)
        };
        let generation = rebuilt.runner.generation;
        let switched = if caught_up {
            generation::switch_to(&self.pool, definition, generation).await.map_err(|e| e.to_string())
        } else {
            Err("the rebuilt generation did not catch up with the live one in time".into())
        };
        match switched {
            Ok(()) => {
                tracing::info!(
                    projection = self.name(),
                    generation,
                    ?previous,
                    "rebuild finished; the rebuilt generation is live"
                );
                *live = Some(rebuilt.runner);
                // Cleaned up before the request is answered: whoever waits
                // for the rebuild sees its whole effect, old schemas gone.
                if let Some(previous) = previous
                    && let Err(error) = generation::drop_older_than(&self.pool, self.name(), previous).await
                {
                    tracing::warn!(projection = self.name(), %error, "cannot drop old generations");
                }
                self.finish_request(rebuilt.request, Ok(generation)).await;
                Ok(())
            }
            Err(cause) => {
                self.abandon(rebuilt, cause.clone()).await;
                match previous {
                    Some(previous) => {
                        *live = Some(self.runner(previous, epoch).spawn());
                        Ok(())
                    }
                    None => Err(Error::RunnerEnded { generation, cause }),
                }
            }
        }
    }

    /// A rebuild that will not finish: stop its runner, record why.
    async fn abandon(&self, rebuilt: Candidate, cause: String) {
        let generation = rebuilt.runner.generation;
        let _ = rebuilt.runner.stop().await;
        tracing::error!(projection = self.name(), generation, %cause, "rebuild failed");
        if let Err(error) = generation::mark_failed(&self.pool, self.name(), generation).await {
            tracing::warn!(projection = self.name(), %error, "cannot mark the generation failed");
        }
        self.finish_request(rebuilt.request, Err(cause)).await;
    }

    async fn finish_request(&self, request: Option<i64>, outcome: Result<i32, String>) {
        let Some(id) = request else { return };
        if let Err(error) = rebuild::finish(&self.pool, id, outcome).await {
            tracing::warn!(projection = self.name(), request = id, %error, "cannot record how the rebuild ended");
        }
    }
}
