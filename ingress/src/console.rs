//! The console at `/console`: the single-page app built from `console/`
//! (`npm run build` writes `console/dist`), read once at start-up from
//! `console.dir` and served from memory. Any path under `/console/` that
//! is not one of its files is the app's page (it routes in the browser).
//! Its Content-Security-Policy allows this origin's scripts, styles and
//! connections (REST, GraphQL, the subscription's WebSocket) and nothing
//! inline.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `console.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// The built console (`console/dist`); a missing one is reported on
    /// `/console`, the rest of the API runs without it.
    pub dir: String,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { dir: "console/dist".into() }
    }
}

/// The console's files by path (`index.html`, `assets/index-<hash>.js`).
#[derive(Debug, Clone, Default)]
pub struct Files {
    files: Arc<HashMap<String, (&'static str, Vec<u8>)>>,
    dir: String,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

impl Files {
    /// Reads every file under `dir` (none if it is missing).
    pub fn load(dir: &str) -> std::io::Result<Self> {
        let mut files = HashMap::new();
        let root = Path::new(dir);
        if root.join("index.html").is_file() {
            let mut pending = vec![root.to_path_buf()];
            while let Some(at) = pending.pop() {
                for entry in std::fs::read_dir(&at)? {
                    let path = entry?.path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if let Ok(relative) = path.strip_prefix(root) {
                        let name = relative.to_string_lossy().replace('\\', "/");
                        files.insert(name.clone(), (content_type(&name), std::fs::read(&path)?));
                    }
                }
            }
        } else {
            tracing::warn!(
                dir,
                "no console here (npm --prefix console ci && npm --prefix console run build); /console says so"
            );
        }
        Ok(Self { files: Arc::new(files), dir: dir.to_owned() })
    }

    fn answer(&self, path: &str) -> Response {
        let (name, cache) = match self.files.get(path) {
            Some(_) if path != "index.html" => (path, "public, max-age=31536000, immutable"),
            _ => ("index.html", "no-cache"),
        };
        let Some((content_type, body)) = self.files.get(name) else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "CONSOLE_NOT_BUILT",
                format!(
                    "the console is not built in {}: run `npm --prefix console ci && npm --prefix console run build` \
                     (scripts/dev up does), or set console.dir",
                    self.dir
                ),
            )
            .into_response();
        };
        crate::security::browser_file(body.clone(), content_type, CSP, cache)
    }
}

/// `/console`, `/console/` and everything under it.
pub fn routes<S: Clone + Send + Sync + 'static>(files: Files) -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|State(files): State<Files>| async move { files.answer("index.html") }))
        .route(
            "/console/{*path}",
            get(|State(files): State<Files>, UrlPath(path): UrlPath<String>| async move { files.answer(&path) }),
        )
        .with_state(files)
}
