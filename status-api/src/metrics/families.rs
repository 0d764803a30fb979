//! The series made from the view at scrape time rather than kept in the registry: what this status-api watches,
//! its snapshot, and — unless `--container-metrics off` — one series per container in scope and per drift.
//! Nothing of them outlives the scrape, so a container that leaves the scope or a drift that ends leaves no
//! stale series behind, and a fleet's Prometheus can say which member is down on which host.

use chrono::{DateTime, Utc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use shared::DriftItem;

use crate::view::View;

/// `dockstate_info`, `dockstate_snapshot_members` and `dockstate_snapshot_taken_timestamp_seconds`: one
/// series each (the snapshot's two once there is a snapshot).
pub(super) fn host(view: &View) -> Vec<MetricFamily> {
    let engine = view.engine.as_ref();
    let scope = view.scope.as_ref().map(ToString::to_string);
    let info = gauge(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("engine", engine.map_or("", |engine| engine.kind.into())),
            (
                "engine_version",
                engine.map_or("", |engine| engine.version.as_str()),
            ),
            (
                "api_version",
                engine.map_or("", |engine| engine.api_version.as_str()),
            ),
            ("scope", scope.as_deref().unwrap_or("")),
        ],
        1.0,
    );
    let mut families = vec![family(
        "dockstate_info",
        "What this status-api watches: its own version, the engine (docker or podman, empty until it answers), \
         the engine's version and API version, and the scope (empty: the whole host). Always 1.",
        vec![info],
    )];
    if let Some(baseline) = &view.baseline {
        families.push(family(
            "dockstate_snapshot_members",
            "Members of the snapshot in force.",
            vec![gauge(&[], baseline.len() as f64)],
        ));
        families.push(family(
            "dockstate_snapshot_taken_timestamp_seconds",
            "When the snapshot in force was taken, in seconds since the epoch.",
            vec![gauge(&[], seconds(baseline.taken_at()))],
        ));
    }
    families
}

/// `dockstate_container_state` (one series per container in scope), `dockstate_container_drift` and
/// `dockstate_container_drift_since_timestamp_seconds` (one series each per drift); a family with no series
/// is left out, as the text format wants.
pub(super) fn containers(view: &View) -> Vec<MetricFamily> {
    let states = view
        .containers
        .iter()
        .map(|container| {
            gauge(
                &[
                    ("name", container.name.as_str()),
                    ("state", container.state.as_str()),
                    ("in_snapshot", bool_label(container.in_snapshot)),
                    ("policy", container.policy.into()),
                ],
                1.0,
            )
        })
        .collect();
    let drift = view.drift();
    let in_drift = drift
        .iter()
        .map(|item| gauge(&drift_labels(item), 1.0))
        .collect();
    let since = drift
        .iter()
        .filter_map(|item| {
            let onset = view.onsets().since(&item.name, item.kind)?;
            Some(gauge(&drift_labels(item), seconds(onset)))
        })
        .collect();
    [
        (
            "dockstate_container_state",
            "One series per container in scope, always 1: its state, whether it is a member of the snapshot, \
             and its effective policy.",
            states,
        ),
        (
            "dockstate_container_drift",
            "1 while the container named is in that drift (the kinds of /drift), with its policy; absent \
             otherwise.",
            in_drift,
        ),
        (
            "dockstate_container_drift_since_timestamp_seconds",
            "When that drift of the container named began, in seconds since the epoch: the revision that \
             first showed it (or status-api's start).",
            since,
        ),
    ]
    .into_iter()
    .filter(|(_, _, metrics): &(_, _, Vec<Metric>)| !metrics.is_empty())
    .map(|(name, help, metrics)| family(name, help, metrics))
    .collect()
}

/// The labels of a drift's series: the same on both of its families, so they join one to one.
fn drift_labels(item: &DriftItem) -> [(&'static str, &str); 3] {
    [
        ("name", item.name.as_str()),
        ("kind", item.kind.as_str()),
        ("policy", item.policy.into()),
    ]
}

fn family(name: &str, help: &str, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(MetricType::GAUGE);
    family.set_metric(metrics);
    family
}

fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::from_gauge(gauge);
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect(),
    );
    metric
}

