//! The fleet as Prometheus sees it (`monitoring/`): the shipped rules pass promtool's checks and unit tests, and
//! a real Prometheus that scrapes two pairs on two engines — the shared one and a private one, two hosts — with
//! those rules sees both hosts, finds exactly the member held down by `DockstateDriftUnhealed`'s expression
//! (and nothing once it is healed), and evaluates every query of the Grafana dashboard without error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use test_support::{
    container_state, docker, ensure_test_images, wait_until, PrivateEngine, Prometheus,
    ScrapeTarget, StatusApiOptions, StatusApiServer, StatusControllerServer, TestScope,
    BUSYBOX_IMAGE, PROMETHEUS_INSTALL,
};

use crate::helpers::init_logs;

/// The token of both pairs.
const TOKEN: &str = "fleet-test-token-0123456789";

/// How long a change may take to reach a Prometheus that scrapes and evaluates every second, on a loaded
/// machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The alerts the fleet needs (issue 23), each with a runbook in docs/alerts.md.
const ALERTS: [&str; 7] = [
    "DockstateDriftUnhealed",
    "DockstateQuarantined",
    "DockstateControllerHolding",
    "DockstateMaintenanceHoldLong",
    "DockstateViewBehind",
    "DockstateNotReady",
    "DockstateDown",
];

/// The alerts about one member, whose summary names it.
const MEMBER_ALERTS: [&str; 2] = ["DockstateDriftUnhealed", "DockstateQuarantined"];

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../monitoring")
        .canonicalize()
        .expect("monitoring/ sits beside status-controller/")
}

fn rules_file() -> PathBuf {
    monitoring().join("dockstate.rules.yml")
}

