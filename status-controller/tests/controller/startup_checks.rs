//! What the built binary refuses at start, and how it says so: a state directory it cannot trust (open to
//! others, a symbolic link, already held by another controller), an `--api-url` that is not http(s), and a
//! notification URL it cannot use — named without its secret, on stderr and stdout alike.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use anyhow::Context;
use test_support::wait_until;
use tokio::process::Command;

use crate::helpers::{Binary, BINARY, PATIENCE};

/// The secret parts of the notification URLs below: none may be printed.
const SECRETS: [&str; 3] = ["hunter2", "SECRETKEY", "SECRETTOPIC"];

/// Runs the binary with `args` and `envs` (nothing of the test's own environment that configures it), on a
/// port of its own, until it exits; it must exit within [`PATIENCE`].
async fn run(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = Command::new(BINARY);
    for (key, _) in std::env::vars() {
        if key.starts_with("STATUS_CONTROLLER_") {
            command.env_remove(key);
        }
    }
    let output = command
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .envs(envs.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, output)
        .await
        .context("the binary did not exit")?
        .map_err(Into::into)
}

/// Everything it printed, stdout and stderr.
fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn assert_refused(output: &Output, needles: &[&str]) {
    let text = printed(output);
    assert_eq!(output.status.code(), Some(1), "exit code: {text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_open_to_others_or_behind_a_link_is_refused_with_the_fix(
) -> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let open = parent.path().join("open");
    std::fs::create_dir(&open)?;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777))?;
    let open_arg = open.to_str().context("utf-8")?;
    let output = run(&["--state-dir", open_arg], &[]).await?;
    assert_refused(
        &output,
        &[
            &format!("status-controller will not use the state directory {open_arg}"),
            "writable by its group and others (mode 0777)",
            &format!("chmod go-w {open_arg}"),
        ],
    );
    assert_eq!(
        std::fs::read_dir(&open)?.count(),
        0,
        "nothing written there, not even the lock"
    );

    let real = parent.path().join("real");
    std::fs::create_dir(&real)?;
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&real, &link)?;
    let link_arg = link.to_str().context("utf-8")?;
    let output = run(&[], &[("STATUS_CONTROLLER_STATE_DIR", link_arg)]).await?;
    assert_refused(
        &output,
        &[
            &format!("--state-dir {link_arg} is a symbolic link"),
            &real.display().to_string(),
        ],
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_controller_on_the_same_state_directory_is_refused() -> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("controller");
    let dir_arg = dir.to_str().context("utf-8")?;
    // Nothing answers at this status-api: the first controller holds, which is enough to hold the directory.
    let first = Binary::start(&["--api-url", "http://127.0.0.1:9", "--state-dir", dir_arg]).await?;
    let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "created private");

    let output = run(
        &["--api-url", "http://127.0.0.1:9", "--state-dir", dir_arg],
        &[],
    )
    .await?;
    assert_refused(
        &output,
        &[
            &format!(
                "another status-controller (pid {}) holds the lock",
                first.pid
            ),
            "give each its own --state-dir",
        ],
    );
    drop(first);
    Ok(())
}

/// Flags, environment, and what the refusal must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_notification_url_is_named_without_its_secret() -> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let url_file = parent.path().join("urls");
    std::fs::write(
        &url_file,
        "# the team's\nntfy+gopher://ntfy.example/SECRETTOPIC\n",
    )?;
    let url_file_arg = url_file.to_str().context("utf-8")?;
    let slack = "slack+ftp://bot:hunter2@hooks.slack.com/services/T0/B0/SECRETKEY?token=SECRETKEY";
    let cases: [Case; 4] = [
        (
            &["--notify-url", slack],
            &[],
            "URL number 1 (slack+ftp://hooks.slack.com/…) is refused: it uses the scheme `ftp`",
        ),
        (
            &[],
            &[(
                "STATUS_CONTROLLER_NOTIFY_URL",
                "https://ok.example/in https://bot:hunter2@hooks.example.com:8443/SECRETKEY?x#y teams+https://x.example/SECRETKEY",
            )],
            "URL number 3 (teams+https://x.example/…) is refused",
        ),
        (
            &["--notify-url", "hooks.example.com/SECRETKEY"],
            &[],
            "URL number 1 is refused: it is not an absolute URL",
        ),
        (
            &["--notify-url-file", url_file_arg],
            &[],
            "line 2: ntfy+gopher://ntfy.example/…: it uses the scheme `gopher`",
        ),
    ];
    for (args, envs, said) in cases {
        let output = run(args, envs).await?;
        let text = printed(&output);
        assert_refused(&output, &[said]);
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} printed: {text}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_url_must_be_http_or_https() -> anyhow::Result<()> {
    let output = run(&["--api-url", "ftp://status-api:8080"], &[]).await?;
    assert_refused(
        &output,
        &["uses ftp: status-controller speaks http or https to status-api"],
    );

    // https is accepted: the controller starts, and holds while nothing answers there.
    let binary = Binary::start(&["--api-url", "https://127.0.0.1:9"]).await?;
    let ready = binary.url("/ready");
    wait_until("the controller to say why it holds", PATIENCE, || async {
        let body: serde_json::Value = reqwest::get(&ready).await?.json().await?;
        let detail = body["checks"]["status_api"]["detail"].to_string();
        Ok(detail.contains("status-api at https://127.0.0.1:9/ is unreachable"))
    })
    .await?;
    Ok(())
}
