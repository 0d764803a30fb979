//! A test's own corner of the shared engine: every container it makes carries `dockstate.test=<id>`, the
//! servers under test run with `--scope dockstate.test=<id>`, and dropping the scope removes what carries the
//! label, even when the test panics.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::cli::docker;

/// The label key that marks test containers; the value is a [`TestScope`]'s id.
pub const TEST_LABEL_KEY: &str = "dockstate.test";

/// A unique label for one test, and the guard that removes its containers, networks and volumes.
///
/// Declare it before anything that may create containers under it (the server under test, say): Rust drops
/// locals in reverse order, so the scope is then cleaned up last, when nothing can add to it any more.
#[derive(Debug)]
pub struct TestScope {
    /// `t` and 12 hex digits: short enough for container names, random enough for parallel tests.
    id: String,
}

impl TestScope {
    /// A scope with a fresh random id such as `t3f9a0c41b2de`.
    pub fn new() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        Self {
            id: format!("t{}", &hex[..12]),
        }
    }

    /// The scope's id, the value of its label.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `dockstate.test=<id>`: the label its containers carry.
    pub fn label(&self) -> String {
        format!("{TEST_LABEL_KEY}={}", self.id)
    }

    /// The same `dockstate.test=<id>`, spelled for a server's `--scope` flag.
    pub fn scope(&self) -> String {
        self.label()
    }

    /// `<id>-<suffix>`: a container name no other scope uses.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// `["--label", "dockstate.test=<id>"]`, for tests that build their own docker commands (a network, a
    /// volume) and want them cleaned up with the scope.
    pub fn labels_args(&self) -> Vec<String> {
        vec!["--label".to_owned(), self.label()]
    }

    /// `docker run -d --label dockstate.test=<id> --name <id>-<suffix> <extra_args...> <image>`, with the
    /// image's own command; returns the full container id.
    pub async fn run(
        &self,
        suffix: &str,
        image: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<String> {
        self.container("run", suffix, image, extra_args, &[]).await
    }

    /// Like [`run`](Self::run), with `cmd` after the image in place of the image's command.
    pub async fn run_cmd(
        &self,
        suffix: &str,
        image: &str,
        extra_args: &[&str],
        cmd: &[&str],
    ) -> anyhow::Result<String> {
        self.container("run", suffix, image, extra_args, cmd).await
    }

    /// `docker create` with the same arguments as [`run`](Self::run): a container left in the `created` state.
    pub async fn create(
        &self,
        suffix: &str,
        image: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<String> {
        self.container("create", suffix, image, extra_args, &[])
            .await
    }

    /// Like [`create`](Self::create), with `cmd` after the image in place of the image's command.
    pub async fn create_cmd(
        &self,
        suffix: &str,
        image: &str,
        extra_args: &[&str],
        cmd: &[&str],
    ) -> anyhow::Result<String> {
        self.container("create", suffix, image, extra_args, cmd)
            .await
    }

    async fn container(
        &self,
        verb: &str,
        suffix: &str,
        image: &str,
        extra_args: &[&str],
        cmd: &[&str],
    ) -> anyhow::Result<String> {
        let label = self.label();
        let name = self.name(suffix);
        let mut args = vec![verb];
        if verb == "run" {
            args.push("-d");
        }
        args.extend(["--label", &label, "--name", &name]);
        args.extend_from_slice(extra_args);
        args.push(image);
        args.extend_from_slice(cmd);
        docker(&args).await
    }

    /// Removes every container, network and volume carrying this scope's label, and nothing else. Runs in
    /// `Drop`, possibly while a test panics, so it reports problems on stderr instead of failing.
    fn remove_labelled(&self) {
        let filter = format!("label={}", self.label());
        // Containers first: networks and volumes in use cannot be removed.
        let kinds: [(&[&str], &[&str]); 3] = [
            (&["ps", "-aq"], &["rm", "-f", "-v"]),
            (&["network", "ls", "-q"], &["network", "rm"]),
            (&["volume", "ls", "-q"], &["volume", "rm", "-f"]),
        ];
        for (list, remove) in kinds {
            let Some(ids) = docker_sync(&[list, &["--filter", &filter]].concat()) else {
                continue;
            };
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                docker_sync(&[remove, &ids].concat());
            }
        }
    }
}

impl Default for TestScope {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestScope {
    fn drop(&mut self) {
        self.remove_labelled();
    }
}

/// Runs `docker <args>` synchronously for cleanup; `None` (after a note on stderr) if it did not succeed.
/// Never panics, not even when stderr is closed.
fn docker_sync(args: &[&str]) -> Option<String> {
    let result = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output();
    let problem = match result {
        Ok(out) if out.status.success() => {
            return Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(out) => format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => e.to_string(),
    };
    let _ = writeln!(
        std::io::stderr(),
        "test-support cleanup: `docker {}` failed: {problem}",
        args.join(" ")
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_unique_and_labelled() {
        let (a, b) = (TestScope::new(), TestScope::new());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 13);
        assert!(a.id().starts_with('t'));
        assert!(a.id()[1..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.label(), format!("dockstate.test={}", a.id()));
        assert_eq!(a.scope(), a.label());
        assert_eq!(a.name("web"), format!("{}-web", a.id()));
        assert_eq!(a.labels_args(), ["--label".to_owned(), a.label()]);
        // Nothing was created, so dropping must only list: it runs docker, but removes nothing.
    }
}
