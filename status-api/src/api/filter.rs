//! The filters of `GET /status`, read as `docker ps --filter` reads them: `state` and `name` may repeat and
//! any one value matching is enough (OR), `label` may repeat and every one must match (AND), `name` is a
//! regular expression matched against the name with and without its leading `/`, and without `all=true` or a
//! `state` the answer holds what `docker ps` lists: running, paused and restarting containers.
//!
//! Reading a request ([`StatusQuery::parse`]) is cheap and bounded: at most [`MAX_FILTER_VALUES`] `label` and
//! `name` values of bounded length. Compiling the `name` patterns ([`StatusQuery::compile`]) is the costly
//! step, bounded too (each program at most [`NAME_PATTERN_SIZE_LIMIT`]); it runs on the filter workers, never
//! on the server's own threads.

use regex::bytes::Regex;
use shared::{ContainerState, ContainerStatus, LabelSelector};

/// The most `label` values, and the most `name` values, one request may carry (the document's `maxItems`).
pub(super) const MAX_FILTER_VALUES: usize = 8;
/// The longest `name` pattern accepted (characters), so a request cannot make the server compile a huge
/// automaton. With [`MAX_LABEL`] and [`MAX_FILTER_VALUES`], chosen so that the longest query the document
/// allows, every character percent-encoded from four UTF-8 bytes, fits the 16 KiB request line (a test in
/// `api/mod.rs` adds it up).
pub(super) const MAX_NAME_PATTERN: usize = 64;
/// The longest `label` selector accepted (characters).
pub(super) const MAX_LABEL: usize = 100;
/// The most compiled program one `name` pattern may need (bytes). ASCII classes keep ordinary patterns far
/// below it (`^\w+-\d+$` needs about 2 KiB); it refuses the ones built to be expensive, like `(?u)\w{200}`,
/// which would otherwise take 10 MiB and 150 ms each.
pub(super) const NAME_PATTERN_SIZE_LIMIT: usize = 32 << 10;
/// The most memory the lazy DFA of one compiled pattern may cache while it matches (bytes).
const NAME_PATTERN_CACHE_LIMIT: usize = 64 << 10;

/// What one `/status` request asked for, read but not yet compiled: what a parked long poll keeps.
#[derive(Debug, Default, Clone)]
pub(super) struct StatusQuery {
    all: bool,
    states: Vec<ContainerState>,
    labels: Vec<LabelSelector>,
    names: Vec<String>,
}

/// A [`StatusQuery`] ready to match: its `name` patterns compiled.
#[derive(Debug)]
pub(super) struct StatusFilter {
    query: StatusQuery,
    names: Vec<Regex>,
}

/// A filter value that cannot be used, in words that say what to send instead.
#[derive(Debug, thiserror::Error)]
pub(super) enum FilterError {
    #[error("query parameter `label` is `{value}`: {reason}")]
    Label { value: String, reason: String },
    #[error(
        "query parameter `name` is `{value}`, which is not a regular expression ({reason}): send a \
         regular expression as `docker ps --filter name=` takes, e.g. `web` (names containing web), `^web` \
         or `web-1$`"
    )]
    Name { value: String, reason: String },
    #[error(
        "query parameter `name` is `{value}`, which compiles to more than {} KiB: send a simpler pattern; \
         container names are ASCII, and `\\w`, `\\d`, `\\s` and `.` are ASCII classes here, but `(?u)` \
         and Unicode classes like `\\pL` are large",
        NAME_PATTERN_SIZE_LIMIT >> 10
    )]
    NameTooLarge { value: String },
    #[error(
        "query parameter `{name}` is given {count} times: at most {MAX_FILTER_VALUES} are allowed; \
         combine patterns into one regular expression (`a|b`) or filter by fewer labels"
    )]
    TooMany { name: &'static str, count: usize },
}

