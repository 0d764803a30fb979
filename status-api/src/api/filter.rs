//! The filters of `GET /status`, read as `docker ps --filter` reads them: `state` and `name` may repeat and
//! any one value matching is enough (OR), `label` may repeat and every one must match (AND), `name` is a
//! regular expression matched against the name with and without its leading `/`, and without `all=true` or a
//! `state` the answer holds what `docker ps` lists: running, paused and restarting containers.

use regex::Regex;
use shared::{ContainerState, ContainerStatus, LabelSelector};

/// The longest `name` pattern accepted, so a request cannot make the server compile a huge automaton.
pub(super) const MAX_NAME_PATTERN: usize = 256;
/// The longest `label` selector accepted.
pub(super) const MAX_LABEL: usize = 1024;
/// The most compiled program a `name` pattern may need (bytes): the regex crate's own default, which 256
/// characters of Unicode classes stay well under.
const NAME_PATTERN_SIZE_LIMIT: usize = 10 << 20;

/// What one `/status` request asked for.
#[derive(Debug, Default)]
pub(super) struct StatusFilter {
    all: bool,
    states: Vec<ContainerState>,
    labels: Vec<LabelSelector>,
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
}

impl StatusFilter {
    pub(super) fn parse(
        all: bool,
        states: Vec<ContainerState>,
        labels: &[String],
        names: &[String],
    ) -> Result<Self, FilterError> {
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
        let names = names
            .iter()
            .map(|raw| name_pattern(raw))
            .collect::<Result<_, _>>()?;
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

    /// Whether every state is asked for: `all=true`, or a `state` filter (which, as in `docker ps`, implies it).
    pub(super) fn all_states(&self) -> bool {
        self.all || !self.states.is_empty()
    }

    pub(super) fn matches(&self, container: &ContainerStatus) -> bool {
        (self.all_states() || listed_by_default(container.state))
            && (self.states.is_empty() || self.states.contains(&container.state))
            && self
                .labels
                .iter()
                .all(|selector| selector.matches(&container.labels))
            && (self.names.is_empty()
                || self.names.iter().any(|pattern| {
                    pattern.is_match(&container.name)
                        || pattern.is_match(&format!("/{}", container.name))
                }))
    }
}

/// What `docker ps` lists without `-a`: every container whose process is up, paused and restarting included.
pub(super) fn listed_by_default(state: ContainerState) -> bool {
    matches!(
        state,
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
    )
}

fn name_pattern(raw: &str) -> Result<Regex, FilterError> {
    if raw.len() > MAX_NAME_PATTERN {
        return Err(FilterError::Name {
            value: format!("{}…", raw.chars().take(32).collect::<String>()),
            reason: format!("longer than {MAX_NAME_PATTERN} characters"),
        });
    }
    regex::RegexBuilder::new(raw)
        .size_limit(NAME_PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|err| FilterError::Name {
            value: raw.to_owned(),
            reason: match err {
                regex::Error::Syntax(text) => text
                    .lines()
                    .rev()
                    .find(|line| line.starts_with("error:"))
                    .map(|line| line.trim_start_matches("error:").trim().to_owned())
                    .unwrap_or(text),
                other => other.to_string(),
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
            in_snapshot: false,
            policy: Default::default(),
            settling: false,
            restart_policy: None,
            exit_cause: None,
            shares: Default::default(),
        }
    }

    fn filter(
        all: bool,
        states: &[ContainerState],
        labels: &[&str],
        names: &[&str],
    ) -> StatusFilter {
        let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        StatusFilter::parse(all, states.to_vec(), &owned(labels), &owned(names)).expect("valid")
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
        assert!(plain.is_plain());
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
        assert!(!f.is_plain());
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
        let err =
            StatusFilter::parse(true, vec![], &[], &["web(".to_owned()]).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("`name` is `web(`"), "{text}");
        assert!(text.contains("unclosed group"), "{text}");
        let err = StatusFilter::parse(true, vec![], &["=x".to_owned()], &[]).expect_err("invalid");
        assert!(err.to_string().contains("`label` is `=x`"), "{err}");
        let long = "a".repeat(300);
        assert!(StatusFilter::parse(true, vec![], &[], &[long]).is_err());
    }
}
