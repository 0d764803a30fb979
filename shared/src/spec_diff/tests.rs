//! The unit table of the spec diff: every compared field, and the fields the engine fills in by itself,
//! which must never count.

use serde_json::{json, Value};

use super::*;

const OLD_ID: &str = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
const NEW_ID: &str = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222";
const SECRET: &str = "hunter2-do-not-show";

/// A container's inspect parts, as the snapshot records them.
#[derive(Clone)]
struct Spec {
    id: String,
    config: Value,
    host: Value,
    networks: Value,
    mounts: Value,
}

impl Spec {
    fn summary(&self) -> SpecSummary {
        SpecSummary::from_engine(
            &self.id,
            &self.config,
            &self.host,
            &self.networks,
            &self.mounts,
        )
    }
}

fn member() -> Spec {
    Spec {
        id: OLD_ID.to_owned(),
        config: json!({
            "Hostname": "aaaaaaaaaaaa", "User": "", "WorkingDir": "",
            "Env": ["PATH=/bin", format!("FOO={SECRET}"), "HOSTNAME=aaaaaaaaaaaa"],
            "Cmd": ["sleep", "1d"], "Entrypoint": null, "Image": "app:1",
            "Labels": {"team": "a", "dockstate.test": "t"},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000_i64, "Retries": 3},
        }),
        host: json!({
            "NetworkMode": "front",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                             "81/tcp": [{"HostIp": "", "HostPort": ""}]},
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 0, "PidsLimit": null,
            "Privileged": false, "CapAdd": null, "CapDrop": [], "Devices": [], "Binds": ["/srv:/srv:ro"],
        }),
        networks: json!({"front": {
            "Aliases": ["web", "aaaaaaaaaaaa"], "IPAMConfig": null, "IPAddress": "172.18.0.5",
            "EndpointID": "e1", "MacAddress": "02:42:ac:12:00:05",
        }}),
        mounts: json!([
            {"Type": "volume", "Name": "c".repeat(64), "Destination": "/data", "RW": true, "Mode": ""},
            {"Type": "bind", "Source": "/srv", "Destination": "/srv", "RW": false, "Mode": "ro"},
        ]),
    }
}

/// What the engine gives a container recreated from the member's spec: a new id, and with it a new
/// default hostname, short-id alias, endpoint, addresses and the swap limit derived again; the anonymous
/// volume re-attached (its mode `z`), the old `HOSTNAME` dropped.
fn recreated() -> Spec {
    let mut spec = member();
    spec.id = NEW_ID.to_owned();
    spec.config["Hostname"] = json!("bbbbbbbbbbbb");
    spec.config["Env"] = json!(["PATH=/bin", format!("FOO={SECRET}")]);
    spec.networks["front"]["Aliases"] = json!(["bbbbbbbbbbbb", "web"]);
    spec.networks["front"]["IPAddress"] = json!("172.18.0.9");
    spec.networks["front"]["EndpointID"] = json!("e2");
    spec.networks["front"]["MacAddress"] = json!("02:42:ac:12:00:09");
    spec.mounts[0]["Mode"] = json!("z");
    spec.host["Mounts"] = json!([{"Type": "volume", "Source": "c".repeat(64), "Target": "/data"}]);
    spec.host["PidsLimit"] = json!(0);
    spec
}

type Expected = (&'static str, Option<&'static str>, ChangeKind);

