//! The re-check right before every action on an existing container (start, unpause, restart, stop, remove,
//! replace):
//! an action planned from a view that may be seconds old by the time a lane is free must still be right for
//! what the engine shows now (name, labels, scope, policy, state). Pure: the executor asks the engine, this
//! module decides. It is also how "already so" is told apart from "done": the engine answers a start of a
//! running container with 304, which the client library reports as success.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use shared::{in_scope, DriftKind, Namespace, Policy, SharedNamespaces};

use crate::model::{Action, ActionContext, ActionKind, Outcome};

/// What the engine says about a container right before a destructive action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub paused: bool,
    /// Created and never started: possibly a recreate cut short before its networks were all connected.
    pub created: bool,
    /// The networks it is connected to, by name.
    pub networks: BTreeSet<String>,
    /// The engine is restarting it (its restart policy) or removing it.
    pub moving: bool,
    pub unhealthy: bool,
    /// `Config.StopTimeout`: how long a stop waits before it kills; `None` for the engine's default.
    pub stop_timeout: Option<Duration>,
    /// The containers whose namespaces it joined, by the id the engine holds.
    pub shares: SharedNamespaces,
}

/// How long the engine waits for a container without a stop timeout of its own before it kills it.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Seen {
    /// How long a stop (or the stop half of a restart) may take before the engine kills the container.
    pub fn grace(&self) -> Duration {
        self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT)
    }
}

impl Seen {
    pub fn from_inspect(inspect: &ContainerInspectResponse) -> Self {
        let state = inspect.state.as_ref();
        Self {
            id: inspect.id.clone().unwrap_or_default(),
            name: shared::runtime::engine_json::container_name(inspect),
            labels: inspect
                .config
                .as_ref()
                .and_then(|config| config.labels.as_ref())
                .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            running: state.and_then(|state| state.status)
                == Some(ContainerStateStatusEnum::RUNNING),
            paused: state.and_then(|state| state.status) == Some(ContainerStateStatusEnum::PAUSED),
            created: state.and_then(|state| state.status)
                == Some(ContainerStateStatusEnum::CREATED),
            networks: inspect
                .network_settings
                .as_ref()
                .and_then(|settings| settings.networks.as_ref())
                .map(|networks| networks.keys().cloned().collect())
                .unwrap_or_default(),
            moving: matches!(
                state.and_then(|state| state.status),
                Some(ContainerStateStatusEnum::RESTARTING | ContainerStateStatusEnum::REMOVING)
            ),
            stop_timeout: inspect
                .config
                .as_ref()
                .and_then(|config| config.stop_timeout)
                .and_then(|seconds| u64::try_from(seconds).ok())
                .map(Duration::from_secs),
            unhealthy: state
                .and_then(|state| state.health.as_ref())
                .and_then(|health| health.status)
                == Some(HealthStatusEnum::UNHEALTHY),
            shares: inspect
                .host_config
                .as_ref()
                .map(|host| {
                    SharedNamespaces::from_modes(
                        host.network_mode.as_deref(),
                        host.ipc_mode.as_deref(),
                        host.pid_mode.as_deref(),
                    )
                })
                .unwrap_or_default(),
        }
    }
}

/// Whether `action` (start, unpause, restart, stop or removal) is still right for the container the engine
/// shows now; `Err` is the outcome to report instead.
pub fn recheck(action: &Action, context: &ActionContext, seen: &Seen) -> Result<(), Outcome> {
    if context.protected.contains(&seen.id) {
        return Err(Outcome::skipped(
            "it is one of the pair's own containers (or owns the network namespace the controller's joined): never touched",
        ));
    }
    if seen.name != action.container {
        return Err(Outcome::skipped(format!(
            "it is named {} now, not {}",
            seen.name, action.container
        )));
    }
    if !in_scope(&context.scope, &seen.labels) {
        let scope = context
            .scope
            .as_ref()
            .map_or_else(|| "(the whole host)".to_owned(), ToString::to_string);
        return Err(Outcome::skipped(format!(
            "its labels put it outside the scope {scope}"
        )));
    }
    let policy = Policy::from_labels(&seen.labels);
    if policy != Policy::Heal {
        return Err(Outcome::skipped(format!(
            "its policy is {}",
            policy.as_str()
        )));
    }
    match action.kind {
        ActionKind::Start if seen.running => Err(Outcome::noop("already running")),
        ActionKind::Start | ActionKind::Unpause if seen.moving => Err(Outcome::skipped(
            "the engine is restarting or removing it: the next change decides",
        )),
        ActionKind::Start if seen.paused => Err(Outcome::skipped(
            "it is paused now: the next change decides",
        )),
        ActionKind::Unpause if !seen.paused => Err(Outcome::noop("not paused")),
        ActionKind::Stop | ActionKind::Remove if context.members.contains(&seen.name) => Err(
            Outcome::skipped("it is in the snapshot now, not unexpected"),
        ),
        ActionKind::Stop if !seen.running => Err(Outcome::noop("it is not running any more")),
        ActionKind::Restart if !seen.running => Err(Outcome::skipped(
            "it is not running any more: the next change decides",
        )),
        // An orphaned member is restarted to join its owner's new namespace, healthy or not.
        ActionKind::Restart if action.drift != Some(DriftKind::Orphaned) && !seen.unhealthy => {
            Err(Outcome::noop("it is healthy again"))
        }
        ActionKind::Replace if !context.members.contains(&seen.name) => Err(Outcome::skipped(
            "it is no longer in the snapshot: only a member is replaced",
        )),
        ActionKind::Replace if seen.moving => Err(Outcome::skipped(
            "the engine is restarting or removing it: the next change decides",
        )),
        _ => Ok(()),
    }
}

