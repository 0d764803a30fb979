//! The test images, built locally because no registry can be reached: `FROM scratch` plus the host's static
//! busybox.
//!
//! Several test binaries build them at the same time, so each build goes to a tag of its own and is then
//! tagged as the shared name; the last tag wins and every build is the same recipe, so a race is harmless.
//! A second tag, `recipe-<hash of Dockerfile and busybox>`, lets later runs see that `latest` is current and
//! skip the build altogether.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tokio::sync::OnceCell;

use crate::cli::{docker, run, stdout_or_error};

/// A container that sleeps until stopped, and stops at once on SIGTERM. `/bin/sh` and every other busybox
/// applet are on the PATH; `/tmp` exists and is the working directory.
pub const BUSYBOX_IMAGE: &str = "dockstate-test/busybox:latest";

/// Like [`BUSYBOX_IMAGE`], with a health check (every second) that passes while `/tmp/healthy` exists. The
/// command creates it, so the container turns healthy about a second after start; make it unhealthy with
/// `docker exec <container> /bin/busybox rm /tmp/healthy`.
pub const HEALTH_IMAGE: &str = "dockstate-test/busybox-health:latest";

/// Like [`BUSYBOX_IMAGE`], with `VOLUME /data`, as every database image declares one: a container gets an
/// anonymous volume there unless told otherwise.
pub const VOLUME_IMAGE: &str = "dockstate-test/busybox-volume:latest";

/// Where Debian's busybox-static puts it (`/usr/bin` is the same place on a merged-/usr system).
const BUSYBOX_CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Sleeps in the background and waits for it, so the shell (PID 1, where signals without a handler are
/// ignored) can act on SIGTERM at once: `docker stop` then takes milliseconds, not its 10 s grace period.
const SLEEP_FOREVER: &str = "trap 'exit 0' TERM INT; sleep 3600000 & wait";

/// The classic builder's syntax only (no BuildKit): the CLI here may have no buildx.
fn busybox_dockerfile() -> String {
    format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         WORKDIR /tmp\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"{SLEEP_FOREVER}\"]\n"
    )
}

fn health_dockerfile() -> String {
    format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         WORKDIR /tmp\n\
         HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/bin/busybox\", \"test\", \"-f\", \"/tmp/healthy\"]\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"touch /tmp/healthy; {SLEEP_FOREVER}\"]\n"
    )
}

fn volume_dockerfile() -> String {
    format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         WORKDIR /tmp\n\
         VOLUME /data\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"{SLEEP_FOREVER}\"]\n"
    )
}

static BUILT: OnceCell<()> = OnceCell::const_new();

/// Builds [`BUSYBOX_IMAGE`], [`HEALTH_IMAGE`] and [`VOLUME_IMAGE`] unless they are already current; once per process, and safe
/// when several processes do it at once.
///
/// Fails with a hint to `apt-get install busybox-static` when there is no static busybox on the host.
pub async fn ensure_test_images() -> anyhow::Result<()> {
    BUILT.get_or_try_init(build_all).await.map(|_| ())
}

async fn build_all() -> anyhow::Result<()> {
    let (busybox_path, busybox) = find_static_busybox()?;
    let context = tempfile::tempdir().context("creating a temporary build context")?;
    write_rootfs(&context.path().join("rootfs"), &busybox_path, &busybox)?;

    for (image, dockerfile) in [
        (BUSYBOX_IMAGE, busybox_dockerfile()),
        (HEALTH_IMAGE, health_dockerfile()),
        (VOLUME_IMAGE, volume_dockerfile()),
    ] {
        let mut hash = Fnv64::new();
        hash.write(dockerfile.as_bytes());
        hash.write(&busybox);
        let dockerfile_name = format!("Dockerfile.{}", hash.finish_hex());
        std::fs::write(context.path().join(&dockerfile_name), &dockerfile)
            .context("writing a Dockerfile")?;
        build_one(image, &hash.finish_hex(), context.path(), &dockerfile_name)
            .await
            .with_context(|| format!("building the test image {image}"))?;
    }
    Ok(())
}

