//! Heal latency: a container's main process killed from the host (`kill -9`) until it runs again, under
//! dockstate and under Docker's own `--restart always`; unexpected → stopped; removed → recreated; and the
//! floors — the engine's start call, and kill → `die` event.

use std::path::Path;
use std::time::{Duration, Instant};

use bollard::query_parameters::{RemoveContainerOptions, StartContainerOptions};
use bollard::Docker;
use serde_json::{json, Value};
use test_support::TestScope;

use crate::engine::{create_many, kill_9, main_pid, now_nanos, Recorder, Spec};
use crate::procs::{self, Workdir};
use crate::stats::summary;
use crate::trace::{self, Trial};

const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

fn nanos(duration_nanos: i64) -> Duration {
    Duration::from_nanos(u64::try_from(duration_nanos).unwrap_or(0))
}

pub async fn run(docker: &Docker, bin_dir: &Path, trials: usize) -> anyhow::Result<Value> {
    let managed = TestScope::new();
    let plain = TestScope::new();
    let work = Workdir::new()?;

    let heal_names: Vec<String> = (0..trials)
        .map(|i| managed.name(&format!("heal-{i}")))
        .collect();
    let heal_ids = create_many(
        docker,
        &heal_names,
        Spec {
            label: &managed.label(),
            start: true,
            restart_always: false,
            slow_stop: None,
        },
    )
    .await?;
    // Separate members for the recreate trials, so no crash-loop backoff from a recent heal can slow them.
    let recreate_names: Vec<String> = (0..trials.min(10))
        .map(|i| managed.name(&format!("recreate-{i}")))
        .collect();
    create_many(
        docker,
        &recreate_names,
        Spec {
            label: &managed.label(),
            start: true,
            restart_always: false,
            slow_stop: None,
        },
    )
    .await?;
    let restart_names: Vec<String> = (0..trials)
        .map(|i| plain.name(&format!("restart-{i}")))
        .collect();
    let restart_ids = create_many(
        docker,
        &restart_names,
        Spec {
            label: &plain.label(),
            start: true,
            restart_always: true,
            slow_stop: None,
        },
    )
    .await?;

    let api = procs::status_api(
        bin_dir,
        &managed.scope(),
        &work.state("heal"),
        &work.token(),
        procs::Logs::HealTrace,
    )?;
    api.wait_ready(Instant::now(), Duration::from_secs(30))
        .await?;
    let controller = procs::controller(bin_dir, &api, &work.token(), procs::Logs::HealTrace)?;
    controller
        .wait_ready(Instant::now(), Duration::from_secs(30))
        .await?;

    let managed_events = Recorder::start(docker, &managed.label()).await?;
    let plain_events = Recorder::start(docker, &plain.label()).await?;

    let mut healed = Vec::new();
    let mut kill_to_die = Vec::new();
    let mut traced = Vec::new();
    for (id, name) in heal_ids.iter().zip(&heal_names) {
        let trial = kill_and_wait(docker, &managed_events, id, name).await?;
        healed.push(nanos(trial.started - trial.killed));
        kill_to_die.push(nanos(trial.died - trial.killed));
        traced.push(trial);
    }
    let mut restarted = Vec::new();
    for (id, name) in restart_ids.iter().zip(&restart_names) {
        let trial = kill_and_wait(docker, &plain_events, id, name).await?;
        restarted.push(nanos(trial.started - trial.killed));
        kill_to_die.push(nanos(trial.died - trial.killed));
    }
    let breakdown = match (&api.trace, &controller.trace) {
        (Some(api), Some(controller)) => trace::breakdown(&traced, api, controller),
        _ => Value::Null,
    };
    eprintln!("   kill → running measured");

    // Unexpected → stopped: from its `start` event to its `die` event.
    let mut stopped = Vec::new();
    for i in 0..trials.min(10) {
        let name = managed.name(&format!("unexpected-{i}"));
        let before = now_nanos();
        create_many(
            docker,
            std::slice::from_ref(&name),
            Spec {
                label: &managed.label(),
                start: true,
                restart_always: false,
                slow_stop: None,
            },
        )
        .await?;
        let started = managed_events
            .wait_for("unexpected start", before, EVENT_TIMEOUT, |e| {
                e.name == name && e.action == "start"
            })
            .await?;
        let died = managed_events
            .wait_for(
                "unexpected stopped",
                started.time_nanos,
                EVENT_TIMEOUT,
                |e| e.name == name && e.action == "die",
            )
            .await?;
        stopped.push(nanos(died.time_nanos - started.time_nanos));
    }

    // Removed → recreated: from `destroy` to the `start` of the new container of the same name.
    let mut recreated = Vec::new();
    for name in &recreate_names {
        let before = now_nanos();
        docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..RemoveContainerOptions::default()
                }),
            )
            .await?;
        let destroyed = managed_events
            .wait_for("destroy", before, EVENT_TIMEOUT, |e| {
                &e.name == name && e.action == "destroy"
            })
            .await?;
        let started = managed_events
            .wait_for(
                "recreated start",
                destroyed.time_nanos,
                EVENT_TIMEOUT,
                |e| &e.name == name && e.action == "start",
            )
            .await?;
        recreated.push(nanos(started.time_nanos - destroyed.time_nanos));
    }
    eprintln!("   unexpected and removed measured");

    // The floor: the engine's own start call, on stopped containers nobody heals.
    let floor = TestScope::new();
    let floor_names: Vec<String> = (0..trials)
        .map(|i| floor.name(&format!("start-{i}")))
        .collect();
    let floor_ids = create_many(
        docker,
        &floor_names,
        Spec {
            label: &floor.label(),
            start: false,
            restart_always: false,
            slow_stop: None,
        },
    )
    .await?;
    let mut start_call = Vec::new();
    for id in &floor_ids {
        let started = Instant::now();
        docker
            .start_container(id, None::<StartContainerOptions>)
            .await?;
        start_call.push(started.elapsed());
    }
    // The floor of a heal: the same kill, and the start sent the moment the `die` event arrives (this
    // benchmark's own event stream, read every 2 ms). The start waits while the engine cleans up after
    // the death (it holds the container's lock), so this is the best any healer outside the engine can do.
    let floor_events = Recorder::start(docker, &floor.label()).await?;
    let mut immediate = Vec::new();
    for (id, name) in floor_ids.iter().zip(&floor_names) {
        let pid = main_pid(docker, id).await?;
        let killed = now_nanos();
        kill_9(pid).await?;
        let died = floor_events
            .wait_for(&format!("{name} to die"), killed, EVENT_TIMEOUT, |e| {
                &e.id == id && e.action == "die"
            })
            .await?;
        docker
            .start_container(id, None::<StartContainerOptions>)
            .await?;
        let started = floor_events
            .wait_for(
                &format!("{name} to run again"),
                died.time_nanos,
                EVENT_TIMEOUT,
                |e| &e.id == id && e.action == "start",
            )
            .await?;
        immediate.push(nanos(started.time_nanos - killed));
    }

    let rss = json!({
        "status_api": api.rss_bytes(),
        "status_controller": controller.rss_bytes(),
    });
    drop(controller);
    drop(api);

    let dockstate = summary(&healed);
    let docker_restart = summary(&restarted);
    let ratio = |key: &str| {
        let ratio = dockstate[key].as_f64().unwrap_or(f64::NAN)
            / docker_restart[key].as_f64().unwrap_or(f64::NAN);
        (ratio * 100.0).round() / 100.0
    };
    let floor = summary(&immediate);
    let floor_ratio = ((floor["p50_ms"].as_f64().unwrap_or(f64::NAN)
        / docker_restart["p50_ms"].as_f64().unwrap_or(f64::NAN))
        * 100.0)
        .round()
        / 100.0;
    Ok(json!({
        "ratio_p50": ratio("p50_ms"),
        "ratio_p90": ratio("p90_ms"),
        "dockstate": dockstate,
        "docker_restart": docker_restart,
        "breakdown": breakdown,
        "unexpected_stopped": summary(&stopped),
        "removed_recreated": summary(&recreated),
        "start_call": summary(&start_call),
        "start_at_die": floor,
        "floor_ratio_p50": floor_ratio,
        "kill_to_die": summary(&kill_to_die),
        "rss_bytes_after": rss,
    }))
}

/// Kills the container's main process; answers when it was killed, died and ran again.
async fn kill_and_wait(
    docker: &Docker,
    events: &Recorder,
    id: &str,
    name: &str,
) -> anyhow::Result<Trial> {
    let pid = main_pid(docker, id).await?;
    let killed = now_nanos();
    kill_9(pid).await?;
    let died = events
        .wait_for(&format!("{name} to die"), killed, EVENT_TIMEOUT, |e| {
            e.id == id && e.action == "die"
        })
        .await?;
    let started = events
        .wait_for(
            &format!("{name} to run again"),
            died.time_nanos,
            EVENT_TIMEOUT,
            |e| e.id == id && e.action == "start",
        )
        .await?;
    // Let the controller and the engine settle before the next trial.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Trial {
        id: id.to_owned(),
        name: name.to_owned(),
        killed,
        died: died.time_nanos,
        started: started.time_nanos,
    })
}
