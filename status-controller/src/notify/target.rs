//! Where notifications go: `--notify-url` and the lines of `--notify-url-file`. A scheme prefix picks the
//! format (`slack+https://…`, `ntfy+https://…`, `json+https://…`; a plain `http(s)://` URL is json). Such URLs
//! carry secrets in their path or query (a Slack webhook's is its key, an ntfy topic's name is its password),
//! so a [`Target`] shows only its format, scheme and host — in logs, in `Debug`, in errors — and an error
//! shows of the value it refused no more than that ([`redact`]). clap would print a refused value whole, so
//! `--notify-url` is read through [`NotifyUrlsParser`], whose errors say only what [`redact`] leaves.

use std::path::{Path, PathBuf};

use reqwest::Url;
use serde::Serialize;
use shared::runtime::secret::Secret;

/// How a notification is written for its receiver.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Format {
    /// One JSON object with every field (see docs/notifications.md): for your own webhook.
    Json,
    /// `{"text": "…"}`: Slack's incoming webhooks, Discord's `/slack` endpoint, Mattermost.
    Slack,
    /// A plain-text body with `Title`, `Priority` and `Tags` headers: an ntfy topic URL.
    Ntfy,
}

/// One receiver: its format and its URL (which may hold a secret, and is never shown: it is kept as a
/// [`Secret`], so not even a derived `Debug` of a field could print it).
#[derive(Clone)]
pub struct Target {
    format: Format,
    url: Secret<Url>,
}

/// How to write a notification URL, for the errors.
const URL_HINT: &str = "write it like https://hooks.example.com/…, or with a format prefix: \
                        slack+https://…, ntfy+https://…, json+https://…";

