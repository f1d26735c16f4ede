//! Postgres storage of subjects, versions, schemas and compatibility levels.
//!
//! Registration runs in one transaction holding an advisory lock on the
//! subject, so two concurrent registrations of one subject get consecutive
//! versions and the same schema always gets one id (the unique fingerprint
//! makes the second writer wait for and reuse the first one's row).

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::avro::{self, Level, ParsedSchema};
use crate::error::{RegistryError, Result};

/// Which version a request names.
#[derive(Debug, Clone, Copy)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    pub fn parse(raw: &str) -> Result<Self> {
        if raw == "latest" || raw == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match raw.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(raw.to_owned())),
        }
    }

    fn describe(self) -> String {
        match self {
            VersionSpec::Latest => "latest".into(),
            VersionSpec::Number(n) => n.to_string(),
        }
    }
}

/// One version of one subject.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema_type: String,
    pub schema: String,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Registers `schema` under `subject`; the id of the existing version if
    /// the subject already has it.
    pub async fn register(&self, subject: &str, schema: &ParsedSchema) -> Result<i32> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;

        let existing: Option<i32> = sqlx::query_scalar(
            "SELECT s.id FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
             WHERE sv.subject = $1 AND NOT sv.deleted AND s.fingerprint = $2",
        )
        .bind(subject)
        .bind(&schema.fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            return Ok(id);
        }

        let level = effective_level(&mut tx, subject).await?;
        let history = live_versions(&mut tx, subject).await?;
        let problems = avro::check(level, &schema.schema, &history);
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible { subject: subject.to_owned(), details: problems.join(", ") });
        }

        let id = upsert_schema(&mut tx, schema).await?;
        let version: i32 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM subject_versions WHERE subject = $1")
                .bind(subject)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("INSERT INTO subject_versions (subject, version, schema_id) VALUES ($1, $2, $3)")
            .bind(subject)
            .bind(version)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(subject, version, id, "schema registered");
        Ok(id)
    }

    /// The version of `subject` that holds `schema`.
    pub async fn lookup(&self, subject: &str, schema: &ParsedSchema, include_deleted: bool) -> Result<SubjectVersion> {
        let row = sqlx::query(
            "SELECT sv.version, s.id, s.schema_type, s.schema FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
             WHERE sv.subject = $1 AND s.fingerprint = $2 AND ($3 OR NOT sv.deleted)
             ORDER BY sv.version DESC LIMIT 1",
        )
        .bind(subject)
        .bind(&schema.fingerprint)
        .bind(include_deleted)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(SubjectVersion {
                subject: subject.to_owned(),
                version: row.get(0),
                id: row.get(1),
                schema_type: row.get(2),
                schema: row.get(3),
            }),
            None if self.subject_exists(subject, include_deleted).await? => {
                Err(RegistryError::SchemaNotFound("not found under this subject".into()))
            }
            None => Err(RegistryError::SubjectNotFound(subject.to_owned())),
        }
    }

    /// `(schema_type, schema)` of an id.
    pub async fn schema_by_id(&self, id: i32) -> Result<(String, String)> {
        sqlx::query_as("SELECT schema_type, schema FROM schemas WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    /// Every `(subject, version)` that uses an id.
    pub async fn versions_of_schema(&self, id: i32, include_deleted: bool) -> Result<Vec<(String, i32)>> {
        self.schema_by_id(id).await?;
        Ok(sqlx::query_as(
            "SELECT subject, version FROM subject_versions WHERE schema_id = $1 AND ($2 OR NOT deleted)
             ORDER BY subject, version",
        )
        .bind(id)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn subjects(&self, include_deleted: bool) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT DISTINCT subject FROM subject_versions WHERE $1 OR NOT deleted ORDER BY subject")
            .bind(include_deleted)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<i32>> {
        let versions: Vec<i32> = sqlx::query_scalar(
            "SELECT version FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted) ORDER BY version",
        )
        .bind(subject)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?;
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    pub async fn version(&self, subject: &str, spec: VersionSpec, include_deleted: bool) -> Result<SubjectVersion> {
        let row = match spec {
            VersionSpec::Latest => {
                sqlx::query(
                    "SELECT sv.version, s.id, s.schema_type, s.schema FROM subject_versions sv
                     JOIN schemas s ON s.id = sv.schema_id
                     WHERE sv.subject = $1 AND ($2 OR NOT sv.deleted) ORDER BY sv.version DESC LIMIT 1",
                )
                .bind(subject)
                .bind(include_deleted)
                .fetch_optional(&self.pool)
                .await?
            }
            VersionSpec::Number(n) => {
                sqlx::query(
                    "SELECT sv.version, s.id, s.schema_type, s.schema FROM subject_versions sv
                     JOIN schemas s ON s.id = sv.schema_id
                     WHERE sv.subject = $1 AND sv.version = $3 AND ($2 OR NOT sv.deleted)",
                )
                .bind(subject)
                .bind(include_deleted)
                .bind(n)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        match row {
            Some(row) => Ok(SubjectVersion {
                subject: subject.to_owned(),
                version: row.get(0),
                id: row.get(1),
                schema_type: row.get(2),
                schema: row.get(3),
            }),
            None if self.subject_exists(subject, include_deleted).await? => {
                Err(RegistryError::VersionNotFound { version: spec.describe() })
            }
            None => Err(RegistryError::SubjectNotFound(subject.to_owned())),
        }
    }

    /// Deletes every version of a subject: soft first, permanently once soft
    /// deleted. Returns the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let rows: Vec<(i32, bool)> =
            sqlx::query_as("SELECT version, deleted FROM subject_versions WHERE subject = $1 ORDER BY version")
                .bind(subject)
                .fetch_all(&mut *tx)
                .await?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let live: Vec<i32> = rows.iter().filter(|(_, deleted)| !deleted).map(|(v, _)| *v).collect();
        let versions = if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            sqlx::query("DELETE FROM subject_versions WHERE subject = $1").bind(subject).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM compatibility_config WHERE subject = $1").bind(subject).execute(&mut *tx).await?;
            rows.iter().map(|(v, _)| *v).collect()
        } else {
            if live.is_empty() {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
            }
            sqlx::query("UPDATE subject_versions SET deleted = true WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            live
        };
        tx.commit().await?;
        Ok(versions)
    }

    /// Deletes one version: soft first, permanently once soft deleted.
    pub async fn delete_version(&self, subject: &str, spec: VersionSpec, permanent: bool) -> Result<i32> {
        let mut tx = self.pool.begin().await?;
        lock_subject(&mut tx, subject).await?;
        let target: Option<(i32, bool)> = match spec {
            VersionSpec::Latest => {
                sqlx::query_as(
                    "SELECT version, deleted FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted)
                     ORDER BY version DESC LIMIT 1",
                )
                .bind(subject)
                .bind(permanent)
                .fetch_optional(&mut *tx)
                .await?
            }
            VersionSpec::Number(n) => {
                sqlx::query_as("SELECT version, deleted FROM subject_versions WHERE subject = $1 AND version = $2")
                    .bind(subject)
                    .bind(n)
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        let Some((version, deleted)) = target else {
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM subject_versions WHERE subject = $1)")
                .bind(subject)
                .fetch_one(&mut *tx)
                .await?;
            return Err(if exists {
                RegistryError::VersionNotFound { version: spec.describe() }
            } else {
                RegistryError::SubjectNotFound(subject.to_owned())
            });
        };
        match (permanent, deleted) {
            (false, true) => return Err(RegistryError::VersionSoftDeleted { subject: subject.to_owned(), version }),
            (true, false) => return Err(RegistryError::VersionNotSoftDeleted { subject: subject.to_owned(), version }),
            (false, false) => {
                sqlx::query("UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = $2")
                    .bind(subject)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
            (true, true) => {
                sqlx::query("DELETE FROM subject_versions WHERE subject = $1 AND version = $2")
                    .bind(subject)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(version)
    }

    /// Problems found judging `schema` against a subject: against one named
    /// version, or (with `None`) against what the subject's level demands.
    pub async fn compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        schema: &ParsedSchema,
    ) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let level = effective_level(&mut tx, subject).await?;
        let history = live_versions(&mut tx, subject).await?;
        tx.commit().await?;
        let against = match spec {
            None => history,
            Some(spec) => {
                let target = self.version(subject, spec, false).await?;
                let parsed = avro::parse(&target.schema)?;
                vec![(target.version, parsed.schema)]
            }
        };
        // Against one named version the level decides the direction only.
        let level = if spec.is_some() { non_transitive(level) } else { level };
        Ok(avro::check(level, &schema.schema, &against))
    }

    /// The level configured for `subject` (`None`: no subject-level config),
    /// or the global one for `subject = None`.
    pub async fn configured_level(&self, subject: Option<&str>) -> Result<Option<Level>> {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT compatibility FROM compatibility_config WHERE subject = $1")
                .bind(subject.unwrap_or(""))
                .fetch_optional(&self.pool)
                .await?;
        raw.map(|r| Level::parse(&r)).transpose()
    }

    pub async fn global_level(&self) -> Result<Level> {
        Ok(self.configured_level(None).await?.unwrap_or(Level::DEFAULT))
    }

    pub async fn set_level(&self, subject: Option<&str>, level: Level) -> Result<()> {
        sqlx::query(
            "INSERT INTO compatibility_config (subject, compatibility) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
        )
        .bind(subject.unwrap_or(""))
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a level; returns the one removed.
    pub async fn delete_level(&self, subject: Option<&str>) -> Result<Option<Level>> {
        let raw: Option<String> =
            sqlx::query_scalar("DELETE FROM compatibility_config WHERE subject = $1 RETURNING compatibility")
                .bind(subject.unwrap_or(""))
                .fetch_optional(&self.pool)
                .await?;
        raw.map(|r| Level::parse(&r)).transpose()
    }

    pub async fn subject_exists(&self, subject: &str, include_deleted: bool) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted))",
        )
        .bind(subject)
        .bind(include_deleted)
        .fetch_one(&self.pool)
        .await?)
    }
}

fn non_transitive(level: Level) -> Level {
    match level {
        Level::BackwardTransitive => Level::Backward,
        Level::ForwardTransitive => Level::Forward,
        Level::FullTransitive => Level::Full,
        other => other,
    }
}

async fn lock_subject(tx: &mut Transaction<'_, Postgres>, subject: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("subject:{subject}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn effective_level(tx: &mut Transaction<'_, Postgres>, subject: &str) -> Result<Level> {
    let raw: Option<String> = sqlx::query_scalar(
        "SELECT compatibility FROM compatibility_config WHERE subject IN ($1, '')
         ORDER BY (subject = '') LIMIT 1",
    )
    .bind(subject)
    .fetch_optional(&mut **tx)
    .await?;
    raw.map(|r| Level::parse(&r)).transpose().map(|l| l.unwrap_or(Level::DEFAULT))
}

async fn live_versions(tx: &mut Transaction<'_, Postgres>, subject: &str) -> Result<Vec<(i32, apache_avro::Schema)>> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT sv.version, s.schema FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
         WHERE sv.subject = $1 AND NOT sv.deleted ORDER BY sv.version",
    )
    .bind(subject)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(|(version, schema)| Ok((version, avro::parse(&schema)?.schema))).collect()
}

async fn upsert_schema(tx: &mut Transaction<'_, Postgres>, schema: &ParsedSchema) -> Result<i32> {
    let inserted: Option<i32> = sqlx::query_scalar(
        "INSERT INTO schemas (id, schema_type, schema, fingerprint) VALUES (nextval('schema_ids'), 'AVRO', $1, $2)
         ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
    )
    .bind(&schema.normalized)
    .bind(&schema.fingerprint)
    .fetch_optional(&mut **tx)
    .await?;
    match inserted {
        Some(id) => Ok(id),
        None => Ok(sqlx::query_scalar("SELECT id FROM schemas WHERE fingerprint = $1")
            .bind(&schema.fingerprint)
            .fetch_one(&mut **tx)
            .await?),
    }
}
