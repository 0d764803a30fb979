//! Docker Swarm end to end: `compose/stack.yaml` deployed with `docker stack deploy` on a real single-node
//! swarm — on a private engine the test starts itself, never the shared one, whose `docker_gwbridge` and
//! address pool lie inside that engine's own range (checked against the host's routes). The stack is pointed at
//! that engine through `DOCKER_SOCKET`, the token is a Swarm secret, both programs listen on free loopback
//! ports of the host network. Then: both tasks run healthy, a plain member killed on the node runs again within
//! a second, a Swarm task in the scope is never touched, and `docker stack rm` leaves nothing of the stack.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use e2e::{build_images, free_port, workspace_root, IMAGES};
use serde_json::Value;
use test_support::address_range::Ipv4Net;
use test_support::{ensure_test_images, wait_until, PrivateEngine, TestScope, BUSYBOX_IMAGE};

/// How long Swarm may take to converge on a loaded machine (the health checks run every 5 s).
const PATIENCE: Duration = Duration::from_secs(120);

/// The limit: from the kill to running again.
const HEAL_LIMIT: Duration = Duration::from_secs(1);

/// How often the heal is looked at.
const HEAL_POLL: Duration = Duration::from_millis(25);

/// The pair's services, as `docker stack deploy` names them: `<stack>_<service>`.
const SERVICES: [&str; 2] = ["status-api", "status-controller"];

/// A single-node swarm on a private engine, for one test. Dropping it removes the stack (if one was deployed
/// and not yet removed), leaves the swarm, and only then drops the engine, whose clean-up deletes the
/// `docker_gwbridge` device named for it.
struct SwarmNode {
    stack: Option<String>,
    /// The `docker_gwbridge` bridge device on the host.
    gwbridge: String,
    engine: PrivateEngine,
}

