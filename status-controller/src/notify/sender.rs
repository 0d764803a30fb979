//! Delivery: one task per receiver, each with its own bounded queue, so a receiver that is down or slow
//! delays only its own messages and never the loop or another receiver. Each request has a timeout and is
//! retried with backoff on a network error, a timeout, 429 or 5xx; another 4xx is given up at once, since
//! retrying cannot mend it, and so is a redirect (3xx), which is never followed. Heals are batched over a
//! short window. On shutdown what is queued is sent once, within a bound the caller sets.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::event::{EventKind, NotifyEvent};
use super::format::{render, Message, Rendered};
use super::target::Target;
use crate::clock::sleep_until;
use crate::model::NotificationResult;

/// How notifications are delivered. The defaults are the product; a test or an embedding program may change
/// them (as with [`HealLimits`](crate::backoff::HealLimits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Events waiting for one receiver at most; beyond it they are dropped and counted.
    pub queue: usize,
    /// How long one request may take, connecting included.
    pub timeout: Duration,
    /// Tries per message, the first included.
    pub attempts: u32,
    /// The wait before the second try; each later wait is `retry_factor` times the one before.
    pub first_retry: Duration,
    pub retry_factor: u32,
    /// Heals are gathered this long after the first of a batch…
    pub batch_window: Duration,
    /// …or until there are this many.
    pub batch_max: usize,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            queue: 256,
            timeout: Duration::from_secs(5),
            attempts: 3,
            first_retry: Duration::from_secs(1),
            retry_factor: 4,
            batch_window: Duration::from_secs(5),
            batch_max: 50,
        }
    }
}

/// Why a try failed.
enum Failure {
    /// Worth another try: no answer, a timeout, 429 or 5xx.
    Transient(String),
    /// Another try would be refused the same way (a 4xx).
    Permanent(String),
}

/// Sends one receiver's messages.
pub(super) struct Worker {
    pub target: Target,
    pub client: reqwest::Client,
    pub metrics: super::NotificationCounter,
    /// The engine's host name, once known.
    pub host: watch::Receiver<Option<Arc<str>>>,
    pub delivery: Delivery,
}

impl Worker {
    /// Sends what arrives on `queue` until `stop` turns true or every sender is gone, then sends what is
    /// left once each.
    pub async fn run(
        mut self,
        mut queue: mpsc::Receiver<NotifyEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut heals: Vec<NotifyEvent> = Vec::new();
        let mut batch_ends: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                // The guard `wait_for` answers is not `Send`: dropped inside, before any delivery awaits.
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => break,
                () = sleep_until(batch_ends) => {
                    batch_ends = None;
                    self.deliver(Message::Heals(std::mem::take(&mut heals)), self.delivery.attempts).await;
                }
                event = queue.recv() => match event {
                    None => break,
                    Some(event) if event.kind == EventKind::Heals => {
                        if heals.is_empty() {
                            batch_ends = Some(tokio::time::Instant::now().into_std() + self.delivery.batch_window);
                        }
                        heals.push(event);
                        if heals.len() >= self.delivery.batch_max {
                            batch_ends = None;
                            self.deliver(Message::Heals(std::mem::take(&mut heals)), self.delivery.attempts).await;
                        }
                    }
                    Some(event) => self.deliver(Message::One(event), self.delivery.attempts).await,
                },
            }
        }
        // Shutting down: what is queued goes out once, in order, heals last in one batch.
        queue.close();
        while let Ok(event) = queue.try_recv() {
            if event.kind == EventKind::Heals {
                heals.push(event);
            } else {
                self.deliver(Message::One(event), 1).await;
            }
        }
        for batch in heals.chunks(self.delivery.batch_max.max(1)) {
            self.deliver(Message::Heals(batch.to_vec()), 1).await;
        }
    }

    /// Sends `message`, trying up to `attempts` times, and counts how it went.
    async fn deliver(&mut self, message: Message, attempts: u32) {
        let host = self.host_name().await;
        let rendered = render(self.target.format(), &host, &message);
        let kind = message.kind();
        let mut wait = self.delivery.first_retry;
        for attempt in 1..=attempts {
            match self.post(&rendered).await {
                Ok(()) => {
                    tracing::debug!(target_url = %self.target, kind = %kind, attempt, "notification sent");
                    self.metrics.count_notification(NotificationResult::Sent);
                    return;
                }
                Err(Failure::Permanent(why)) => {
                    tracing::warn!(target_url = %self.target, kind = %kind, attempt, error = %why, "notification refused: not retried");
                    break;
                }
                Err(Failure::Transient(why)) if attempt < attempts => {
                    tracing::info!(target_url = %self.target, kind = %kind, attempt, error = %why, retry_in = ?wait, "notification not delivered: retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(self.delivery.retry_factor);
                }
                Err(Failure::Transient(why)) => {
                    tracing::warn!(target_url = %self.target, kind = %kind, attempts, error = %why, "notification not delivered: given up");
                }
            }
        }
        self.metrics.count_notification(NotificationResult::Failed);
    }

    async fn post(&self, rendered: &Rendered) -> Result<(), Failure> {
        let mut request = self
            .client
            .post(self.target.url().clone())
            .timeout(self.delivery.timeout)
            .header(reqwest::header::CONTENT_TYPE, rendered.content_type)
            .body(rendered.body.clone());
        for (name, value) in &rendered.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|err| {
            // reqwest's errors name the URL, and the URL may hold a secret.
            Failure::Transient(crate::error_chain(&err.without_url()))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection() {
            // Not followed: the message goes only where the operator sent it. Where it points may hold a
            // secret of its own, so only its host is told.
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|location| location.to_str().ok())
                .and_then(|location| self.target.url().join(location).ok())
                .and_then(|location| location.host_str().map(str::to_owned))
                .unwrap_or_else(|| "somewhere it did not say".to_owned());
            return Err(Failure::Permanent(format!(
                "the receiver answered {status}, a redirect to {to}: notifications follow no redirects; \
                 give the URL that answers 2xx itself"
            )));
        }
        let why = format!("the receiver answered {status}");
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(Failure::Transient(why))
        } else {
            Err(Failure::Permanent(why))
        }
    }

    /// The engine's host name; the one waited for only at the first message, while it is looked up.
    async fn host_name(&mut self) -> Arc<str> {
        match self.host.wait_for(Option::is_some).await {
            Ok(host) => host.clone().unwrap_or_else(|| Arc::from("unknown")),
            Err(_) => Arc::from(local_host_name()),
        }
    }
}

/// This machine's host name: the fallback when the engine does not say its own.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