impl Target {
    /// Parses one URL: `[FORMAT+]http(s)://host/…`. The error never repeats the value.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let (format, rest) = match value.split_once("://") {
            Some((scheme, _)) => match scheme.split_once('+') {
                Some((prefix, _)) => {
                    let format = prefix.parse::<Format>().map_err(|_| {
                        format!(
                            "the URL's format prefix `{prefix}+` is not one of json, slack, ntfy: {URL_HINT}"
                        )
                    })?;
                    (format, &value[prefix.len() + 1..])
                }
                None => (Format::Json, value),
            },
            None => return Err(format!("it is not an absolute URL: {URL_HINT}")),
        };
        let url = Url::parse(rest).map_err(|err| format!("it is not a URL ({err}): {URL_HINT}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "it uses the scheme `{}`; notifications are sent over http or https: {URL_HINT}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("it has no host: {URL_HINT}"));
        }
        Ok(Self {
            format,
            url: Secret::new(url),
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The URL to post to, secret and all: for the request only, never for a log.
    pub fn url(&self) -> &Url {
        self.url.expose()
    }

    /// What logs may show: `format+scheme://host[:port]`, without path, query or credentials.
    pub fn redacted(&self) -> String {
        format!("{}+{}", self.format, host_part(self.url()))
    }
}

/// `scheme://host[:port]` of `url`: no credentials, path, query or fragment.
fn host_part(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// What an error may show of a notification URL it refused: its prefix and scheme and its host, as
/// [`Target::redacted`] does, with `/…` where a path, query or fragment was left out; credentials never.
/// `None` when the value is no URL at all: then nothing of it can be told apart from a secret.
pub fn redact(value: &str) -> Option<String> {
    let value = value.trim();
    let (scheme, rest) = value.split_once("://")?;
    // The URL after a format prefix, as Target::parse reads it.
    let url_scheme = scheme.rsplit_once('+').map_or(scheme, |(_, scheme)| scheme);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let left_out = if authority_end < rest.len() {
        "/…"
    } else {
        ""
    };
    if let Ok(url) = Url::parse(&format!("{url_scheme}://{rest}")) {
        if url.host_str().is_some() {
            let prefix = &scheme[..scheme.len() - url_scheme.len()];
            return Some(format!("{prefix}{}{left_out}", host_part(&url)));
        }
    }
    // Not a URL: show the host as far as it can be told from credentials (`user:pass/…` has no `@` before
    // the first `/`, and reads as a host with a port that is no number).
    let authority = &rest[..authority_end];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.rsplit_once(':') {
        Some((name, port))
            if !port.bytes().all(|byte| byte.is_ascii_digit()) && !host.starts_with('[') =>
        {
            name.split(':').next().unwrap_or_default()
        }
        _ => host,
    };
    Some(format!("{scheme}://{host}{left_out}"))
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.redacted())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The URLs of one `--notify-url` value (or of `STATUS_CONTROLLER_NOTIFY_URL`): one or more, separated by
/// whitespace (spaces or newlines), which a URL never holds.
#[derive(Debug, Clone)]
pub struct TargetList(pub Vec<Target>);

/// Parses `--notify-url`: whitespace-separated URLs; empty means none. A refused URL is named by its number
/// and what [`redact`] leaves of it.
pub fn parse_notify_urls(value: &str) -> Result<TargetList, String> {
    value
        .split_whitespace()
        .enumerate()
        .map(|(index, url)| {
            Target::parse(url)
                .map_err(|err| format!("URL number {}{} is refused: {err}", index + 1, shown(url)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(TargetList)
}

/// ` (<redacted>)`, or nothing when nothing of `value` may be shown.
fn shown(value: &str) -> String {
    redact(value).map_or_else(String::new, |redacted| format!(" ({redacted})"))
}

/// Reads `--notify-url` (and `STATUS_CONTROLLER_NOTIFY_URL`) with [`parse_notify_urls`]. clap's own error
/// for a refused value repeats the value whole — a webhook's key on stderr and in the logs of whatever
/// started the controller — so this parser answers its own error, which does not.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotifyUrlsParser;

impl clap::builder::TypedValueParser for NotifyUrlsParser {
    type Value = TargetList;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<TargetList, clap::Error> {
        let refused = |problem: String| {
            let flag = arg.map_or_else(|| "--notify-url".to_owned(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {problem}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refused(format!("it is not UTF-8: {URL_HINT}")))?;
        parse_notify_urls(text).map_err(refused)
    }
}

/// `--notify-url-file`: a file of URLs, read (and every line checked) when the flags are read, so a bad one
/// stops the start-up with the file and line named.
#[derive(Debug, Clone)]
pub struct UrlFile {
    pub path: PathBuf,
    pub targets: Vec<Target>,
}

/// Parses `--notify-url-file`: reads the file at `value` ([`parse_url_lines`]).
pub fn parse_url_file(value: &str) -> Result<UrlFile, String> {
    let path = Path::new(value);
    let text = std::fs::read_to_string(path).map_err(|err| {
        format!(
            "cannot read the notification URL file {value}: {err}; give a readable file with one URL a line"
        )
    })?;
    let targets =
        parse_url_lines(&text).map_err(|(line, err)| format!("{value} line {line}: {err}"))?;
    Ok(UrlFile {
        path: path.to_owned(),
        targets,
    })
}

/// The URLs in a URL file's text: one a line; blank lines and lines starting with `#` are skipped. A refused
/// line answers its number (from 1) and why, with what [`redact`] leaves of it.
pub fn parse_url_lines(text: &str) -> Result<Vec<Target>, (usize, String)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            Target::parse(line).map_err(|err| (number, format!("{}{err}", shown_before(line))))
        })
        .collect()
}

/// `<redacted>: `, or nothing when nothing of `value` may be shown.
fn shown_before(value: &str) -> String {
    redact(value).map_or_else(String::new, |redacted| format!("{redacted}: "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_picks_the_format_and_plain_urls_are_json() {
        let cases = [
            (
                "https://hooks.example.com/x",
                Format::Json,
                "https://hooks.example.com/x",
            ),
            (
                "json+http://10.0.0.1:9000/in",
                Format::Json,
                "http://10.0.0.1:9000/in",
            ),
            (
                "slack+https://hooks.slack.com/services/T/B/K",
                Format::Slack,
                "https://hooks.slack.com/services/T/B/K",
            ),
            (
                "ntfy+https://ntfy.sh/topic",
                Format::Ntfy,
                "https://ntfy.sh/topic",
            ),
        ];
        for (value, format, url) in cases {
            let target = Target::parse(value).expect(value);
            assert_eq!(target.format(), format, "{value}");
            assert_eq!(target.url().as_str(), url, "{value}");
        }
    }

    #[test]
    fn only_scheme_and_host_are_ever_shown() {
        let target = Target::parse(
            "slack+https://user:pw@hooks.slack.com:8443/services/SECRET?token=SECRET",
        )
        .expect("valid");
        assert_eq!(target.redacted(), "slack+https://hooks.slack.com:8443");
        assert_eq!(
            format!("{target:?}"),
            "Target(slack+https://hooks.slack.com:8443)"
        );
        assert_eq!(target.to_string(), "slack+https://hooks.slack.com:8443");
        assert!(!format!("{:?}", parse_notify_urls("https://a/SECRET")).contains("SECRET"));
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for (value, hint) in [
            ("hooks.example.com/SECRET", "not an absolute URL"),
            (
                "teams+https://example.com/SECRET",
                "`teams+` is not one of json, slack, ntfy",
            ),
            ("ftp://example.com/SECRET", "scheme `ftp`"),
            ("slack+ftp://example.com/SECRET", "scheme `ftp`"),
            ("https://:443/SECRET", "empty host"),
        ] {
            let err = Target::parse(value).expect_err(value);
            assert!(err.contains(hint), "{value}: {err}");
            assert!(!err.contains("SECRET"), "{value}: {err}");
        }
    }

    #[test]
    fn a_refused_value_is_shown_without_its_secret_parts() {
        for (value, shown) in [
            (
                "slack+https://hooks.slack.com/services/T0/B0/KEY",
                Some("slack+https://hooks.slack.com/…"),
            ),
            ("ntfy+https://ntfy.sh/topic", Some("ntfy+https://ntfy.sh/…")),
            (
                "https://user:pw@hooks.example.com:8443?token=KEY#x",
                Some("https://hooks.example.com:8443/…"),
            ),
            (
                "json+http://10.0.0.1:9000",
                Some("json+http://10.0.0.1:9000"),
            ),
            (
                "teams+https://a.example/KEY",
                Some("teams+https://a.example/…"),
            ),
            (
                "slack+gopher://me:KEY@b.example/KEY",
                Some("slack+gopher://b.example/…"),
            ),
            ("https://me:KEY@/KEY", Some("https:///…")),
            ("https://me:KEY/KEY@hooks.example/KEY", Some("https://me/…")),
            ("https://[::1/KEY", Some("https://[::1/…")),
            ("hooks.example.com/KEY", None),
            ("KEY", None),
        ] {
            assert_eq!(redact(value).as_deref(), shown, "{value}");
        }
    }

    #[test]
    fn a_flag_value_may_hold_several_urls() {
        let list =
            parse_notify_urls(" https://a.example/1\n slack+https://b.example/2  ").expect("two");
        assert_eq!(list.0.len(), 2);
        assert_eq!(list.0[1].format(), Format::Slack);
        assert!(parse_notify_urls("").expect("none").0.is_empty());
        let err = parse_notify_urls("https://a.example/1 nope").expect_err("second is bad");
        assert!(err.starts_with("URL number 2 is refused"), "{err}");
        let err = parse_notify_urls("https://a.example/1 ftp://b.example/KEY").expect_err("ftp");
        assert!(
            err.starts_with("URL number 2 (ftp://b.example/…) is refused"),
            "{err}"
        );
    }

    #[test]
    fn a_url_file_skips_blanks_and_comments_and_names_the_bad_line() {
        let text = "# team alerts\n\nslack+https://hooks.slack.com/services/T/B/K\n  ntfy+https://ntfy.sh/t  \n";
        let targets = parse_url_lines(text).expect("valid");
        assert_eq!(
            targets.iter().map(Target::format).collect::<Vec<_>>(),
            [Format::Slack, Format::Ntfy]
        );
        let (line, err) =
            parse_url_lines("# ok\nhttps://a.example/\nnot a url\n").expect_err("line 3");
        assert_eq!(line, 3);
        assert!(err.contains("not an absolute URL"), "{err}");
    }

    #[test]
    fn a_url_file_that_cannot_be_read_or_holds_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("a directory");
        let missing = dir.path().join("missing");
        let err = parse_url_file(missing.to_str().expect("utf-8")).expect_err("missing");
        assert!(
            err.contains("cannot read the notification URL file") && err.contains("missing"),
            "{err}"
        );
        let path = dir.path().join("urls");
        std::fs::write(
            &path,
            "https://a.example/SECRET\nslack+gopher://me:SECRET@hooks.example/SECRET?SECRET\n",
        )
        .expect("write");
        let err = parse_url_file(path.to_str().expect("utf-8")).expect_err("bad line");
        assert!(
            err.contains(
                "urls line 2: slack+gopher://hooks.example/…: it uses the scheme `gopher`"
            ),
            "{err}"
        );
        assert!(!err.contains("SECRET"), "{err}");
        std::fs::write(&path, "https://a.example/SECRET\n").expect("write");
        let file = parse_url_file(path.to_str().expect("utf-8")).expect("valid");
        assert_eq!(file.targets.len(), 1);
    }
}
