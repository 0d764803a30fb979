//! Prometheus metrics (SPEC "Metrics"): what the controller did and how it went, how long a pass and a heal
//! take, when it held back and why, and which containers are quarantined.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use strum::VariantArray;

use crate::model::{ActionKind, ActionResult, HoldReason, JournalProblem, NotificationResult};

/// The metric families status-controller exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    actions: IntCounterVec,
    action_duration: HistogramVec,
    reconcile_duration: Histogram,
    holds: IntCounterVec,
    heal: Histogram,
    last_pass: Gauge,
    quarantined: IntGauge,
    ready: IntGauge,
    notifications: IntCounterVec,
    hold_until: Gauge,
    journal_problems: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let actions = IntCounterVec::new(
            Opts::new(
                "dockstate_controller_actions_total",
                "Actions decided, by action and result (ok, noop, gone, conflict, skipped, failed, dry_run, reported, quarantined, quarantine_ended).",
            ),
            &["action", "result"],
        )
        .expect("valid metric");
        let action_duration = HistogramVec::new(
            HistogramOpts::new(
                "dockstate_controller_action_duration_seconds",
                "Time to carry out one action against Docker, by action.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["action"],
        )
        .expect("valid metric");
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "dockstate_controller_reconcile_duration_seconds",
                "Time of one pass: from status-api's answer to every action dispatched (not carried out).",
            )
            .buckets(vec![
                0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        let holds = IntCounterVec::new(
            Opts::new(
                "dockstate_controller_holds_total",
                "Passes that took no action because the view was not complete and fresh, by reason; for `maintenance`, maintenance holds set.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let heal = Histogram::with_opts(
            HistogramOpts::new(
                "dockstate_controller_heal_seconds",
                "From drift first seen to the action that healed it done.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )
        .expect("valid metric");
        let last_pass = Gauge::new(
            "dockstate_controller_last_pass_timestamp_seconds",
            "When the last pass on a fresh view ended, in seconds since the epoch.",
        )
        .expect("valid metric");
        let quarantined = IntGauge::new(
            "dockstate_controller_quarantined",
            "Containers left alone because they kept failing.",
        )
        .expect("valid metric");
        let ready = IntGauge::new(
            "dockstate_controller_ready",
            "1 when the controller has a complete, fresh view and may act; else 0.",
        )
        .expect("valid metric");
        let hold_until = Gauge::new(
            "dockstate_controller_hold_until_timestamp_seconds",
            "When the maintenance hold ends, in seconds since the epoch; 0 without one, +Inf while a damaged hold file holds.",
        )
        .expect("valid metric");

        let notifications = IntCounterVec::new(
            Opts::new(
                "dockstate_controller_notifications_total",
                "Notifications, by result: sent and failed (after the retries) count deliveries to one URL, dropped counts events a full queue turned away.",
            ),
            &["result"],
        )
        .expect("valid metric");

        let journal_problems = IntCounterVec::new(
            Opts::new(
                "dockstate_controller_journal_problems_total",
                "Problems with the action journal file in --state-dir, by problem: skipped_line (torn or damaged, read back at start), unusable (a file that cannot be used: memory only until the next start), write_failed (an action not appended). None stops an action.",
            ),
            &["problem"],
        )
        .expect("valid metric");

        for collector in [
            Box::new(actions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(action_duration.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(holds.clone()),
            Box::new(heal.clone()),
            Box::new(last_pass.clone()),
            Box::new(quarantined.clone()),
            Box::new(ready.clone()),
            Box::new(notifications.clone()),
            Box::new(hold_until.clone()),
            Box::new(journal_problems.clone()),
            Box::new(shared::runtime::process_metrics::ProcessMetrics::for_self()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        // Every series exists from the start, so a dashboard shows 0, not "no data".
        for reason in HoldReason::VARIANTS {
            holds.with_label_values(&[reason.as_str()]);
        }
        for result in NotificationResult::VARIANTS {
            notifications.with_label_values(&[result.as_str()]);
        }
        for problem in JournalProblem::VARIANTS {
            journal_problems.with_label_values(&[problem.as_str()]);
        }
        Self {
            registry,
            actions,
            action_duration,
            reconcile_duration,
            holds,
            heal,
            last_pass,
            quarantined,
            ready,
            notifications,
            hold_until,
            journal_problems,
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

    pub fn set_quarantined(&self, containers: usize) {
        self.quarantined
            .set(i64::try_from(containers).unwrap_or(i64::MAX));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
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
        let mut body = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut body) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        String::from_utf8(body).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
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
        metrics.set_quarantined(1);
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
}
