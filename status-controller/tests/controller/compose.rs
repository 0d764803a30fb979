//! Compose recreating its own services, undisturbed: a three-service project is the baseline, then
//! `up -d --force-recreate` ten times while a real controller (with the token, so it could recreate) runs.
//! Every compose run succeeds, the controller does nothing to any of those containers, all three run at the
//! end, and no container compose set aside (`<short id>_<name>`) is left. With docker-compose 1.29 always;
//! with `docker compose` v2 too where the plugin is installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use test_support::{container_state, docker, ensure_test_images, TestScope, BUSYBOX_IMAGE};

use crate::helpers::{stays, wait_for_state, Options, Pair};

/// The services of the project.
const SERVICES: [&str; 3] = ["a", "b", "c"];

/// How many times compose recreates everything.
const ROUNDS: usize = 10;

/// How long the controller is watched after the last round: longer than its compose settle time, after
/// which it would act on anything it still took for drift.
const AFTER: Duration = Duration::from_secs(8);

/// A compose project of the test's own, taken down (`down -v`) when dropped, even when the test fails.
/// Declare it after the [`TestScope`], so it goes first.
struct Project {
    command: Vec<String>,
    name: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Project {
    /// Writes the compose file: [`SERVICES`], each the busybox test image labelled with the scope.
    fn new(scope: &TestScope, command: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("compose.yaml");
        let mut yaml = String::from("version: \"2.4\"\nservices:\n");
        for service in SERVICES {
            yaml.push_str(&format!(
                "  {service}:\n    image: {BUSYBOX_IMAGE}\n    labels:\n      dockstate.test: \"{}\"\n",
                scope.id()
            ));
        }
        std::fs::write(&file, yaml)?;
        Ok(Self {
            command: command.iter().map(|part| (*part).to_owned()).collect(),
            name: scope.id().to_owned(),
            file,
            _dir: dir,
        })
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args: Vec<&str> = self.command[1..].iter().map(String::as_str).collect();
        args.extend(["-p", &self.name, "-f", path_str(&self.file)]);
        args.extend_from_slice(rest);
        args
    }

    /// Runs compose with `rest`; its stderr when it fails.
    async fn run(&self, rest: &[&str]) -> anyhow::Result<Result<(), String>> {
        let output = tokio::process::Command::new(&self.command[0])
            .args(self.args(rest))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", self.command.join(" ")))?;
        Ok(if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        })
    }

    /// The container compose names for `service` (both generations name the first one so, with `_` in 1.x
    /// and `-` in v2).
    fn container(&self, service: &str) -> String {
        if self.command[0] == "docker-compose" {
            format!("{}_{service}_1", self.name)
        } else {
            format!("{}-{service}-1", self.name)
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.command[0])
            .args(self.args(&["down", "-v", "--remove-orphans"]))
            .stdin(Stdio::null())
            .output();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// Whether `docker compose` (v2) answers here.
fn compose_v2_installed() -> bool {
    std::process::Command::new("docker")
        .args(["compose", "version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The names of the scope's containers, in every state.
async fn containers(scope: &TestScope) -> anyhow::Result<Vec<String>> {
    let filter = format!("label={}", scope.label());
    Ok(
        docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
            .await?
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

async fn recreated_undisturbed(command: &[&str]) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let project = Project::new(&scope, command)?;
    if let Err(stderr) = project.run(&["up", "-d"]).await? {
        bail!("compose up: {stderr}");
    }
    let names: Vec<String> = SERVICES.iter().map(|s| project.container(s)).collect();
    for name in &names {
        wait_for_state(name, "running").await?;
    }
    // The baseline: the three services. The token lets the controller recreate, so it could fight.
    let pair = Pair::start(
        &scope,
        Options {
            token: true,
            ..Options::default()
        },
    )
    .await?;

    let mut failures = Vec::new();
    for round in 1..=ROUNDS {
        if let Err(stderr) = project.run(&["up", "-d", "--force-recreate"]).await? {
            failures.push(format!("round {round}: {}", stderr.trim()));
        }
    }

    // Watched past the controller's settle time: it would act then on anything it still took for drift.
    let journal = std::sync::Mutex::new(serde_json::Value::Null);
    let quiet = stays(
        "the controller to leave compose's containers alone",
        AFTER,
        async || {
            let actions = pair.controller.actions().await?;
            let none = actions["actions"]
                .as_array()
                .is_none_or(|actions| actions.is_empty());
            *journal.lock().expect("not poisoned") = actions;
            Ok(none)
        },
    )
    .await;
    assert!(
        failures.is_empty() && quiet.is_ok(),
        "{} of {ROUNDS} compose runs failed:\n{}\nthe controller's journal: {:#}",
        failures.len(),
        failures.join("\n"),
        journal.lock().expect("not poisoned")
    );
    for name in &names {
        assert_eq!(
            container_state(name).await?.as_deref(),
            Some("running"),
            "{name}"
        );
    }
    let mut left = containers(&scope).await?;
    left.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(left, expected, "no container set aside is left");
    pair.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_recreates_its_services_undisturbed() -> anyhow::Result<()> {
    recreated_undisturbed(&["docker-compose"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_v2_recreates_its_services_undisturbed() -> anyhow::Result<()> {
    if !compose_v2_installed() {
        eprintln!(
            "NOTE: `docker compose` (v2) is not installed here: its variant of the test is skipped"
        );
        return Ok(());
    }
    recreated_undisturbed(&["docker", "compose"]).await
}