/// Runs `promtool <args>` and fails with its output unless it succeeds.
async fn promtool(args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .await
        .with_context(|| format!("promtool is needed: {PROMETHEUS_INSTALL}"))?;
    if !output.status.success() {
        bail!(
            "promtool {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_shipped_rules_pass_promtool_and_every_alert_names_host_and_member_and_has_a_runbook(
) -> anyhow::Result<()> {
    promtool(&["check", "rules", "dockstate.rules.yml"]).await?;
    promtool(&["test", "rules", "dockstate.rules.test.yml"]).await?;

    // The rules as Prometheus itself loads them.
    let prometheus = Prometheus::start(&[rules_file()], &[]).await?;
    let rules = prometheus.rules().await?;
    let runbooks = std::fs::read_to_string(monitoring().join("../docs/alerts.md"))
        .context("docs/alerts.md holds the runbooks")?;
    let alerts: Vec<&Value> = rules
        .iter()
        .filter(|rule| rule["type"] == "alerting")
        .collect();
    let names: Vec<&str> = alerts
        .iter()
        .filter_map(|rule| rule["name"].as_str())
        .collect();
    for wanted in ALERTS {
        assert!(names.contains(&wanted), "{wanted} is not among {names:?}");
    }
    for alert in alerts {
        let name = alert["name"].as_str().unwrap_or_default();
        let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
        for part in ["$labels.host", "$labels.instance"] {
            assert!(
                summary.contains(part),
                "{name}'s summary lacks {part}: {summary}"
            );
        }
        if MEMBER_ALERTS.contains(&name) {
            assert!(
                summary.contains("$labels.name"),
                "{name}'s summary names no member"
            );
        }
        assert!(
            !alert["annotations"]["description"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{name} has no description"
        );
        let anchor = name.to_lowercase();
        assert_eq!(
            alert["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default(),
            format!("https://example.invalid/dockstate/blob/main/docs/alerts.md#{anchor}"),
            "{name}'s runbook"
        );
        assert!(
            runbooks.lines().any(|line| line == format!("## {name}")),
            "docs/alerts.md has no section `## {name}`"
        );
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }
    Ok(())
}

/// One host of the fleet: a pair on one engine.
struct Pair {
    api: StatusApiServer,
    controller: StatusControllerServer,
}

impl Pair {
    async fn start(scope: &TestScope, docker_host: Option<String>) -> anyhow::Result<Self> {
        let api = StatusApiServer::start(StatusApiOptions {
            token: Some(TOKEN.to_owned()),
            docker_host: docker_host.clone(),
            ..StatusApiOptions::scoped(scope.scope())
        })
        .await?;
        let extra: Vec<&str> = match &docker_host {
            Some(host) => vec!["--docker-host", host],
            None => vec![],
        };
        let controller = StatusControllerServer::start(&api, &extra).await?;
        Ok(Self { api, controller })
    }

    fn targets(&self, host: &str) -> [ScrapeTarget; 2] {
        [
            ScrapeTarget {
                job: "dockstate-status-api".to_owned(),
                address: self.api.address,
                host: host.to_owned(),
            },
            ScrapeTarget {
                job: "dockstate-status-controller".to_owned(),
                address: self.controller.address,
                host: host.to_owned(),
            },
        ]
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.controller.stop().await?;
        self.api.stop().await
    }
}

/// The value of a sample of `/api/v1/query`.
fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `label` of each sample, sorted.
fn labels(samples: &[Value], label: &str) -> Vec<String> {
    let mut found: Vec<String> = samples
        .iter()
        .map(|sample| {
            sample["metric"][label]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    found.sort();
    found
}

/// A dashboard query as Grafana would send it with every host selected.
fn as_grafana_sends_it(expr: &str) -> String {
    expr.replace("$host", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
}

/// Every query of the dashboard: the panels' (and the rows' panels'), and the variables' `label_values(m, l)`
/// as the query Grafana makes of it.
fn dashboard_queries() -> anyhow::Result<Vec<(String, String)>> {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        monitoring().join("dashboard.json"),
    )?)?;
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            let expr = target["expr"].as_str().context("a target without expr")?;
            queries.push((title, as_grafana_sends_it(expr)));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .context("a variable that is not label_values(metric, label)")?;
        let (metric, label) = inner
            .split_once(',')
            .context("label_values(metric, label)")?;
        queries.push((
            format!("variable {}", variable["name"]),
            format!("count by ({}) ({})", label.trim(), metric.trim()),
        ));
    }
    anyhow::ensure!(
        queries.len() > 10,
        "the dashboard has {} queries",
        queries.len()
    );
    Ok(queries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_two_hosts_and_exactly_the_member_held_down() -> anyhow::Result<()> {
    init_logs();
    ensure_test_images().await?;
    let queries = dashboard_queries()?;
    // The shared engine is one host, a private engine the other; a member on each.
    let shared_scope = TestScope::new();
    let private_scope = TestScope::new();
    let engine = PrivateEngine::start().await?;
    engine.load_image(BUSYBOX_IMAGE).await?;
    shared_scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    // Down too, but only watched (policy observe): reported, never healed, never "unhealed".
    let watched = shared_scope.name("watched");
    shared_scope
        .run(
            "watched",
            BUSYBOX_IMAGE,
            &["--label", "dockstate.policy=observe"],
        )
        .await?;
    let down = private_scope.name("web");
    engine
        .docker(&[
            "run",
            "-d",
            "--label",
            &private_scope.label(),
            "--name",
            &down,
            BUSYBOX_IMAGE,
        ])
        .await?;
    let shared = Pair::start(&shared_scope, None).await?;
    let private = Pair::start(&private_scope, Some(engine.host())).await?;
    let targets: Vec<ScrapeTarget> = shared
        .targets("shared")
        .into_iter()
        .chain(private.targets("private"))
        .collect();
    let prometheus = Prometheus::start(&[rules_file()], &targets).await?;

    // Both hosts, each with both programs up and its member counted.
    wait_until("both hosts scraped", PATIENCE, || async {
        let up = prometheus
            .query(r#"count by (host) (up{job=~"dockstate.*"} == 1)"#)
            .await?;
        Ok(labels(&up, "host") == ["private", "shared"] && up.iter().all(|s| value(s) == 2.0))
    })
    .await
    .with_context(|| prometheus.log_tail())?;
    wait_until("the fleet's recording rules", PATIENCE, || async {
        let down = prometheus.query("host:dockstate_members_down:sum").await?;
        Ok(labels(&down, "host") == ["private", "shared"] && down.iter().all(|s| value(s) == 0.0))
    })
    .await?;
    let hosts = prometheus
        .query("count(count by (host) (dockstate_info))")
        .await?;
    assert_eq!(
        hosts.iter().map(value).collect::<Vec<_>>(),
        [2.0],
        "{hosts:?}"
    );
    let members = prometheus
        .query("sum by (host) (dockstate_snapshot_members)")
        .await?;
    let members: Vec<(String, f64)> = members
        .iter()
        .map(|s| {
            (
                s["metric"]["host"].as_str().unwrap_or_default().to_owned(),
                value(s),
            )
        })
        .collect();
    assert_eq!(
        members,
        [("private".to_owned(), 1.0), ("shared".to_owned(), 2.0)],
        "members per host"
    );

    // The expression of the shipped alert, as Prometheus loaded it.
    let rules = prometheus.rules().await?;
    let unhealed = rules
        .iter()
        .find(|rule| rule["name"] == "DockstateDriftUnhealed")
        .and_then(|rule| rule["query"].as_str())
        .context("DockstateDriftUnhealed is loaded")?
        .to_owned();
    assert!(prometheus.query(&unhealed).await?.is_empty(), "in sync");

    // The private host's controller is held for maintenance; its member goes down and stays down.
    let client = reqwest::Client::new();
    let held = client
        .post(private.controller.url("/hold?for=10m&reason=fleet+test"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(held.status().as_u16(), 201, "{}", held.text().await?);
    engine.docker(&["kill", &down]).await?;
    docker(&["kill", &watched]).await?;

    let found = std::sync::Mutex::new(Vec::new());
    wait_until(
        "the held-down member in DockstateDriftUnhealed",
        PATIENCE,
        || async {
            let samples = prometheus.query(&unhealed).await?;
            let seen = !samples.is_empty();
            *found.lock().expect("not poisoned") = samples;
            Ok(seen)
        },
    )
    .await?;
    let samples = found.into_inner()?;
    assert_eq!(
        samples.len(),
        1,
        "exactly the member held down: {samples:?}"
    );
    let member = &samples[0]["metric"];
    assert_eq!(member["name"], down.as_str(), "{member}");
    assert_eq!(member["kind"], "stopped", "{member}");
    assert_eq!(member["host"], "private", "{member}");
    assert_eq!(member["job"], "dockstate-status-api", "{member}");
    // Pending, not firing: it fires only after the rule's `for` (promtool's tests cover that).
    wait_until("the alert pending", PATIENCE, || async {
        Ok(prometheus.alerts().await?.iter().any(|alert| {
            alert["labels"]["alertname"] == "DockstateDriftUnhealed"
                && alert["labels"]["name"] == down.as_str()
                && alert["state"] == "pending"
        }))
    })
    .await?;
    wait_until("the observed member counted down too", PATIENCE, || async {
        let down = prometheus
            .query("host:dockstate_members_down:sum > 0")
            .await?;
        Ok(labels(&down, "host") == ["private", "shared"])
    })
    .await?;
    let observed = prometheus
        .query(r#"dockstate_container_drift{host="shared"}"#)
        .await?;
    assert_eq!(
        labels(&observed, "name"),
        std::slice::from_ref(&watched),
        "{observed:?}"
    );
    assert_eq!(labels(&observed, "policy"), ["observe"], "{observed:?}");
    assert_eq!(
        prometheus.query(&unhealed).await?.len(),
        1,
        "still only the held-down member"
    );
    let maintenance = rules
        .iter()
        .find(|rule| rule["name"] == "DockstateMaintenanceHoldLong")
        .and_then(|rule| rule["query"].as_str())
        .context("DockstateMaintenanceHoldLong is loaded")?;
    let held_hosts = prometheus.query(maintenance).await?;
    assert_eq!(labels(&held_hosts, "host"), ["private"], "{held_hosts:?}");

    // Every query of the dashboard, with data in hand.
    for (panel, query) in &queries {
        prometheus
            .query(query)
            .await
            .with_context(|| format!("the dashboard's panel {panel:?}"))?;
    }
    // And every rule evaluates without error on real data.
    for rule in prometheus.rules().await? {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    // The hold ends: the controller heals the member, and the expression returns nothing.
    let ended = client
        .delete(private.controller.url("/hold"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(ended.status().as_u16(), 200, "{}", ended.text().await?);
    wait_until(
        "DockstateDriftUnhealed to return nothing",
        PATIENCE,
        || async { Ok(prometheus.query(&unhealed).await?.is_empty()) },
    )
    .await?;
    let state = engine
        .docker(&["inspect", "--format", "{{.State.Status}}", &down])
        .await?;
    assert_eq!(state, "running", "healed by the controller, not by hand");
    assert_eq!(
        container_state(&shared_scope.name("web")).await?.as_deref(),
        Some("running")
    );
    assert_eq!(
        container_state(&watched).await?.as_deref(),
        Some("exited"),
        "observed, never acted on"
    );

    // What each scrape cost, as Prometheus measured it (docs/fleet.md): `-- --nocapture` prints it.
    for figure in ["scrape_samples_scraped", "scrape_duration_seconds"] {
        for sample in prometheus.query(figure).await? {
            eprintln!(
                "{figure}{{job={}, host={}}} {}",
                sample["metric"]["job"],
                sample["metric"]["host"],
                value(&sample)
            );
        }
    }

    for (host, pair) in [("shared", &shared), ("private", &private)] {
        let controller = reqwest::get(pair.controller.url("/metrics"))
            .await?
            .text()
            .await?;
        eprintln!(
            "/metrics of the controller on {host}: {} bytes",
            controller.len()
        );
    }

    drop(prometheus);
    private.stop().await?;
    shared.stop().await
}
