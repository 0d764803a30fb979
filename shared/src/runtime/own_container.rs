//! Which container this process runs in, so that neither program ever acts on the pair's own containers.
//!
//! Three places name it, in order of trust: `/proc/self/cgroup` (the process's own cgroup, which the engine
//! names after the container), the roots of the cgroup mounts in `/proc/self/mountinfo`, and only then the
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` bind mounts. The last belong to whoever owns the
//! network namespace: under `--network container:X` (and in a cri-dockerd pod, whose containers join the
//! pause container's) they are X's. When the cgroup names one container and the mounts another, the cgroup
//! is this process's and the mounts name the container whose network it joined.
//!
//! What remains: with cgroup v2 and a private cgroup namespace (Docker's default on v2) the cgroup reads `/`
//! and the mounts are all there is, so a process under `--network container:X` takes X for itself.

/// How the id was found, most trusted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Evidence {
    /// `/proc/self/cgroup`.
    Cgroup,
    /// The root of a cgroup mount in `/proc/self/mountinfo`.
    CgroupMount,
    /// The `/etc/hostname`, `/etc/hosts` or `/etc/resolv.conf` bind mount: the network namespace owner's.
    NetworkFiles,
}

/// The container this process runs in, and the one whose network namespace it joined, if another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnContainer {
    /// The full 64-hex id.
    pub id: String,
    pub evidence: Evidence,
    /// The container that owns the network namespace (`--network container:X`), when the network files name
    /// another container than the cgroup does. Stopping it would cut this process's network.
    pub network_owner: Option<String>,
}

impl OwnContainer {
    /// Reads `/proc/self/cgroup` and `/proc/self/mountinfo`; `None` outside a container.
    pub fn detect() -> Option<Self> {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::from_proc(&cgroup, &mountinfo)
    }

    /// The container the two files describe: the first source that names one, by trust (see the module's
    /// documentation).
    pub fn from_proc(cgroup: &str, mountinfo: &str) -> Option<Self> {
        let network_files = container_id_from_network_files(mountinfo);
        let (id, evidence) = container_id_from_cgroup(cgroup)
            .map(|id| (id, Evidence::Cgroup))
            .or_else(|| {
                container_id_from_cgroup_mounts(mountinfo).map(|id| (id, Evidence::CgroupMount))
            })
            .or_else(|| network_files.clone().map(|id| (id, Evidence::NetworkFiles)))?;
        let network_owner = network_files.filter(|owner| *owner != id);
        Some(Self {
            id,
            evidence,
            network_owner,
        })
    }

    /// The ids nothing may touch: this container, and the owner of the network namespace it joined.
    pub fn protected_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.network_owner.as_deref())
    }

    /// Says at start-up what was found, and warns when only the network files could tell.
    pub fn log(found: Option<&Self>) {
        match found {
            None => tracing::info!("not running in a container (no container id in /proc/self)"),
            Some(own) if own.evidence == Evidence::NetworkFiles => tracing::warn!(
                container_id = %own.id,
                evidence = %own.evidence,
                "own container found only from /etc/hostname: if this container joined another's network \
                 namespace (--network container:X), that id is X's and only the scope label protects this \
                 one; run with --cgroupns host or label it dockstate.policy=ignore"
            ),
            Some(own) => tracing::info!(
                container_id = %own.id,
                evidence = %own.evidence,
                network_owner = own.network_owner.as_deref(),
                "own container found"
            ),
        }
    }
}

/// The id of the container this process runs in, or `None` outside a container: [`OwnContainer::detect`].
pub fn own_container_id() -> Option<String> {
    OwnContainer::detect().map(|own| own.id)
}

/// The container id in `/proc/self/cgroup`: cgroup v1 (`4:memory:/docker/<id>`), the systemd driver
/// (`…/docker-<id>.scope`), cgroup v2 in the host's cgroup namespace (`0::/system.slice/docker-<id>.scope`),
/// a cri-dockerd pod (`…/kubepods/…/pod<uid>/<id>`), Podman (`libpod-<id>`). The deepest id wins, so a
/// container inside a container (or a cgroup the container made below its own) still names the innermost.
pub fn container_id_from_cgroup(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(id_in_cgroup_path)
}

/// The container id in the roots of the cgroup mounts of a mount table (the fourth field, for `cgroup` and
/// `cgroup2` file systems).
pub fn container_id_from_cgroup_mounts(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (fields, filesystem) = line.split_once(" - ")?;
        let fstype = filesystem.split(' ').next()?;
        if fstype != "cgroup" && fstype != "cgroup2" {
            return None;
        }
        id_in_cgroup_path(fields.split(' ').nth(3)?)
    })
}

/// The container id of the `/etc/hostname`, `/etc/hosts` or `/etc/resolv.conf` bind mounts
/// (`/var/lib/docker/containers/<id>/hostname`; Podman's `…/overlay-containers/<id>/userdata/hostname`, or
/// `vfs-containers` and so on after its storage driver):
/// the owner of the network namespace, which is this container only when it did not join another's.
pub fn container_id_from_network_files(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let source = line.split(' ').nth(3)?;
        let (dir, file) = source.rsplit_once('/')?;
        if !matches!(file, "hostname" | "hosts" | "resolv.conf") {
            return None;
        }
        let dir = dir.strip_suffix("/userdata").unwrap_or(dir);
        let (parent, id) = dir.rsplit_once('/')?;
        // Podman keeps them under `<graph root>/<storage driver>-containers/`: overlay, vfs, btrfs, zfs.
        let known_parent = parent.ends_with("/containers") || parent.ends_with("-containers");
        (known_parent && is_id(id)).then(|| id.to_owned())
    })
}

/// The container id that names the deepest segment of a cgroup path that names one: `<id>`,
/// `docker-<id>.scope`, `libpod-<id>`, `cri-containerd-<id>.scope`.
fn id_in_cgroup_path(path: &str) -> Option<String> {
    path.rsplit('/').find_map(|segment| {
        let name = segment.strip_suffix(".scope").unwrap_or(segment);
        let id = name.rsplit_once('-').map_or(name, |(_, id)| id);
        is_id(id).then(|| id.to_owned())
    })
}

fn is_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "9f2c4088566cb91fcdab23d0647d906bb26dea1a2e42778c8856501d3035dc2f";
    const X: &str = "6bcad0742b3097df88b6a16c74fea65f31d732aa57118ab364bf0413fc4d14c5";

    /// The bind mounts of `/etc/resolv.conf`, `/etc/hostname` and `/etc/hosts` from `owner`'s directory.
    fn network_files(owner: &str) -> String {
        ["resolv.conf", "hostname", "hosts"]
            .iter()
            .enumerate()
            .map(|(n, file)| {
                format!(
                    "{} 124 254:0 /var/lib/docker/containers/{owner}/{file} /etc/{file} rw,relatime - ext4 \
                     /dev/vda rw\n",
                    141 + n
                )
            })
            .collect()
    }

    /// cgroup v1 as Docker's cgroupfs driver writes it (this machine, as read in a container).
    fn cgroup_v1(id: &str) -> String {
        ["name=systemd", "pids", "memory", "cpu,cpuacct"]
            .iter()
            .enumerate()
            .map(|(n, controllers)| format!("{}:{controllers}:/docker/{id}\n", 9 - n))
            .chain(std::iter::once(format!("0::/docker/{id}\n")))
            .collect()
    }

    fn cgroup_v1_mounts(id: &str) -> String {
        format!(
            "129 128 0:66 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755\n\
             133 129 0:32 /docker/{id} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n\
             137 129 0:36 /docker/{id} /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n"
        )
    }

    const ROOT_AND_PROC: &str = "120 98 0:60 / / rw,relatime - overlay overlay rw\n\
                                 121 120 0:63 / /proc rw,nosuid - proc proc rw\n";

    fn detect(cgroup: &str, mountinfo: &str) -> Option<OwnContainer> {
        OwnContainer::from_proc(cgroup, mountinfo)
    }

    #[test]
    fn cgroup_v1_names_the_container() {
        let mountinfo = format!(
            "{ROOT_AND_PROC}{}{}",
            cgroup_v1_mounts(OURS),
            network_files(OURS)
        );
        let own = detect(&cgroup_v1(OURS), &mountinfo).expect("in a container");
        assert_eq!(own.id, OURS);
        assert_eq!(own.evidence, Evidence::Cgroup);
        assert_eq!(own.network_owner, None, "the network is its own");
    }

    #[test]
    fn under_network_container_x_the_cgroup_wins_and_x_is_the_network_owner() {
        // What `docker run --network container:X` shows on cgroup v1: the cgroup is ours, the files X's.
        let mountinfo = format!(
            "{ROOT_AND_PROC}{}{}",
            cgroup_v1_mounts(OURS),
            network_files(X)
        );
        let own = detect(&cgroup_v1(OURS), &mountinfo).expect("in a container");
        assert_eq!(own.id, OURS);
        assert_eq!(own.evidence, Evidence::Cgroup);
        assert_eq!(own.network_owner.as_deref(), Some(X));
        assert_eq!(own.protected_ids().collect::<Vec<_>>(), [OURS, X]);
    }

    #[test]
    fn systemd_scopes_name_the_container() {
        let v1 = format!("12:pids:/system.slice/docker-{OURS}.scope\n1:name=systemd:/system.slice/docker-{OURS}.scope\n");
        assert_eq!(container_id_from_cgroup(&v1).as_deref(), Some(OURS));
        let v2_host_cgroupns = format!("0::/system.slice/docker-{OURS}.scope\n");
        let own = detect(&v2_host_cgroupns, &network_files(X)).expect("in a container");
        assert_eq!((own.id.as_str(), own.evidence), (OURS, Evidence::Cgroup));
        assert_eq!(own.network_owner.as_deref(), Some(X));
        let kubelet_systemd = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e3d4c_5b6a_7980_a1b2_c3d4e5f60718.slice/docker-{OURS}.scope\n"
        );
        assert_eq!(
            container_id_from_cgroup(&kubelet_systemd).as_deref(),
            Some(OURS)
        );
    }

    #[test]
    fn a_cri_dockerd_pod_container_is_not_taken_for_its_pause_container() {
        // cgroupfs driver: /kubepods/<qos>/pod<uid>/<id>; the network files are the pause container's.
        let cgroup = format!(
            "11:memory:/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718/{OURS}\n0::/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718/{OURS}\n"
        );
        let own = detect(&cgroup, &network_files(X)).expect("in a container");
        assert_eq!(own.id, OURS);
        assert_eq!(own.network_owner.as_deref(), Some(X), "the pause container");
    }

    #[test]
    fn cgroup_v2_with_a_private_cgroup_namespace_falls_back_to_the_mounts() {
        let mountinfo = format!(
            "{ROOT_AND_PROC}130 120 0:27 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n{}",
            network_files(OURS)
        );
        let own = detect("0::/\n", &mountinfo).expect("in a container");
        assert_eq!(own.id, OURS);
        assert_eq!(own.evidence, Evidence::NetworkFiles);
        assert_eq!(own.network_owner, None);
        // The limitation that remains: under `--network container:X` nothing here says it is not X.
        let joined = format!("{ROOT_AND_PROC}{}", network_files(X));
        assert_eq!(
            detect("0::/\n", &joined).map(|own| own.id).as_deref(),
            Some(X)
        );
    }

    #[test]
    fn the_cgroup_mount_roots_come_before_the_network_files() {
        // A cgroup file that could not be read (or says `/`), while a cgroup mount is rooted at the container.
        let v2_host = format!(
            "130 120 0:27 /system.slice/docker-{OURS}.scope /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n{}",
            network_files(X)
        );
        let own = detect("", &v2_host).expect("in a container");
        assert_eq!(
            (own.id.as_str(), own.evidence),
            (OURS, Evidence::CgroupMount)
        );
        assert_eq!(own.network_owner.as_deref(), Some(X));
        let v1 = format!("{}{}", cgroup_v1_mounts(OURS), network_files(X));
        assert_eq!(container_id_from_cgroup_mounts(&v1).as_deref(), Some(OURS));
    }

    #[test]
    fn the_deepest_id_is_the_innermost_container() {
        let nested = format!("0::/docker/{X}/docker/{OURS}\n");
        assert_eq!(container_id_from_cgroup(&nested).as_deref(), Some(OURS));
        let below_its_own = format!("0::/system.slice/docker-{OURS}.scope/init.scope\n");
        assert_eq!(
            container_id_from_cgroup(&below_its_own).as_deref(),
            Some(OURS)
        );
    }

    #[test]
    fn podman_names_its_containers_too() {
        let cgroup = format!("0::/machine.slice/libpod-{OURS}.scope/container\n");
        assert_eq!(container_id_from_cgroup(&cgroup).as_deref(), Some(OURS));
        let mountinfo = format!(
            "200 190 0:44 /var/lib/containers/storage/overlay-containers/{X}/userdata/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(
            container_id_from_network_files(&mountinfo).as_deref(),
            Some(X)
        );
        // Rootless, on the vfs driver: `<graph root>/vfs-containers/`.
        let rootless = format!(
            "200 190 0:44 /home/u/.local/share/containers/storage/vfs-containers/{X}/userdata/hosts /etc/hosts rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(
            container_id_from_network_files(&rootless).as_deref(),
            Some(X)
        );
    }

    #[test]
    fn a_process_on_the_host_is_in_no_container() {
        // This machine's own cgroup (a 32-hex id is no container's) and an ordinary mount table.
        let host_cgroup =
            "9:name=systemd:/\n4:memory:/process_api/a018d1616d984f8250da4c1f34a50fc2\n0::/\n";
        let host_mounts = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                           30 22 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(detect(host_cgroup, host_mounts), None);
        let user_slice = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(detect(user_slice, host_mounts), None);
    }

    #[test]
    fn only_the_network_files_count_among_the_container_s_files() {
        let id = OURS;
        let table = format!(
            "85 69 0:70 / /proc rw - proc proc rw\n\
             90 69 254:0 /var/lib/docker/containers/{X}/mounts/secrets /run/secrets rw - ext4 /dev/vda rw\n\
             87 69 254:0 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_from_network_files(&table).as_deref(), Some(id));
        assert_eq!(
            container_id_from_network_files("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"),
            None
        );
    }
}