impl SwarmNode {
    /// Starts a private engine, creates its `docker_gwbridge` on the range's second `/24` and `swarm init`s it
    /// with an address pool of the range's upper `/21`, listening only on its own bridge's address.
    async fn start() -> anyhow::Result<Self> {
        let engine = PrivateEngine::start().await?;
        let gwbridge = engine.bridge_device("gw")?;
        let node = Self {
            stack: None,
            gwbridge,
            engine,
        };
        let range = node.engine.range();
        let bridge_address = range.subnet24(0).context("a /24 for the bridge")?.host(1);
        let gw_subnet = range.subnet24(1).context("a /24 for docker_gwbridge")?;
        node.engine
            .docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &gw_subnet.to_string(),
                "-o",
                "com.docker.network.bridge.enable_icc=false",
                "-o",
                &format!("com.docker.network.bridge.name={}", node.gwbridge),
                "-o",
                "com.docker.network.bridge.enable_ip_masquerade=false",
                "docker_gwbridge",
            ])
            .await?;
        let listen = format!("{bridge_address}:2377");
        node.engine
            .docker(&[
                "swarm",
                "init",
                "--advertise-addr",
                &bridge_address.to_string(),
                "--listen-addr",
                &listen,
                "--default-addr-pool",
                &address_pool(range).to_string(),
                "--default-addr-pool-mask-length",
                "24",
            ])
            .await?;
        Ok(node)
    }

    /// The engine's socket on the host.
    fn socket(&self) -> String {
        self.engine.host().trim_start_matches("unix://").to_owned()
    }

    /// `docker -H <engine> stack deploy` of `compose/stack.yaml` with `env` on top of a clean environment.
    async fn deploy(&mut self, stack: &str, env: &[(&str, String)]) -> anyhow::Result<()> {
        self.stack = Some(stack.to_owned());
        let file = workspace_root().join("compose/stack.yaml");
        let output = tokio::process::Command::new("docker")
            .args(["-H", &self.engine.host(), "stack", "deploy"])
            // No registry: the images are the ones loaded into the engine.
            .args(["--resolve-image", "never", "--compose-file"])
            .arg(&file)
            .arg(stack)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        ensure!(
            output.status.success(),
            "docker stack deploy failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The one container that runs a task of `service`, if there is one.
    async fn task_container(&self, service: &str) -> anyhow::Result<Option<String>> {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let ids = self
            .engine
            .docker(&["ps", "-q", "--no-trunc", "--filter", &filter])
            .await?;
        let ids: Vec<&str> = ids.lines().collect();
        match ids.as_slice() {
            [] => Ok(None),
            [id] => Ok(Some((*id).to_owned())),
            more => bail!("{} containers run {service}: {more:?}", more.len()),
        }
    }

    async fn inspect(&self, container: &str) -> anyhow::Result<Value> {
        let out = self.engine.docker(&["inspect", container]).await?;
        let mut all: Value = serde_json::from_str(&out)?;
        Ok(all[0].take())
    }
}

impl Drop for SwarmNode {
    fn drop(&mut self) {
        let host = self.engine.host();
        let docker = |args: &[&str]| {
            // Bounded: a wedged engine must not hang the test; the engine's own drop cleans up regardless.
            let result = std::process::Command::new("timeout")
                .args(["60", "docker", "-H", &host])
                .args(args)
                .stdin(Stdio::null())
                .output();
            match result {
                Ok(output) if output.status.success() => {
                    String::from_utf8_lossy(&output.stdout).into_owned()
                }
                other => {
                    eprintln!("swarm clean-up: `docker {}`: {other:?}", args.join(" "));
                    String::new()
                }
            }
        };
        if let Some(stack) = self.stack.take() {
            docker(&["stack", "rm", &stack]);
            // Swarm removes the tasks' containers after `stack rm` returns.
            let filter = format!("label=com.docker.stack.namespace={stack}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && !docker(&["ps", "-aq", "--filter", &filter])
                    .trim()
                    .is_empty()
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        docker(&["swarm", "leave", "--force"]);
        // Then the engine drops: dockerd stops, and its bridge and the docker_gwbridge device are deleted.
    }
}

/// The upper half of the range: `/24`s 8 to 15 of the `/20`, for Swarm's overlay networks (ingress first).
fn address_pool(range: Ipv4Net) -> Ipv4Net {
    let base = range.subnet24(8).expect("a /20 holds sixteen /24s");
    Ipv4Net::new(base.network(), 21)
}

/// Whether `inner` lies wholly inside `outer`.
fn inside(inner: &Ipv4Net, outer: &Ipv4Net) -> bool {
    inner.prefix() >= outer.prefix() && outer.overlaps(inner)
}

/// Every IPv4 subnet of every network on the engine, by network name.
async fn engine_subnets(engine: &PrivateEngine) -> anyhow::Result<Vec<(String, Ipv4Net)>> {
    let ids = engine.docker(&["network", "ls", "-q"]).await?;
    let mut subnets = Vec::new();
    for id in ids.lines() {
        let out = engine
            .docker(&[
                "network",
                "inspect",
                "--format",
                "{{.Name}}{{range .IPAM.Config}} {{.Subnet}}{{end}}",
                id,
            ])
            .await?;
        let mut words = out.split_whitespace();
        let name = words.next().unwrap_or_default().to_owned();
        for subnet in words {
            if subnet.contains(':') {
                continue;
            }
            subnets.push((name.clone(), subnet.parse()?));
        }
    }
    Ok(subnets)
}

/// The host's IPv4 routes as `(destination, device)`, all tables.
fn host_routes() -> anyhow::Result<Vec<(Ipv4Net, String)>> {
    let output = std::process::Command::new("ip")
        .args(["-j", "-4", "route", "show", "table", "all"])
        .output()
        .context("running ip")?;
    ensure!(output.status.success(), "ip -j route failed");
    let routes: Value = serde_json::from_slice(&output.stdout)?;
    Ok(routes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|route| {
            let dst = route["dst"].as_str()?.parse().ok()?;
            Some((dst, route["dev"].as_str().unwrap_or_default().to_owned()))
        })
        .collect())
}

/// The host's network devices, by name.
fn host_links() -> anyhow::Result<Vec<String>> {
    let output = std::process::Command::new("ip")
        .args(["-j", "link", "show"])
        .output()
        .context("running ip")?;
    let links: Value = serde_json::from_slice(&output.stdout)?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| link["ifname"].as_str().map(str::to_owned))
        .collect())
}

