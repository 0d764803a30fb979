//! Notifications (docs/notifications.md): the controller tells a webhook, a Slack-compatible channel or an
//! ntfy topic when an action failed, a quarantine began or ended, a hold lasted long, a maintenance hold was
//! set or ended, and (with `--notify-heals`) what it healed.
//!
//! The loop holds a [`Notifier`] and hands it [`NotifyEvent`]s; that never waits: each receiver has a
//! bounded queue, and an event that finds it full is dropped and counted. [`Notifications`] are the tasks
//! that deliver them ([`sender`]), in the receiver's [`format`], to the [`target`]s of `--notify-url` and
//! `--notify-url-file`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::model::NotificationResult;

pub mod event;
pub mod format;
pub mod sender;
pub mod target;

pub use event::{EventKind, NotifyEvent};
pub use sender::Delivery;
pub use target::{Format, Target};

/// `dockstate_controller_notifications_total{result}`, handed over by the metrics registry: the one metric
/// notifications keep.
#[derive(Debug, Clone)]
pub struct NotificationCounter(prometheus::IntCounterVec);

impl NotificationCounter {
    pub fn new(counter: prometheus::IntCounterVec) -> Self {
        Self(counter)
    }

    pub fn count_notification(&self, result: NotificationResult) {
        self.0.with_label_values(&[result.as_str()]).inc();
    }
}

/// How long what is still queued gets at shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// What to notify about besides failures, quarantines and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyOptions {
    /// `--notify-heals`: every heal too, batched.
    pub heals: bool,
    /// `--notify-hold-after`: a hold is told once it has lasted this long.
    pub hold_after: Duration,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            heals: false,
            hold_after: Duration::from_secs(120),
        }
    }
}

/// Where the loop (and the maintenance hold) hand events. Never waits. Cheap to clone; without receivers
/// ([`Notifier::off`]) every call costs nothing.
#[derive(Debug, Clone)]
pub struct Notifier {
    queues: Arc<[mpsc::Sender<NotifyEvent>]>,
    options: NotifyOptions,
    metrics: NotificationCounter,
}

impl Notifier {
    /// A notifier over `queues`, one per receiver.
    pub fn new(
        queues: Vec<mpsc::Sender<NotifyEvent>>,
        options: NotifyOptions,
        metrics: NotificationCounter,
    ) -> Self {
        Self {
            queues: queues.into(),
            options,
            metrics,
        }
    }

    /// No receivers: nothing is ever sent.
    pub fn off(metrics: NotificationCounter) -> Self {
        Self::new(Vec::new(), NotifyOptions::default(), metrics)
    }

    pub fn options(&self) -> NotifyOptions {
        self.options
    }

