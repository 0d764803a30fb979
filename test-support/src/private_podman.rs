//! A Podman API service of the test's own (`podman system service`), speaking the Docker API on a private
//! socket, for the tests that prove dockstate against Podman as they prove it against Docker.
//!
//! Each one has its own directory under `/tmp` holding the socket, a `containers.conf` and a `storage.conf`
//! (read through `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF`, so the host's Podman configuration and
//! storage are never used): the `vfs` driver, `cgroupfs`, events in a file (no journald in a CI container),
//! network definitions in its own directory (Podman's default network, `podman`, is built in; its bridge
//! `cni-podman0` on the host is shared, as on any host that runs Podman),
//! and `default_ulimits` for `nofile` and `nproc` within the test's own limits — without them a container
//! fails to start with `error setting rlimit type 7` wherever the hard limit is below Podman's default.
//! Images come from the shared Docker engine (`docker save | podman load`); no registry is needed.
//! Dropping it removes every container it holds, stops the service and removes its directory — also when
//! the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::stdout_or_error;

/// How long the service may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a test that needs Podman says when it is not installed.
pub const PODMAN_INSTALL: &str = "apt-get install -y --no-install-recommends podman";

/// A running private Podman service. See the module documentation.
#[derive(Debug)]
pub struct PrivatePodman {
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivatePodman {
    /// Starts `podman system service --time=0` on a private socket and returns once it answers. Fails (never
    /// skips) with the install command when `podman` is not installed.
    pub async fn start() -> anyhow::Result<Self> {
        if Command::new("podman")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            bail!("this test needs Podman, which is not installed: {PODMAN_INSTALL}");
        }
        let dir = PathBuf::from(format!(
            "/tmp/dockstate-podman-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(dir.join("run")).context("creating Podman's run root")?;
        std::fs::create_dir_all(dir.join("root")).context("creating Podman's storage root")?;
        std::fs::create_dir_all(dir.join("networks")).context("creating Podman's network dir")?;
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             [network]\n\
             network_config_dir = \"{}\"\n",
                dir.join("networks").display()
            ),
        )
        .context("writing containers.conf")?;
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                dir.join("run").display(),
                dir.join("root").display()
            ),
        )
        .context("writing storage.conf")?;
        let log = std::fs::File::create(dir.join("service.log")).context("creating service.log")?;
        let socket = format!("unix://{}", dir.join("podman.sock").display());
        let child = Command::new("podman")
            .args(["system", "service", "--time=0", &socket])
            .envs(envs(&dir))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting podman system service")?;
        let podman = Self {
            dir,
            child: Some(child),
        };
        podman.wait_answering().await?;
        Ok(podman)
    }

    /// The service's address, for `DOCKER_HOST` or `--docker-host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("podman.sock").display())
    }

    /// Runs `podman --url <this service> <args>` and returns its trimmed standard output.
    pub async fn podman(&self, args: &[&str]) -> anyhow::Result<String> {
        let host = self.host();
        let mut all = vec!["--url", host.as_str()];
        all.extend_from_slice(args);
        let output = tokio::process::Command::new("podman")
            .args(&all)
            .envs(envs(&self.dir))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running the podman CLI")?;
        stdout_or_error(&all, &output)
    }

    /// `podman inspect` of one container, as the service's Docker-compatible API writes it.
    pub async fn inspect(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        let out = self
            .podman(&["inspect", "--type", "container", name])
            .await?;
        let mut all: Vec<serde_json::Value> = serde_json::from_str(&out)?;
        all.pop().context("podman inspect answered nothing")
    }

    /// The container as the service's Docker-compatible API shows it (`GET /containers/{name}/json`), which is
    /// what dockstate reads; `podman inspect` shows libpod's own format.
    pub async fn inspect_compat(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        let output = tokio::process::Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--fail-with-body",
                "--unix-socket",
            ])
            .arg(self.dir.join("podman.sock"))
            .arg(format!("http://localhost/v1.41/containers/{name}/json"))
            .stdin(Stdio::null())
            .output()
            .await
            .context("running curl on the Podman socket")?;
        if !output.status.success() {
            bail!(
                "inspecting {name} through Podman's API failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        serde_json::from_slice(&output.stdout).context("Podman's inspect answer is JSON")
    }

    /// Copies `image` from the shared Docker engine into this service (`docker save | podman load`). Podman
    /// stores it as `localhost/<image>` and finds it by the name it was saved under.
    pub async fn load_image(&self, image: &str) -> anyhow::Result<()> {
        let script = format!(
            "docker save '{image}' | podman --url '{}' load -q",
            self.host()
        );
        let output = tokio::process::Command::new("sh")
            .args(["-c", &script])
            .envs(envs(&self.dir))
            .stdin(Stdio::null())
            .output()
            .await
            .context("running docker save | podman load")?;
        if !output.status.success() {
            bail!(
                "loading {image} into the private Podman failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    async fn wait_answering(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let last = match self
                .podman(&["version", "--format", "{{.Server.Version}}"])
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            if started.elapsed() > START_TIMEOUT {
                let log = std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default();
                bail!("the private Podman service did not answer within {START_TIMEOUT:?}: {last:#}\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The environment every `podman` call of one private service runs with.
fn envs(dir: &Path) -> [(&'static str, PathBuf); 2] {
    [
        ("CONTAINERS_CONF", dir.join("containers.conf")),
        ("CONTAINERS_STORAGE_CONF", dir.join("storage.conf")),
    ]
}

impl Drop for PrivatePodman {
    fn drop(&mut self) {
        // Every container, then the service (by its pid), then what is left of the storage.
        let _ = Command::new("podman")
            .args([
                "--url",
                &self.host(),
                "rm",
                "--all",
                "--force",
                "--time",
                "0",
            ])
            .envs(envs(&self.dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Networks a test made: their definitions are in this service's own directory, but each has a
        // bridge on the host, which only `network rm` takes down.
        let _ = Command::new("podman")
            .args(["--url", &self.host(), "network", "prune", "--force"])
            .envs(envs(&self.dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // The storage is this service's alone (never `podman system reset`, which also removes the host's
        // network definitions): unmount what is left in it and remove it.
        let _ = Command::new("umount")
            .args(["--recursive", "--lazy"])
            .arg(self.dir.join("root"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
