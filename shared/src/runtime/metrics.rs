//! Metric families made, registered and written as Prometheus text one way for both programs: each family is
//! made and registered in one call, and every registry carries the process's own `process_*` series. A bad
//! name or a family registered twice is a programming error, which the first test that builds the program's
//! metrics finds, so the calls panic rather than return it.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::process_metrics::ProcessMetrics;

/// One program's metric families, the `process_*` ones included. Cheap to clone: the clones share them.
#[derive(Debug, Clone)]
pub struct MetricsRegistry {
    registry: Registry,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// A registry holding the metrics of this process (`process_*`) and nothing else yet.
    pub fn new() -> Self {
        let registry = Registry::new();
        registry
            .register(Box::new(ProcessMetrics::for_self()))
            .expect("each metric is registered once");
        Self { registry }
    }

    /// A counter without labels.
    pub fn int_counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).expect("valid metric"))
    }

    /// A counter with one series per value of `labels`.
    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    /// A float gauge without labels: a time, an age.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.register(Gauge::new(name, help).expect("valid metric"))
    }

    /// An integer gauge without labels: a count, a flag.
    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).expect("valid metric"))
    }

    /// An integer gauge with one series per value of `labels`.
    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    /// A histogram without labels, with these bucket bounds (in seconds, for every one both programs have).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts).expect("valid metric"))
    }

    /// A histogram with one series per value of `labels`, with these bucket bounds.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels).expect("valid metric"))
    }

    /// Every registered family's current samples, sorted by name.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// The Prometheus text exposition of every registered family.
    pub fn render(&self) -> String {
        encode_text(&self.gather())
    }

    /// Registers `collector` and hands back a handle to it (the clone shares its series).
    fn register<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        self.registry
            .register(Box::new(collector.clone()))
            .expect("each metric is registered once");
        collector
    }
}

/// `families` in the Prometheus text exposition format. Encoding only fails on a family the client library
/// would never build (no samples of its type); such a failure is logged and the text so far is kept.
pub fn encode_text(families: &[MetricFamily]) -> String {
    let mut body = Vec::new();
    if let Err(err) = TextEncoder::new().encode(families, &mut body) {
        tracing::error!(error = %err, "cannot encode metrics");
    }
    String::from_utf8(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_registered_once_and_written_as_text_with_the_process_ones() {
        let registry = MetricsRegistry::new();
        let requests =
            registry.int_counter_vec("demo_requests_total", "Requests, by route.", &["route"]);
        let lag = registry.histogram("demo_lag_seconds", "Lag.", &[0.1, 1.0]);
        requests.with_label_values(&["/status"]).inc();
        lag.observe(0.5);
        let text = registry.clone().render();
        assert!(
            text.contains("# TYPE demo_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains("demo_requests_total{route=\"/status\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("demo_lag_seconds_bucket{le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("demo_lag_seconds_bucket{le=\"0.1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
    }

    #[test]
    #[should_panic(expected = "each metric is registered once")]
    fn a_family_registered_twice_is_a_programming_error() {
        let registry = MetricsRegistry::new();
        registry.int_gauge("demo_ready", "Ready.");
        registry.int_gauge("demo_ready", "Ready.");
    }
}