/// A token file as `make token` writes one (0444 in a 0700 directory): `docker stack deploy` reads it.
fn token_file(dir: &Path, scope: &TestScope) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;

    let path = dir.join("token");
    std::fs::write(&path, format!("swarm-{}-token", scope.id()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    path.to_str()
        .map(str::to_owned)
        .context("the token path is UTF-8")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

async fn get_json(url: &str) -> anyhow::Result<Value> {
    let response = client().get(url).send().await?;
    ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

async fn status(url: &str) -> anyhow::Result<u16> {
    Ok(client().get(url).send().await?.status().as_u16())
}

/// `dockstate_controller_last_pass_timestamp_seconds` from the controller's `/metrics`.
async fn last_pass(controller: &str) -> anyhow::Result<f64> {
    let text = client()
        .get(format!("{controller}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix("dockstate_controller_last_pass_timestamp_seconds "))
        .context("no dockstate_controller_last_pass_timestamp_seconds in /metrics")?
        .trim()
        .parse()
        .context("the last pass's time")
}

/// `State.Status` and `State.StartedAt` of a container.
async fn state(engine: &PrivateEngine, container: &str) -> anyhow::Result<(String, String)> {
    let out = engine
        .docker(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.StartedAt}}",
            container,
        ])
        .await?;
    let (status, started) = out.split_once(' ').context("two fields")?;
    Ok((status.to_owned(), started.to_owned()))
}

/// The pair as deployed by [`deploy_pair`].
struct Pair {
    stack: String,
    api: String,
    controller: String,
    api_port: u16,
    /// The private engine's socket, which the stack mounts, and its group.
    socket: String,
    socket_gid: u32,
    /// Holds the token file.
    _secrets: tempfile::TempDir,
}

impl Pair {
    /// `<stack>_<name>`: how `docker stack deploy` names the stack's services, secrets and volumes.
    fn in_stack(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }
}

#[tokio::test]
async fn the_stack_runs_a_healthy_pair_per_node_heals_within_a_second_and_never_touches_swarm_tasks(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    build_images().await?;
    let scope = TestScope::new();
    let mut node = SwarmNode::start().await?;
    // No registry: the pair's images and the workload's, copied from the shared engine.
    for image in [IMAGES[0].0, IMAGES[1].0, BUSYBOX_IMAGE] {
        node.engine.load_image(image).await?;
    }
    assert_the_swarm_stays_in_the_range(&node).await?;

    // Arrange: a plain member on the node, running before the pair takes its baseline; then the stack.
    let member = scope.name("member");
    node.engine
        .docker(&[
            "run",
            "-d",
            "--restart",
            "no",
            "--label",
            &scope.label(),
            "--name",
            &member,
            BUSYBOX_IMAGE,
        ])
        .await?;
    let pair = deploy_pair(&mut node, &scope).await?;

    // Assert: the pair runs as the stack file says, and its baseline is the member.
    assert_one_healthy_task_per_service(&node, &pair).await?;
    assert_the_tasks_are_set_up(&node, &pair).await?;
    let snapshot = get_json(&format!("{}/snapshot", pair.api)).await?;
    assert_eq!(snapshot["scope"], scope.scope().as_str(), "{snapshot}");
    let members: Vec<&str> = snapshot["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        members,
        [member.as_str()],
        "the baseline is the plain member"
    );

    // Act and assert: a Swarm task in the scope appears; the member is killed and healed within a second; the
    // Swarm task is left alone.
    let swarm_service = scope.name("swarmtask");
    let swarm_task = start_swarm_task(&node, &pair, &scope, &swarm_service).await?;
    let healed = kill_and_time_the_heal(&node.engine, &member).await?;
    eprintln!("{member}: killed, running again {healed:?} later");
    assert!(
        healed <= HEAL_LIMIT,
        "{member} took {healed:?} from the kill to running, over {HEAL_LIMIT:?}"
    );
    assert_the_swarm_task_was_never_touched(&node, &pair, &swarm_task, &swarm_service, &member)
        .await?;

    // The stack removes cleanly.
    node.engine
        .docker(&["service", "rm", &swarm_service])
        .await?;
    remove_the_stack(&mut node, &pair).await?;

    // The swarm is left and the engine stopped (the node's drop), and its docker_gwbridge device is gone.
    let gwbridge = node.gwbridge.clone();
    drop(node);
    let links = host_links()?;
    assert!(
        !links.contains(&gwbridge),
        "{gwbridge} was left behind: {links:?}"
    );
    Ok(())
}

/// Every network of the engine lies in its range (docker_gwbridge on the second /24, ingress in the pool), and
/// no route of the host into the range goes anywhere but the engine's two bridges.
async fn assert_the_swarm_stays_in_the_range(node: &SwarmNode) -> anyhow::Result<()> {
    let range = node.engine.range();
    let subnets = engine_subnets(&node.engine).await?;
    eprintln!("range {range}; the engine's networks: {subnets:?}");
    let gw_subnet = range.subnet24(1).context("a second /24")?;
    assert!(
        subnets.contains(&("docker_gwbridge".to_owned(), gw_subnet)),
        "{subnets:?}"
    );
    let ingress: Vec<&Ipv4Net> = subnets
        .iter()
        .filter(|(name, _)| name == "ingress")
        .map(|(_, subnet)| subnet)
        .collect();
    assert!(
        !ingress.is_empty() && ingress.iter().all(|s| inside(s, &address_pool(range))),
        "ingress {ingress:?} is not in the pool {}",
        address_pool(range)
    );
    for (name, subnet) in &subnets {
        assert!(inside(subnet, &range), "{name} {subnet} is outside {range}");
    }
    let options = node
        .engine
        .docker(&[
            "network",
            "inspect",
            "docker_gwbridge",
            "--format",
            "{{json .Options}}",
        ])
        .await?;
    assert!(options.contains(&node.gwbridge), "{options}");
    let bridges = [node.gwbridge.clone(), node.engine.bridge()];
    for (dst, dev) in host_routes()? {
        if dst.overlaps(&range) {
            assert!(
                bridges.contains(&dev),
                "the host routes {dst} through {dev}, which is not the private engine's"
            );
        }
    }
    Ok(())
}

/// `docker stack deploy` of the pair against the node's engine: its socket and the socket's group, the test's
/// scope, free loopback ports, a token of the test's own.
async fn deploy_pair(node: &mut SwarmNode, scope: &TestScope) -> anyhow::Result<Pair> {
    let secrets = tempfile::tempdir()?;
    let token = token_file(secrets.path(), scope)?;
    let socket = node.socket();
    let socket_gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&socket)?);
    let (api_port, controller_port) = (free_port()?, free_port()?);
    let stack = format!("dockstate-{}", scope.id());
    node.deploy(
        &stack,
        &[
            ("DOCKER_SOCKET", socket.clone()),
            ("DOCKER_GID", socket_gid.to_string()),
            ("DOCKSTATE_TOKEN_FILE", token),
            ("DOCKSTATE_TAG", "latest".into()),
            ("DOCKSTATE_BIND_ADDRESS", "127.0.0.1".into()),
            ("STATUS_API_PORT", api_port.to_string()),
            ("STATUS_CONTROLLER_PORT", controller_port.to_string()),
            ("STATUS_API_SCOPE", scope.scope()),
            // Full passes every second, so that a pass that would touch the Swarm task has every chance to.
            ("STATUS_CONTROLLER_INTERVAL", "1s".into()),
            ("STATUS_CONTROLLER_UNEXPECTED", "stop".into()),
            ("STATUS_CONTROLLER_DRY_RUN", "false".into()),
        ],
    )
    .await?;
    Ok(Pair {
        stack,
        api: format!("http://127.0.0.1:{api_port}"),
        controller: format!("http://127.0.0.1:{controller_port}"),
        api_port,
        socket,
        socket_gid,
        _secrets: secrets,
    })
}

