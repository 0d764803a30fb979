//! Whether one `/status` answer of status-api may be acted on — status-api ready, its event stream live, its
//! data younger than twice its resync interval, its events applied, a snapshot to compare with — and the [`FreshView`] it
//! completes to. One answer carries everything this judgement needs; only the snapshot is read separately,
//! and only when status-api re-baselined.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::{Scope, SnapshotSummary, StatusResponse};

use crate::model::{ActionContext, Hold, HoldReason, Observed, StatusAnswer};

/// Whether status-api watches the scope the controller was started for (`--scope`; `None` accepts any). The
/// scopes are compared normalised, no scope being the whole host. A controller pointed at a status-api of
/// another scope would act on containers it was never meant to touch, so it holds instead.
pub fn check_scope(expected: &Scope, status: &StatusResponse) -> Result<(), Hold> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let expected = shared::normalized_scope(Some(&expected.to_string()));
    let reported = shared::normalized_scope(status.scope.as_deref());
    if expected == reported {
        return Ok(());
    }
    Err(Hold::new(
        HoldReason::ScopeMismatch,
        format!(
            "status-api watches {} but this controller was started with --scope {}: point it at the \
             status-api of that scope, or start it with status-api's scope (STATUS_CONTROLLER_SCOPE)",
            shared::scope_in_words(reported.as_deref()),
            shared::scope_in_words(expected.as_deref()),
        ),
    ))
}

/// Whether the snapshot was taken in the scope status-api watches. status-api itself is not ready when they
/// differ; this keeps an older status-api, which only warned, from having its idea of the scope trusted.
fn check_snapshot_scope(snapshot: &SnapshotSummary, status: &StatusResponse) -> Result<(), Hold> {
    let taken_in = shared::normalized_scope(snapshot.scope.as_deref());
    let watched = shared::normalized_scope(status.scope.as_deref());
    if taken_in == watched {
        return Ok(());
    }
    Err(Hold::new(
        HoldReason::ScopeMismatch,
        format!(
            "status-api watches {} but its snapshot was taken in {}: start it with the snapshot's scope, or \
             re-baseline with POST /snapshot",
            shared::scope_in_words(watched.as_deref()),
            shared::scope_in_words(taken_in.as_deref()),
        ),
    ))
}

/// Whether status-api's answer is live and recent enough to act on: its event stream connected, its view
/// confirmed against the engine within twice its resync interval, a snapshot to compare with, and status-api
/// itself ready.
pub fn check_fresh(status: &StatusResponse, now: DateTime<Utc>) -> Result<(), Hold> {
    if !status.events_live {
        return Err(Hold::new(
            HoldReason::EventsDown,
            "status-api's Docker event stream is not connected, so its view may miss changes",
        ));
    }
    check_age(status.observed_at, status.resync_interval_seconds, now)?;
    if status.snapshot_taken_at.is_none() {
        return Err(Hold::new(
            HoldReason::NoSnapshot,
            "status-api has no snapshot yet",
        ));
    }
    if !status.ready {
        let reason = status
            .not_ready_reason
            .as_deref()
            .unwrap_or("it does not say why");
        return Err(Hold::new(
            HoldReason::ApiNotReady,
            format!("status-api is not ready: {reason}"),
        ));
    }
    check_behind(status)
}

/// More events than this waiting to be applied means status-api's view is behind the engine.
pub const MAX_EVENT_BACKLOG: u64 = 256;

/// A view whose oldest unapplied event is older than this is behind the engine.
pub const MAX_EVENT_LAG: Duration = Duration::from_secs(2);

/// Whether status-api has applied the engine's events: a view that is behind may show a container as
/// stopped that the engine already restarted, and acting on it would fight the engine.
fn check_behind(status: &StatusResponse) -> Result<(), Hold> {
    let lag = status.event_lag_seconds;
    if status.event_backlog > MAX_EVENT_BACKLOG || lag > MAX_EVENT_LAG.as_secs_f64() {
        return Err(Hold::new(
            HoldReason::ViewBehind,
            format!(
                "status-api's view is behind the engine: {} not yet applied, the oldest {lag:.1}s old \
                 (the controller acts again at most {MAX_EVENT_BACKLOG} events and {}s behind)",
                shared::count_of(usize::try_from(status.event_backlog).unwrap_or(usize::MAX), "event"),
                MAX_EVENT_LAG.as_secs(),
            ),
        ));
    }
    Ok(())
}

fn check_age(
    observed_at: DateTime<Utc>,
    resync_seconds: u64,
    now: DateTime<Utc>,
) -> Result<(), Hold> {
    let age = (now - observed_at).to_std().unwrap_or_default();
    let limit = Duration::from_secs(resync_seconds.saturating_mul(2));
    if age > limit {
        return Err(Hold::new(
            HoldReason::Stale,
            format!(
                "status-api last confirmed its view {}s ago, more than twice its resync interval ({}s)",
                age.as_secs(),
                resync_seconds
            ),
        ));
    }
    Ok(())
}

