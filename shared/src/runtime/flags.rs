//! Parsers for the flags both programs take. Each refuses a bad value with a sentence that says how to write
//! a good one.

use std::time::Duration;

use crate::model::{LabelSelector, Scope};

/// Parses a duration written like `500ms`, `30s`, `5m`, `1h`; zero is refused.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value.trim()).map_err(|err| {
        format!("`{value}` is not a duration ({err}): write it like 500ms, 30s, 5m or 1h")
    })?;
    if duration.is_zero() {
        return Err(format!(
            "`{value}` is zero: give a positive duration like 30s"
        ));
    }
    Ok(duration)
}

/// A parsed `--scope`: an empty value (as an unset variable in compose gives) means the whole host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeArg(pub Scope);

/// Parses `--scope KEY` or `--scope KEY=VALUE`.
pub fn parse_scope(value: &str) -> Result<ScopeArg, String> {
    if value.trim().is_empty() {
        return Ok(ScopeArg(None));
    }
    value
        .parse::<LabelSelector>()
        .map(|selector| ScopeArg(Some(selector)))
        .map_err(|err| err.to_string())
}

/// Parses an on/off switch from the environment: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, and empty
/// for off (what an unset variable in a compose file gives).
pub fn parse_switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "off" => Ok(false),
        "true" | "1" | "yes" | "on" => Ok(true),
        _ => Err(format!("`{value}` is not on or off: use true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").expect_err("zero").contains("positive"));
        assert!(parse_duration("soon").expect_err("junk").contains("30s"));
    }

    #[test]
    fn empty_scope_is_the_whole_host() {
        assert_eq!(parse_scope(""), Ok(ScopeArg(None)));
        let ScopeArg(scope) = parse_scope("a=b").expect("parses");
        assert_eq!(scope.map(|s| s.to_string()).as_deref(), Some("a=b"));
        assert!(parse_scope("=b").is_err());
    }

    #[test]
    fn switches_read_the_usual_spellings() {
        for off in ["", "false", "0", "no", "off", "FALSE"] {
            assert_eq!(parse_switch(off), Ok(false), "{off:?}");
        }
        for on in ["true", "1", "yes", "on", "True"] {
            assert_eq!(parse_switch(on), Ok(true), "{on:?}");
        }
        assert!(parse_switch("maybe")
            .expect_err("junk")
            .contains("true or false"));
    }
}
