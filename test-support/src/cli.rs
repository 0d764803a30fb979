//! Running the `docker` CLI from async tests, and the few inspections tests keep needing.

use std::process::{Output, Stdio};

use anyhow::{bail, Context};
use tokio::process::Command;

/// Runs `docker <args>` and returns its standard output, trimmed.
///
/// A non-zero exit is an error that names the arguments, the exit status and what docker wrote to stderr.
pub async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = run(args, &[]).await?;
    stdout_or_error(args, &output)
}

/// Runs `docker <args>` with extra environment variables, returning the raw output whatever the exit status.
pub(crate) async fn run(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
    Command::new("docker")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| {
            format!(
                "could not run `docker {}`: is the docker CLI installed?",
                args.join(" ")
            )
        })
}

/// The trimmed stdout of a successful run, or an error naming the command and its stderr.
pub(crate) fn stdout_or_error(args: &[&str], output: &Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "`docker {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The first element of `docker inspect <name_or_id>`: a container, image, network or volume.
pub async fn inspect_json(name_or_id: &str) -> anyhow::Result<serde_json::Value> {
    let out = docker(&["inspect", name_or_id]).await?;
    let mut all: Vec<serde_json::Value> = serde_json::from_str(&out)
        .with_context(|| format!("`docker inspect {name_or_id}` did not print a JSON array"))?;
    if all.is_empty() {
        bail!("`docker inspect {name_or_id}` printed an empty array");
    }
    Ok(all.swap_remove(0))
}

/// Inspects a container with a Go template; `None` when no such container exists.
async fn inspect_container_field(
    name_or_id: &str,
    template: &str,
) -> anyhow::Result<Option<String>> {
    let args = [
        "inspect",
        "--type",
        "container",
        "--format",
        template,
        name_or_id,
    ];
    let output = run(&args, &[]).await?;
    // Older and newer engines word it differently, but always with "No such".
    if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("No such") {
        return Ok(None);
    }
    stdout_or_error(&args, &output).map(Some)
}

/// The container's `State.Status` (created, running, paused, restarting, removing, exited, dead), or `None`
/// when there is no such container.
pub async fn container_state(name_or_id: &str) -> anyhow::Result<Option<String>> {
    inspect_container_field(name_or_id, "{{.State.Status}}").await
}

/// The container's `State.Health.Status` (starting, healthy, unhealthy), or `None` when there is no such
/// container or it has no health check.
pub async fn container_health(name_or_id: &str) -> anyhow::Result<Option<String>> {
    let health = inspect_container_field(
        name_or_id,
        "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
    )
    .await?;
    Ok(health.filter(|h| !h.is_empty()))
}

/// The host PID of the container's main process (`State.Pid`); an error when the container does not exist or
/// is not running (the engine reports 0 then).
pub async fn main_pid(name_or_id: &str) -> anyhow::Result<u32> {
    let pid = inspect_container_field(name_or_id, "{{.State.Pid}}")
        .await?
        .with_context(|| format!("no container {name_or_id}"))?;
    let pid: u32 = pid
        .parse()
        .with_context(|| format!("State.Pid of {name_or_id} is not a number: {pid:?}"))?;
    if pid == 0 {
        bail!("container {name_or_id} has no main process: it is not running");
    }
    Ok(pid)
}