/// Builds `image` (`repo:latest`) unless `repo:recipe-<recipe>` already names the same image.
async fn build_one(
    image: &str,
    recipe: &str,
    context: &Path,
    dockerfile: &str,
) -> anyhow::Result<()> {
    let repo = image.rsplit_once(':').map_or(image, |(repo, _tag)| repo);
    let recipe_tag = format!("{repo}:recipe-{recipe}");
    let current = run(
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            image,
            &recipe_tag,
        ],
        &[],
    )
    .await?;
    if current.status.success() {
        let ids: Vec<&str> = std::str::from_utf8(&current.stdout)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if ids.len() == 2 && ids[0] == ids[1] {
            return Ok(());
        }
    }

    let build_tag = format!("{repo}:build-{}", uuid::Uuid::new_v4().simple());
    let context = context
        .to_str()
        .context("the temporary directory's path is not UTF-8")?;
    let dockerfile = format!("{context}/{dockerfile}");
    let args = [
        "build",
        "--quiet",
        "--force-rm",
        "--tag",
        &build_tag,
        "--file",
        &dockerfile,
        context,
    ];
    // DOCKER_BUILDKIT=0: the classic builder is in every engine; BuildKit needs buildx, which may be absent.
    let output = run(&args, &[("DOCKER_BUILDKIT", "0")]).await?;
    stdout_or_error(&args, &output)?;

    let tagged = async {
        docker(&["tag", &build_tag, image]).await?;
        docker(&["tag", &build_tag, &recipe_tag]).await
    }
    .await;
    // Drops the build's own tag. The image stays under its shared names; if another process's build took
    // them meanwhile, this one is deleted with its now unused layers (and an error, ignored, if in use).
    let _ = docker(&["rmi", &build_tag]).await;
    tagged.map(|_| ())
}

/// The host's busybox and its bytes, if it is there and statically linked (a `FROM scratch` image has no
/// libc).
fn find_static_busybox() -> anyhow::Result<(PathBuf, Vec<u8>)> {
    const HINT: &str =
        "the test images need a static busybox: run `apt-get install busybox-static`";
    let path = BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .with_context(|| format!("no busybox at {}; {HINT}", BUSYBOX_CANDIDATES.join(" or ")))?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    match elf_has_interpreter(&bytes) {
        Some(false) => Ok((path, bytes)),
        Some(true) => bail!("{} is dynamically linked; {HINT}", path.display()),
        None => bail!("{} is not an ELF executable; {HINT}", path.display()),
    }
}

/// Whether an ELF file asks for a dynamic loader (has a `PT_INTERP` program header); `None` if it is not a
/// well-formed ELF file.
fn elf_has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let is_64 = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match elf.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let uint = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at.checked_add(len)?)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Some(if little {
            bytes.iter().rev().fold(0, fold)
        } else {
            bytes.iter().fold(0, fold)
        })
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (uint(0x20, 8)?, uint(0x36, 2)?, uint(0x38, 2)?)
    } else {
        (uint(0x1c, 4)?, uint(0x2a, 2)?, uint(0x2c, 2)?)
    };
    let (phoff, phentsize) = (
        usize::try_from(phoff).ok()?,
        usize::try_from(phentsize).ok()?,
    );
    for i in 0..usize::try_from(phnum).ok()? {
        let p_type = uint(phoff.checked_add(i.checked_mul(phentsize)?)?, 4)?;
        if p_type == u64::from(PT_INTERP) {
            return Some(true);
        }
    }
    Some(false)
}

/// `rootfs/bin/busybox`, a symlink beside it for each applet (so `sh -c '...'` and `sleep` resolve), and a
/// world-writable `rootfs/tmp`.
fn write_rootfs(rootfs: &Path, busybox_path: &Path, busybox: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{symlink, PermissionsExt};

    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    let target = bin.join("busybox");
    std::fs::write(&target, busybox)?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;

    let applets = std::process::Command::new(busybox_path)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox_path.display()))?;
    let applets = String::from_utf8_lossy(&applets.stdout);
    // `sh` is the one the images rely on; the list normally has it already.
    for applet in applets.split_whitespace().chain(["sh"]) {
        let link = bin.join(applet);
        let plain_name = !applet.contains('/') && !applet.starts_with('.');
        if plain_name && applet != "busybox" && !link.exists() {
            symlink("busybox", &link).with_context(|| format!("linking {}", link.display()))?;
        }
    }

    let tmp = rootfs.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// FNV-1a, 64 bit: a stable hash of the recipe (std's hasher may change between Rust releases).
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish_hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_busybox_is_static() {
        let (path, bytes) = find_static_busybox().unwrap();
        assert!(path.ends_with("busybox"));
        assert!(!bytes.is_empty());
    }

    #[test]
    fn a_dynamic_executable_has_an_interpreter() {
        // Debian's coreutils are dynamically linked, and /bin/ls is on every machine these tests run on.
        let elf = std::fs::read("/bin/ls").unwrap();
        assert_eq!(elf_has_interpreter(&elf), Some(true));
        assert_eq!(elf_has_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(elf_has_interpreter(b"\x7fELF"), None);
    }

    #[test]
    fn the_recipe_hash_is_stable() {
        let mut h = Fnv64::new();
        h.write(b"a");
        assert_eq!(h.finish_hex(), "af63dc4c8601ec8c");
    }
}