impl StatusQuery {
    /// Reads the parameters; cheap: labels are parsed, `name` patterns only counted and measured.
    pub(super) fn parse(
        all: bool,
        mut states: Vec<ContainerState>,
        labels: &[String],
        names: Vec<String>,
    ) -> Result<Self, FilterError> {
        for (name, count) in [("label", labels.len()), ("name", names.len())] {
            if count > MAX_FILTER_VALUES {
                return Err(FilterError::TooMany { name, count });
            }
        }
        // Seven states at most, however often they repeat.
        states.sort_unstable();
        states.dedup();
        let labels = labels
            .iter()
            .map(|raw| {
                raw.parse::<LabelSelector>()
                    .map_err(|err| FilterError::Label {
                        value: raw.clone(),
                        reason: err.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        if let Some(long) = names
            .iter()
            .find(|raw| raw.chars().count() > MAX_NAME_PATTERN)
        {
            return Err(FilterError::Name {
                value: format!("{}…", long.chars().take(32).collect::<String>()),
                reason: format!("longer than {MAX_NAME_PATTERN} characters"),
            });
        }
        Ok(Self {
            all,
            states,
            labels,
            names,
        })
    }

    /// Whether the answer is one of the two every client shares (`/status`, `/status?all=true`), which are
    /// rendered once per revision.
    pub(super) fn is_plain(&self) -> bool {
        self.states.is_empty() && self.labels.is_empty() && self.names.is_empty()
    }

    /// Whether `name` patterns must be compiled: the costly step.
    pub(super) fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether every state is asked for: `all=true`, or a `state` filter (which, as in `docker ps`, implies it).
    pub(super) fn all_states(&self) -> bool {
        self.all || !self.states.is_empty()
    }

    /// Compiles the `name` patterns. Costly (up to a few milliseconds for [`MAX_FILTER_VALUES`] patterns at
    /// the size limit): call it off the async runtime.
    pub(super) fn compile(self) -> Result<StatusFilter, FilterError> {
        let names = self
            .names
            .iter()
            .map(|raw| name_pattern(raw))
            .collect::<Result<_, _>>()?;
        Ok(StatusFilter { query: self, names })
    }
}

impl StatusFilter {
    pub(super) fn matches(&self, container: &ContainerStatus) -> bool {
        let query = &self.query;
        (query.all_states() || listed_by_default(container.state))
            && (query.states.is_empty() || query.states.contains(&container.state))
            && query
                .labels
                .iter()
                .all(|selector| selector.matches(&container.labels))
            && (self.names.is_empty() || {
                let slashed = format!("/{}", container.name);
                self.names.iter().any(|pattern| {
                    pattern.is_match(container.name.as_bytes())
                        || pattern.is_match(slashed.as_bytes())
                })
            })
    }
}

/// What `docker ps` lists without `-a`: every container whose process is up, paused and restarting included.
pub(super) fn listed_by_default(state: ContainerState) -> bool {
    matches!(
        state,
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
    )
}

/// Compiles one `name` pattern as Docker's Go regexp reads it on a container name: Perl classes (`\w`, `\d`,
/// `\s`, `\b`) and case folding are ASCII, `.` any character (names are ASCII, so matching bytes is the same
/// as matching characters). `(?u)` turns Unicode back on, within the same size limit.
fn name_pattern(raw: &str) -> Result<Regex, FilterError> {
    regex::bytes::RegexBuilder::new(raw)
        .unicode(false)
        .size_limit(NAME_PATTERN_SIZE_LIMIT)
        .dfa_size_limit(NAME_PATTERN_CACHE_LIMIT)
        .build()
        .map_err(|err| match err {
            regex::Error::CompiledTooBig(_) => FilterError::NameTooLarge {
                value: raw.to_owned(),
            },
            regex::Error::Syntax(text) => FilterError::Name {
                value: raw.to_owned(),
                reason: text
                    .lines()
                    .rev()
                    .find(|line| line.starts_with("error:"))
                    .map(|line| line.trim_start_matches("error:").trim().to_owned())
                    .unwrap_or(text),
            },
            other => FilterError::Name {
                value: raw.to_owned(),
                reason: other.to_string(),
            },
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::Health;

    use super::*;

    fn container(name: &str, state: ContainerState, labels: &[(&str, &str)]) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-id"),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            state,
            health: Health::None,
            exit_code: None,
            restart_count: 0,
            created_at: None,
            started_at: None,
            finished_at: None,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            ports: Vec::new(),
            in_snapshot: false,
            policy: Default::default(),
            settling: false,
            restart_policy: None,
            exit_cause: None,
            spec_changes: Vec::new(),
            tag_image_id: None,
            spec: None,
            shares: Default::default(),
        }
    }

    fn filter(
        all: bool,
        states: &[ContainerState],
        labels: &[&str],
        names: &[&str],
    ) -> StatusFilter {
        query(all, states, labels, names).compile().expect("valid")
    }

    fn query(all: bool, states: &[ContainerState], labels: &[&str], names: &[&str]) -> StatusQuery {
        let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        StatusQuery::parse(all, states.to_vec(), &owned(labels), owned(names)).expect("valid")
    }

    #[test]
    fn by_default_what_docker_ps_lists() {
        let plain = filter(false, &[], &[], &[]);
        for state in ContainerState::ALL {
            assert_eq!(
                plain.matches(&container("a", state, &[])),
                matches!(
                    state,
                    ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
                ),
                "{state}"
            );
        }
        assert!(query(false, &[], &[], &[]).is_plain());
        assert!(filter(true, &[], &[], &[]).matches(&container("a", ContainerState::Exited, &[])));
    }

    #[test]
    fn states_are_ored_and_imply_all() {
        let f = filter(
            false,
            &[ContainerState::Exited, ContainerState::Created],
            &[],
            &[],
        );
        assert!(f.matches(&container("a", ContainerState::Exited, &[])));
        assert!(f.matches(&container("a", ContainerState::Created, &[])));
        assert!(!f.matches(&container("a", ContainerState::Running, &[])));
        assert!(!query(false, &[ContainerState::Exited], &[], &[]).is_plain());
    }

    #[test]
    fn labels_are_anded() {
        let f = filter(true, &[], &["team=web", "tier"], &[]);
        assert!(f.matches(&container(
            "a",
            ContainerState::Running,
            &[("team", "web"), ("tier", "1")]
        )));
        assert!(!f.matches(&container("a", ContainerState::Running, &[("team", "web")])));
    }

    #[test]
    fn names_are_regular_expressions_ored() {
        let f = filter(true, &[], &[], &["^web", "db-1$"]);
        assert!(f.matches(&container("web-2", ContainerState::Running, &[])));
        assert!(f.matches(&container("app-db-1", ContainerState::Running, &[])));
        assert!(!f.matches(&container("myweb", ContainerState::Running, &[])));
        assert!(!f.matches(&container("db-10", ContainerState::Running, &[])));
        // Docker matches the name with its leading slash too.
        assert!(filter(true, &[], &[], &["^/web"]).matches(&container(
            "web",
            ContainerState::Running,
            &[]
        )));
        assert!(filter(true, &[], &[], &["web."]).matches(&container(
            "web1",
            ContainerState::Running,
            &[]
        )));
    }

    #[test]
    fn a_bad_pattern_names_the_parameter_and_the_value() {
        let parse = |labels: &[&str], names: &[&str]| {
            let owned =
                |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
            StatusQuery::parse(true, vec![], &owned(labels), owned(names))
        };
        let err = parse(&[], &["web("])
            .expect("read")
            .compile()
            .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("`name` is `web(`"), "{text}");
        assert!(text.contains("unclosed group"), "{text}");
        let err = parse(&["=x"], &[]).expect_err("invalid");
        assert!(err.to_string().contains("`label` is `=x`"), "{err}");
        let long = "a".repeat(300);
        assert!(parse(&[], &[&long]).is_err());
    }

    #[test]
    fn work_is_bounded_before_any_is_done() {
        let owned = |value: &str, count: usize| vec![value.to_owned(); count];
        let err = StatusQuery::parse(true, vec![], &[], owned("web", 9)).expect_err("too many");
        assert_eq!(
            err.to_string(),
            "query parameter `name` is given 9 times: at most 8 are allowed; combine patterns into one \
             regular expression (`a|b`) or filter by fewer labels"
        );
        let err = StatusQuery::parse(true, vec![], &owned("a", 9), vec![]).expect_err("too many");
        assert!(
            err.to_string().contains("`label` is given 9 times"),
            "{err}"
        );
        assert!(StatusQuery::parse(true, vec![], &owned("a", 8), owned("a", 8)).is_ok());
        // What took 150 ms and 10 MiB a pattern is refused at the size limit, in words that say why.
        for expensive in [r"(?u)\w{200}", r"(?u)\w", r"a{1000}{1000}", r"(?u:\pL{50})"] {
            let err = StatusQuery::parse(true, vec![], &[], vec![expensive.to_owned()])
                .expect("read")
                .compile()
                .expect_err("too large");
            assert!(
                err.to_string().contains("more than 32 KiB"),
                "{expensive}: {err}"
            );
        }
        // A state repeated is one state.
        let many = StatusQuery::parse(true, vec![ContainerState::Running; 1000], &[], vec![])
            .expect("read");
        assert_eq!(many.states, [ContainerState::Running]);
    }

    #[test]
    fn perl_classes_are_ascii_as_in_docker_and_stay_small() {
        let f = filter(true, &[], &[], &[r"^\w+-\d+$", r"\bdb\b", "(?i)WEB"]);
        assert!(f.matches(&container("web_2-10", ContainerState::Running, &[])));
        assert!(f.matches(&container("app.db.1", ContainerState::Running, &[])));
        assert!(f.matches(&container("myweb", ContainerState::Running, &[])));
        assert!(!f.matches(&container("app-db1", ContainerState::Running, &[])));
        // What a plain Unicode `\w` would refuse at the size limit is fine here.
        filter(true, &[], &[], &[r"\w{200}", r"[\s\S]{200}", ".{200}"]);
        // Unicode classes need `(?u)`, and the message says what to write.
        let err = StatusQuery::parse(true, vec![], &[], vec![r"\pL".to_owned()])
            .expect("read")
            .compile()
            .expect_err("Unicode off");
        assert!(
            err.to_string().contains("Unicode not allowed here"),
            "{err}"
        );
    }
}
