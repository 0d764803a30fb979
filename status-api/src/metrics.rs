//! Prometheus metrics (SPEC "Metrics"): HTTP requests by route and status, and gauges of the live view that
//! are computed from the current [`View`](crate::view::View) at scrape time, so they can never drift
//! from what `/status` and `/drift` say — the counts by state and drift kind here, the series per container
//! and per drift in [`families`].

mod families;
#[cfg(test)]
mod figures;
#[cfg(test)]
mod synthetic;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use prometheus::{
    Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use shared::runtime::metrics::{encode_text, MetricsRegistry};
use shared::DriftKind;

use crate::store::Store;

/// Every route template of the API, the `route` label of the requests to it (`api::route_of` maps a path to
/// one); `unmatched` for any other path.
pub const ROUTES: [&str; 16] = [
    "/",
    "/status",
    "/status/{name_or_id}",
    "/snapshot",
    "/snapshot/containers/{name}/spec",
    "/snapshot/containers/{name}",
    "/drift",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/favicon.ico",
    "/ui.js",
    "/ui.css",
    "unmatched",
];

/// The methods whose request series are resolved once and then counted without a lock.
const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "PUT", "DELETE"];
/// The statuses whose request series are resolved once and then counted without a lock.
const STATUSES: [u16; 12] = [200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 500, 503];