fn bool_label(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

fn seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use shared::ContainerState::{Exited, Paused, Running};

    use super::super::synthetic::{Host, Made};
    use super::super::Metrics;

    /// The sample lines of `text` whose name is `name` exactly.
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly these labels.
    fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
    }

    #[test]
    fn every_container_and_every_drift_has_its_series_and_an_ended_drift_has_none() {
        let host = Host::new(
            &["web", "db", "cache", "watched"],
            &[
                Made::new("web", Running),
                Made::new("db", Exited),
                Made::new("adhoc", Running),
                Made {
                    policy: Some("observe"),
                    ..Made::new("watched", Paused)
                },
            ],
        );
        let metrics = Metrics::new();
        let text = metrics.render(&host.store());

        assert_eq!(
            samples(&text, "dockstate_container_state"),
            [
                r#"dockstate_container_state{name="adhoc",state="running",in_snapshot="false",policy="heal"} 1"#,
                r#"dockstate_container_state{name="db",state="exited",in_snapshot="true",policy="heal"} 1"#,
                r#"dockstate_container_state{name="watched",state="paused",in_snapshot="true",policy="observe"} 1"#,
                r#"dockstate_container_state{name="web",state="running",in_snapshot="true",policy="heal"} 1"#,
            ],
            "{text}"
        );
        assert_eq!(
            samples(&text, "dockstate_container_drift"),
            [
                r#"dockstate_container_drift{name="adhoc",kind="unexpected",policy="heal"} 1"#,
                r#"dockstate_container_drift{name="cache",kind="removed",policy="heal"} 1"#,
                r#"dockstate_container_drift{name="db",kind="stopped",policy="heal"} 1"#,
                r#"dockstate_container_drift{name="watched",kind="paused",policy="observe"} 1"#,
            ],
            "{text}"
        );
        let since = samples(&text, "dockstate_container_drift_since_timestamp_seconds");
        assert_eq!(since.len(), 4, "{text}");
        let began = value(
            &text,
            "dockstate_container_drift_since_timestamp_seconds",
            r#"name="db",kind="stopped",policy="heal""#,
        )
        .expect("db's onset");
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        assert!(began <= now && began > now - 60.0, "{began} vs {now}");
        assert_eq!(value(&text, "dockstate_snapshot_members", ""), None);
        assert!(text.contains("dockstate_snapshot_members 4\n"), "{text}");
        assert!(
            text.contains("dockstate_info{version=\"")
                && text.contains(r#"engine="",engine_version="",api_version="",scope=""} 1"#),
            "{text}"
        );
        assert!(text.contains("dockstate_snapshot_taken_timestamp_seconds "));

        // db is started again and the stranger goes; cache is still removed, and keeps its onset.
        std::thread::sleep(std::time::Duration::from_millis(20));
        host.run(&[
            Made::new("web", Running),
            Made::new("db", Running),
            Made {
                policy: Some("observe"),
                ..Made::new("watched", Paused)
            },
        ]);
        let text = metrics.render(&host.store());
        assert_eq!(
            samples(&text, "dockstate_container_drift"),
            [
                r#"dockstate_container_drift{name="cache",kind="removed",policy="heal"} 1"#,
                r#"dockstate_container_drift{name="watched",kind="paused",policy="observe"} 1"#,
            ],
            "{text}"
        );
        assert!(!text.contains("adhoc"), "{text}");
        let before = |text: &str| {
            value(
                text,
                "dockstate_container_drift_since_timestamp_seconds",
                r#"name="cache",kind="removed",policy="heal""#,
            )
        };
        assert_eq!(before(&text), Some(began), "{text}");

        // Stopped again: a drift that begins anew.
        std::thread::sleep(std::time::Duration::from_millis(20));
        host.run(&[Made::new("web", Running), Made::new("db", Exited)]);
        let text = metrics.render(&host.store());
        let again = value(
            &text,
            "dockstate_container_drift_since_timestamp_seconds",
            r#"name="db",kind="stopped",policy="heal""#,
        )
        .expect("db's new onset");
        assert!(again > began, "{again} after {began}");
    }

    #[test]
    fn switched_off_there_is_no_series_per_container_and_the_counts_stay() {
        let host = Host::new(&["web", "db"], &[Made::new("web", Running)]);
        let text = Metrics::new()
            .with_container_series(false)
            .render(&host.store());
        assert!(!text.contains("dockstate_container_"), "{text}");
        assert!(
            text.contains("dockstate_drift{kind=\"removed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("dockstate_containers{state=\"running\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("dockstate_snapshot_members 2\n"), "{text}");
        assert!(text.contains("dockstate_ready 1\n"), "{text}");
    }

    #[test]
    fn in_sync_no_drift_family_is_written_at_all() {
        let host = Host::new(&["web"], &[Made::new("web", Running)]);
        let text = Metrics::new().render(&host.store());
        assert_eq!(
            samples(&text, "dockstate_container_state").len(),
            1,
            "{text}"
        );
        assert!(!text.contains("dockstate_container_drift"), "{text}");
    }
}
