//! Churn: status-api (the binary that ships, `--resync-interval 1h`, so only the event stream keeps it
//! current) watches a scope of `FAULT_CHURN` containers (300 by default) on the shared engine while random ones
//! are started, stopped, killed, removed, created and run, concurrently, at `FAULT_CHURN_RATE` operations a
//! second (10) for `FAULT_CHURN_SECONDS` (20). Once the churn stops, `/status?all=true` must equal
//! `docker ps -a` for the scope: the same names, ids and states. `make faults` runs it with 1000 containers for
//! 120 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use test_support::{docker, ensure_test_images, wait_until, Program, TestScope, BUSYBOX_IMAGE};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How many `docker` commands run at once, while creating and while churning.
const CONCURRENCY: usize = 8;

/// How long status-api may take to catch up once the churn stops: generous, since tests share two cores.
const PATIENCE: Duration = Duration::from_secs(120);

/// An environment knob, or its default.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .ok()
            .with_context(|| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// What is done to a container; each is chosen with the weight beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Create,
    Run,
    Start,
    Stop,
    Kill,
    Remove,
}

const OPS: [(Op, u32); 6] = [
    (Op::Create, 2),
    (Op::Run, 1),
    (Op::Start, 3),
    (Op::Stop, 2),
    (Op::Kill, 1),
    (Op::Remove, 2),
];

/// The containers the churn knows of (a name is dropped when its removal is sent) and the next name number.
#[derive(Debug, Default)]
struct Population {
    names: Vec<String>,
    next: usize,
}

/// `docker create` (or `run -d`) of the busybox image in the scope.
async fn make(scope: &TestScope, suffix: &str, run: bool) -> anyhow::Result<()> {
    let _id = if run {
        scope.run(suffix, BUSYBOX_IMAGE, &[]).await?
    } else {
        scope.create(suffix, BUSYBOX_IMAGE, &[]).await?
    };
    Ok(())
}

/// Carries out `op`, on a random container of `population` where it needs one.
async fn apply(
    op: Op,
    scope: &TestScope,
    population: &Mutex<Population>,
    rng: &Mutex<StdRng>,
) -> anyhow::Result<()> {
    let lock = || population.lock().unwrap_or_else(|p| p.into_inner());
    let pick = |remove: bool| {
        let mut population = lock();
        if population.names.is_empty() {
            return None;
        }
        let index = rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..population.names.len());
        Some(if remove {
            population.names.swap_remove(index)
        } else {
            population.names[index].clone()
        })
    };
    match op {
        Op::Create | Op::Run => {
            let suffix = {
                let mut population = lock();
                population.next += 1;
                format!("c{}", population.next)
            };
            make(scope, &suffix, op == Op::Run).await?;
            lock().names.push(scope.name(&suffix));
        }
        Op::Start | Op::Stop | Op::Kill | Op::Remove => {
            let Some(name) = pick(op == Op::Remove) else {
                return Ok(());
            };
            let args: &[&str] = match op {
                Op::Start => &["start"],
                // The image stops at once on SIGTERM; the time-out only bounds a container still starting.
                Op::Stop => &["stop", "-t", "2"],
                Op::Kill => &["kill"],
                _ => &["rm", "-f"],
            };
            docker(&[args, &[name.as_str()]].concat()).await?;
        }
    }
    Ok(())
}

/// `(name, id, state)` of every container in the scope, as `docker ps -a` lists them.
async fn engine_view(scope: &TestScope) -> anyhow::Result<BTreeSet<(String, String, String)>> {
    let filter = format!("label={}", scope.label());
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        "{{.Names}} {{.ID}} {{.State}}",
    ])
    .await?;
    out.lines()
        .map(|line| {
            let mut fields = line.split_whitespace().map(str::to_owned);
            match (fields.next(), fields.next(), fields.next()) {
                (Some(name), Some(id), Some(state)) => Ok((name, id, state)),
                _ => anyhow::bail!("`docker ps` printed {line:?}"),
            }
        })
        .collect()
}

