//! Domain newtypes: values that were checked once, at the edge, so the rest of the code
//! can trust them. Each parses from a `String` (serde goes through `parse`, so a bad
//! value in a request body is a 400 that names the field).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validation failure, phrased for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The checked value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self, Invalid> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// An email address: trimmed, lower-cased, one `@` with text on both sides.
    EmailAddress
);
string_newtype!(
    /// A display name or label: trimmed, 1–100 characters, no control characters.
    Name
);
string_newtype!(
    /// An `http(s)://` URL of at most 2,048 characters (avatars, meeting links).
    WebUrl
);

impl EmailAddress {
    /// Check and normalise an email address.
    pub fn parse(value: String) -> Result<Self, Invalid> {
        let v = value.trim().to_lowercase();
        let bad = || Invalid(format!("{value:?} is not a valid email address"));
        if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = v.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self(v))
    }
}

impl Name {
    /// Check a name: trimmed, 1–100 characters, no control characters.
    pub fn parse(value: String) -> Result<Self, Invalid> {
        let v = value.trim();
        if v.is_empty() {
            return Err(Invalid("must not be empty".into()));
        }
        if v.chars().count() > 100 {
            return Err(Invalid("must be at most 100 characters".into()));
        }
        if v.chars().any(char::is_control) {
            return Err(Invalid("must not contain control characters".into()));
        }
        Ok(Self(v.to_owned()))
    }
}

impl WebUrl {
    /// Check a URL: `http://` or `https://`, a host, at most 2,048 characters.
    pub fn parse(value: String) -> Result<Self, Invalid> {
        let v = value.trim();
        let rest = v
            .strip_prefix("https://")
            .or_else(|| v.strip_prefix("http://"))
            .ok_or_else(|| Invalid(format!("{v:?} must start with http:// or https://")))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(Invalid(format!("{v:?} has no host")));
        }
        if v.len() > 2048 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid("URL is too long or contains whitespace".into()));
        }
        Ok(Self(v.to_owned()))
    }
}

/// A password as typed: 8–1,024 characters. Never printed.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    /// Check a new password's length.
    pub fn parse(value: String) -> Result<Self, Invalid> {
        let n = value.chars().count();
        if n < 8 {
            return Err(Invalid("password must be at least 8 characters".into()));
        }
        if n > 1024 {
            return Err(Invalid("password must be at most 1024 characters".into()));
        }
        Ok(Self(value))
    }

    /// The password, to hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(value)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(**redacted**)")
    }
}

/// What a user may do in their workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages the workspace: users, teams, inboxes, channels, tokens.
    Admin,
    /// Answers conversations in the inboxes they are a member of.
    Agent,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// Parse the stored spelling.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised() {
        let e = EmailAddress::parse("  Ada@Example.COM ".into()).unwrap();
        assert_eq!(e.as_str(), "ada@example.com");
    }

    #[test]
    fn bad_emails_are_rejected() {
        for bad in [
            "", "ada", "@x.com", "ada@", "a@b@c", "a b@c.d", "a@.c", "a@c.",
        ] {
            assert!(EmailAddress::parse(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ada ".into()).unwrap().as_str(), "Ada");
        assert!(Name::parse("   ".into()).is_err());
        assert!(Name::parse("x".repeat(101)).is_err());
        assert!(Name::parse("a\u{0}b".into()).is_err());
        assert!(Name::parse("é".repeat(100)).is_ok());
    }

    #[test]
    fn urls_need_a_scheme_and_host() {
        assert!(WebUrl::parse("https://meet.example.com/ada".into()).is_ok());
        assert!(WebUrl::parse("javascript:alert(1)".into()).is_err());
        assert!(WebUrl::parse("https://".into()).is_err());
        assert!(WebUrl::parse("ftp://x".into()).is_err());
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::parse("short".into()).is_err());
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn roles_reject_unknown_values() {
        assert!(serde_json::from_str::<Role>("\"owner\"").is_err());
        assert_eq!(
            serde_json::from_str::<Role>("\"agent\"").unwrap(),
            Role::Agent
        );
    }

    proptest! {
        #[test]
        fn a_parsed_email_parses_to_itself(s in "\\PC{0,40}") {
            if let Ok(e) = EmailAddress::parse(s) {
                let again = EmailAddress::parse(e.as_str().to_owned()).unwrap();
                prop_assert_eq!(again, e);
            }
        }

        #[test]
        fn a_parsed_name_is_never_blank_or_long(s in "\\PC{0,120}") {
            if let Ok(n) = Name::parse(s) {
                prop_assert!(!n.as_str().trim().is_empty());
                prop_assert!(n.as_str().chars().count() <= 100);
            }
        }
    }
}