/// Each service is global, and its one task runs, healthy by its own health check; then both programs answer
/// ready on their loopback ports.
async fn assert_one_healthy_task_per_service(node: &SwarmNode, pair: &Pair) -> anyhow::Result<()> {
    for service in SERVICES.map(|name| pair.in_stack(name)) {
        let mode = node
            .engine
            .docker(&[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.Mode}}",
                &service,
            ])
            .await?;
        assert!(mode.contains("Global"), "{service}: {mode}");
        wait_until(
            &format!("{service}'s task to run healthy"),
            PATIENCE,
            || async {
                let Some(id) = node.task_container(&service).await? else {
                    return Ok(false);
                };
                let health = node
                    .engine
                    .docker(&["inspect", "--format", "{{.State.Health.Status}}", &id])
                    .await?;
                let tasks = node
                    .engine
                    .docker(&[
                        "service",
                        "ps",
                        "--filter",
                        "desired-state=running",
                        "--format",
                        "{{.CurrentState}}",
                        &service,
                    ])
                    .await?;
                Ok(health == "healthy"
                    && tasks.starts_with("Running")
                    && tasks.lines().count() == 1)
            },
        )
        .await?;
    }
    wait_until("both programs to be ready", PATIENCE, || async {
        Ok(status(&format!("{}/ready", pair.api)).await? == 200
            && status(&format!("{}/ready", pair.controller)).await? == 200)
    })
    .await?;
    Ok(())
}

