//! What the loop tells of quarantines, kept beside the [`HealGuard`] that decides them: which ones it has
//! told of, so that each end is told once, whether the quarantine ended early (the container is not the one
//! that kept failing any more) or ran out; and the sentences it tells. Pure: the loop passes the clock and
//! does the telling (journal, notifications, metrics).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use shared::{ContainerState, ContainerStatus};

use crate::backoff::HealGuard;

/// The journal's reason for a quarantine that ended early.
pub const ENDED_EARLY_REASON: &str = "it is not the container that kept failing any more";

/// A quarantine that holds an action back, as told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// Attempts on the container before its quarantine.
    pub attempts: u32,
    pub detail: String,
}

/// A quarantine that ended early, as told: the container is not the one that kept failing any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedEarly {
    pub container: String,
    /// The id the container has now.
    pub id: String,
    pub detail: String,
}

/// A quarantine that ran out, as told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub container: String,
    pub detail: String,
}

/// The quarantines the loop has told of, by container name.
#[derive(Debug, Default)]
pub struct Quarantines {
    told: HashSet<String>,
}

impl Quarantines {
    pub fn new() -> Self {
        Self::default()
    }

    /// `container`'s action is held back by its quarantine, which lasts `until`: what its record says.
    pub fn holds_back(
        &mut self,
        guard: &HealGuard,
        container: &str,
        until: Instant,
        now: Instant,
    ) -> Holding {
        // Known here, not only at the next pass's count: the next pass may be the one at its end.
        self.told.insert(container.to_owned());
        let attempts = guard.attempts(container);
        let detail = format!(
            "{attempts} attempts without {}s of quiet: left alone for {}s; restart status-controller to retry sooner",
            guard.limits().backoff.reset_after.as_secs(),
            (until - now).as_secs()
        );
        Holding { attempts, detail }
    }

    /// Ends the quarantine of every container in `observed` that is no longer the one that kept failing
    /// (see [`HealGuard::observe`]), and answers them.
    pub fn end_early(
        &mut self,
        guard: &mut HealGuard,
        observed: &[Arc<ContainerStatus>],
        now: Instant,
        utc_now: DateTime<Utc>,
    ) -> Vec<EndedEarly> {
        let mut ended = Vec::new();
        for container in observed {
            let running_for = container
                .started_at
                .filter(|_| container.state == ContainerState::Running)
                .map(|started| (utc_now - started).to_std().unwrap_or_default());
            let Some(end) = guard.observe(&container.name, &container.id, running_for, now) else {
                continue;
            };
            self.told.remove(&container.name);
            ended.push(EndedEarly {
                container: container.name.clone(),
                id: container.id.clone(),
                detail: format!("ended: {end}"),
            });
        }
        ended
    }