/// Whether the owner of a namespace a dependant joins runs now, as the engine says (`seen`; `None` when it
/// has no such container). A dependant started, restarted or created before its owner runs fails, or joins
/// a namespace that is going away: the plan waits for the owner, and this catches a view that is behind.
pub fn owner_runs(namespace: Namespace, owner: &str, seen: Option<&Seen>) -> Result<(), Outcome> {
    match seen {
        Some(seen) if seen.running => Ok(()),
        Some(_) => Err(Outcome::skipped(format!(
            "{owner}, whose {namespace} namespace it joins, does not run: the next change decides"
        ))),
        None => Err(Outcome::skipped(format!(
            "{owner}, whose {namespace} namespace it joins, does not exist: the next change decides"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use shared::{ContainerState, DriftKind, POLICY_LABEL};

    use super::*;
    use crate::model::ActionResult;

    fn action(kind: ActionKind) -> Action {
        Action {
            container: "web".into(),
            id: "a".repeat(64),
            kind,
            drift: Some(DriftKind::Unexpected),
            policy: Policy::Heal,
            state: Some(ContainerState::Running),
            reason: "running from busybox but not in the snapshot".into(),
            waits_for: None,
            retry_at: None,
        }
    }

    fn context() -> ActionContext {
        ActionContext {
            scope: Some("team=a".parse().expect("selector")),
            protected: vec!["f".repeat(64)],
            members: HashSet::from(["db".to_owned()]),
        }
    }

    fn seen() -> Seen {
        Seen {
            id: "a".repeat(64),
            name: "web".into(),
            labels: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
            running: true,
            paused: false,
            moving: false,
            unhealthy: false,
            stop_timeout: None,
            created: false,
            networks: BTreeSet::new(),
            shares: SharedNamespaces::default(),
        }
    }

    fn refused(kind: ActionKind, seen: &Seen) -> Option<Outcome> {
        recheck(&action(kind), &context(), seen).err()
    }

    #[test]
    fn a_container_still_as_planned_may_be_stopped_or_removed() {
        assert_eq!(refused(ActionKind::Stop, &seen()), None);
        assert_eq!(refused(ActionKind::Remove, &seen()), None);
        let stopped = Seen {
            running: false,
            ..seen()
        };
        assert_eq!(
            refused(ActionKind::Remove, &stopped),
            None,
            "removing a stopped one is fine"
        );
        let sick = Seen {
            unhealthy: true,
            ..seen()
        };
        assert_eq!(refused(ActionKind::Restart, &sick), None);
    }

    #[test]
    fn out_of_scope_other_policies_and_renamed_containers_are_refused() {
        let mut outside = seen();
        outside.labels.insert("team".into(), "b".into());
        let mut observed = seen();
        observed
            .labels
            .insert(POLICY_LABEL.into(), "observe".into());
        let mut ignored = seen();
        ignored.labels.insert(POLICY_LABEL.into(), "ignore".into());
        let renamed = Seen {
            name: "web-old".into(),
            ..seen()
        };
        for (case, expected) in [
            (&outside, "outside the scope team=a"),
            (&observed, "policy is observe"),
            (&ignored, "policy is ignore"),
            (&renamed, "named web-old now"),
        ] {
            for kind in [ActionKind::Stop, ActionKind::Remove, ActionKind::Restart] {
                let outcome = refused(kind, case).expect("refused");
                assert_eq!(outcome.result, ActionResult::Skipped);
                let detail = outcome.detail.unwrap_or_default();
                assert!(detail.contains(expected), "{kind}: {detail}");
            }
        }
    }

    #[test]
    fn the_pair_s_own_containers_are_refused_whatever_their_labels() {
        let status_api = Seen {
            id: "f".repeat(64),
            ..seen()
        };
        let outcome = refused(ActionKind::Stop, &status_api).expect("refused");
        assert!(outcome.detail.unwrap_or_default().contains("pair's own"));
    }

    #[test]
    fn a_snapshot_member_is_never_stopped_as_unexpected() {
        let member = Seen {
            name: "db".into(),
            ..seen()
        };
        let mut stop = action(ActionKind::Stop);
        stop.container = "db".into();
        let outcome = recheck(&stop, &context(), &member).expect_err("refused");
        assert!(outcome
            .detail
            .unwrap_or_default()
            .contains("in the snapshot"));
    }

    #[test]
    fn an_orphaned_member_is_restarted_healthy_or_not_and_only_a_member_is_replaced() {
        let mut orphaned = action(ActionKind::Restart);
        orphaned.drift = Some(DriftKind::Orphaned);
        assert_eq!(recheck(&orphaned, &context(), &seen()), Ok(()));

        let mut replace = action(ActionKind::Replace);
        replace.drift = Some(DriftKind::Orphaned);
        let outcome = recheck(&replace, &context(), &seen()).expect_err("not a member");
        assert_eq!(outcome.result, ActionResult::Skipped);
        let mut members = context();
        members.members = HashSet::from(["web".to_owned()]);
        assert_eq!(recheck(&replace, &members, &seen()), Ok(()));
    }

    #[test]
    fn a_dependant_acts_only_while_its_owner_runs() {
        assert_eq!(owner_runs(Namespace::Pid, "init", Some(&seen())), Ok(()));
        let stopped = Seen {
            running: false,
            ..seen()
        };
        let outcome = owner_runs(Namespace::Pid, "init", Some(&stopped)).expect_err("down");
        assert_eq!(outcome.result, ActionResult::Skipped);
        assert!(outcome.detail.unwrap_or_default().contains("PID namespace"));
        let outcome = owner_runs(Namespace::Network, "vpn", None).expect_err("gone");
        assert!(outcome
            .detail
            .unwrap_or_default()
            .contains("does not exist"));
    }

    #[test]
    fn what_already_changed_is_a_noop() {
        let stopped = Seen {
            running: false,
            ..seen()
        };
        assert_eq!(
            refused(ActionKind::Stop, &stopped).map(|o| o.result),
            Some(ActionResult::Noop)
        );
        assert_eq!(
            refused(ActionKind::Restart, &seen()).map(|o| o.result),
            Some(ActionResult::Noop),
            "healthy again"
        );
        assert_eq!(
            refused(ActionKind::Restart, &stopped).map(|o| o.result),
            Some(ActionResult::Skipped)
        );
    }

    #[test]
    fn a_start_or_unpause_acts_only_on_a_container_that_still_needs_it() {
        let stopped = Seen {
            running: false,
            ..seen()
        };
        let paused = Seen {
            running: false,
            paused: true,
            ..seen()
        };
        let restarting = Seen {
            running: false,
            moving: true,
            ..seen()
        };
        assert_eq!(refused(ActionKind::Start, &stopped), None);
        assert_eq!(refused(ActionKind::Unpause, &paused), None);
        let result = |kind, seen: &Seen| refused(kind, seen).map(|outcome| outcome.result);
        assert_eq!(
            result(ActionKind::Start, &seen()),
            Some(ActionResult::Noop),
            "already running"
        );
        assert_eq!(
            result(ActionKind::Unpause, &seen()),
            Some(ActionResult::Noop)
        );
        assert_eq!(
            result(ActionKind::Start, &paused),
            Some(ActionResult::Skipped)
        );
        assert_eq!(
            result(ActionKind::Start, &restarting),
            Some(ActionResult::Skipped)
        );
        let mut ignored = stopped.clone();
        ignored.labels.insert(POLICY_LABEL.into(), "ignore".into());
        assert_eq!(
            result(ActionKind::Start, &ignored),
            Some(ActionResult::Skipped)
        );
    }

    #[test]
    fn the_whole_host_scope_takes_any_labels() {
        let context = ActionContext {
            scope: None,
            ..context()
        };
        let unlabelled = Seen {
            labels: BTreeMap::new(),
            ..seen()
        };
        assert_eq!(
            recheck(&action(ActionKind::Stop), &context, &unlabelled),
            Ok(())
        );
    }

    #[test]
    fn seen_reads_the_inspect_answer() {
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "a".repeat(64), "Name": "/web",
            "State": {"Status": "running", "Health": {"Status": "unhealthy"}},
            "Config": {"Labels": {"team": "a"}, "StopTimeout": 300},
        }))
        .expect("valid inspect");
        let seen = Seen::from_inspect(&inspect);
        assert_eq!(seen.grace(), std::time::Duration::from_secs(300));
        assert_eq!(
            Seen {
                stop_timeout: None,
                created: false,
                networks: BTreeSet::new(),
                ..seen.clone()
            }
            .grace(),
            DEFAULT_STOP_TIMEOUT
        );
        assert_eq!(seen.name, "web");
        assert!(seen.running && seen.unhealthy);
        assert_eq!(seen.labels.get("team").map(String::as_str), Some("a"));
    }
}
