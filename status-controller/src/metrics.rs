//! Prometheus metrics (SPEC "Metrics"): what the controller did and how it went, how long a pass and a heal
//! take, when it held back and why, and which containers are quarantined.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use shared::runtime::metrics::MetricsRegistry;
use strum::VariantArray;

use crate::model::{ActionKind, ActionResult, HoldReason, JournalProblem, NotificationResult};

/// The metric families status-controller exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    actions: IntCounterVec,
    action_duration: HistogramVec,
    reconcile_duration: Histogram,
    holds: IntCounterVec,
    heal: Histogram,
    last_pass: Gauge,
    quarantined: IntGauge,
    /// 1 for each container in quarantine, by name; a container's series goes when its quarantine ends.
    quarantined_containers: IntGaugeVec,
    /// The names that have a series in `quarantined_containers`, so an ended quarantine's can be removed.
    quarantined_names: Arc<Mutex<BTreeSet<String>>>,
    ready: IntGauge,
    holding: IntGaugeVec,
    notifications: IntCounterVec,
    hold_until: Gauge,
    journal_problems: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = MetricsRegistry::new();
        let metrics = Self {
            actions: registry.int_counter_vec(
                "dockstate_controller_actions_total",
                "Actions decided, by action and result (ok, noop, gone, conflict, skipped, failed, dry_run, reported, quarantined, quarantine_ended).",
                &["action", "result"],
            ),
            action_duration: registry.histogram_vec(
                "dockstate_controller_action_duration_seconds",
                "Time to carry out one action against Docker, by action.",
                &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                &["action"],
            ),
            reconcile_duration: registry.histogram(
                "dockstate_controller_reconcile_duration_seconds",
                "Time of one pass: from status-api's answer to every action dispatched (not carried out).",
                &[0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
            holds: registry.int_counter_vec(
                "dockstate_controller_holds_total",
                "Passes that took no action because the view was not complete and fresh, by reason; for `maintenance`, maintenance holds set.",
                &["reason"],
            ),
            heal: registry.histogram(
                "dockstate_controller_heal_seconds",
                "From drift first seen to the action that healed it done.",
                &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            ),
            last_pass: registry.gauge(
                "dockstate_controller_last_pass_timestamp_seconds",
                "When the last pass on a fresh view ended, in seconds since the epoch.",
            ),
            quarantined: registry.int_gauge(
                "dockstate_controller_quarantined",
                "Containers left alone because they kept failing.",
            ),
            quarantined_containers: registry.int_gauge_vec(
                "dockstate_controller_container_quarantined",
                "1 for each container left alone because it kept failing, by name; absent otherwise.",
                &["name"],
            ),
            quarantined_names: Arc::default(),
            ready: registry.int_gauge(
                "dockstate_controller_ready",
                "1 when the controller has a complete, fresh view and may act; else 0.",
            ),
            holding: registry.int_gauge_vec(
                "dockstate_controller_holding",
                "1 for the reason the controller holds now (no complete, fresh view: no action), 0 for the others; all 0 while it may act. A maintenance hold is dockstate_controller_hold_until_timestamp_seconds.",
                &["reason"],
            ),
            notifications: registry.int_counter_vec(
                "dockstate_controller_notifications_total",
                "Notifications, by result: sent and failed (after the retries) count deliveries to one URL, dropped counts events a full queue turned away.",
                &["result"],
            ),
            hold_until: registry.gauge(
                "dockstate_controller_hold_until_timestamp_seconds",
                "When the maintenance hold ends, in seconds since the epoch; 0 without one, +Inf while a damaged hold file holds.",
            ),
            journal_problems: registry.int_counter_vec(
                "dockstate_controller_journal_problems_total",
                "Problems with the action journal file in --state-dir, by problem: skipped_line (torn or damaged, read back at start), unusable (a file that cannot be used: memory only until the next start), write_failed (an action not appended). None stops an action.",
                &["problem"],
            ),
            registry,
        };
        metrics.zero_every_series();
        metrics
    }

    /// Makes every labelled series the controller knows of in advance, so a dashboard shows 0, not "no data".
    fn zero_every_series(&self) {
        for reason in HoldReason::VARIANTS {
            self.holds.with_label_values(&[reason.as_str()]);
        }
        for result in NotificationResult::VARIANTS {
            self.notifications.with_label_values(&[result.as_str()]);
        }
        for problem in JournalProblem::VARIANTS {
            self.journal_problems.with_label_values(&[problem.as_str()]);
        }
        for reason in view_hold_reasons() {
            self.holding.with_label_values(&[reason.as_str()]);
        }
    }

    pub fn count_action(&self, action: ActionKind, result: ActionResult) {
        self.actions
            .with_label_values(&[action.as_str(), result.as_str()])
            .inc();
    }

    pub fn observe_action(&self, action: ActionKind, elapsed: Duration) {
        self.action_duration
            .with_label_values(&[action.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_pass(&self, elapsed: Duration, ended_at_unix: f64) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        self.last_pass.set(ended_at_unix);
    }

    pub fn count_hold(&self, reason: HoldReason) {
        self.holds.with_label_values(&[reason.as_str()]).inc();
    }

    /// The series the maintenance hold keeps itself: holds set, and when the current one ends.
    pub fn maintenance(&self) -> (IntCounter, Gauge) {
        let set = self
            .holds
            .with_label_values(&[HoldReason::Maintenance.as_str()]);
        (set, self.hold_until.clone())
    }

    pub fn observe_heal(&self, since_drift_seen: Duration) {
        self.heal.observe(since_drift_seen.as_secs_f64());
    }

    /// The containers in quarantine now, by name: the count, and one series each.
    pub fn set_quarantined<'a>(&self, containers: impl IntoIterator<Item = &'a str>) {
        let now: BTreeSet<String> = containers.into_iter().map(ToOwned::to_owned).collect();
        let mut known = self
            .quarantined_names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for ended in known.difference(&now) {
            let _ = self.quarantined_containers.remove_label_values(&[ended]);
        }
        for name in &now {
            self.quarantined_containers
                .with_label_values(&[name])
                .set(1);
        }
        self.quarantined
            .set(i64::try_from(now.len()).unwrap_or(i64::MAX));
        *known = now;
    }

    /// Why the controller holds now (`None`: it has a fresh view and may act): `dockstate_controller_ready`
    /// and `dockstate_controller_holding{reason}`.
    pub fn set_holding(&self, reason: Option<HoldReason>) {
        self.ready.set(i64::from(reason.is_none()));
        for known in view_hold_reasons() {
            self.holding
                .with_label_values(&[known.as_str()])
                .set(i64::from(Some(known) == reason));
        }
    }

    /// `dockstate_controller_notifications_total{result}`, for the notifications to count into.
    pub fn notifications(&self) -> IntCounterVec {
        self.notifications.clone()
    }

    /// `dockstate_controller_journal_problems_total{problem}`, for the journal file to count into.
    pub fn journal_problems(&self) -> IntCounterVec {
        self.journal_problems.clone()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The reasons of a hold of the view: all but `maintenance`, which is an operator's and keeps the controller
/// ready.
fn view_hold_reasons() -> impl Iterator<Item = HoldReason> {
    HoldReason::VARIANTS
        .iter()
        .copied()
        .filter(|reason| *reason != HoldReason::Maintenance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_names_are_exported() {
        let metrics = Metrics::new();
        metrics.count_action(ActionKind::Start, ActionResult::Ok);
        metrics.observe_action(ActionKind::Start, Duration::from_millis(230));
        metrics.observe_pass(Duration::from_micros(300), 1_800_000_000.0);
        metrics.count_hold(HoldReason::Stale);
        metrics.observe_heal(Duration::from_millis(260));
        metrics.set_quarantined(["web"]);
        metrics.set_holding(Some(HoldReason::Stale));
        metrics
            .notifications()
            .with_label_values(&[NotificationResult::Sent.as_str()])
            .inc();
        let text = metrics.render();
        for name in [
            "dockstate_controller_actions_total{action=\"start\",result=\"ok\"} 1",
            "dockstate_controller_reconcile_duration_seconds_bucket",
            "dockstate_controller_holds_total{reason=\"stale\"} 1",
            "dockstate_controller_holds_total{reason=\"api_unreachable\"} 0",
            "dockstate_controller_holds_total{reason=\"view_behind\"} 0",
            "dockstate_controller_heal_seconds_bucket",
            "dockstate_controller_last_pass_timestamp_seconds 1800000000",
            "dockstate_controller_quarantined 1",
            "dockstate_controller_action_duration_seconds_bucket",
            "dockstate_controller_ready 0",
            "dockstate_controller_container_quarantined{name=\"web\"} 1",
            "dockstate_controller_holding{reason=\"stale\"} 1",
            "dockstate_controller_holding{reason=\"view_behind\"} 0",
            "dockstate_controller_notifications_total{result=\"sent\"} 1",
            "dockstate_controller_notifications_total{result=\"dropped\"} 0",
            "dockstate_controller_holds_total{reason=\"maintenance\"} 0",
            "dockstate_controller_hold_until_timestamp_seconds 0",
            "dockstate_controller_journal_problems_total{problem=\"skipped_line\"} 0",
            "dockstate_controller_journal_problems_total{problem=\"write_failed\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn a_quarantine_that_ends_leaves_no_series_and_a_hold_names_its_reason_alone() {
        let metrics = Metrics::new();
        metrics.set_quarantined(["web", "db"]);
        metrics.set_quarantined(["db"]);
        metrics.set_holding(Some(HoldReason::ViewBehind));
        metrics.set_holding(Some(HoldReason::ApiUnreachable));
        let text = metrics.render();
        assert!(!text.contains("name=\"web\""), "{text}");
        assert!(
            text.contains("dockstate_controller_container_quarantined{name=\"db\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_controller_quarantined 1"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_controller_holding{reason=\"api_unreachable\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_controller_holding{reason=\"view_behind\"} 0"),
            "{text}"
        );
        assert!(!text.contains("reason=\"maintenance\"} 1"), "{text}");

        metrics.set_quarantined(std::iter::empty());
        metrics.set_holding(None);
        let text = metrics.render();
        assert!(
            !text.contains("dockstate_controller_container_quarantined{"),
            "{text}"
        );
        assert!(text.contains("dockstate_controller_ready 1"), "{text}");
        assert!(
            !text.contains("dockstate_controller_holding{reason=\"api_unreachable\"} 1"),
            "{text}"
        );
    }
}
