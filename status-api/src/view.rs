//! [`View`]: everything a request needs, frozen at one revision — the containers, the baseline they are
//! compared with, and the readiness that `/ready` and `/status` both report. Drift (and when each drift
//! began) is computed once per revision as the view is built; the serialised `/status` bodies once per
//! revision, on first use; both are shared by every request that follows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use shared::{ContainerState, ContainerStatus, DriftItem, Engine, Scope};

use crate::baseline::Baseline;
use crate::onsets::DriftOnsets;
use crate::prepared::{Encoded, Prepared};

/// One readiness check: whether it passes, and a sentence on why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadinessCheck {
    pub ok: bool,
    pub detail: String,
}

impl ReadinessCheck {
    pub fn up(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn down(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// The readiness checks of one revision — `docker` (the engine answers), `snapshot` (a baseline is in force),
/// `events` (the event stream is live), `scope` (the baseline was taken in the configured scope) — and what
/// they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub checks: BTreeMap<&'static str, ReadinessCheck>,
    /// Every check passes.
    pub ready: bool,
    /// The failing checks in words (`events: event stream not connected; snapshot: …`); `None` when ready.
    pub reason: Option<String>,
}

impl Readiness {
    pub fn new(
        engine: ReadinessCheck,
        baseline: Option<&Baseline>,
        scope: &Scope,
        events_live: bool,
    ) -> Self {
        let snapshot = match baseline {
            Some(baseline) => ReadinessCheck::up(format!(
                "{}, taken at {}",
                shared::count_of(baseline.len(), "container"),
                baseline.taken_at().to_rfc3339()
            )),
            None => ReadinessCheck::down("no snapshot yet: it is taken as soon as Docker answers"),
        };
        let events = if events_live {
            ReadinessCheck::up("event stream connected")
        } else {
            ReadinessCheck::down("event stream not connected")
        };
        let configured = configured_scope(scope);
        let scope = match (scope_mismatch(baseline, scope), baseline) {
            (Some(mismatch), _) => ReadinessCheck::down(mismatch),
            (None, Some(_)) => ReadinessCheck::up(format!(
                "{}, the snapshot's",
                shared::scope_in_words(configured.as_deref())
            )),
            (None, None) => ReadinessCheck::up(format!(
                "{}; the first snapshot is taken in it",
                shared::scope_in_words(configured.as_deref())
            )),
        };
        let checks = BTreeMap::from([
            ("docker", engine),
            ("snapshot", snapshot),
            ("events", events),
            ("scope", scope),
        ]);
        let failing: Vec<String> = checks
            .iter()
            .filter(|(_, check)| !check.ok)
            .map(|(name, check)| format!("{name}: {}", check.detail))
            .collect();
        Self {
            ready: failing.is_empty(),
            reason: (!failing.is_empty()).then(|| failing.join("; ")),
            checks,
        }
    }

    /// With one more check, `name`, when there is one.
    pub fn with_check(mut self, name: &'static str, check: Option<ReadinessCheck>) -> Self {
        let Some(check) = check else {
            return self;
        };
        self.checks.insert(name, check);
        let failing: Vec<String> = self
            .checks
            .iter()
            .filter(|(_, check)| !check.ok)
            .map(|(name, check)| format!("{name}: {}", check.detail))
            .collect();
        self.ready = failing.is_empty();
        self.reason = (!failing.is_empty()).then(|| failing.join("; "));
        self
    }

    /// Whether the engine answered the last request (the `docker` check).
    pub fn engine_reachable(&self) -> bool {
        self.checks.get("docker").is_some_and(|check| check.ok)
    }
}

/// The configured scope, normalised as a baseline's is.
fn configured_scope(scope: &Scope) -> Option<String> {
    shared::normalized_scope(scope.as_ref().map(ToString::to_string).as_deref())
}

/// When the baseline was taken in another scope than the configured one, what that means and the two ways
/// out; `None` when they agree or there is no baseline yet (the first one is taken in the configured scope).
/// The scope is part of the baseline: drift against a snapshot of another scope would call every container
/// of the new scope unexpected, and the controller would stop them.
pub fn scope_mismatch(baseline: Option<&Baseline>, scope: &Scope) -> Option<String> {
    let baseline = baseline?;
    let configured = configured_scope(scope);
    if baseline.scope() == configured.as_deref() {
        return None;
    }
    let snapshot_scope = baseline.scope();
    let start_with = match snapshot_scope {
        Some(scope) => format!("--scope '{scope}' or STATUS_API_SCOPE='{scope}'"),
        None => "no --scope and STATUS_API_SCOPE empty".to_owned(),
    };
    let configured = shared::scope_in_words(configured.as_deref());
    Some(format!(
        "status-api runs with {configured} but its snapshot was taken in {}, so it serves no drift. Either \
         start status-api with the snapshot's scope ({start_with}), or re-baseline in {configured} with POST \
         /snapshot (bearer token): what runs then becomes the baseline",
        shared::scope_in_words(snapshot_scope),
    ))
}

/// Everything a request needs, frozen at one revision.
#[derive(Debug)]
pub struct View {
    pub revision: u64,
    pub observed_at: DateTime<Utc>,
    pub events_live: bool,
    pub scope: Scope,
    pub resync_interval: Duration,
    pub own_container_id: Option<String>,
    /// The engine watched, once it has said what it is.
    pub engine: Option<Engine>,
    /// The baseline this revision is compared with.
    pub baseline: Option<Arc<Baseline>>,
    pub readiness: Readiness,
    /// Events received from the engine and not yet applied.
    pub event_backlog: usize,
    /// How far behind the engine this view is: the age of the oldest event not yet applied when the view
    /// was built (zero when none waits). Views are rebuilt whenever the backlog changes.
    pub event_lag: Duration,
    /// The engine time of the oldest event not yet applied, for the age of the backlog at any later moment.
    pub oldest_pending_event: Option<DateTime<Utc>>,
    /// Every container in scope, sorted by name, with `in_snapshot`, `spec_changes` and `tag_image_id` set:
    /// shared with the store and every other view that holds the same status.
    pub containers: Vec<Arc<ContainerStatus>>,
    drift: Vec<Arc<DriftItem>>,
    /// When each drift of this view began.
    onsets: Arc<DriftOnsets>,
    listed_body: Prepared,
    all_body: Prepared,
}

/// What the store knows at one revision, from which a [`View`] is built.
#[derive(Debug)]
pub struct ViewParts<'a> {
    pub revision: u64,
    pub observed_at: DateTime<Utc>,
    pub events_live: bool,
    pub scope: &'a Scope,
    pub resync_interval: Duration,
    pub own_container_id: Option<&'a str>,
    pub baseline: Option<Arc<Baseline>>,
    pub engine: ReadinessCheck,
    /// Which engine answered `GET /version`.
    pub identity: Option<Engine>,
    /// The `state_dir` check, when start-up follows the state directory.
    pub state_dir: Option<ReadinessCheck>,
    pub event_backlog: usize,
    /// The engine time of the oldest event not yet applied.
    pub oldest_pending_event: Option<DateTime<Utc>>,
    /// Every container in scope, decorated for `baseline` and sorted by name.
    pub containers: Vec<Arc<ContainerStatus>>,
    /// The drift of `containers` against `baseline` ([`shared::drift()`], worked out from the last view's):
    /// empty without a baseline or while it was taken in another scope.
    pub drift: Vec<Arc<DriftItem>>,
    /// When each drift of the view built before this one began.
    pub onsets: Arc<DriftOnsets>,
    /// When the store last changed: the onset of any drift this view is the first to show.
    pub changed_at: DateTime<Utc>,
}

impl View {
    pub fn new(parts: ViewParts<'_>) -> Self {
        let baseline = parts.baseline;
        let mut view = Self {
            revision: parts.revision,
            observed_at: parts.observed_at,
            events_live: parts.events_live,
            scope: parts.scope.clone(),
            resync_interval: parts.resync_interval,
            own_container_id: parts.own_container_id.map(ToOwned::to_owned),
            engine: parts.identity,
            readiness: Readiness::new(
                parts.engine,
                baseline.as_deref(),
                parts.scope,
                parts.events_live,
            )
            .with_check("state_dir", parts.state_dir),
            baseline,
            event_backlog: parts.event_backlog,
            event_lag: parts
                .oldest_pending_event
                .and_then(|oldest| (Utc::now() - oldest).to_std().ok())
                .unwrap_or_default(),
            oldest_pending_event: parts.oldest_pending_event,
            containers: parts.containers,
            drift: parts.drift,
            onsets: Arc::default(),
            listed_body: Prepared::default(),
            all_body: Prepared::default(),
        };
        // Drift comes with each view, not when first asked for: its onsets must be seen at the revision that
        // shows them, whoever asks and whenever.
        view.onsets = Arc::new(parts.onsets.follow(view.drift(), parts.changed_at));
        view
    }

