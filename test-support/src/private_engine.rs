//! A Docker engine of the test's own, for tests that must kill, restart or freeze an engine: the shared engine
//! is never restarted, frozen or killed by a test.
//!
//! Each private `dockerd` gets its own bridge (never `"bridge": "none"`, which makes dockerd delete the
//! host's `docker0`), a `/20` of its own out of `198.18.0.0/15` that overlaps no route or address of this
//! host ([`crate::address_range`]; the bridge takes the first `/24`, the rest is for the test's own networks),
//! its own socket, data root, short exec root and pid file, no iptables rules, and the `vfs` storage driver (test images are a few MB). At most
//! three run at once on a machine: a slot is claimed with an advisory lock on a file, so concurrent test
//! processes never share a bridge or a range. Dropping the engine stops it, kills what it left running,
//! unmounts and removes its directories, and deletes its bridge and any further bridge device named with
//! [`PrivateEngine::bridge_device`] (a swarm's `docker_gwbridge`, say) — also when the test failed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::address_range::{free_range, host_prefixes, Ipv4Net};
use crate::cli::stdout_or_error;

/// How many private engines may run at once on one machine.
const SLOTS: usize = 3;

/// How long a (re)started engine may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private engine. See the module documentation.
#[derive(Debug)]
pub struct PrivateEngine {
    slot: usize,
    /// Holds the slot's advisory lock for as long as the engine exists.
    _slot_lock: File,
    dir: PathBuf,
    exec_root: PathBuf,
    /// The addresses it may use; its bridge holds the first `/24`.
    range: Ipv4Net,
    child: Option<Child>,
}

impl PrivateEngine {
    /// Claims a free slot (waiting up to a minute for one), sets up its bridge and starts `dockerd`; returns
    /// once the engine answers.
    pub async fn start() -> anyhow::Result<Self> {
        let (slot, lock) = claim_slot().await?;
        let dir = PathBuf::from(format!("/tmp/dockstate-engine-{slot}"));
        let exec_root = PathBuf::from(format!("/tmp/dse{slot}"));
        // A test killed before it could clean up leaves its directories and bridge behind: the lock says
        // nobody uses them now.
        cleanup(slot, &dir, &exec_root);
        std::fs::create_dir_all(dir.join("data")).context("creating the engine's data root")?;
        std::fs::create_dir_all(&exec_root).context("creating the engine's exec root")?;
        let bridge = bridge_name(slot);
        // Read after the clean-up, so a bridge of ours left behind by a killed test does not count.
        let range = free_range(slot, SLOTS, &host_prefixes()?)?;
        let bridge_net = range.subnet24(0).expect("a /20 holds /24s");
        eprintln!(
            "private engine {slot}: range {range}, bridge {bridge} at {}/24 (checked against `ip -j route` and `ip -j addr`)",
            bridge_net.host(1)
        );
        for args in [
            vec!["link", "add", bridge.as_str(), "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("{}/24", bridge_net.host(1)),
                "dev",
                bridge.as_str(),
            ],
            vec!["link", "set", bridge.as_str(), "up"],
        ] {
            run_ok("ip", &args).context("setting up the private engine's bridge (needs root)")?;
        }
        let config = serde_json::json!({
            "bridge": bridge,
            "iptables": false,
            "ip-masq": false,
            "ip-forward": false,
            "storage-driver": "vfs",
        });
        std::fs::write(dir.join("daemon.json"), config.to_string())
            .context("writing the engine's daemon.json")?;
        let mut engine = Self {
            slot,
            _slot_lock: lock,
            dir,
            exec_root,
            range,
            child: None,
        };
        engine.spawn_dockerd().await?;
        Ok(engine)
    }

    /// The engine's address, for `DOCKER_HOST` or `--docker-host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The addresses this engine may use (a `/20` in `198.18.0.0/15`): its bridge is on the first `/24`;
    /// [`Ipv4Net::subnet24`] gives the others, for `docker network create --subnet`, a swarm's
    /// `docker_gwbridge` or `--default-addr-pool`.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The name of its own bridge device on the host.
    pub fn bridge(&self) -> String {
        bridge_name(self.slot)
    }