/// The metric families status-api exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// The request series of each (method, route, status) in [`METHODS`] × [`ROUTES`] × [`STATUSES`], each
    /// looked up in its family (which takes the family's lock) the first time it is counted, and read with
    /// one atomic load after that: counting a request costs no lock.
    series: Arc<[OnceLock<RequestSeries>]>,
    containers: IntGaugeVec,
    drift: IntGaugeVec,
    events: IntCounter,
    revision: IntGauge,
    event_lag: Histogram,
    ready: IntGauge,
    event_backlog: IntGauge,
    event_backlog_age: Gauge,
    /// Whether `/metrics` carries a series per container and per drift (`--container-metrics`).
    container_series: bool,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = MetricsRegistry::new();
        let request_labels = ["method", "route", "status"];
        Self {
            requests: registry.int_counter_vec(
                "http_server_requests_total",
                "HTTP requests served, by method, route and status.",
                &request_labels,
            ),
            duration: registry.histogram_vec(
                "http_server_request_duration_seconds",
                "Time to answer an HTTP request, by method, route and status (long polls include their wait).",
                &[
                    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0,
                ],
                &request_labels,
            ),
            series: (0..METHODS.len() * ROUTES.len() * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
            containers: registry.int_gauge_vec(
                "dockstate_containers",
                "Containers in scope, by state.",
                &["state"],
            ),
            drift: registry.int_gauge_vec(
                "dockstate_drift",
                "Differences from the snapshot, by kind.",
                &["kind"],
            ),
            events: registry.int_counter(
                "dockstate_docker_events_total",
                "Container events received from the Docker engine.",
            ),
            revision: registry.int_gauge("dockstate_revision", "The revision of the live view."),
            // Observed by the inventory as each event is applied, not computed at scrape time: a histogram
            // needs every event, and the view only keeps the newest state.
            event_lag: registry.histogram(
                "dockstate_event_lag_seconds",
                "Time from an engine event (the engine's own timestamp) to its effect applied to the view.",
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
            ),
            ready: registry.int_gauge(
                "dockstate_ready",
                "1 when /ready answers 200 (the engine answers, the snapshot is in force, the event stream is live, the scope is the snapshot's); else 0.",
            ),
            event_backlog: registry.int_gauge(
                "dockstate_event_backlog",
                "Engine events received and not yet applied to the view.",
            ),
            event_backlog_age: registry.gauge(
                "dockstate_event_backlog_age_seconds",
                "Age of the oldest engine event not yet applied (the engine's own timestamp); 0 when none waits: how far the view is behind the engine.",
            ),
            container_series: true,
            registry,
        }
    }

    /// With or without the series per container and per drift (`--container-metrics`; with, by default).
    pub fn with_container_series(mut self, on: bool) -> Self {
        self.container_series = on;
        self
    }

    /// The `dockstate_event_lag_seconds` histogram, for the inventory to observe applied events into.
    pub fn event_lag(&self) -> Histogram {
        self.event_lag.clone()
    }

    /// Counts one answered request. `route` is the route template's index in [`ROUTES`], never the raw
    /// path. The common requests (every route, the usual methods and statuses) take no lock.
    pub fn observe_request(&self, method: &str, route: usize, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let resolve = || {
            let status = status.to_string();
            let labels = [method, ROUTES[route], status.as_str()];
            RequestSeries {
                count: self.requests.with_label_values(&labels),
                duration: self.duration.with_label_values(&labels),
            }
        };
        match series_index(method, route, status) {
            Some(index) => self.series[index].get_or_init(resolve).observe(seconds),
            None => resolve().observe(seconds),
        }
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
        self.ready.set(i64::from(view.readiness.ready));
        self.event_backlog.set(gauge(view.event_backlog));
        self.event_backlog_age
            .set(view.oldest_pending_event.map_or(0.0, |oldest| {
                (Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
            }));

        let mut families = self.registry.gather();
        families.extend(families::host(&view));
        if self.container_series {
            families.extend(families::containers(&view));
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        encode_text(&families)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One (method, route, status)'s counter and histogram.
#[derive(Debug)]
struct RequestSeries {
    count: IntCounter,
    duration: Histogram,
}

impl RequestSeries {
    fn observe(&self, seconds: f64) {
        self.count.inc();
        self.duration.observe(seconds);
    }
}

/// Where a request's series sits in [`Metrics::series`], when it is one kept there.
fn series_index(method: &str, route: usize, status: u16) -> Option<usize> {
    let method = METHODS.iter().position(|known| *known == method)?;
    let status = STATUSES.iter().position(|known| *known == status)?;
    (route < ROUTES.len()).then_some((method * ROUTES.len() + route) * STATUSES.len() + status)
}

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `http_server_requests_total` for one set of labels.
    fn requests(metrics: &Metrics, method: &str, route: &str, status: &str) -> Option<f64> {
        metrics
            .registry
            .gather()
            .into_iter()
            .find(|family| family.name() == "http_server_requests_total")?
            .get_metric()
            .iter()
            .find(|metric| {
                let labels: Vec<(&str, &str)> = metric
                    .get_label()
                    .iter()
                    .map(|label| (label.name(), label.value()))
                    .collect();
                labels.contains(&("method", method))
                    && labels.contains(&("route", route))
                    && labels.contains(&("status", status))
            })
            .map(|metric| metric.get_counter().get_value())
    }

    #[test]
    fn requests_are_counted_under_their_labels_whether_kept_resolved_or_not() {
        let metrics = Metrics::new();
        let status = ROUTES
            .iter()
            .position(|r| *r == "/status")
            .expect("a route");
        let unmatched = ROUTES.len() - 1;
        for _ in 0..3 {
            metrics.observe_request("GET", status, 200, Duration::from_millis(1));
        }
        // Not among the kept statuses or methods: counted all the same.
        metrics.observe_request("GET", status, 418, Duration::from_millis(1));
        metrics.observe_request("other", unmatched, 200, Duration::from_millis(1));
        assert_eq!(requests(&metrics, "GET", "/status", "200"), Some(3.0));
        assert_eq!(requests(&metrics, "GET", "/status", "418"), Some(1.0));
        assert_eq!(requests(&metrics, "other", "unmatched", "200"), Some(1.0));
        assert_eq!(requests(&metrics, "HEAD", "/status", "200"), None);
        assert!(series_index("GET", ROUTES.len(), 200).is_none());
    }

    /// The value of the unlabelled sample `name`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn the_backlog_and_its_age_say_how_far_the_view_is_behind_the_engine() {
        use super::synthetic::{Host, Made};
        let host = Host::new(
            &["web"],
            &[Made::new("web", shared::ContainerState::Running)],
        );
        let metrics = Metrics::new();
        let text = metrics.render(&host.store());
        assert_eq!(
            sample(&text, "dockstate_event_backlog"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "dockstate_event_backlog_age_seconds"),
            Some(0.0)
        );
        assert_eq!(sample(&text, "dockstate_ready"), Some(1.0));

        host.writer
            .event_progress(3, Some(Utc::now() - chrono::Duration::seconds(5)));
        let text = metrics.render(&host.store());
        assert_eq!(
            sample(&text, "dockstate_event_backlog"),
            Some(3.0),
            "{text}"
        );
        let age = sample(&text, "dockstate_event_backlog_age_seconds").expect("an age");
        assert!((5.0..65.0).contains(&age), "{age}");

        host.writer.set_events_live(false);
        let text = metrics.render(&host.store());
        assert_eq!(sample(&text, "dockstate_ready"), Some(0.0), "{text}");
    }

    #[test]
    fn every_kept_series_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for method in METHODS {
            for route in 0..ROUTES.len() {
                for status in STATUSES {
                    let index = series_index(method, route, status).expect("kept");
                    assert!(index < METHODS.len() * ROUTES.len() * STATUSES.len());
                    assert!(
                        seen.insert(index),
                        "{method} {route} {status} shares a slot"
                    );
                }
            }
        }
    }
}