/// A row: what was done to the recreated container, how, and the changes it must show.
type Row = (&'static str, fn(&mut Spec), Vec<Expected>);

fn table() -> Vec<Row> {
    use ChangeKind::{Added, Changed, Removed};
    vec![
        ("recreated from the spec", |_| {}, vec![]),
        (
            "another anonymous volume",
            |s| s.mounts[0]["Name"] = json!("d".repeat(64)),
            vec![],
        ),
        (
            "a dynamic host port",
            |s| s.host["PortBindings"]["81/tcp"][0]["HostPort"] = json!("0"),
            vec![],
        ),
        (
            "the default bridge instead of its network",
            |s| {
                s.host["NetworkMode"] = json!("default");
                s.networks = json!({});
            },
            vec![
                ("network", Some("front"), Removed),
                ("network_aliases", Some("front"), Removed),
                ("network_mode", None, Changed),
            ],
        ),
        (
            "env value",
            |s| s.config["Env"][1] = json!("FOO=other"),
            vec![("env", Some("FOO"), Changed)],
        ),
        (
            "env added",
            |s| push(&mut s.config["Env"], json!("BAR=1")),
            vec![("env", Some("BAR"), Added)],
        ),
        (
            "env removed",
            |s| s.config["Env"] = json!(["PATH=/bin"]),
            vec![("env", Some("FOO"), Removed)],
        ),
        (
            "label",
            |s| s.config["Labels"]["team"] = json!("b"),
            vec![("label", Some("team"), Changed)],
        ),
        (
            "label added",
            |s| s.config["Labels"]["tier"] = json!("x"),
            vec![("label", Some("tier"), Added)],
        ),
        (
            "command",
            |s| s.config["Cmd"] = json!(["sleep", "2d"]),
            vec![("command", None, Changed)],
        ),
        (
            "entrypoint",
            |s| s.config["Entrypoint"] = json!(["/bin/sh"]),
            vec![("entrypoint", None, Added)],
        ),
        (
            "user",
            |s| s.config["User"] = json!("1000"),
            vec![("user", None, Added)],
        ),
        (
            "working dir",
            |s| s.config["WorkingDir"] = json!("/app"),
            vec![("working_dir", None, Added)],
        ),
        (
            "a chosen hostname",
            |s| s.config["Hostname"] = json!("web"),
            vec![("hostname", None, Added)],
        ),
        (
            "healthcheck command",
            |s| s.config["Healthcheck"]["Test"] = json!(["CMD", "false"]),
            vec![("healthcheck_test", None, Changed)],
        ),
        (
            "healthcheck interval",
            |s| s.config["Healthcheck"]["Interval"] = json!(2_000_000_000_i64),
            vec![("healthcheck_interval", None, Changed)],
        ),
        (
            "healthcheck retries",
            |s| s.config["Healthcheck"]["Retries"] = json!(5),
            vec![("healthcheck_retries", None, Changed)],
        ),
        (
            "healthcheck timeout and start period",
            |s| {
                s.config["Healthcheck"]["Timeout"] = json!(1_000_000_000_i64);
                s.config["Healthcheck"]["StartPeriod"] = json!(3_000_000_000_i64);
            },
            vec![
                ("healthcheck_start_period", None, Added),
                ("healthcheck_timeout", None, Added),
            ],
        ),
        (
            "published port",
            |s| s.host["PortBindings"]["80/tcp"][0]["HostPort"] = json!("8081"),
            vec![("port", Some("80/tcp"), Changed)],
        ),
        (
            "port published",
            |s| {
                s.host["PortBindings"]["90/udp"] =
                    json!([{"HostIp": "127.0.0.1", "HostPort": "90"}])
            },
            vec![("port", Some("90/udp"), Added)],
        ),
        (
            "publish all",
            |s| s.host["PublishAllPorts"] = json!(true),
            vec![("publish_all_ports", None, Added)],
        ),
        (
            "restart policy",
            |s| s.host["RestartPolicy"] = json!({"Name": "on-failure", "MaximumRetryCount": 3}),
            vec![("restart_policy", None, Changed)],
        ),
        (
            "privileged",
            |s| s.host["Privileged"] = json!(true),
            vec![("privileged", None, Added)],
        ),
        (
            "read-only root",
            |s| s.host["ReadonlyRootfs"] = json!(true),
            vec![("read_only_rootfs", None, Added)],
        ),
        (
            "capabilities",
            |s| {
                s.host["CapAdd"] = json!(["NET_ADMIN"]);
                s.host["CapDrop"] = json!(["MKNOD"]);
            },
            vec![("cap_add", None, Added), ("cap_drop", None, Added)],
        ),
        (
            "security options",
            |s| s.host["SecurityOpt"] = json!(["no-new-privileges"]),
            vec![("security_opt", None, Added)],
        ),
        (
            "device",
            |s| {
                s.host["Devices"] = json!([{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
            "CgroupPermissions": "rwm"}])
            },
            vec![("device", Some("/dev/fuse"), Added)],
        ),
        (
            "memory, its swap derived",
            |s| {
                s.host["Memory"] = json!(128 << 20);
                s.host["MemorySwap"] = json!(256 << 20);
            },
            vec![("memory", None, Changed)],
        ),
        (
            "swap asked for",
            |s| s.host["MemorySwap"] = json!(-1),
            vec![("memory_swap", None, Added)],
        ),
        (
            "memory reservation",
            |s| s.host["MemoryReservation"] = json!(32 << 20),
            vec![("memory_reservation", None, Added)],
        ),
        (
            "cpus",
            |s| s.host["NanoCpus"] = json!(1_500_000_000_i64),
            vec![("cpus", None, Added)],
        ),
        (
            "cpu shares, quota, period, set",
            |s| {
                s.host["CpuShares"] = json!(512);
                s.host["CpuQuota"] = json!(50000);
                s.host["CpuPeriod"] = json!(100000);
                s.host["CpusetCpus"] = json!("0");
            },
            vec![
                ("cpu_period", None, Added),
                ("cpu_quota", None, Added),
                ("cpu_shares", None, Added),
                ("cpuset_cpus", None, Added),
            ],
        ),
        (
            "pids limit",
            |s| s.host["PidsLimit"] = json!(100),
            vec![("pids_limit", None, Added)],
        ),
        (
            "tmpfs",
            |s| s.host["Tmpfs"] = json!({"/run": "size=1m"}),
            vec![("tmpfs", Some("/run"), Added)],
        ),
        (
            "network mode",
            |s| {
                s.host["NetworkMode"] = json!("host");
                s.networks = json!({"host": {}});
            },
            vec![
                ("network", Some("front"), Removed),
                ("network", Some("host"), Added),
                ("network_aliases", Some("front"), Removed),
                ("network_mode", None, Changed),
            ],
        ),
        (
            "joined another container, named or by id",
            |s| s.host["NetworkMode"] = json!(format!("container:{}", "9".repeat(64))),
            vec![("network_mode", None, Changed)],
        ),
        (
            "network added",
            |s| s.networks["back"] = json!({"Aliases": null}),
            vec![("network", Some("back"), Added)],
        ),
        (
            "network aliases",
            |s| s.networks["front"]["Aliases"] = json!(["www", "aaaaaaaaaaaa"]),
            vec![("network_aliases", Some("front"), Changed)],
        ),
        (
            "static address",
            |s| s.networks["front"]["IPAMConfig"] = json!({"IPv4Address": "172.18.0.50"}),
            vec![("network_ipv4_address", Some("front"), Added)],
        ),
        (
            "static IPv6 address",
            |s| s.networks["front"]["IPAMConfig"] = json!({"IPv6Address": "fd00::5"}),
            vec![("network_ipv6_address", Some("front"), Added)],
        ),
        (
            "named volume instead",
            |s| s.mounts[0]["Name"] = json!("data"),
            vec![("mount", Some("/data"), Changed)],
        ),
        (
            "bind writable",
            |s| s.mounts[1]["RW"] = json!(true),
            vec![("mount", Some("/srv"), Changed)],
        ),
        (
            "mount added",
            |s| {
                push(
                    &mut s.mounts,
                    json!({"Type": "tmpfs", "Destination": "/tmp", "RW": true}),
                )
            },
            vec![("mount", Some("/tmp"), Added)],
        ),
    ]
}

fn push(list: &mut Value, item: Value) {
    list.as_array_mut().expect("an array").push(item);
}

#[test]
fn every_compared_field_and_none_the_engine_fills_in() {
    let snapshot = member().summary();
    for (name, change, expected) in table() {
        let mut current = recreated();
        change(&mut current);
        let changes = diff(&snapshot, &current.summary());
        let found: Vec<Expected> = changes
            .iter()
            .map(|c| (leak(&c.field), c.key.as_deref().map(leak), c.change))
            .collect();
        assert_eq!(found, expected, "{name}: {changes:#?}");
    }
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

#[test]
fn values_are_shown_except_environment_and_command_lines() {
    let snapshot = member().summary();
    let mut current = recreated();
    current.config["Labels"]["team"] = json!("b");
    current.host["Memory"] = json!(128 << 20);
    current.host["PortBindings"]["80/tcp"][0]["HostPort"] = json!("8081");
    current.config["Env"][1] = json!("FOO=another-secret");
    current.config["Cmd"] = json!(["sleep", SECRET]);
    let changes = diff(&snapshot, &current.summary());
    let value = |field: &str| {
        let change = changes.iter().find(|c| c.field == field).expect(field);
        (change.snapshot.clone(), change.current.clone())
    };
    assert_eq!(value("label"), (Some("a".into()), Some("b".into())));
    assert_eq!(
        value("memory"),
        (Some("64MiB".into()), Some("128MiB".into()))
    );
    assert_eq!(value("port"), (Some(":8080".into()), Some(":8081".into())));
    assert_eq!(value("env"), (None, None));
    assert_eq!(value("command"), (None, None));
    let described: Vec<String> = changes.iter().map(SpecChange::describe).collect();
    assert!(
        described.contains(&"env FOO changed".to_owned()),
        "{described:?}"
    );
    assert!(
        described.contains(&"memory 64MiB → 128MiB".to_owned()),
        "{described:?}"
    );
    for text in [
        serde_json::to_string(&changes).expect("serialises"),
        format!("{:?}", current.summary()),
        format!("{described:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("another-secret"), "{text}");
    }
}

#[test]
fn mounts_are_compared_only_when_both_sides_know_them() {
    let mut old = member();
    old.mounts = Value::Null;
    let mut current = recreated();
    current.mounts[1]["RW"] = json!(true);
    assert!(diff(&old.summary(), &current.summary()).is_empty());
    assert_eq!(diff(&member().summary(), &current.summary()).len(), 1);
}

#[test]
fn an_empty_spec_reads_as_the_engines_defaults() {
    let empty = SpecSummary::from_engine(OLD_ID, &json!({}), &json!({}), &json!({}), &json!([]));
    let nulls = SpecSummary::from_engine(
        NEW_ID,
        &json!({"Env": null, "Labels": null, "Cmd": null, "Healthcheck": null, "Hostname": "bbbbbbbbbbbb"}),
        &json!({"RestartPolicy": {"Name": ""}, "NetworkMode": "default", "Memory": 0, "CapAdd": null,
                "PortBindings": {}, "Tmpfs": null, "MemorySwap": 0}),
        &Value::Null,
        &json!([]),
    );
    assert_eq!(diff(&empty, &nulls), vec![]);
}
