//! Engine faults, with both programs running as the binaries that ship, against a private engine the test
//! starts itself (the shared engine is never killed or frozen): twenty members with restart policy `no`, so
//! only the controller brings them back, and two containers outside the scope that nobody may touch.
//!
//! - `kill -9` of `dockerd`, then a restart (the members come back stopped): every member runs again, the
//!   controller stopped or removed nothing and acted on nothing outside the scope, and every `ok` start in
//!   its journal (`GET /actions`) is one `start` in the engine's own event stream, and the other way round.
//! - SIGSTOP of `dockerd` for [`freeze`] (15 s unless `FAULT_FREEZE_SECONDS` says otherwise): the
//!   controller takes no action while the engine answers nothing, nor after SIGCONT; then five members
//!   stopped through the engine are healed, and the journal matches the events again.
//!
//! The engine's events are captured live (`docker events` keeps only an in-memory log, which a restart loses)
//! and the capture resubscribes after the restart, from the last event it saw.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::TempDir;
use test_support::{
    ensure_test_images, wait_until, PrivateEngine, Program, TestScope, BUSYBOX_IMAGE,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

const MEMBERS: usize = 20;

/// How long a change on a loaded machine may take: generous, since the tests share two cores.
const PATIENCE: Duration = Duration::from_secs(90);

/// How long the journal and the event stream must stay unchanged before a test counts them: long enough
/// for a late pass planned on an old view to show itself.
const QUIET: Duration = Duration::from_secs(3);

/// The token both programs read, so that a removed member could be recreated.
const TOKEN: &str = "fault-suite-token-0123456789";

/// How long the engine stays frozen: `FAULT_FREEZE_SECONDS`, 15 s by default — longer than status-api's
/// engine request time-out (10 s) and the controller's status-api one (5 s), so that whatever gives up during
/// a freeze has given up before the engine answers again.
fn freeze() -> anyhow::Result<Duration> {
    match std::env::var("FAULT_FREEZE_SECONDS") {
        Ok(seconds) => Ok(Duration::from_secs(seconds.parse().with_context(|| {
            format!("FAULT_FREEZE_SECONDS={seconds:?} is not a whole number of seconds")
        })?)),
        Err(_) => Ok(Duration::from_secs(15)),
    }
}

/// Seconds since the epoch, as `docker events --since` takes them.
fn unix(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

/// One container event of the engine.
#[derive(Debug, Clone)]
struct EngineEvent {
    action: String,
    name: String,
    time: DateTime<Utc>,
}

/// A live capture of a private engine's container events, resubscribed whenever the stream ends (the engine
/// was killed): from the newest event seen, which the restarted engine's own in-memory log covers.
struct EventCapture {
    events: Arc<Mutex<Vec<EngineEvent>>>,
    task: JoinHandle<()>,
}

impl EventCapture {
    /// Captures from `since` on.
    fn start(host: String, since: SystemTime) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(capture(host, since, Arc::clone(&events)));
        Self { events, task }
    }

    fn events(&self) -> Vec<EngineEvent> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many `action` events each container had.
    fn count(&self, action: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for event in self.events().into_iter().filter(|e| e.action == action) {
            *counts.entry(event.name).or_default() += 1;
        }
        counts
    }
}

impl Drop for EventCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn capture(host: String, since: SystemTime, events: Arc<Mutex<Vec<EngineEvent>>>) {
    let mut since = unix(since);
    // A resubscription replays what the engine still holds: the same event must not count twice.
    let mut seen: HashSet<(i128, String, String)> = HashSet::new();
    loop {
        let child = Command::new("docker")
            .args(["-H", &host, "events", "--format", "{{json .}}"])
            .args(["--filter", "type=container", "--since", &since])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        if let Ok(mut child) = child {
            if let Some(stdout) = child.stdout.take() {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(event) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let nanos = event["timeNano"].as_i64().unwrap_or_default();
                    let action = event["Action"].as_str().unwrap_or_default().to_owned();
                    let id = event["Actor"]["ID"].as_str().unwrap_or_default().to_owned();
                    if !seen.insert((i128::from(nanos), id, action.clone())) {
                        continue;
                    }
                    since = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
                    let name = event["Actor"]["Attributes"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    events
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(EngineEvent {
                            action,
                            name,
                            time: DateTime::from_timestamp_nanos(nanos),
                        });
                }
            }
            let _ = child.wait().await;
        }
        // The engine is down or restarting: ask again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One line of the controller's `GET /actions`.
#[derive(Debug, Clone)]
struct Record {
    time: DateTime<Utc>,
    container: String,
    action: String,
    result: String,
    duration: Duration,
}

/// A private engine with twenty scoped members and two outsiders, and the pair running against it, in sync.
/// Fields drop in order: the controller first (nothing acts while the rest goes), the engine last.
struct Fixture {
    controller: Program,
    api: Program,
    _dirs: [TempDir; 2],
    members: Vec<String>,
    outsiders: Vec<String>,
    engine: PrivateEngine,
    _scope: TestScope,
}

impl Fixture {
    async fn start() -> anyhow::Result<Self> {
        ensure_test_images().await?;
        let binaries = e2e::static_binaries().await?;
        // Declared before the engine, so it is dropped after it: it removes nothing there (the engine goes
        // with its containers), but its label and names keep this test's containers apart from any other's.
        let scope = TestScope::new();
        let engine = PrivateEngine::start().await?;
        engine.load_image(BUSYBOX_IMAGE).await?;

        let label = scope.label();
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let name = scope.name(&format!("m{i:02}"));
            run(&engine, &label, &name).await?;
            members.push(name);
        }
        // Labelled for this test too, with another value: outside the scope the pair watches.
        let outside_label = format!("{label}-outside");
        let mut outsiders = Vec::new();
        for i in 0..2 {
            let name = scope.name(&format!("outside{i}"));
            run(&engine, &outside_label, &name).await?;
            outsiders.push(name);
        }

        // A state directory of the test's own user, mode 0700, as status-api wants it; the token apart.
        let state = tempfile::tempdir()?;
        let secrets = tempfile::tempdir()?;
        let token_file = secrets.path().join("token");
        std::fs::write(&token_file, TOKEN)?;
        let (state_dir, token_file) = (path_str(state.path())?, path_str(&token_file)?);
        let host = engine.host();
        let scope_flag = scope.scope();
        let api = Program::spawn(
            &binaries.join("status-api"),
            &[
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                &state_dir,
                "--scope",
                &scope_flag,
                "--token-file",
                &token_file,
                // Whatever the test sees arrives through the event stream, never through a timer.
                "--resync-interval",
                "1h",
            ],
            &[("DOCKER_HOST", host.as_str())],
        )
        .await?;
        let api_url = api.url("");
        let controller = Program::spawn(
            &binaries.join("status-controller"),
            &[
                "--listen",
                "127.0.0.1:0",
                "--api-url",
                &api_url,
                "--scope",
                &scope_flag,
                "--token-file",
                &token_file,
                "--unexpected",
                "stop",
                // Every action the test sees was driven by the long poll, never by the periodic pass.
                "--interval",
                "1h",
            ],
            &[("DOCKER_HOST", host.as_str())],
        )
        .await?;
        let fixture = Self {
            controller,
            api,
            _dirs: [state, secrets],
            members,
            outsiders,
            engine,
            _scope: scope,
        };
        fixture.wait_in_sync().await?;
        let snapshot = get_json(&fixture.api.url("/snapshot")).await?;
        let snapshotted: BTreeSet<&str> = snapshot["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|member| member["name"].as_str())
            .collect();
        let expected: BTreeSet<&str> = fixture.members.iter().map(String::as_str).collect();
        assert_eq!(snapshotted, expected, "the baseline is the twenty members");
        Ok(fixture)
    }

    /// Waits until status-api and the controller are ready and `/drift` is in sync.
    async fn wait_in_sync(&self) -> anyhow::Result<()> {
        let result = wait_until("the pair to be ready and in sync", PATIENCE, || async {
            Ok(status(&self.api.url("/ready")).await? == 200
                && status(&self.controller.url("/ready")).await? == 200
                && get_json(&self.api.url("/drift")).await?["in_sync"] == true)
        })
        .await;
        result.map(|_| ()).map_err(|e| self.explain(e))
    }

    /// The members that run, as the engine says.
    async fn running(&self) -> anyhow::Result<BTreeSet<String>> {
        let out = self
            .engine
            .docker(&["ps", "--filter", "status=running", "--format", "{{.Names}}"])
            .await?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The controller's journal, oldest first.
    async fn journal(&self) -> anyhow::Result<Vec<Record>> {
        let actions = get_json(&self.controller.url("/actions")).await?;
        let mut records = Vec::new();
        for record in actions["actions"].as_array().into_iter().flatten() {
            let text = |field: &str| record[field].as_str().unwrap_or_default().to_owned();
            records.push(Record {
                time: text("time")
                    .parse()
                    .with_context(|| format!("a record's time: {record}"))?,
                container: text("container"),
                action: text("action"),
                result: text("result"),
                duration: Duration::from_secs_f64(
                    record["duration_seconds"].as_f64().unwrap_or_default(),
                ),
            });
        }
        records.reverse();
        Ok(records)
    }

    /// Waits until the journal and the captured events have not changed for [`QUIET`].
    async fn wait_quiet(&self, events: &EventCapture) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = None;
        let mut unchanged_since = tokio::time::Instant::now();
        loop {
            let now = (self.journal().await?.len(), events.events().len());
            if last != Some(now) {
                last = Some(now);
                unchanged_since = tokio::time::Instant::now();
            } else if unchanged_since.elapsed() >= QUIET {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.explain(anyhow::anyhow!(
                    "the journal and the engine's events did not stay unchanged for {QUIET:?} within \
                     {PATIENCE:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Asserts that the journal tells the engine's story: no stop, remove, restart or unpause of anything
    /// (nothing here called for one), no record about anything but a member, and for each member as many `ok`
    /// starts as the engine has `start` events, pairwise at the same time; the outsiders were never started.
    /// Answers the heals per member.
    fn assert_journal_matches(
        &self,
        records: &[Record],
        events: &[EngineEvent],
    ) -> BTreeMap<String, usize> {
        let members: BTreeSet<&str> = self.members.iter().map(String::as_str).collect();
        let all = || format!("the journal: {records:#?}\nthe engine's events: {events:#?}");
        for record in records {
            assert!(
                members.contains(record.container.as_str()),
                "a record about something that is not a member: {record:?}\n{}",
                all()
            );
            assert!(
                !["stop", "remove", "restart", "unpause"].contains(&record.action.as_str()),
                "a wrong action: {record:?}\n{}",
                all()
            );
        }
        let mut journal: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for record in records.iter().filter(|record| {
            record.result == "ok" && ["start", "recreate"].contains(&record.action.as_str())
        }) {
            journal
                .entry(record.container.as_str())
                .or_default()
                .push(record);
        }
        let mut engine: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
        for event in events.iter().filter(|event| event.action == "start") {
            assert!(
                !self.outsiders.contains(&event.name),
                "a container outside the scope was started: {event:?}\n{}",
                all()
            );
            engine
                .entry(event.name.as_str())
                .or_default()
                .push(event.time);
        }
        let journal_counts: BTreeMap<&str, usize> =
            journal.iter().map(|(name, r)| (*name, r.len())).collect();
        let engine_counts: BTreeMap<&str, usize> =
            engine.iter().map(|(name, e)| (*name, e.len())).collect();
        assert_eq!(
            journal_counts,
            engine_counts,
            "ok starts in the journal and start events of the engine, per member\n{}",
            all()
        );
        // Clocks: the engine stamps the start when it is done, within the record's duration; a second of
        // slack either side for rounding and scheduling.
        let slack = chrono::TimeDelta::seconds(1);
        for (name, records) in &journal {
            for (record, started) in records.iter().zip(&engine[name]) {
                let done =
                    record.time + chrono::TimeDelta::from_std(record.duration).unwrap_or(slack);
                assert!(
                    record.time - slack <= *started && *started <= done + slack,
                    "{name}: the engine started it at {started}, not during the ok record {record:?}\n{}",
                    all()
                );
            }
        }
        eprintln!(
            "{} journal records; their ok starts, member by member, are the engine's start events: {:?}",
            records.len(),
            journal_counts
        );
        journal
            .into_iter()
            .map(|(name, records)| (name.to_owned(), records.len()))
            .collect()
    }

    /// The error, with both programs' newest log lines.
    fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        error.context(format!(
            "status-api: {}\nstatus-controller: {}",
            self.api.logs(),
            self.controller.logs()
        ))
    }

    /// Stops the controller, then status-api, each as SIGTERM would; both must exit 0.
    async fn stop(self) -> anyhow::Result<()> {
        let limit = Duration::from_secs(15);
        let controller = self.controller.stop(limit).await?;
        assert!(
            controller.success(),
            "status-controller exited {controller}"
        );
        let api = self.api.stop(limit).await?;
        assert!(api.success(), "status-api exited {api}");
        Ok(())
    }
}

/// `docker run -d --restart no` of the busybox image on `engine`, labelled `label`.
async fn run(engine: &PrivateEngine, label: &str, name: &str) -> anyhow::Result<()> {
    engine
        .docker(&[
            "run",
            "-d",
            "--restart",
            "no",
            "--label",
            label,
            "--name",
            name,
            BUSYBOX_IMAGE,
        ])
        .await
        .map(|_| ())
}

fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Every request gives up after a while: a test that hangs tells nobody anything.
fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds")
        })
        .clone()
}

async fn status(url: &str) -> anyhow::Result<u16> {
    Ok(client().get(url).send().await?.status().as_u16())
}

async fn get_json(url: &str) -> anyhow::Result<Value> {
    Ok(client()
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Checks for `window` that `check` keeps holding: a "nothing happened" assertion cannot wait for a change.
async fn stays(
    what: &str,
    window: Duration,
    check: impl AsyncFn() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + window;
    loop {
        if !check()
            .await
            .with_context(|| format!("checking that {what}"))?
        {
            bail!("{what}: it did not hold");
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_and_a_restart_of_the_engine_every_member_runs_again_as_its_events_say(
) -> anyhow::Result<()> {
    let mut fixture = Fixture::start().await?;
    assert!(
        fixture.journal().await?.is_empty(),
        "in sync: nothing to do before the fault"
    );
    let events = EventCapture::start(fixture.engine.host(), SystemTime::now());

    fixture.engine.kill().await?;
    let noticed = wait_until(
        "status-api to say it is not ready while its engine is gone",
        PATIENCE,
        || async { Ok(status(&fixture.api.url("/ready")).await? == 503) },
    )
    .await;
    noticed.map_err(|e| fixture.explain(e))?;
    // Without live-restore the restarted engine stops what ran under the killed one: with restart policy
    // `no`, only the controller starts the members again.
    fixture.engine.restart().await?;

    let back = wait_until("every member to run again", PATIENCE, || async {
        let running = fixture.running().await?;
        Ok(fixture
            .members
            .iter()
            .all(|member| running.contains(member)))
    })
    .await;
    back.map_err(|e| fixture.explain(e))?;
    fixture.wait_in_sync().await?;
    fixture.wait_quiet(&events).await?;

    let running = fixture.running().await?;
    for outsider in &fixture.outsiders {
        assert!(
            !running.contains(outsider),
            "{outsider}, outside the scope, stays as the restart left it"
        );
    }
    let heals = fixture.assert_journal_matches(&fixture.journal().await?, &events.events());
    let members: BTreeSet<&String> = fixture.members.iter().collect();
    assert_eq!(
        heals.keys().collect::<BTreeSet<_>>(),
        members,
        "every member was started by the controller: {heals:?}"
    );
    fixture.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_engine_gets_no_action_and_after_sigcont_stopped_members_are_healed_as_its_events_say(
) -> anyhow::Result<()> {
    let freeze = freeze()?;
    let fixture = Fixture::start().await?;
    assert!(
        fixture.journal().await?.is_empty(),
        "in sync: nothing to do before the fault"
    );
    let events = EventCapture::start(fixture.engine.host(), SystemTime::now());

    fixture.engine.freeze()?;
    // The controller's own server answers without the engine: its journal must stay empty throughout.
    let held = stays(
        "the journal stays empty while the engine is frozen",
        freeze,
        || async { Ok(fixture.journal().await?.is_empty()) },
    )
    .await;
    fixture.engine.thaw()?;
    held.map_err(|e| fixture.explain(e))?;
    fixture.wait_in_sync().await?;
    fixture.wait_quiet(&events).await?;
    let records = fixture.journal().await?;
    assert!(
        records.is_empty(),
        "no action for a freeze: nothing changed on the engine: {records:#?}"
    );
    assert!(
        events.count("start").is_empty(),
        "nothing was started: {:#?}",
        events.events()
    );

    // Thawed, the pair acts again: five members and an outsider stopped through the engine.
    let stopped: Vec<&str> = fixture
        .members
        .iter()
        .step_by(4)
        .map(String::as_str)
        .collect();
    let mut args = vec!["stop"];
    args.extend(&stopped);
    args.push(&fixture.outsiders[0]);
    fixture.engine.docker(&args).await?;
    let back = wait_until("the stopped members to run again", PATIENCE, || async {
        let running = fixture.running().await?;
        Ok(fixture
            .members
            .iter()
            .all(|member| running.contains(member)))
    })
    .await;
    back.map_err(|e| fixture.explain(e))?;
    fixture.wait_in_sync().await?;
    fixture.wait_quiet(&events).await?;

    assert!(
        !fixture.running().await?.contains(&fixture.outsiders[0]),
        "the outsider stays stopped"
    );
    let heals = fixture.assert_journal_matches(&fixture.journal().await?, &events.events());
    assert_eq!(
        heals.keys().map(String::as_str).collect::<Vec<_>>(),
        stopped,
        "exactly the stopped members were started: {heals:?}"
    );
    fixture.stop().await
}
