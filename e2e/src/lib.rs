//! Drives dockstate's compose stack for end-to-end tests: the same `Makefile` and `compose/compose.yaml` a
//! user runs, under a compose project name, scope, host ports and token of the test's own, and a guard that
//! takes the project down (containers, network, state volume) even when the test fails.
//!
//! Like `test-support`, it drives the `docker`, compose and `make` command lines rather than any library the
//! code under test uses.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use anyhow::{bail, Context};
use test_support::TestScope;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// The images `make images` builds, with the binary each one runs.
pub const IMAGES: [(&str, &str); 2] = [
    ("dockstate/status-api:latest", "status-api"),
    ("dockstate/status-controller:latest", "status-controller"),
];

/// The limit the issue sets for each image.
pub const IMAGE_MAX_BYTES: u64 = 25_000_000;

/// The compose services of the pair, and the demo workload's (profile `demo`).
pub const API_SERVICE: &str = "status-api";
pub const CONTROLLER_SERVICE: &str = "status-controller";
pub const DEMO_SERVICE: &str = "demo";

/// The workspace root, where the `Makefile` is.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ sits in the workspace")
        .to_path_buf()
}

/// `docker compose` when the v2 plugin answers, else `docker-compose` — the Makefile's choice, made the same
/// way.
pub fn compose_command() -> Vec<String> {
    let v2 = std::process::Command::new("docker")
        .args(["compose", "version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if v2 {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

static IMAGES_BUILT: OnceCell<()> = OnceCell::const_new();

/// `make images` once per test process: the static release build of both programs and their images. Safe
/// against other processes doing the same (the recipe uses a build context of its own; cargo and the engine
/// lock what they share).
pub async fn build_images() -> anyhow::Result<()> {
    IMAGES_BUILT
        .get_or_try_init(|| async {
            let output = make_command(&[], "images").output().await?;
            checked("make images", output).map(|_| ())
        })
        .await
        .map(|_| ())
}

static STATIC_BUILT: OnceCell<PathBuf> = OnceCell::const_new();

/// A state directory for status-api holding a baseline of `scope` with no members, as status-api trusts it:
/// the directory 0700, `snapshot.json` 0600, both owned by whoever runs the test. Answers the directory and
/// the file.
pub fn empty_baseline(scope: &TestScope) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;

    let state = tempfile::tempdir()?;
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700))?;
    let snapshot = serde_json::json!({
        "format": 1,
        "taken_at": "2026-01-01T00:00:00Z",
        "scope": scope.scope(),
        "containers": [],
    });
    let file = state.path().join("snapshot.json");
    std::fs::write(&file, serde_json::to_vec(&snapshot)?)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    Ok((state, file))
}

/// `make static` once per test process: both programs as they ship (the statically linked release build the
/// images hold), without building the images. Returns the directory that holds `status-api` and
/// `status-controller`, the Makefile's `$(RELEASE_DIR)`.
pub async fn static_binaries() -> anyhow::Result<PathBuf> {
    STATIC_BUILT
        .get_or_try_init(|| async {
            let output = make_command(&[], "static").output().await?;
            checked("make static", output)?;
            let rustc = Command::new("rustc").arg("-vV").output().await?;
            let host = String::from_utf8_lossy(&rustc.stdout)
                .lines()
                .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
                .context("`rustc -vV` names no host triple")?;
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace_root().join("target"), PathBuf::from);
            let dir = workspace_root().join(target_dir).join(host).join("release");
            for program in ["status-api", "status-controller"] {
                if !dir.join(program).is_file() {
                    bail!("`make static` left no {program} in {}", dir.display());
                }
            }
            Ok(dir)
        })
        .await
        .cloned()
}

/// `make <target>` in the workspace root, with `env` on top of this process's environment and without the
/// variables of any `make` this test runs under (so it starts a make of its own, not a sub-make), nor those
/// cargo set for this test binary (so that the release build sees what it sees from a shell: a build script
/// that watches one of them, as ring's watches `CARGO_PKG_VERSION_PRE`, would otherwise rebuild the whole
/// release build on every run, and again at the next `make` from a shell).
fn make_command(env: &[(String, String)], target: &str) -> Command {
    let mut command = Command::new("make");
    command
        .arg("--no-print-directory")
        .arg("-C")
        .arg(workspace_root())
        .arg(target)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if CARGO_TEST_VARIABLE_PREFIXES
            .iter()
            .any(|prefix| key_text.starts_with(prefix))
            || CARGO_TEST_VARIABLES.contains(&key_text.as_ref())
        {
            command.env_remove(&key);
        }
    }
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// What cargo sets for a test binary about its own package (cargo's "environment variables Cargo sets for
/// crates"), by prefix and by name.
const CARGO_TEST_VARIABLE_PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_"];
const CARGO_TEST_VARIABLES: [&str; 5] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "OUT_DIR",
];

/// The stdout of a finished command, or an error that shows its stdout and stderr.
fn checked(what: &str, output: Output) -> anyhow::Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "`{what}` failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout.into_owned())
}

/// A free TCP port on loopback, for a published port. Another process could take it before compose does; the
/// window is short and the failure would be loud.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One compose project of dockstate for one test. Dropping it takes the project down with `down -v`.
#[derive(Debug)]
pub struct Stack {
    project: String,
    compose: Vec<String>,
    /// What the Makefile and compose read: project, scope, ports, token file, socket group.
    env: Vec<(String, String)>,
    /// Holds the token file for as long as the stack may need it (compose checks it even on `down`).
    _token_dir: tempfile::TempDir,
    /// Whether anything was started, so that a guard with nothing to do stays quiet.
    started: bool,
    pub api_url: String,
    pub controller_url: String,
    pub demo_url: String,
}

