//! Values parsed at the edge: an invalid one cannot be constructed.
//!
//! Every text that reaches the API passes [`text_problem`] first (every
//! string of every JSON body, in [`crate::extract::ApiJson`]; every query
//! parameter and path segment, in [`request_target`]), so nothing the
//! databases behind the bus would refuse (a NUL) is ever sent: a command is
//! valid before it is accepted.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// Why `value` cannot be a text of the API, if it cannot: it holds a NUL
/// or another control character (a tab, line feed or carriage return only
/// where `multiline`, i.e. in a JSON string, never in a URL).
pub fn text_problem(value: &str, multiline: bool) -> Option<String> {
    let allowed = |c: char| multiline && matches!(c, '\t' | '\n' | '\r');
    let (at, found) = value.chars().enumerate().find(|(_, c)| c.is_control() && !allowed(*c))?;
    let what = if found == '\0' { "NUL".to_owned() } else { "a control character".to_owned() };
    Some(format!("must not contain control characters: {what} (U+{:04X}) at character {}", u32::from(found), at + 1))
}

/// The first string (or object key) in `value` that is not a valid text,
/// with its path (`notes`, `items[3].name`) and the problem.
pub fn first_bad_text(value: &Value) -> Option<(String, String)> {
    fn walk(value: &Value, path: &mut String) -> Option<(String, String)> {
        match value {
            Value::String(text) => text_problem(text, true).map(|problem| (path.clone(), problem)),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            Value::Object(fields) => fields.iter().find_map(|(key, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let found = text_problem(key, false)
                    .map(|problem| (path.clone(), format!("the field name {problem}")))
                    .or_else(|| walk(item, path));
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }
    walk(value, &mut String::new())
}

/// Middleware: every query parameter and path segment of the request is
/// valid percent-encoded UTF-8 without control characters, or 400 naming it
/// (`INVALID_QUERY`, `INVALID_PATH`) before any handler or database sees it.
pub async fn request_target(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    if let Some(error) = target_problem(request.uri(), route.as_deref()) {
        return error.into_response();
    }
    next.run(request).await
}

/// What is wrong with the request target, naming the path parameter by the
/// `route` it matched (`/orders/{id}` names `id`).
fn target_problem(uri: &axum::http::Uri, route: Option<&str>) -> Option<ApiError> {
    let mut names = route.map(|r| r.split('/').collect::<Vec<_>>()).unwrap_or_default().into_iter();
    for segment in uri.path().split('/') {
        let name = names.next().and_then(|n| n.strip_prefix('{')).and_then(|n| n.strip_suffix('}')).unwrap_or("path");
        let problem = match percent_decode(segment) {
            Ok(text) => text_problem(&text, false),
            Err(problem) => Some(problem),
        };
        if let Some(problem) = problem {
            return Some(ApiError::bad_path(name, problem));
        }
    }
    for pair in uri.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = match percent_decode(&name.replace('+', " ")) {
            Ok(name) if text_problem(&name, false).is_none() => name,
            Ok(name) => {
                return Some(ApiError::bad_query("query", format!("a parameter name {name:?} is not valid text")));
            }
            Err(problem) => return Some(ApiError::bad_query("query", format!("a parameter name {problem}"))),
        };
        let problem = match percent_decode(&value.replace('+', " ")) {
            Ok(text) => text_problem(&text, false),
            Err(problem) => Some(problem),
        };
        if let Some(problem) = problem {
            return Some(ApiError::bad_query(&name, problem));
        }
    }
    None
}

/// `raw` with its `%XX` escapes decoded, as UTF-8.
fn percent_decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("has a malformed %-escape")?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once %-decoded".to_owned())
}

/// A syntactically valid, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let email = raw.trim().to_lowercase();
        let bad = |why: &str| ApiError::validation("email", format!("`{raw}` is not an email address: {why}"));
        if email.len() > 254 {
            return Err(bad("longer than 254 characters"));
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(|| bad("no @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before @ must be 1 to 64 characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad("misplaced dot before @"));
        }
        if !local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c)) {
            return Err(bad("invalid character before @"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err(bad("the domain must be like example.com"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of acceptable length. Never logged: no `Debug` of the value.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub fn parse(field: &str, raw: String) -> Result<Self, ApiError> {
        let length = raw.chars().count();
        if length < 8 {
            return Err(ApiError::validation(field, "must be at least 8 characters"));
        }
        if length > 128 {
            return Err(ApiError::validation(field, "must be at most 128 characters"));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A first or last name: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let name = raw.trim();
        let length = name.chars().count();
        if length == 0 {
            return Err(ApiError::validation(field, "must not be empty"));
        }
        if length > 100 {
            return Err(ApiError::validation(field, format!("must be at most 100 characters (got {length})")));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::validation(field, "must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Ada@Example.COM ").expect("valid").as_str(), "ada@example.com");
        for bad in
            ["", "ada", "@example.com", "ada@", "ada@example", "a..b@example.com", "ada@exa mple.com", "ada@-x.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_text_is_refused_for_a_nul_or_a_control_character_and_named_by_its_path() {
        assert!(text_problem("a\u{0}b", true).expect("refused").contains("NUL (U+0000) at character 2"));
        assert!(text_problem("two\nlines\tand a tab", true).is_none());
        assert!(text_problem("two\nlines", false).is_some(), "no line feed in a URL");
        assert!(text_problem("\u{1b}[31m", true).is_some());
        assert!(text_problem("\u{85}", true).is_some(), "C1 controls too");
        assert!(text_problem("Grüße, 東京 🙂", false).is_none());
        let body = serde_json::json!({"items": [{"name": "ok"}, {"name": "x\u{0}"}], "notes": "fine"});
        assert_eq!(first_bad_text(&body).expect("found").0, "items[1].name");
        let body = serde_json::json!({"shipping_address": {"line1": "\u{7}"}});
        assert_eq!(first_bad_text(&body).expect("found").0, "shipping_address.line1");
        assert_eq!(first_bad_text(&serde_json::json!({"notes": "a\u{0}b"})).expect("found").0, "notes");
    }

    #[test]
    fn query_parameters_and_path_segments_are_checked_decoded() {
        let problem = |uri: &str| target_problem(&uri.parse().expect("uri"), None).map(|e| (e.status.as_u16(), e.code));
        assert_eq!(problem("/api/v1/audit?type=%00"), Some((400, "INVALID_QUERY".into())));
        assert_eq!(problem("/api/v1/users?search=%ff"), Some((400, "INVALID_QUERY".into())));
        assert_eq!(problem("/api/v1/users?search=%zz"), Some((400, "INVALID_QUERY".into())));
        assert_eq!(problem("/api/v1/audit/correlations/%00"), Some((400, "INVALID_PATH".into())));
        assert_eq!(problem("/api/v1/users?search=M%C3%BCller&page=2"), None);
        assert_eq!(problem("/api/v1/users?search=a+b"), None);
        let named = target_problem(&"/api/v1/orders/%00".parse().expect("uri"), Some("/api/v1/orders/{id}"));
        assert_eq!(named.expect("refused").details["field"], "id");
    }

    #[test]
    fn passwords_and_names() {
        assert!(Password::parse("password", "short".into()).is_err());
        assert!(Password::parse("password", "long enough".into()).is_ok());
        assert!(!format!("{:?}", Password::parse("p", "long enough".into()).expect("ok")).contains("long"));
        assert!(Name::parse("first_name", "").is_err());
        assert!(Name::parse("first_name", &"x".repeat(101)).is_err());
        assert_eq!(Name::parse("first_name", " Ada ").expect("ok").into_inner(), "Ada");
    }
}