/// A complete, fresh view: the snapshot, and what status-api observes, from the same moment.
#[derive(Debug, Clone)]
pub struct FreshView {
    pub snapshot: Arc<SnapshotSummary>,
    pub observed: Observed,
    /// When status-api last confirmed it against the engine.
    pub observed_at: DateTime<Utc>,
    /// status-api's resync interval: the view is stale after twice that.
    pub resync_interval_seconds: u64,
}

impl FreshView {
    /// What the actions planned from this view may rely on. `own` is what the controller protects for
    /// itself: its container and the owner of the network namespace it joined.
    pub fn context<'a>(&self, own: impl IntoIterator<Item = &'a str>) -> ActionContext {
        ActionContext {
            scope: self.observed.scope.clone(),
            protected: own
                .into_iter()
                .map(str::to_owned)
                .chain(self.observed.server_container_id.clone())
                .collect(),
            members: self
                .snapshot
                .containers
                .iter()
                .map(|member| member.name.clone())
                .collect(),
        }
    }

    /// Whether this view, held since it arrived, may still be acted on at `now`.
    pub fn still_fresh(&self, now: DateTime<Utc>) -> Result<(), Hold> {
        check_age(self.observed_at, self.resync_interval_seconds, now)
    }
}

/// Completes `status` into a [`FreshView`], or says why it cannot be acted on: checks the scope against the
/// controller's `--scope` (`expected_scope`) and freshness, (re-)reads the snapshot with `read_snapshot` when
/// status-api re-baselined, when none is `known`, or when `refresh` asks, and checks that the snapshot was
/// taken in the scope status-api watches. The reading is passed in, so this judgement stays free of I/O.
pub async fn complete_view<F>(
    answer: StatusAnswer,
    expected_scope: &Scope,
    known: Option<Arc<SnapshotSummary>>,
    refresh: bool,
    now: DateTime<Utc>,
    read_snapshot: impl FnOnce() -> F,
) -> Result<FreshView, Hold>
where
    F: Future<Output = Result<Arc<SnapshotSummary>, Hold>>,
{
    let status = &answer.status;
    check_scope(expected_scope, status)?;
    check_fresh(status, now)?;
    let snapshot = match known {
        Some(snapshot) if !refresh && Some(snapshot.taken_at) == status.snapshot_taken_at => {
            snapshot
        }
        _ => {
            let snapshot = read_snapshot().await?;
            if Some(snapshot.taken_at) != status.snapshot_taken_at {
                return Err(Hold::new(
                    HoldReason::NoSnapshot,
                    "status-api re-baselined while the snapshot was read; reading it again",
                ));
            }
            snapshot
        }
    };
    check_snapshot_scope(&snapshot, status)?;
    let (observed_at, resync_interval_seconds) =
        (status.observed_at, status.resync_interval_seconds);
    let observed = Observed::try_from(answer).map_err(|err| {
        Hold::new(
            HoldReason::BadAnswer,
            format!("status-api reports a scope the controller cannot read: {err}"),
        )
    })?;
    Ok(FreshView {
        snapshot,
        observed,
        observed_at,
        resync_interval_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> StatusResponse {
        StatusResponse {
            revision: 4,
            observed_at: Utc::now(),
            snapshot_taken_at: Some(Utc::now()),
            scope: None,
            events_live: true,
            engine: None,
            resync_interval_seconds: 30,
            server_container_id: None,
            engine_reachable: true,
            ready: true,
            not_ready_reason: None,
            event_backlog: 0,
            event_lag_seconds: 0.0,
            containers: vec![],
        }
    }

    #[test]
    fn a_live_recent_view_with_a_snapshot_is_fresh() {
        assert_eq!(check_fresh(&status(), Utc::now()), Ok(()));
        let almost_stale = status().observed_at + chrono::Duration::seconds(59);
        assert_eq!(check_fresh(&status(), almost_stale), Ok(()));
    }

    #[test]
    fn a_view_older_than_twice_the_resync_interval_is_stale() {
        let later = Utc::now() + chrono::Duration::seconds(61);
        let hold = check_fresh(&status(), later).expect_err("stale");
        assert_eq!(hold.reason, HoldReason::Stale);
        assert!(hold.detail.contains("30s"), "{}", hold.detail);
    }

    #[test]
    fn a_view_without_events_or_snapshot_is_held() {
        let no_events = StatusResponse {
            events_live: false,
            ..status()
        };
        assert_eq!(
            check_fresh(&no_events, Utc::now()).map_err(|hold| hold.reason),
            Err(HoldReason::EventsDown)
        );
        let no_snapshot = StatusResponse {
            snapshot_taken_at: None,
            ..status()
        };
        assert_eq!(
            check_fresh(&no_snapshot, Utc::now()).map_err(|hold| hold.reason),
            Err(HoldReason::NoSnapshot)
        );
    }

    #[test]
    fn a_view_behind_the_engine_is_held_until_it_catches_up() {
        let at_the_limits = StatusResponse {
            event_backlog: MAX_EVENT_BACKLOG,
            event_lag_seconds: MAX_EVENT_LAG.as_secs_f64(),
            ..status()
        };
        assert_eq!(check_fresh(&at_the_limits, Utc::now()), Ok(()));

        let long_backlog = StatusResponse {
            event_backlog: MAX_EVENT_BACKLOG + 1,
            event_lag_seconds: 0.1,
            ..status()
        };
        let hold = check_fresh(&long_backlog, Utc::now()).expect_err("a long backlog");
        assert_eq!(hold.reason, HoldReason::ViewBehind);
        assert!(hold.detail.contains("257 events"), "{}", hold.detail);

        let old_event = StatusResponse {
            event_backlog: 3,
            event_lag_seconds: 2.5,
            ..status()
        };
        let hold = check_fresh(&old_event, Utc::now()).expect_err("an old event");
        assert_eq!(hold.reason, HoldReason::ViewBehind);
        assert!(hold.detail.contains("2.5s old"), "{}", hold.detail);
        assert_eq!(hold.reason.as_str(), "view_behind");

        let caught_up = StatusResponse {
            event_backlog: 0,
            event_lag_seconds: 0.0,
            ..old_event
        };
        assert_eq!(check_fresh(&caught_up, Utc::now()), Ok(()));
    }

    #[test]
    fn a_status_api_that_is_not_ready_is_held_with_its_reason() {
        let not_ready = StatusResponse {
            ready: false,
            engine_reachable: false,
            not_ready_reason: Some("docker: the engine does not answer".into()),
            ..status()
        };
        let hold = check_fresh(&not_ready, Utc::now()).expect_err("not ready");
        assert_eq!(hold.reason, HoldReason::ApiNotReady);
        assert!(
            hold.detail.contains("docker: the engine does not answer"),
            "{}",
            hold.detail
        );
    }

    #[test]
    fn without_scope_the_controller_accepts_status_apis_and_with_one_it_must_match() {
        let web = StatusResponse {
            scope: Some("team=web".into()),
            ..status()
        };
        assert_eq!(check_scope(&None, &web), Ok(()));
        assert_eq!(check_scope(&None, &status()), Ok(()));
        let expected: Scope = Some("team=web".parse().expect("selector"));
        assert_eq!(check_scope(&expected, &web), Ok(()));

        for other in [
            StatusResponse {
                scope: Some("team=db".into()),
                ..status()
            },
            status(),
        ] {
            let hold = check_scope(&expected, &other).expect_err("another scope");
            assert_eq!(hold.reason, HoldReason::ScopeMismatch);
            assert!(hold.detail.contains("`team=web`"), "{}", hold.detail);
            let reported = other.scope.clone().unwrap_or("whole host".into());
            assert!(hold.detail.contains(&reported), "{}", hold.detail);
        }
    }

    #[tokio::test]
    async fn a_snapshot_of_another_scope_than_status_apis_is_held() {
        let web = StatusResponse {
            scope: Some("team=web".into()),
            ..status()
        };
        let taken_at = web.snapshot_taken_at.expect("set");
        let snapshot = |scope: Option<&str>| SnapshotSummary {
            taken_at,
            scope: scope.map(ToOwned::to_owned),
            containers: vec![],
        };
        let read = |scope: Option<&'static str>| {
            let summary = snapshot(scope);
            move || async move { Ok(Arc::new(summary)) }
        };
        let held = complete_view(
            web.clone().into(),
            &None,
            None,
            true,
            Utc::now(),
            read(None),
        )
        .await
        .expect_err("the whole host's snapshot under team=web");
        assert_eq!(held.reason, HoldReason::ScopeMismatch);
        assert!(held.detail.contains("`team=web`"), "{}", held.detail);
        assert!(held.detail.contains("whole host"), "{}", held.detail);

        let fresh = complete_view(
            web.into(),
            &None,
            None,
            true,
            Utc::now(),
            read(Some("team=web")),
        )
        .await
        .expect("the same scope");
        assert_eq!(fresh.snapshot.scope.as_deref(), Some("team=web"));
    }

    #[test]
    fn a_held_view_goes_stale() {
        let view = FreshView {
            snapshot: Arc::new(SnapshotSummary {
                taken_at: Utc::now(),
                scope: None,
                containers: vec![],
            }),
            observed: Observed::try_from(StatusAnswer::from(status())).expect("no scope"),
            observed_at: Utc::now(),
            resync_interval_seconds: 30,
        };
        assert_eq!(view.still_fresh(Utc::now()), Ok(()));
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(
            view.still_fresh(later).map_err(|hold| hold.reason),
            Err(HoldReason::Stale)
        );
    }
}