    /// A name for a further bridge device of this engine, `dsb<slot>-<tag>`, for a network a test creates on
    /// it with `-o com.docker.network.bridge.name=<name>` (a swarm's `docker_gwbridge`, say). dockerd deletes
    /// such a device only when the network is removed, not when it stops; dropping the engine deletes every
    /// device of this slot's prefix, as does the next engine of the slot after a test that was killed. `tag`
    /// is 1 to 10 lowercase letters and digits, so that the name fits the kernel's 15 characters.
    pub fn bridge_device(&self, tag: &str) -> anyhow::Result<String> {
        extra_bridge_name(self.slot, tag)
    }

    /// The pid of the running `dockerd`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `docker -H <this engine> <args>` and returns its trimmed standard output.
    pub async fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        let output = tokio::process::Command::new("docker")
            .args(&all)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running the docker CLI")?;
        stdout_or_error(&all, &output)
    }

    /// Copies `image` from the shared engine into this one (`docker save | docker load`): no registry needed.
    pub async fn load_image(&self, image: &str) -> anyhow::Result<()> {
        let script = format!(
            "docker save '{image}' | docker -H '{}' load -q",
            self.host()
        );
        let output = tokio::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running docker save | docker load")?;
        if !output.status.success() {
            bail!(
                "loading {image} into the private engine failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// `kill -9` of `dockerd`: the engine vanishes mid-flight; its containers keep running in their shims
    /// until it is started again.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing dockerd")?;
            tokio::task::spawn_blocking(move || child.wait())
                .await?
                .context("waiting for dockerd")?;
        }
        self.forget_dead_containerd().await;
        Ok(())
    }

    /// dockerd's own containerd dies with it (parent-death signal), but may linger as a zombie that nobody
    /// reaps; a restarted dockerd that finds its pid file would wait for that zombie forever. Once it is dead
    /// or a zombie, the pid file goes, and the next dockerd starts a containerd of its own that takes over
    /// the running shims, as after a real crash.
    async fn forget_dead_containerd(&self) {
        let pid_file = self.exec_root.join("containerd/containerd.pid");
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
        else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && process_alive(pid) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if process_alive(pid) {
            let _ = run_ok("kill", &["-KILL", &pid.to_string()]);
        }
        let _ = std::fs::remove_file(pid_file);
    }

    /// Starts `dockerd` again over the same directories (after [`Self::kill`]); returns once it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        self.spawn_dockerd().await
    }

    /// Freezes `dockerd` (SIGSTOP): it holds every connection open and answers nothing.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen `dockerd` run again (SIGCONT).
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("dockerd is not running")?.to_string();
        run_ok("kill", &[signal, &pid])
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    async fn spawn_dockerd(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .context("opening the engine's log")?;
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd (is docker.io installed, and are we root?)")?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the private dockerd exited ({status}); the end of its log:\n{}",
                        self.log_tail()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the private dockerd did not answer within {START_TIMEOUT:?}; the end of its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Thaw first: a frozen dockerd cannot act on SIGTERM.
            let _ = run_ok("kill", &["-CONT", &child.id().to_string()]);
            let host = format!("unix://{}", self.dir.join("docker.sock").display());
            // Remove its containers while it answers, so no shim outlives it. Bounded: a dockerd can hang
            // in a kill that never ends (seen once after a restart, `rm -f` waiting in `Daemon.Kill` for
            // minutes); it is stopped below and its shims killed by `cleanup` all the same.
            if let Ok(ids) = run_within("docker", &["-H", &host, "ps", "-aq"], TEARDOWN_CALL) {
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["-H", host.as_str(), "rm", "-f"];
                    args.extend(ids);
                    let _ = run_within("docker", &args, TEARDOWN_CALL);
                }
            }
            let _ = run_ok("kill", &["-TERM", &child.id().to_string()]);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        cleanup(self.slot, &self.dir, &self.exec_root);
    }
}

/// The bridge of slot `slot` (at most 15 characters, as the kernel allows).
fn bridge_name(slot: usize) -> String {
    format!("dockstate-br{slot}")
}

