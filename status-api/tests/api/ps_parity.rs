//! `/status` is "like `docker ps`": over a population with every state, each filter combination is asked of
//! status-api and of `docker ps --filter …` (both limited to the test's scope), and the two must list the same
//! containers in the same states. The table of what was compared is printed.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use test_support::{
    container_health, docker, ensure_test_images, inspect_json, wait_until, TestScope,
    BUSYBOX_IMAGE, HEALTH_IMAGE,
};

use crate::helpers::{find, spawn_api, Options, TestApi};

/// One comparison: the `/status` query, and the `docker ps` flags that must list the same.
struct Case {
    query: Vec<(&'static str, String)>,
    ps: Vec<String>,
}

fn case(query: &[(&'static str, &str)], ps: &[&str]) -> Case {
    Case {
        query: query.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ps: ps.iter().map(|flag| (*flag).to_owned()).collect(),
    }
}

type Rows = BTreeSet<(String, String)>;

async fn from_status(api: &TestApi, query: &[(&'static str, String)]) -> anyhow::Result<Rows> {
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let body = api.get_ok(&format!("/status?{encoded}")).await?;
    Ok(body["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
            (text("name"), text("state"))
        })
        .collect())
}

async fn from_docker_ps(scope: &TestScope, flags: &[String]) -> anyhow::Result<Rows> {
    let label = format!("label={}", scope.label());
    let mut args = vec![
        "ps",
        "--filter",
        &label,
        "--format",
        "{{.Names}} {{.State}}",
    ];
    args.extend(flags.iter().map(String::as_str));
    Ok(docker(&args)
        .await?
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, state)| (name.to_owned(), state.to_owned()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_filters_list_what_docker_ps_lists() -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let sleep = ["/bin/busybox", "sh", "-c", "sleep 3600000"];
    scope.create("created", BUSYBOX_IMAGE, &[]).await?;
    scope
        .run("web-1", BUSYBOX_IMAGE, &["--label", "tier=front"])
        .await?;
    scope
        .run(
            "web-2",
            BUSYBOX_IMAGE,
            &["--label", "tier=front", "--label", "role=canary"],
        )
        .await?;
    scope
        .run("db-1", BUSYBOX_IMAGE, &["--label", "tier=back"])
        .await?;
    scope.run("paused", BUSYBOX_IMAGE, &[]).await?;
    docker(&["pause", &scope.name("paused")]).await?;
    scope
        .run_cmd(
            "restarting",
            BUSYBOX_IMAGE,
            &["--restart", "always", "--label", "tier=back"],
            &["/bin/busybox", "sh", "-c", "exit 3"],
        )
        .await?;
    scope
        .run_cmd("done-ok", BUSYBOX_IMAGE, &[], &["/bin/busybox", "true"])
        .await?;
    scope
        .run_cmd(
            "done-bad",
            BUSYBOX_IMAGE,
            &["--label", "tier=back"],
            &["/bin/busybox", "sh", "-c", "exit 7"],
        )
        .await?;
    // Health: starting (the first check is an hour away), healthy, and unhealthy (no /tmp/healthy).
    scope
        .run(
            "health-starting",
            HEALTH_IMAGE,
            &["--health-interval", "1h"],
        )
        .await?;
    scope.run("health-ok", HEALTH_IMAGE, &[]).await?;
    scope
        .run_cmd("health-bad", HEALTH_IMAGE, &[], &sleep)
        .await?;

    // Settle the population: the exits done, the restart back-off long (so the container is `restarting`
    // for seconds at a time), the health checks decided.
    let restarting = scope.name("restarting");
    wait_until(
        "the population to settle",
        Duration::from_secs(30),
        || async {
            let restarts = inspect_json(&restarting).await?["RestartCount"]
                .as_u64()
                .unwrap_or(0);
            Ok(restarts >= 5
                && test_support::container_state(&restarting).await?.as_deref()
                    == Some("restarting")
                && test_support::container_state(&scope.name("done-bad"))
                    .await?
                    .as_deref()
                    == Some("exited")
                && container_health(&scope.name("health-ok")).await?.as_deref() == Some("healthy")
                && container_health(&scope.name("health-bad"))
                    .await?
                    .as_deref()
                    == Some("unhealthy"))
        },
    )
    .await?;

    let api = spawn_api(&scope, Options::default()).await?;
    let id = scope.id();
    let prefix = format!("^{id}-web");
    let anchored_slash = format!("^/{id}-db");
    let exact = format!("^{id}-web-1$");
    let cases = [
        case(&[], &[]),
        case(&[("all", "true")], &["--all"]),
        case(&[("all", "false")], &[]),
        case(&[("state", "created")], &["--filter", "status=created"]),
        case(&[("state", "running")], &["--filter", "status=running"]),
        case(&[("state", "paused")], &["--filter", "status=paused"]),
        case(
            &[("state", "restarting")],
            &["--filter", "status=restarting"],
        ),
        case(&[("state", "exited")], &["--filter", "status=exited"]),
        case(&[("state", "removing")], &["--filter", "status=removing"]),
        case(&[("state", "dead")], &["--filter", "status=dead"]),
        case(
            &[("state", "exited"), ("state", "created")],
            &["--filter", "status=exited", "--filter", "status=created"],
        ),
        case(
            &[("state", "running"), ("state", "paused")],
            &["--filter", "status=running", "--filter", "status=paused"],
        ),
        case(
            &[("name", &prefix)],
            &["--filter", &format!("name={prefix}")],
        ),
        case(&[("name", &exact)], &["--filter", &format!("name={exact}")]),
        case(&[("name", "web.")], &["--filter", "name=web."]),
        case(&[("name", "-1$")], &["--filter", "name=-1$"]),
        case(
            &[("name", &anchored_slash)],
            &["--filter", &format!("name={anchored_slash}")],
        ),
        case(
            &[("name", "web-2"), ("name", "db")],
            &["--filter", "name=web-2", "--filter", "name=db"],
        ),
        case(
            &[("name", "no-such-name")],
            &["--filter", "name=no-such-name"],
        ),
        case(&[("label", "tier")], &["--filter", "label=tier"]),
        case(
            &[("label", "tier=front")],
            &["--filter", "label=tier=front"],
        ),
        case(
            &[("label", "tier=front"), ("label", "role=canary")],
            &[
                "--filter",
                "label=tier=front",
                "--filter",
                "label=role=canary",
            ],
        ),
        case(
            &[("label", "tier=back"), ("all", "true")],
            &["--filter", "label=tier=back", "--all"],
        ),
        case(&[("label", "role=none")], &["--filter", "label=role=none"]),
        case(
            &[("label", "tier=back"), ("state", "exited")],
            &["--filter", "label=tier=back", "--filter", "status=exited"],
        ),
        case(
            &[("name", "done"), ("state", "exited")],
            &["--filter", "name=done", "--filter", "status=exited"],
        ),
        case(
            &[("name", "health"), ("label", "tier")],
            &["--filter", "name=health", "--filter", "label=tier"],
        ),
        case(
            &[("name", "health"), ("all", "true")],
            &["--filter", "name=health", "--all"],
        ),
        case(&[("name", "d")], &["--filter", "name=d"]),
        case(
            &[("name", "d"), ("all", "true")],
            &["--filter", "name=d", "--all"],
        ),
    ];

    let mut table = vec![
        "| # | /status query | docker ps flags | containers | equal |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    let mut mismatches = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        // A restarting container is `running` for a moment between back-offs: ask both again until they
        // agree, within a bound.
        let seen = std::sync::Mutex::new((Rows::new(), Rows::new()));
        let agreed = wait_until(
            "status and docker ps to agree",
            Duration::from_secs(5),
            || async {
                let ps = from_docker_ps(&scope, &case.ps).await?;
                let status = from_status(&api, &case.query).await?;
                let equal = ps == status;
                *seen.lock().expect("not poisoned") = (status, ps);
                Ok(equal)
            },
        )
        .await
        .is_ok();
        let last = seen.into_inner().expect("not poisoned");
        let query: Vec<String> = case.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.push(format!(
            "| {} | `{}` | `{}` | {} | {} |",
            n + 1,
            query.join("&"),
            case.ps.join(" "),
            last.0.len(),
            if agreed { "yes" } else { "NO" }
        ));
        if !agreed {
            mismatches.push(format!(
                "case {}: /status {:?} vs docker ps {:?}",
                n + 1,
                last.0,
                last.1
            ));
        }
    }
    eprintln!("/status compared with docker ps:\n{}", table.join("\n"));
    assert!(cases.len() >= 25);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // The exit code is the last one whenever Docker has one: restarting and exited containers alike. (The
    // crash looper is `running` for a moment between back-offs: read it while it is restarting.)
    let restarting_path = format!("/status/{restarting}");
    wait_until(
        "the looper to be restarting in /status",
        Duration::from_secs(10),
        || async { Ok(api.get_ok(&restarting_path).await?["state"] == "restarting") },
    )
    .await?;
    let all = api.get_ok("/status?all=true").await?;
    let exit_code = |suffix: &str| -> Value {
        find(&all, &scope.name(suffix))
            .map(|c| c["exit_code"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(exit_code("restarting"), 3, "{all}");
    assert_eq!(exit_code("done-bad"), 7);
    assert_eq!(exit_code("done-ok"), 0);
    assert_eq!(exit_code("web-1"), Value::Null, "running: none");
    assert_eq!(exit_code("paused"), Value::Null, "paused: none");
    assert_eq!(exit_code("created"), Value::Null, "never ran: none");
    let health = |suffix: &str| -> Value {
        find(&all, &scope.name(suffix))
            .map(|c| c["health"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(health("health-starting"), "starting");
    assert_eq!(health("health-ok"), "healthy");
    assert_eq!(health("health-bad"), "unhealthy");
    api.stop().await
}
