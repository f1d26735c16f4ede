use orderflow_config::{ConfigError, Domain, ProjectionSettings, Validate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Records that occurred more than this many days ago are deleted (the
    /// chain keeps an anchor where it was cut, docs/audit.md). Unset: kept
    /// forever (`ORDERFLOW_DOMAIN__RETENTION__KEEP_DAYS=365`).
    pub keep_days: Option<u32>,
    /// How often the cut runs.
    pub interval_seconds: u64,
}

/// The audit log's own settings (`ORDERFLOW_DOMAIN__...`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// A checkpoint every this many records of a chain: quick verification
    /// recomputes at most this many hashes per chain.
    pub checkpoint_every: i64,
    pub retention: RetentionSettings,
}

impl Default for Audit {
    fn default() -> Self {
        Self { checkpoint_every: 1000, retention: RetentionSettings { keep_days: None, interval_seconds: 3600 } }
    }
}

impl Domain for Audit {
    const SERVICE: &'static str = "audit-log";
    const PORT: u16 = 8095;
    const DATABASE: &'static str = "audit";
    /// No one waits on a record being written (the commands' outcomes
    /// and the read models come from elsewhere): the log fetches what
    /// gathered, up to the fetch wait, and writes it as one run — a
    /// fetch and a transaction per batch rather than per event.
    const FETCH_MIN_BYTES: u32 = 64 * 1024;
}

impl Validate for Audit {
    fn validate(&self) -> orderflow_config::Result<()> {
        if self.checkpoint_every < 1 {
            return Err(ConfigError::invalid("domain.checkpoint_every", "must be at least 1"));
        }
        if self.retention.keep_days == Some(0) {
            return Err(ConfigError::invalid(
                "domain.retention.keep_days",
                "must be at least 1 (unset keeps everything)",
            ));
        }
        if self.retention.interval_seconds == 0 {
            return Err(ConfigError::invalid("domain.retention.interval_seconds", "must be at least 1"));
        }
        Ok(())
    }
}

/// The audit log's settings: the projection group plus [`Audit`].
pub type Settings = ProjectionSettings<Audit>;
