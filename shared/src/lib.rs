//! The vocabulary status-api and status-controller share: the JSON types of the HTTP API ([`model`]) and the
//! pure drift computation ([`drift`], with [`namespaces`] for containers that share another's namespace)
//! both sides run, so they can never disagree about what "in sync" means.

// No production function longer than 80 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod backoff;
pub mod drift;
#[cfg(feature = "openapi")]
mod examples;
pub mod image_ref;
pub mod model;
pub mod namespace_modes;
pub mod namespaces;
pub mod ports;
pub mod spec_diff;
pub mod spec_summary;

pub use drift::drift;
pub use image_ref::{normalized_reference, same_reference};
pub use model::*;
pub use namespaces::{Fate, Namespace, Orphaning, Owners, SharedNamespaces};
pub use ports::PortMapping;
pub use spec_summary::{ChangeKind, SpecChange, SpecSummary};
#[cfg(feature = "runtime")]
pub mod runtime;

/// An error and its causes on one line (`outer: cause: root cause`), for logs, readiness details and
/// `/actions`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The first 12 characters of an id (or of a name), as `docker ps` shows ids: the whole text when it is
/// shorter. Cut at a character boundary, never inside a character, so no id — short, odd or not hex — can
/// panic it (a byte slice `&id[..12]` would, and a panic is an abort in the release build).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// `count` and `noun`, in the plural unless there is exactly one: `1 container`, `3 containers`.
pub fn count_of(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::{count_of, short_id};

    #[test]
    fn short_ids_are_cut_at_a_character_never_inside_one() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(short_id(id), "0123456789ab");
        assert_eq!(short_id("abc"), "abc", "shorter than 12");
        assert_eq!(short_id(""), "");
        assert_eq!(short_id("0123456789ab"), "0123456789ab", "exactly 12");
        // Byte 12 falls inside a character here: `&id[..12]` panics, `short_id` does not.
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
        assert_eq!(short_id("01234567890€x"), "01234567890€");
        assert_eq!(short_id("日本語"), "日本語");
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count_of(0, "container"), "0 containers");
        assert_eq!(count_of(1, "container"), "1 container");
        assert_eq!(count_of(3, "difference"), "3 differences");
    }
}
