//! A value that must never reach a log: a bearer token, a URL whose path or credentials are a key.
//!
//! `{:?}` and `{}` of a [`Secret`] print a placeholder, so a struct that holds one can derive `Debug` and be
//! logged whole; the value is read only through [`Secret::expose`], where it goes on the wire. A token is
//! checked with [`Secret::matches`], in constant time. There is deliberately no `PartialEq`: `==` on a token
//! would be a comparison whose time tells a guesser how much of the guess was right.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// What `Debug` and `Display` print instead of the value.
const REDACTED: &str = "[redacted]";

/// A secret `T` (a token: `Secret<str>`, the default). Cheap to clone: clones share one allocation.
pub struct Secret<T: ?Sized = str>(Arc<T>);

impl<T> Secret<T> {
    /// For a sized value such as a URL; a token is made with `Secret::from(&str)` or `from(String)`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T: ?Sized> Secret<T> {
    /// The value itself: only for where it must be sent (a header, a request URL), never for a log.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl Secret<str> {
    /// Whether `candidate` is this token. The time taken depends on the lengths only, never on how many
    /// leading bytes agree.
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(candidate.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl From<&str> for Secret<str> {
    fn from(value: &str) -> Self {
        Self(Arc::from(value))
    }
}

impl From<String> for Secret<str> {
    fn from(value: String) -> Self {
        Self(Arc::from(value))
    }
}

impl<T: ?Sized> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl<T: ?Sized> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-0123456789";

    #[test]
    fn debug_and_display_never_show_the_value() {
        let token = Secret::from(TOKEN);
        assert_eq!(format!("{token:?}"), "Secret([redacted])");
        assert_eq!(token.to_string(), "[redacted]");
        assert_eq!(format!("{token:#?}"), "Secret([redacted])");
        let url = Secret::new(String::from("https://hooks.example/KEY"));
        assert!(!format!("{url:?} {url}").contains("KEY"));
        let holder = format!("{:?}", (Some(token.clone()), vec![token]));
        assert!(!holder.contains(TOKEN), "{holder}");
    }

    #[test]
    fn the_value_is_there_to_expose_and_shared_by_clones() {
        let token = Secret::from(String::from(TOKEN));
        let clone = token.clone();
        assert_eq!(clone.expose(), TOKEN);
        assert!(std::ptr::eq(token.expose(), clone.expose()));
    }

    #[test]
    fn only_the_very_token_matches() {
        let token = Secret::from(TOKEN);
        assert!(token.matches(TOKEN));
        for wrong in [
            "",
            "s3cret",
            "s3cret-012345678",
            "s3cret-01234567890",
            "S3cret-0123456789",
            "s3cret-0123456788",
            " s3cret-0123456789",
        ] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
        assert!(!Secret::from("").matches("x"));
        assert!(Secret::from("").matches(""));
    }
}