/// What the further bridge devices of slot `slot` are named with ([`PrivateEngine::bridge_device`]).
fn extra_bridge_prefix(slot: usize) -> String {
    format!("dsb{slot}-")
}

/// `dsb<slot>-<tag>`, for a `tag` of 1 to 10 lowercase letters and digits (at most 15 characters in all).
fn extra_bridge_name(slot: usize, tag: &str) -> anyhow::Result<String> {
    let valid = (1..=10).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        bail!("a bridge device's tag is 1 to 10 lowercase letters and digits, not {tag:?}");
    }
    Ok(format!("{}{tag}", extra_bridge_prefix(slot)))
}

/// The host's network devices whose names start with `prefix`.
fn links_named(prefix: &str) -> Vec<String> {
    let links = run_ok_output("ip", &["-j", "link", "show"]).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&links)
        .ok()
        .and_then(|links| links.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|link| link["ifname"].as_str())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Claims one of the slots with an advisory lock, waiting while all are taken.
async fn claim_slot() -> anyhow::Result<(usize, File)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for slot in 0..SLOTS {
            let path = format!("/tmp/dockstate-engine-{slot}.lock");
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {path}"))?;
            if file.try_lock().is_ok() {
                return Ok((slot, file));
            }
        }
        if Instant::now() > deadline {
            bail!("all {SLOTS} private engine slots stayed busy for a minute");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Removes what an engine of `slot` left: shims still serving its containers, mounts under its
/// directories, the directories, its bridge and the further bridge devices named for the slot. Best effort:
/// each step goes on whatever the last did.
fn cleanup(slot: usize, dir: &Path, exec_root: &Path) {
    let exec = exec_root.display().to_string();
    // A shim outlives a killed dockerd; it is recognised by the containerd socket under our exec root.
    let _ = run_ok("pkill", &["-KILL", "-f", &format!("containerd.*{exec}/")]);
    for root in [dir, exec_root] {
        let root = root.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_whitespace().nth(4).map(str::to_owned))
            .filter(|point| point == &root || point.starts_with(&format!("{root}/")))
            .collect();
        // Deepest first.
        mounts.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in mounts {
            let _ = run_ok("umount", &["-l", &point]);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
    let _ = run_ok("ip", &["link", "del", &bridge_name(slot)]);
    for device in links_named(&extra_bridge_prefix(slot)) {
        let _ = run_ok("ip", &["link", "del", &device]);
    }
}

/// Whether `pid` runs (a zombie does not).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command name, which is in parentheses and may hold spaces.
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// How long each engine call of the teardown may take before it is given up.
const TEARDOWN_CALL: Duration = Duration::from_secs(20);

/// Runs `program` for at most `limit`; its output when it succeeded in time. A program still running then
/// is killed.
fn run_within(program: &str, args: &[&str], limit: Duration) -> anyhow::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                std::io::Read::read_to_string(&mut stdout, &mut out)?;
            }
            if !status.success() {
                bail!("`{program} {}` failed ({status})", args.join(" "));
            }
            return Ok(out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{program} {}` still ran after {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_ok(program: &str, args: &[&str]) -> anyhow::Result<()> {
    run_ok_output(program, args).map(|_| ())
}

fn run_ok_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn further_bridge_devices_fit_the_kernel_and_carry_the_slot_prefix() {
        assert_eq!(extra_bridge_name(2, "gw").unwrap(), "dsb2-gw");
        let longest = extra_bridge_name(SLOTS - 1, "abcdefghij").unwrap();
        assert!(longest.len() <= 15, "{longest}");
        assert!(longest.starts_with(&extra_bridge_prefix(SLOTS - 1)));
        for bad in ["", "abcdefghijk", "GW", "g-w", "gw0/"] {
            assert!(extra_bridge_name(0, bad).is_err(), "{bad:?}");
        }
        // No slot's prefix is another's, so a clean-up never deletes another engine's device.
        for a in 0..SLOTS {
            for b in 0..SLOTS {
                assert!(a == b || !extra_bridge_prefix(a).starts_with(&extra_bridge_prefix(b)));
            }
        }
    }
}