/// The same from status-api's `/status?all=true`.
async fn api_view(api: &Program) -> anyhow::Result<BTreeSet<(String, String, String)>> {
    let status: Value = reqwest::get(api.url("/status?all=true"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let text = |container: &Value, field: &str| {
        container[field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {field} in {container}"))
    };
    status["containers"]
        .as_array()
        .context("no containers in /status")?
        .iter()
        .map(|c| anyhow::Ok((text(c, "name")?, text(c, "id")?, text(c, "state")?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_churn_over_hundreds_of_containers_status_equals_docker_ps_a() -> anyhow::Result<()> {
    let containers: usize = knob("FAULT_CHURN", 300)?;
    let seconds: u64 = knob("FAULT_CHURN_SECONDS", 20)?;
    let rate: f64 = knob("FAULT_CHURN_RATE", 10.0)?;
    let seed: u64 = knob("FAULT_CHURN_SEED", rand::random())?;
    eprintln!(
        "churn: {containers} containers, {rate} operations a second for {seconds} s, FAULT_CHURN_SEED={seed}"
    );
    ensure_test_images().await?;
    let binaries = e2e::static_binaries().await?;
    // Declared first, so it is dropped last: it removes every container of the scope, also on failure.
    let scope = Arc::new(TestScope::new());

    // status-api first, so that every create, start, stop and remove reaches it through the event stream.
    let state = tempfile::tempdir()?;
    let state_dir = state.path().to_str().context("a UTF-8 temporary path")?;
    let api = Program::spawn(
        &binaries.join("status-api"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state_dir,
            "--scope",
            &scope.scope(),
            "--resync-interval",
            "1h",
        ],
        &[],
    )
    .await?;
    let ready = api.url("/ready");
    wait_until("status-api to be ready", PATIENCE, || async {
        Ok(reqwest::get(&ready).await?.status().is_success())
    })
    .await
    .map_err(|e| e.context(api.logs()))?;

    // The population: one in five running, the rest created.
    let population = Arc::new(Mutex::new(Population {
        names: Vec::new(),
        next: containers,
    }));
    let mut workers = JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (scope, population) = (Arc::clone(&scope), Arc::clone(&population));
        workers.spawn(async move {
            for i in (worker..containers).step_by(CONCURRENCY) {
                let suffix = format!("c{i}");
                make(&scope, &suffix, i % 5 == 0).await?;
                let name = scope.name(&suffix);
                population
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .names
                    .push(name);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }

    // The churn: one operation every 1/rate s, at most CONCURRENCY under way.
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
    let tally: Arc<Mutex<BTreeMap<Op, (usize, usize)>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let total: u32 = OPS.iter().map(|(_, weight)| weight).sum();
    let mut churn = JoinSet::new();
    while tokio::time::Instant::now() < end {
        ticker.tick().await;
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let mut roll = rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..total);
        let op = OPS
            .iter()
            .find(|(_, weight)| {
                let hit = roll < *weight;
                roll = roll.saturating_sub(*weight);
                hit
            })
            .map_or(Op::Start, |(op, _)| *op);
        let (scope, population, rng, tally) = (
            Arc::clone(&scope),
            Arc::clone(&population),
            Arc::clone(&rng),
            Arc::clone(&tally),
        );
        churn.spawn(async move {
            // Racing operations on one container fail now and then (a start of one being removed): the
            // engine stays the truth that status-api must match, so a failure is counted, not fatal.
            let result = apply(op, &scope, &population, &rng).await;
            let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            let entry = tally.entry(op).or_default();
            if result.is_ok() {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
            drop(permit);
        });
    }
    while let Some(done) = churn.join_next().await {
        done?;
    }
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
    eprintln!("churn done, (succeeded, failed) by operation: {tally:?}");
    for (op, _) in OPS {
        assert!(
            tally.get(&op).is_some_and(|(ok, _)| *ok > 0),
            "the churn did at least one {op:?}: {tally:?}"
        );
    }

    let equal = wait_until(
        "/status?all=true to equal docker ps -a",
        PATIENCE,
        || async { Ok(api_view(&api).await? == engine_view(&scope).await?) },
    )
    .await;
    if let Err(e) = equal {
        let (api_now, engine_now) = (api_view(&api).await?, engine_view(&scope).await?);
        let only_api: Vec<_> = api_now.difference(&engine_now).collect();
        let only_engine: Vec<_> = engine_now.difference(&api_now).collect();
        return Err(e.context(format!(
            "only in /status: {only_api:#?}\nonly in docker ps -a: {only_engine:#?}\n{}",
            api.logs()
        )));
    }
    let listed = engine_view(&scope).await?;
    eprintln!("in agreement over {} containers", listed.len());
    assert!(
        listed.len() >= containers / 2,
        "the scope still holds most of the population: {}",
        listed.len()
    );

    let exit = api.stop(Duration::from_secs(15)).await?;
    assert!(exit.success(), "status-api exited {exit}");
    Ok(())
}