impl Stack {
    /// A stack whose project is `dockstate-e2e-<scope id>`, scoped to the test's label, on free host ports,
    /// with a fresh token. Nothing runs until [`make`](Self::make) or [`compose`](Self::compose).
    pub fn new(scope: &TestScope) -> anyhow::Result<Self> {
        let project = format!("dockstate-e2e-{}", scope.id());
        let token_dir = tempfile::tempdir().context("a directory for the token")?;
        let token_file = token_dir.path().join("token");
        write_token(&token_file, scope.id())?;
        let (api_port, controller_port, demo_port) = (free_port()?, free_port()?, free_port()?);
        let compose = compose_command();
        let env = [
            ("COMPOSE", compose.join(" ")),
            ("COMPOSE_PROJECT_NAME", project.clone()),
            ("STATUS_API_SCOPE", scope.scope()),
            ("DOCKSTATE_TOKEN_FILE", token_file.display().to_string()),
            ("DOCKSTATE_BIND_ADDRESS", "127.0.0.1".into()),
            ("DOCKSTATE_TAG", "latest".into()),
            ("STATUS_API_PORT", api_port.to_string()),
            ("STATUS_CONTROLLER_PORT", controller_port.to_string()),
            ("DEMO_PORT", demo_port.to_string()),
            // Whatever the developer's shell says, the test needs a controller that acts.
            ("STATUS_CONTROLLER_DRY_RUN", "false".into()),
            ("STATUS_CONTROLLER_UNEXPECTED", "stop".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(Self {
            project,
            compose,
            env,
            _token_dir: token_dir,
            started: false,
            api_url: format!("http://127.0.0.1:{api_port}"),
            controller_url: format!("http://127.0.0.1:{controller_port}"),
            demo_url: format!("http://127.0.0.1:{demo_port}"),
        })
    }

    /// The compose project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The variables the Makefile and compose get from this stack.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `make <target>` with this stack's settings; its stdout, or an error showing stdout and stderr.
    pub async fn make(&mut self, target: &str) -> anyhow::Result<String> {
        self.started = true;
        let output = make_command(&self.env, target).output().await?;
        checked(&format!("make {target}"), output)
    }

    /// `make <target>`, returning its exit code and its stdout and stderr, whatever the code.
    pub async fn make_status(&mut self, target: &str) -> anyhow::Result<(i32, String)> {
        self.started = true;
        let output = make_command(&self.env, target).output().await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((output.status.code().unwrap_or(-1), text))
    }

    /// `<compose> -f compose/compose.yaml <args>` with this stack's settings; its stdout.
    pub async fn compose(&mut self, args: &[&str]) -> anyhow::Result<String> {
        self.started = true;
        let output = self.compose_command(args).output().await?;
        checked(&format!("compose {}", args.join(" ")), output)
    }

    fn compose_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.compose[0]);
        command
            .args(&self.compose[1..])
            .arg("-f")
            .arg(workspace_root().join("compose/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The name of the container running `service` in this project.
    pub async fn container(&self, service: &str) -> anyhow::Result<String> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service_filter = format!("label=com.docker.compose.service={service}");
        let names = test_support::docker(&[
            "ps",
            "-a",
            "--filter",
            &project,
            "--filter",
            &service_filter,
            "--format",
            "{{.Names}}",
        ])
        .await?;
        let mut names = names.lines();
        match (names.next(), names.next()) {
            (Some(name), None) => Ok(name.to_owned()),
            (None, _) => bail!(
                "no container of service {service} in project {}",
                self.project
            ),
            (Some(_), Some(_)) => bail!("more than one container of service {service}"),
        }
    }

    /// Takes the project down, state volume included: the controller first, so that it does not heal what
    /// `down` stops.
    pub async fn down(&mut self) -> anyhow::Result<()> {
        // A controller that is not there (it never started) is fine; `down` must still run.
        let _ = self.compose(&["stop", CONTROLLER_SERVICE]).await;
        self.compose(&["--profile", "demo", "down", "-v", "--remove-orphans"])
            .await?;
        self.started = false;
        Ok(())
    }

    /// Every container, network and volume that still carries this project's label, as `kind name` lines.
    pub async fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let mut left = Vec::new();
        for (kind, list) in [
            ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
            ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
            ("volume", &["volume", "ls", "--format", "{{.Name}}"][..]),
        ] {
            let out = test_support::docker(&[list, &["--filter", &filter]].concat()).await?;
            left.extend(out.lines().map(|name| format!("{kind} {name}")));
        }
        Ok(left)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        for args in [
            &["stop", CONTROLLER_SERVICE][..],
            &["--profile", "demo", "down", "-v", "--remove-orphans"][..],
        ] {
            let result = std::process::Command::new(&self.compose[0])
                .args(&self.compose[1..])
                .arg("-f")
                .arg(workspace_root().join("compose/compose.yaml"))
                .args(args)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output();
            if let Ok(output) = &result {
                if output.status.success() {
                    continue;
                }
            }
            eprintln!(
                "e2e cleanup: `compose {}` for project {} did not succeed: {result:?}",
                args.join(" "),
                self.project
            );
        }
    }
}

/// A token file as the Makefile writes one: readable by the containers' numeric user (0444), in a directory
/// only its owner can enter.
fn write_token(path: &Path, seed: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let token = format!("e2e-{seed}-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(path, token).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))?;
    Ok(())
}
