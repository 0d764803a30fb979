//! The OpenAPI documents are contracts, and a fuzzer holds both programs to theirs: schemathesis (the version
//! pinned in `.ci/schemathesis.txt`, in the virtual environment `.ci/run` makes) runs every one of its checks
//! against a real status-api over a scope with running, paused, exited, never-started, removed and unexpected
//! containers, and against a real status-controller (`--dry-run`) over status-api — each once with the bearer
//! token and once without. Any failure fails the test; its output and a JUnit report are kept in
//! `target/ci-artifacts/schemathesis/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use test_support::{
    container_state, docker, ensure_test_images, wait_until, StatusApiOptions, StatusApiServer,
    StatusControllerServer, TestScope, BUSYBOX_IMAGE, HEALTH_IMAGE,
};
use tokio::process::Command;

const TOKEN: &str = "contract-test-token-0123456789";

/// The pin, shared with `.ci/run`, which installs exactly this.
const PIN: &str = include_str!("../../.ci/schemathesis.txt");

/// Test cases per operation and phase. Both runs together stay within about two minutes on two busy cores;
/// `SCHEMATHESIS_MAX_EXAMPLES` raises it for a deeper run.
const MAX_EXAMPLES: &str = "30";

/// The same cases on every run, so that a failure in CI is the failure you see locally;
/// `SCHEMATHESIS_SEED` explores other ones.
const SEED: &str = "20261202";

/// A run of [`MAX_EXAMPLES`] that has not ended by then is stopped and fails; a deeper run gets as much more.
const RUN_LIMIT: Duration = Duration::from_secs(240);

#[tokio::test]
async fn schemathesis_finds_nothing_with_the_token() -> anyhow::Result<()> {
    fuzz(Run {
        program: Program::StatusApi,
        token: true,
    })
    .await
}

#[tokio::test]
async fn schemathesis_finds_nothing_without_the_token() -> anyhow::Result<()> {
    fuzz(Run {
        program: Program::StatusApi,
        token: false,
    })
    .await
}

#[tokio::test]
async fn schemathesis_finds_nothing_in_the_controller_with_the_token() -> anyhow::Result<()> {
    fuzz(Run {
        program: Program::Controller,
        token: true,
    })
    .await
}

#[tokio::test]
async fn schemathesis_finds_nothing_in_the_controller_without_the_token() -> anyhow::Result<()> {
    fuzz(Run {
        program: Program::Controller,
        token: false,
    })
    .await
}

/// The document passes a spec linter: `openapi-spec-validator` (pinned beside schemathesis) checks it against
/// the OpenAPI 3 meta-schema and the rules a schema cannot state (unique operation ids, path parameters
/// declared, references that resolve).
#[tokio::test]
async fn the_document_passes_the_spec_linter() -> anyhow::Result<()> {
    let schemathesis = installed_schemathesis().await?;
    let linter = schemathesis.with_file_name("openapi-spec-validator");
    let scope = TestScope::new();
    let server = StatusApiServer::start(StatusApiOptions {
        token: Some(TOKEN.to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let controller = StatusControllerServer::start(&server, &["--dry-run"]).await?;
    for (program, base) in [
        ("status-api", server.base()),
        ("status-controller", controller.url("")),
    ] {
        let document = reqwest::get(format!("{base}/openapi.json"))
            .await?
            .bytes()
            .await?;
        let work = tempfile::tempdir()?;
        let file = work.path().join("openapi.json");
        std::fs::write(&file, &document)?;
        let output = Command::new(&linter)
            .arg(&file)
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run {}: install .ci/schemathesis.txt into {} as .ci/run does",
                    linter.display(),
                    venv_dir().display()
                )
            })?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        anyhow::ensure!(
            output.status.success(),
            "the spec linter refuses {program}'s /openapi.json:\n{said}"
        );
        assert!(said.contains("OK"), "{said}");
    }
    controller.stop().await?;
    server.stop().await
}