    /// When each drift of this view began.
    pub fn onsets(&self) -> &Arc<DriftOnsets> {
        &self.onsets
    }

    /// The drift of this revision: empty until a snapshot exists, and while the snapshot was taken in another
    /// scope ([`View::scope_mismatch`]).
    pub fn drift(&self) -> &[Arc<DriftItem>] {
        &self.drift
    }

    /// Why the baseline cannot be compared with this view, when it was taken in another scope.
    pub fn scope_mismatch(&self) -> Option<&str> {
        self.readiness
            .checks
            .get("scope")
            .filter(|check| !check.ok)
            .map(|check| check.detail.as_str())
    }

    /// The body of `/status` (what `docker ps` lists) or `/status?all=true`, rendered once per revision, and
    /// gzip-encoded once when `gzip` is asked for.
    pub fn cached_body(
        &self,
        all: bool,
        gzip: bool,
        render: impl FnOnce(&Self) -> Bytes,
    ) -> Encoded {
        let prepared = if all {
            &self.all_body
        } else {
            &self.listed_body
        };
        prepared.get(gzip, || render(self))
    }

    pub fn count_by_state(&self) -> BTreeMap<ContainerState, usize> {
        let mut counts: BTreeMap<ContainerState, usize> = ContainerState::ALL
            .into_iter()
            .map(|state| (state, 0))
            .collect();
        for container in &self.containers {
            *counts.entry(container.state).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_every_failing_check_and_is_none_when_ready() {
        let cold = Readiness::new(
            ReadinessCheck::down("not contacted yet"),
            None,
            &None,
            false,
        );
        assert!(!cold.ready);
        assert!(!cold.engine_reachable());
        assert_eq!(
            cold.reason.as_deref(),
            Some(
                "docker: not contacted yet; events: event stream not connected; snapshot: no snapshot \
                 yet: it is taken as soon as Docker answers"
            )
        );
        let live = Readiness::new(ReadinessCheck::up("the engine answers"), None, &None, true);
        assert_eq!(
            live.reason.as_deref(),
            Some("snapshot: no snapshot yet: it is taken as soon as Docker answers")
        );
        assert!(live.engine_reachable());
    }

    fn baseline_in(scope: Option<&str>) -> Baseline {
        Baseline::new(crate::snapshot::Snapshot {
            format: crate::snapshot::FORMAT,
            taken_at: Utc::now(),
            scope: scope.map(ToOwned::to_owned),
            containers: vec![],
        })
    }

    #[test]
    fn a_snapshot_of_another_scope_is_not_ready_and_names_both_scopes_and_the_ways_out() {
        let engine = || ReadinessCheck::up("the engine answers");
        let web: Scope = Some("team=web".parse().expect("selector"));
        let same = Readiness::new(engine(), Some(&baseline_in(Some("team=web"))), &web, true);
        assert!(same.ready, "{:?}", same.reason);
        assert!(same.checks["scope"].ok);

        for (snapshot, configured, names) in [
            (Some("team=web"), None, ["`team=web`", "whole host"]),
            (
                Some("team=web"),
                Some("team=db"),
                ["`team=web`", "`team=db`"],
            ),
            (None, Some("team=web"), ["whole host", "`team=web`"]),
        ] {
            let configured: Scope = configured.map(|scope| scope.parse().expect("selector"));
            let readiness =
                Readiness::new(engine(), Some(&baseline_in(snapshot)), &configured, true);
            assert!(!readiness.ready);
            let reason = readiness.reason.expect("a reason");
            assert!(reason.starts_with("scope: "), "{reason}");
            for part in names
                .into_iter()
                .chain(["POST /snapshot", "STATUS_API_SCOPE"])
            {
                assert!(reason.contains(part), "{part}: {reason}");
            }
        }
        // Spelled differently, the same scope: normalised before they are compared.
        let padded = Readiness::new(engine(), Some(&baseline_in(Some(" team=web"))), &web, true);
        assert!(padded.ready, "{:?}", padded.reason);
        let whole_host = Readiness::new(engine(), Some(&baseline_in(Some(""))), &None, true);
        assert!(whole_host.ready, "{:?}", whole_host.reason);
    }
}