/// The tasks as the stack file sets them up: the host network, the private engine's socket (never the host's),
/// the policy label, the numeric user with the socket's group, a read-only root, a local volume for the state,
/// the token as the Swarm secret that status-api checks; and the controller calls its own node's status-api.
async fn assert_the_tasks_are_set_up(node: &SwarmNode, pair: &Pair) -> anyhow::Result<()> {
    for (service, state_dir) in [
        ("status-api", "/var/lib/status-api"),
        ("status-controller", "/var/lib/status-controller"),
    ] {
        let id = node
            .task_container(&pair.in_stack(service))
            .await?
            .with_context(|| format!("{service}'s task"))?;
        let inspected = node.inspect(&id).await?;
        let config = &inspected["Config"];
        assert_eq!(inspected["HostConfig"]["NetworkMode"], "host", "{service}");
        assert_eq!(config["Labels"]["dockstate.policy"], "ignore", "{service}");
        assert_eq!(
            config["User"],
            format!("10001:{}", pair.socket_gid).as_str(),
            "{service}"
        );
        assert_eq!(inspected["HostConfig"]["ReadonlyRootfs"], true, "{service}");
        let mounts = inspected["Mounts"].as_array().cloned().unwrap_or_default();
        let mount = |target: &str| mounts.iter().find(|m| m["Destination"] == target).cloned();
        let socket = mount("/var/run/docker.sock").context("the socket's mount")?;
        assert_eq!(
            (&socket["Type"], &socket["Source"]),
            (&Value::from("bind"), &Value::from(pair.socket.as_str())),
            "{service}"
        );
        let state = mount(state_dir).context("the state's mount")?;
        assert_eq!(state["Type"], "volume", "{service}: {mounts:?}");
        let secrets = node
            .engine
            .docker(&[
                "service",
                "inspect",
                "--format",
                "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{.File.Name}}{{end}}",
                &pair.in_stack(service),
            ])
            .await?;
        assert_eq!(
            secrets,
            format!("{} dockstate_token", pair.in_stack("dockstate_token"))
        );
        if service == "status-controller" {
            let api_url = format!(
                "STATUS_CONTROLLER_API_URL=http://127.0.0.1:{}",
                pair.api_port
            );
            assert!(
                config["Env"]
                    .as_array()
                    .is_some_and(|env| env.iter().any(|e| e == api_url.as_str())),
                "{}",
                config["Env"]
            );
        }
    }
    // status-api reads the secret as its token: without one, a re-baseline is 401 (403 if it had none).
    let answer = client()
        .post(format!("{}/snapshot", pair.api))
        .send()
        .await?
        .status();
    assert_eq!(answer.as_u16(), 401);
    Ok(())
}

