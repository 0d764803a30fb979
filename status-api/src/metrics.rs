//! Prometheus metrics (SPEC "Metrics"): HTTP requests by route and status, and gauges of the live view that
//! are computed from the current [`View`](crate::view::View) at scrape time, so they can never drift
//! from what `/status` and `/drift` say.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use shared::DriftKind;

use crate::store::Store;

/// The metric families status-api exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    containers: IntGaugeVec,
    drift: IntGaugeVec,
    events: IntCounter,
    revision: IntGauge,
    event_lag: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_server_requests_total",
                "HTTP requests served, by method, route and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Time to answer an HTTP request, by method, route and status (long polls include their wait).",
            )
            .buckets(vec![
                0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let containers = IntGaugeVec::new(
            Opts::new("dockstate_containers", "Containers in scope, by state."),
            &["state"],
        )
        .expect("valid metric");
        let drift = IntGaugeVec::new(
            Opts::new("dockstate_drift", "Differences from the snapshot, by kind."),
            &["kind"],
        )
        .expect("valid metric");
        let events = IntCounter::new(
            "dockstate_docker_events_total",
            "Container events received from the Docker engine.",
        )
        .expect("valid metric");
        let revision = IntGauge::new("dockstate_revision", "The revision of the live view.")
            .expect("valid metric");

        // Observed by the inventory as each event is applied, not computed at scrape time: a histogram
        // needs every event, and the view only keeps the newest state.
        let event_lag = Histogram::with_opts(
            HistogramOpts::new(
                "dockstate_event_lag_seconds",
                "Time from an engine event (the engine's own timestamp) to its effect applied to the view.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
            ]),
        )
        .expect("valid metric");

        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(containers.clone()),
            Box::new(drift.clone()),
            Box::new(events.clone()),
            Box::new(revision.clone()),
            Box::new(event_lag.clone()),
            Box::new(shared::runtime::process_metrics::ProcessMetrics::for_self()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            requests,
            duration,
            containers,
            drift,
            events,
            revision,
            event_lag,
        }
    }

    /// The `dockstate_event_lag_seconds` histogram, for the inventory to observe applied events into.
    pub fn event_lag(&self) -> Histogram {
        self.event_lag.clone()
    }

    /// Counts one answered request. `route` is the route template, never the raw path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric, with the gauges read from the current view.
    pub fn render(&self, store: &Store) -> String {
        let view = store.view();
        for (state, count) in view.count_by_state() {
            self.containers
                .with_label_values(&[state.as_str()])
                .set(gauge(count));
        }
        for kind in DriftKind::ALL {
            let count = view.drift().iter().filter(|item| item.kind == kind).count();
            self.drift
                .with_label_values(&[kind.as_str()])
                .set(gauge(count));
        }
        let seen = store.events_seen();
        self.events.inc_by(seen.saturating_sub(self.events.get()));
        self.revision
            .set(i64::try_from(view.revision).unwrap_or(i64::MAX));

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

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