/// What the fuzzer cannot see: a document that calls the token optional lets it accept any answer to a call
/// without one. Every operation that answers 401 must require the bearer token, with no anonymous alternative.
#[tokio::test]
async fn operations_that_answer_401_require_the_token_in_the_document() -> anyhow::Result<()> {
    let scope = TestScope::new();
    let server = StatusApiServer::start(StatusApiOptions {
        token: Some(TOKEN.to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let controller = StatusControllerServer::start(&server, &["--dry-run"]).await?;
    let mut wrong = Vec::new();
    for base in [server.base(), controller.url("")] {
        let document: Value = reqwest::get(format!("{base}/openapi.json"))
            .await?
            .json()
            .await?;
        for (path, operations) in document["paths"].as_object().context("paths")? {
            for (method, operation) in operations.as_object().context("operations")? {
                if operation["responses"]["401"].is_null() {
                    continue;
                }
                let alternatives = operation["security"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let anonymous = alternatives
                    .iter()
                    .any(|alternative| alternative.as_object().is_some_and(|a| a.is_empty()));
                if alternatives.is_empty() || anonymous {
                    wrong.push(format!(
                        "{base}: {} {path}: security {}",
                        method.to_uppercase(),
                        operation["security"]
                    ));
                }
            }
        }
    }
    controller.stop().await?;
    anyhow::ensure!(
        wrong.is_empty(),
        "these operations answer 401 without the token, but the document lets a client call them without \
         one (an empty `{{}}` alternative, or no `security`):\n{}",
        wrong.join("\n")
    );
    server.stop().await
}

/// Which program is fuzzed, and whether the fuzzer sends the token.
#[derive(Debug, Clone, Copy)]
struct Run {
    program: Program,
    token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    StatusApi,
    Controller,
}

impl Run {
    /// The directory of its report.
    fn name(self) -> &'static str {
        match (self.program, self.token) {
            (Program::StatusApi, true) => "with-token",
            (Program::StatusApi, false) => "without-token",
            (Program::Controller, true) => "controller-with-token",
            (Program::Controller, false) => "controller-without-token",
        }
    }

    fn controller(self) -> bool {
        self.program == Program::Controller
    }

    fn token(self) -> bool {
        self.token
    }
}

async fn fuzz(run: Run) -> anyhow::Result<()> {
    let schemathesis = installed_schemathesis().await?;
    ensure_test_images().await?;
    let scope = TestScope::new();
    let names = populate_before(&scope).await?;
    let server = StatusApiServer::start(StatusApiOptions {
        token: Some(TOKEN.to_owned()),
        ..StatusApiOptions::scoped(scope.scope())
    })
    .await?;
    let names = [names, change_after(&scope, &server).await?].concat();
    // The controller over that status-api, acting on nothing (`--dry-run`): its journal fills with what it
    // would have done, and the fuzzer's holds hold nothing that matters.
    let controller = if run.controller() {
        Some(StatusControllerServer::start(&server, &["--dry-run"]).await?)
    } else {
        None
    };
    let base = controller
        .as_ref()
        .map_or_else(|| server.base(), |controller| controller.url(""));

    let work = tempfile::tempdir()?;
    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, config_toml(run, &names))?;
    let reports = artifacts_dir(run)?;
    let mut command = Command::new(&schemathesis);
    command
        .current_dir(work.path())
        .args(["--no-color", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "all", "--continue-on-failure", "--workers", "1"])
        .args([
            "--max-examples",
            &setting("SCHEMATHESIS_MAX_EXAMPLES", MAX_EXAMPLES),
        ])
        .args(["--seed", &setting("SCHEMATHESIS_SEED", SEED)])
        // A generated `since` can be the current revision: the long poll then waits up to 60 s, as it should.
        .args(["--request-timeout", "65", "--generation-database", "none"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(reports.join("junit.xml"))
        .kill_on_drop(true);
    if run.token() {
        command.args(["--header", &format!("Authorization: Bearer {TOKEN}")]);
    }
    let examples: u32 = setting("SCHEMATHESIS_MAX_EXAMPLES", MAX_EXAMPLES).parse()?;
    let limit = RUN_LIMIT * examples.div_ceil(30).max(1);
    let started = Instant::now();
    let output = tokio::time::timeout(limit, command.output())
        .await
        .with_context(|| format!("schemathesis ({}) ran over {limit:?}", run.name()))?
        .with_context(|| format!("running {}", schemathesis.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let log = reports.join("output.txt");
    std::fs::write(&log, &text)?;
    println!(
        "schemathesis {} took {:.0?}; its output and JUnit report: {}",
        run.name(),
        started.elapsed(),
        reports.display()
    );
    if !output.status.success() {
        bail!(
            "schemathesis ({}) found failures ({}; report in {}):\n{text}",
            run.name(),
            output.status,
            reports.display()
        );
    }
    if let Some(controller) = controller {
        controller.stop().await?;
    }
    server.stop().await
}

/// Before status-api starts (so in its snapshot): a running container, a healthy one, one that is removed
/// later (drift `removed`, `state` null) and one that is stopped later (`stopped`, with an exit code); and one
/// already exited (not a member). Answers their names.
async fn populate_before(scope: &TestScope) -> anyhow::Result<Vec<String>> {
    scope.run("web", BUSYBOX_IMAGE, &[]).await?;
    scope.run("healthy", HEALTH_IMAGE, &[]).await?;
    scope.run("gone", BUSYBOX_IMAGE, &[]).await?;
    scope.run("stopped", BUSYBOX_IMAGE, &[]).await?;
    scope.run("paused", BUSYBOX_IMAGE, &[]).await?;
    scope
        .run_cmd("exited", BUSYBOX_IMAGE, &[], &["true"])
        .await?;
    let exited = scope.name("exited");
    wait_until(
        "the one-shot container to exit",
        Duration::from_secs(20),
        || async { Ok(container_state(&exited).await?.as_deref() == Some("exited")) },
    )
    .await?;
    Ok(["web", "healthy", "gone", "stopped", "paused", "exited"]
        .map(|suffix| scope.name(suffix))
        .to_vec())
}

/// After: an unexpected container, one never started (`started_at` null), one paused, one stopped, one
/// removed; waits until `/drift` shows all of it. Answers the names of the new ones.
async fn change_after(scope: &TestScope, server: &StatusApiServer) -> anyhow::Result<Vec<String>> {
    scope.run("extra", BUSYBOX_IMAGE, &[]).await?;
    scope.create("created", BUSYBOX_IMAGE, &[]).await?;
    docker(&["pause", &scope.name("paused")]).await?;
    docker(&["stop", "--time", "1", &scope.name("stopped")]).await?;
    docker(&["rm", "-f", &scope.name("gone")]).await?;
    let drift_url = format!("{}/drift", server.base());
    let expected = [
        ("unexpected", "extra"),
        ("paused", "paused"),
        ("stopped", "stopped"),
        ("removed", "gone"),
    ];
    wait_until(
        "/drift to show every change",
        Duration::from_secs(20),
        || async {
            let drift: Value = reqwest::get(&drift_url).await?.json().await?;
            let items = drift["items"].as_array().cloned().unwrap_or_default();
            Ok(expected.iter().all(|(kind, suffix)| {
                items.iter().any(|item| {
                    item["kind"] == *kind && item["name"] == scope.name(suffix).as_str()
                })
            }))
        },
    )
    .await?;
    Ok(["extra", "created"]
        .map(|suffix| scope.name(suffix))
        .to_vec())
}

/// Real names for the path parameters half of the time, so that the fuzzer reaches the 200 answers of
/// `GET /status/{name_or_id}` and `GET /snapshot/containers/{name}/spec` and not only their 404s.
///
/// Narrow allowances, each for values no JSON Schema can tell apart, so that `positive_data_acceptance` also
/// accepts a 400 there:
/// - `GET /status/{name_or_id}`: an id prefix that matches several containers is 400 `ambiguous`
///   (docs/api.md); "unique" is not a schema constraint, and whether a generated prefix like `0` is ambiguous
///   depends on the random container ids.
/// - `GET /status`: `name` is a regular expression in RE2 syntax, which must compile, and to at most 32 KiB;
///   JSON Schema's only regular-expression format is ECMA-262's, which allows what RE2 refuses.
/// - `POST /hold` (the controller): `for` is a duration (`15m`, `1h 30m`) of at most 24 h.
///
/// `GET /status` may take up to 65 s rather than `max_response_time`'s 10: a generated `since` can be the
/// current revision, and a long poll then rightly waits up to `wait` (60 s at most).
///
/// And `negative_data_rejection` also takes 414 from `GET /status` as a refusal: a query outside the bounds
/// (nine labels of four-byte characters) may be longer than the request line, and is then refused before
/// the operation runs. A query within the bounds never is (a test in `src/api/mod.rs` adds it up), so
/// `positive_data_acceptance` does not accept 414. Every other check, and every other operation, is as
/// schemathesis ships it.
fn config_toml(run: Run, names: &[String]) -> String {
    if run.controller() {
        return "[[operations]]\n\
                include-name = \"POST /hold\"\n\
                checks.positive_data_acceptance.expected-statuses = \
                [\"2xx\", \"3xx\", 400, 401, 403, 404, 409, 429, \"5xx\"]\n"
            .to_owned();
    }
    let values: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    format!(
        "[dictionaries.containers]\n\
         values = [{}]\n\
         \n\
         [parameters]\n\
         \"path.name_or_id\" = {{ dictionary = \"containers\", probability = 0.5 }}\n\
         \"path.name\" = {{ dictionary = \"containers\", probability = 0.5 }}\n\
         \n\
         [[operations]]\n\
         include-name = \"GET /status/{{name_or_id}}\"\n\
         checks.positive_data_acceptance.expected-statuses = \
         [\"2xx\", \"3xx\", 400, 401, 403, 404, 409, 429, \"5xx\"]\n\
         \n\
         [[operations]]\n\
         include-name = \"GET /status\"\n\
         checks.max_response_time = 65.0\n\
         checks.positive_data_acceptance.expected-statuses = \
         [\"2xx\", \"3xx\", 400, 401, 403, 404, 409, 429, \"5xx\"]\n\
         checks.negative_data_rejection.expected-statuses = \
         [400, 401, 403, 404, 405, 406, 409, 414, 415, 422, 428, 429, \"5xx\"]\n",
        values.join(", ")
    )
}

/// The `st` of the pinned schemathesis: `SCHEMATHESIS` when set, else the virtual environment `.ci/run`
/// makes. Fails, saying how to make it, when it is missing or another version.
async fn installed_schemathesis() -> anyhow::Result<PathBuf> {
    let pin = PIN
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("schemathesis=="))
        .context(".ci/schemathesis.txt pins no schemathesis==VERSION")?;
    let version = pin.trim_start_matches("schemathesis==");
    let venv = venv_dir();
    let st = std::env::var_os("SCHEMATHESIS").map_or_else(|| venv.join("bin/st"), PathBuf::from);
    let how = format!(
        "the contract test needs {pin} in a virtual environment; make it as .ci/run does:\n  \
         python3 -m venv {venv} && {venv}/bin/pip install -r .ci/schemathesis.txt\n\
         (or point SCHEMATHESIS at an `st` of that version)",
        venv = venv.display()
    );
    let output = Command::new(&st)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run {}; {how}", st.display()))?;
    let said = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success() && said.trim().ends_with(&format!("version {version}")),
        "{} says {:?}, not version {version}; {how}",
        st.display(),
        said.trim()
    );
    Ok(st)
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/dockstate-ci/schemathesis`, where `.ci/run` puts it.
fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("dockstate-ci/schemathesis")
}

fn setting(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// `target/ci-artifacts/schemathesis/<run>/`, emptied: the directory CI keeps.
fn artifacts_dir(run: Run) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .with_file_name("ci-artifacts")
        .join("schemathesis")
        .join(run.name());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