    /// Every quarantine told of that ran out since the last call (one that ended early was answered by
    /// [`Self::end_early`]).
    pub fn served(&mut self, guard: &HealGuard, now: Instant) -> Vec<Served> {
        let current: HashSet<String> = guard
            .quarantined(now)
            .into_iter()
            .map(|quarantine| quarantine.container)
            .collect();
        let detail = format!(
            "ended: served its {}s; the controller tries again",
            guard.limits().quarantine_for.as_secs()
        );
        let mut served: Vec<Served> = self
            .told
            .difference(&current)
            .map(|container| Served {
                container: container.clone(),
                detail: detail.clone(),
            })
            .collect();
        served.sort_by(|a, b| a.container.cmp(&b.container));
        self.told = current;
        served
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::Health;

    use super::*;
    use crate::backoff::{Gate, HealLimits};

    /// A guard whose `web` (id `web-id`) was quarantined for 600 s after three attempts, kept as the loop
    /// keeps it; answers the moment and the end.
    fn quarantined_web(guard: &mut HealGuard) -> (Instant, Instant) {
        let mut now = Instant::now();
        for _ in 0..3 {
            now += guard.record_attempt("web", "web-id", now, 0.0);
        }
        let Gate::Quarantined {
            until,
            entered: true,
        } = guard.gate("web", now)
        else {
            panic!("not quarantined: {:?}", guard.gate("web", now));
        };
        guard.enter_quarantine("web", until);
        (now, until)
    }

    fn guard() -> HealGuard {
        HealGuard::new(HealLimits {
            quarantine_after: 3,
            quarantine_for: Duration::from_secs(600),
            ..HealLimits::default()
        })
    }

    fn status(
        id: &str,
        state: ContainerState,
        started_at: Option<DateTime<Utc>>,
    ) -> ContainerStatus {
        ContainerStatus {
            id: id.into(),
            name: "web".into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            state,
            health: Health::None,
            exit_code: None,
            restart_count: 0,
            created_at: None,
            started_at,
            finished_at: None,
            labels: Default::default(),
            ports: Vec::new(),
            in_snapshot: true,
            policy: Default::default(),
            shares: Default::default(),
            settling: false,
            restart_policy: None,
            exit_cause: None,
            spec_changes: Vec::new(),
            tag_image_id: None,
            spec: None,
        }
    }

    #[test]
    fn a_quarantine_that_holds_back_says_its_attempts_and_time_left() {
        let mut guard = guard();
        let mut book = Quarantines::new();
        let (now, until) = quarantined_web(&mut guard);
        let told = book.holds_back(&guard, "web", until, now + Duration::from_secs(100));
        assert_eq!(told.attempts, 3);
        assert_eq!(
            told.detail,
            "3 attempts without 120s of quiet: left alone for 500s; restart status-controller to retry sooner"
        );
    }

    #[test]
    fn a_quarantine_that_ran_out_is_told_once_at_the_first_look_after() {
        let mut guard = guard();
        let mut book = Quarantines::new();
        let (now, until) = quarantined_web(&mut guard);
        book.holds_back(&guard, "web", until, now);
        assert!(book.served(&guard, now).is_empty(), "still serving");
        let served = book.served(&guard, until);
        assert_eq!(
            served
                .iter()
                .map(|told| (told.container.as_str(), told.detail.as_str()))
                .collect::<Vec<_>>(),
            vec![("web", "ended: served its 600s; the controller tries again")]
        );
        assert!(book.served(&guard, until).is_empty(), "told once");
    }

    #[test]
    fn a_quarantine_seen_at_a_look_is_told_when_it_ran_out_even_if_nothing_it_held_back_was() {
        let mut guard = guard();
        let mut book = Quarantines::new();
        let (now, until) = quarantined_web(&mut guard);
        assert!(book.served(&guard, now).is_empty());
        assert_eq!(book.served(&guard, until).len(), 1);
    }

    #[test]
    fn a_quarantine_ends_early_for_a_new_container_or_a_long_run_and_is_not_served_then() {
        let utc_now = Utc::now();
        for (case, observed, end) in [
            (
                "a new container id",
                status("other-id", ContainerState::Running, None),
                Some("ended: new container id"),
            ),
            (
                "a run past the quiet period",
                status(
                    "web-id",
                    ContainerState::Running,
                    Some(utc_now - chrono::Duration::seconds(121)),
                ),
                Some("ended: ran for 121 s"),
            ),
            (
                "a run too short",
                status(
                    "web-id",
                    ContainerState::Running,
                    Some(utc_now - chrono::Duration::seconds(100)),
                ),
                None,
            ),
            (
                "stopped long after its start",
                status(
                    "web-id",
                    ContainerState::Exited,
                    Some(utc_now - chrono::Duration::seconds(500)),
                ),
                None,
            ),
        ] {
            let mut guard = guard();
            let mut book = Quarantines::new();
            let (now, until) = quarantined_web(&mut guard);
            book.holds_back(&guard, "web", until, now);
            let observed_id = observed.id.clone();
            let ended = book.end_early(&mut guard, &[Arc::new(observed)], now, utc_now);
            let details: Vec<&str> = ended.iter().map(|told| told.detail.as_str()).collect();
            assert_eq!(details, end.into_iter().collect::<Vec<_>>(), "{case}");
            if end.is_some() {
                assert_eq!(ended[0].container, "web", "{case}");
                assert_eq!(ended[0].id, observed_id, "{case}");
                assert!(
                    guard.quarantined(now).is_empty(),
                    "{case}: the guard forgot it"
                );
                assert!(
                    book.served(&guard, until).is_empty(),
                    "{case}: not told twice"
                );
            } else {
                assert_eq!(guard.quarantined(now).len(), 1, "{case}: still quarantined");
            }
        }
    }
}
