//! Values parsed at the edge: an invalid one cannot be constructed.

use crate::error::ApiError;

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
    fn passwords_and_names() {
        assert!(Password::parse("password", "short".into()).is_err());
        assert!(Password::parse("password", "long enough".into()).is_ok());
        assert!(!format!("{:?}", Password::parse("p", "long enough".into()).expect("ok")).contains("long"));
        assert!(Name::parse("first_name", "").is_err());
        assert!(Name::parse("first_name", &"x".repeat(101)).is_err());
        assert_eq!(Name::parse("first_name", " Ada ").expect("ok").into_inner(), "Ada");
    }
}