/// A replicated Swarm service whose task carries the scope's label, started after the baseline: without the
/// rule that Swarm's tasks are never members and never stopped, the controller would stop it as unexpected.
/// Answers its task's container once status-api shows it with the policy `ignore`.
async fn start_swarm_task(
    node: &SwarmNode,
    pair: &Pair,
    scope: &TestScope,
    service: &str,
) -> anyhow::Result<String> {
    node.engine
        .docker(&[
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            service,
            "--container-label",
            &scope.label(),
            "--replicas",
            "1",
            BUSYBOX_IMAGE,
        ])
        .await?;
    wait_until("the Swarm task to run", PATIENCE, || async {
        Ok(node.task_container(service).await?.is_some())
    })
    .await?;
    let task = node
        .task_container(service)
        .await?
        .context("the Swarm task")?;
    let name = node.inspect(&task).await?["Name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    wait_until(
        "status-api to show the Swarm task as ignored",
        PATIENCE,
        || async {
            let all = get_json(&format!("{}/status?all=true", pair.api)).await?;
            Ok(all["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == name.as_str() && c["policy"] == "ignore"))
        },
    )
    .await?;
    Ok(task)
}

/// Kills `member` and answers the time from just before the kill until the engine says it runs again (a new
/// start), looking every [`HEAL_POLL`].
async fn kill_and_time_the_heal(engine: &PrivateEngine, member: &str) -> anyhow::Result<Duration> {
    let (_, started_before) = state(engine, member).await?;
    let killed_at = Instant::now();
    engine.docker(&["kill", member]).await?;
    loop {
        let (status, started) = state(engine, member).await?;
        if status == "running" && started != started_before {
            return Ok(killed_at.elapsed());
        }
        if killed_at.elapsed() > PATIENCE {
            bail!("{member} was not running again {PATIENCE:?} after the kill");
        }
        tokio::time::sleep(HEAL_POLL).await;
    }
}

/// Two full passes of the controller after the Swarm task started, it is the same container with the same
/// start, its service's only task, and no record in `/actions` names anything but the member.
async fn assert_the_swarm_task_was_never_touched(
    node: &SwarmNode,
    pair: &Pair,
    task: &str,
    service: &str,
    member: &str,
) -> anyhow::Result<()> {
    let (_, started) = state(&node.engine, task).await?;
    let started_unix = unix_seconds(&started)?;
    wait_until(
        "two controller passes after the Swarm task started",
        PATIENCE,
        || async { Ok(last_pass(&pair.controller).await? >= started_unix + 2.0) },
    )
    .await?;
    let (status_after, started_after) = state(&node.engine, task).await?;
    assert_eq!(
        (status_after.as_str(), started_after.as_str()),
        ("running", started.as_str()),
        "the Swarm task was touched"
    );
    let tasks = node
        .engine
        .docker(&["service", "ps", "-q", service])
        .await?;
    assert_eq!(
        tasks.lines().count(),
        1,
        "the Swarm task was replaced: {tasks}"
    );
    let actions = get_json(&format!("{}/actions", pair.controller)).await?;
    let records = actions["actions"].as_array().cloned().unwrap_or_default();
    assert!(
        records.iter().all(|r| r["container"] == member),
        "an action about something other than the member: {actions}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "start" && r["result"] == "ok"),
        "no ok start of the member: {actions}"
    );
    let drift = get_json(&format!("{}/drift", pair.api)).await?;
    assert_eq!(drift["in_sync"], true, "{drift}");
    Ok(())
}

/// `docker stack rm`, after which no service, container, network or secret of the stack is left; the node's
/// volumes are kept (its baseline and hold), and nothing holds them any more: they can be removed.
async fn remove_the_stack(node: &mut SwarmNode, pair: &Pair) -> anyhow::Result<()> {
    node.engine.docker(&["stack", "rm", &pair.stack]).await?;
    let namespace = format!("label=com.docker.stack.namespace={}", pair.stack);
    wait_until("the stack to be gone", PATIENCE, || async {
        let mut left = String::new();
        for list in [
            &["service", "ls", "-q"][..],
            &["ps", "-aq"][..],
            &["network", "ls", "-q"][..],
            &["secret", "ls", "-q"][..],
        ] {
            left += &node
                .engine
                .docker(&[list, &["--filter", &namespace]].concat())
                .await?;
        }
        Ok(left.trim().is_empty())
    })
    .await?;
    node.stack = None;
    for volume in ["state", "controller-state"] {
        node.engine
            .docker(&["volume", "rm", &pair.in_stack(volume)])
            .await?;
    }
    Ok(())
}

/// Seconds since the epoch of an RFC 3339 time as the engine writes it (`2026-12-07T04:05:38.725998334Z`).
fn unix_seconds(time: &str) -> anyhow::Result<f64> {
    let parsed = chrono::DateTime::parse_from_rfc3339(time).context("an RFC 3339 time")?;
    let since = SystemTime::from(parsed)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(since.as_secs_f64())
}

#[test]
fn the_pool_is_the_upper_half_of_the_range() {
    let range = Ipv4Net::new(Ipv4Addr::new(198, 18, 32, 0), 20);
    assert_eq!(address_pool(range).to_string(), "198.18.40.0/21");
    assert!(inside(&address_pool(range), &range));
    assert!(!inside(&range, &address_pool(range)));
}