    /// Queues `event` for every receiver, without waiting; a receiver whose queue is full loses it (counted
    /// as `dropped`). Heals are queued only with `--notify-heals`.
    pub fn send(&self, event: NotifyEvent) {
        if event.kind == EventKind::Heals && !self.options.heals {
            return;
        }
        for queue in self.queues.iter() {
            match queue.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.count_notification(NotificationResult::Dropped);
                    tracing::debug!(kind = %event.kind, "notification queue full: event dropped");
                }
                // Closed: shutting down, nothing more goes out.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// An operator set a maintenance hold until `until` because of `reason`: for `POST /hold`.
    pub fn maintenance_hold_set(&self, reason: &str, until: chrono::DateTime<chrono::Utc>) {
        self.send(NotifyEvent::maintenance_hold_set(
            reason,
            until,
            chrono::Utc::now(),
        ));
    }

    /// The maintenance hold set because of `reason` ended; `how` says how (`expired`,
    /// `lifted by DELETE /hold`): for the hold's end.
    pub fn maintenance_hold_ended(&self, reason: &str, how: &str) {
        self.send(NotifyEvent::maintenance_hold_ended(
            reason,
            how,
            chrono::Utc::now(),
        ));
    }
}

/// The running delivery tasks, one per receiver.
#[derive(Debug)]
pub struct Notifications {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Notifications {
    /// Starts one task per target and answers the [`Notifier`] that feeds them. `host` answers the engine's
    /// host name (looked up once, in the background; messages wait for it).
    pub fn start(
        targets: Vec<Target>,
        options: NotifyOptions,
        delivery: Delivery,
        metrics: NotificationCounter,
        host: impl Future<Output = String> + Send + 'static,
    ) -> (Notifier, Self) {
        let (stop, stopped) = watch::channel(false);
        if targets.is_empty() {
            return (
                Notifier::off(metrics),
                Self {
                    stop,
                    workers: Vec::new(),
                },
            );
        }
        let (host_tx, host_rx) = watch::channel(None);
        tokio::spawn(async move {
            let name: Arc<str> = Arc::from(host.await);
            host_tx.send_replace(Some(name));
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("status-controller/", env!("CARGO_PKG_VERSION")))
            // A redirect would send the message (and the next hop the URL's secret path) somewhere the
            // operator never named: a 3xx is a failed delivery instead (see `sender`).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // Only the TLS set-up can fail, and the built-in roots always load.
            .unwrap_or_default();
        let mut queues = Vec::with_capacity(targets.len());
        let mut workers = Vec::with_capacity(targets.len());
        for target in targets {
            tracing::info!(target_url = %target, "notifications on");
            let (queue, receiver) = mpsc::channel(delivery.queue.max(1));
            queues.push(queue);
            let worker = sender::Worker {
                target,
                client: client.clone(),
                metrics: metrics.clone(),
                host: host_rx.clone(),
                delivery,
            };
            workers.push(tokio::spawn(worker.run(receiver, stopped.clone())));
        }
        (
            Notifier::new(queues, options, metrics),
            Self { stop, workers },
        )
    }

    /// Sends what is still queued (once each), for at most `timeout`; what is left then is abandoned.
    pub async fn finish(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let mut workers = self.workers;
        let all = async {
            for worker in &mut workers {
                let _ = worker.await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(timeout = ?timeout, "notifications still queued at shutdown were abandoned");
            for worker in &workers {
                worker.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use test_support::WebhookReceiver;

    use super::*;
    use crate::metrics::Metrics;
    use crate::model::{ActionKind, ActionResult, Ended, Hold, HoldReason};

    fn heal(container: &str) -> NotifyEvent {
        let ended = Ended {
            container: container.into(),
            kind: ActionKind::Start,
            result: ActionResult::Ok,
            new_id: None,
            reason: "exited with exit code 137".into(),
            drift: None,
            detail: None,
            time: Utc::now(),
        };
        NotifyEvent::of_ended(&ended, 1).expect("a heal")
    }

    fn long_hold() -> NotifyEvent {
        let hold = Hold::new(HoldReason::Stale, "status-api's view is 3 min old");
        NotifyEvent::hold_started(&hold, Duration::from_secs(125), Utc::now())
    }

    fn heals_on() -> NotifyOptions {
        NotifyOptions {
            heals: true,
            ..NotifyOptions::default()
        }
    }

    fn start(receiver: &WebhookReceiver, delivery: Delivery) -> (Notifier, Notifications, Metrics) {
        let target = Target::parse(&receiver.url("json+", "/in")).expect("a URL");
        let metrics = Metrics::new();
        let (notifier, notifications) = Notifications::start(
            vec![target],
            heals_on(),
            delivery,
            NotificationCounter::new(metrics.notifications()),
            async { "test-host".to_owned() },
        );
        (notifier, notifications, metrics)
    }

    fn items(request: &test_support::Received) -> usize {
        request.json()["items"].as_array().map_or(0, Vec::len)
    }

    #[tokio::test]
    async fn heals_are_batched_by_count_and_by_window() {
        let receiver = WebhookReceiver::start().await.expect("a receiver");
        let delivery = Delivery {
            batch_window: Duration::from_millis(300),
            batch_max: 3,
            ..Delivery::default()
        };
        let (notifier, notifications, metrics) = start(&receiver, delivery);
        for container in ["a", "b", "c", "d", "e"] {
            notifier.send(heal(container));
        }
        notifier.send(long_hold());
        receiver
            .wait_for("the second batch", Duration::from_secs(20), |request| {
                items(request) == 2
            })
            .await
            .expect("two batches");
        let received = receiver.received();
        let kinds: Vec<_> = received
            .iter()
            .map(|request| (request.json()["kind"].clone(), items(request)))
            .collect();
        // The full batch goes at once, the hold right after it, the rest when the window ends.
        assert_eq!(
            kinds,
            [
                (serde_json::json!("heals"), 3),
                (serde_json::json!("hold_started"), 0),
                (serde_json::json!("heals"), 2)
            ]
        );
        assert_eq!(received[0].json()["host"], "test-host");
        assert_eq!(received[2].json()["items"][1]["container"], "e");
        notifications.finish(FLUSH_TIMEOUT).await;
        assert!(metrics
            .render()
            .contains("dockstate_controller_notifications_total{result=\"sent\"} 3"));
    }

    #[tokio::test]
    async fn what_is_queued_at_shutdown_is_sent() {
        let receiver = WebhookReceiver::start().await.expect("a receiver");
        let delivery = Delivery {
            batch_window: Duration::from_secs(3600),
            ..Delivery::default()
        };
        let (notifier, notifications, _) = start(&receiver, delivery);
        notifier.send(heal("a"));
        notifier.send(long_hold());
        notifications.finish(FLUSH_TIMEOUT).await;
        let kinds: Vec<_> = receiver
            .received()
            .iter()
            .map(|request| request.json()["kind"].clone())
            .collect();
        assert_eq!(
            kinds,
            ["hold_started", "heals"],
            "the batch was not waited for"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_a_failed_delivery_and_is_never_followed() {
        let elsewhere = WebhookReceiver::start().await.expect("a receiver");
        let redirecting = WebhookReceiver::redirecting_to(&elsewhere.url("", "/stolen"))
            .await
            .expect("a receiver");
        let (notifier, notifications, metrics) = start(&redirecting, Delivery::default());
        notifier.send(long_hold());
        let failed = "dockstate_controller_notifications_total{result=\"failed\"} 1";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !metrics.render().contains(failed) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never counted as failed:\n{}",
                metrics.render()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        notifications.finish(FLUSH_TIMEOUT).await;
        assert_eq!(
            redirecting.received().len(),
            1,
            "one request, not retried: a redirect is not mended by trying again"
        );
        assert!(
            elsewhere.received().is_empty(),
            "the redirect's target got nothing: {:?}",
            elsewhere.received()
        );
        assert!(metrics
            .render()
            .contains("dockstate_controller_notifications_total{result=\"sent\"} 0"));
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_heals_need_asking() {
        let metrics = Metrics::new();
        let (queue, mut receiver) = mpsc::channel(1);
        let notifier = Notifier::new(
            vec![queue],
            NotifyOptions::default(),
            NotificationCounter::new(metrics.notifications()),
        );
        notifier.send(heal("a"));
        assert!(receiver.try_recv().is_err(), "heals are not asked for");
        for _ in 0..3 {
            notifier.send(long_hold());
        }
        assert!(metrics
            .render()
            .contains("dockstate_controller_notifications_total{result=\"dropped\"} 2"));
        assert_eq!(
            receiver.try_recv().expect("the first").kind,
            EventKind::HoldStarted
        );
    }
}
