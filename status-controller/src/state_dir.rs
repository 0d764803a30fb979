//! The controller's state directory (`--state-dir`): where it keeps its maintenance hold (`hold.json`) and its
//! action journal (`actions.jsonl`). Whoever can write there can hold the controller for a day or rewrite what
//! it says it did, so the directory is checked like status-api's before anything in it is read: a real
//! directory (not a symbolic link), owned by the user the controller runs as (or root), writable by nobody
//! else, and — for the loop — writable by the controller and held by one controller at a time (an advisory
//! `flock` on `<state-dir>/.lock`). The mechanics are shared with status-api ([`shared::runtime::state_dir`]);
//! this module says what they mean here.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shared::runtime::state_dir::{self, Lock, User, LOCK_FILE};

/// Whose state directory this is, in the words of the messages.
const PROGRAM: &str = "status-controller";

/// Why the state directory cannot be used; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ControllerDirError {
    #[error(
        "cannot create the state directory {path}: {source}. Create it for the user status-controller runs \
         as (install -d -m 0700 -o {uid} {path}), or point --state-dir elsewhere"
    )]
    CreateFailed {
        path: PathBuf,
        uid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot inspect the state directory {path}: {source}. Check that --state-dir names a directory \
         status-controller can reach"
    )]
    InspectFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--state-dir {path} is a symbolic link (to {target}): status-controller uses only a real directory, so \
         that what it trusts cannot be swapped under it. Point --state-dir at the directory itself"
    )]
    Symlink { path: PathBuf, target: String },
    #[error(
        "--state-dir {path} is not a directory: point it at a directory status-controller may write \
         (install -d -m 0700 <dir>)"
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "status-controller will not use the state directory {path}: it is {problem}, and whoever can write \
         there can hold the controller (hold.json) or rewrite its action journal. Fix: {fix}"
    )]
    Untrusted {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error(
        "the state directory {path} is not writable for uid {uid}: status-controller keeps its maintenance \
         hold and action journal there. Make it writable (chown {uid} {path} && chmod 0700 {path}, or mount \
         it read-write), or start without --state-dir"
    )]
    NotWritable { path: PathBuf, uid: u32 },
    #[error(
        "another status-controller ({}) holds the lock {lock} on this state directory: two controllers \
         would heal the same containers and write the same journal. Stop it, or give each its own \
         --state-dir",
        holder.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
    )]
    Locked { lock: PathBuf, holder: Option<u32> },
    #[error(
        "cannot lock {path}: {source}. Check that --state-dir is on a local filesystem status-controller can \
         write"
    )]
    LockFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A checked state directory; for the loop, also the holder of its lock for as long as it lives.
#[derive(Debug)]
pub struct ControllerDir {
    path: PathBuf,
    /// Whom the checks were made for, whom the files in it must belong to too.
    user: User,
    /// The open lock file; dropping it lets go of the lock.
    lock: Option<fs::File>,
}

impl ControllerDir {
    /// For the loop: creates the directory (mode 0700) when it is missing, checks it ([`Self::inspect`]),
    /// refuses it unless the controller may write there, takes its lock (refused while another controller
    /// holds it), and removes the temporary files an interrupted write left behind.
    pub fn take(path: &Path) -> Result<Self, ControllerDirError> {
        let uid = state_dir::effective_uid();
        if fs::symlink_metadata(path).is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound) {
            state_dir::create_private(path).map_err(|source| ControllerDirError::CreateFailed {
                path: path.to_path_buf(),
                uid,
                source,
            })?;
        }
        let mut dir = Self::inspect(path)?;
        if !state_dir::may_write(path) {
            return Err(ControllerDirError::NotWritable {
                path: path.to_path_buf(),
                uid,
            });
        }
        let lock_path = path.join(LOCK_FILE);
        match state_dir::try_lock(path) {
            Ok(Lock::Held(file)) => dir.lock = Some(file),
            Ok(Lock::Busy { holder }) => {
                return Err(ControllerDirError::Locked {
                    lock: lock_path,
                    holder,
                })
            }
            Err(source) => {
                return Err(ControllerDirError::LockFailed {
                    path: lock_path,
                    source,
                })
            }
        }
        state_dir::remove_stale_temporaries(path);
        tracing::info!(path = %path.display(), "state directory locked");
        Ok(dir)
    }

    /// Checks an existing directory without changing anything or taking its lock (for `--once`, which may
    /// run beside a controller that holds it): not a symbolic link, a directory, owned by us or root,
    /// writable by nobody else.
    pub fn inspect(path: &Path) -> Result<Self, ControllerDirError> {
        let user = User::current(PROGRAM);
        let meta =
            fs::symlink_metadata(path).map_err(|source| ControllerDirError::InspectFailed {
                path: path.to_path_buf(),
                source,
            })?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(path)
                .map_or_else(|_| "?".to_owned(), |target| target.display().to_string());
            return Err(ControllerDirError::Symlink {
                path: path.to_path_buf(),
                target,
            });
        }
        if !meta.is_dir() {
            return Err(ControllerDirError::NotADirectory {
                path: path.to_path_buf(),
            });
        }
        state_dir::trust(path, meta.uid(), meta.mode(), user).map_err(|distrust| {
            ControllerDirError::Untrusted {
                path: path.to_path_buf(),
                problem: distrust.problem,
                fix: distrust.fix,
            }
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            user,
            lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whom the files in it must belong to (or root).
    pub fn user(&self) -> User {
        self.user
    }

    /// Whether this controller holds the lock (taken for the loop, never for `--once`).
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_directory_is_created_private_and_locked() {
        let parent = tempfile::tempdir().expect("tempdir");
        let path = parent.path().join("controller");
        let dir = ControllerDir::take(&path).expect("created");
        assert!(dir.holds_lock());
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            state_dir::lock_holder(&path),
            Some(std::process::id()),
            "the lock names its holder"
        );
    }

    #[test]
    fn a_second_controller_is_refused_until_the_first_lets_go() {
        let parent = tempfile::tempdir().expect("tempdir");
        let first = ControllerDir::take(parent.path()).expect("first");
        let err = ControllerDir::take(parent.path()).expect_err("second");
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "another status-controller (pid {}) holds the lock",
                std::process::id()
            )),
            "{message}"
        );
        assert!(
            message.contains("give each its own --state-dir"),
            "{message}"
        );
        ControllerDir::inspect(parent.path()).expect("--once does not need the lock");
        drop(first);
        ControllerDir::take(parent.path()).expect("free again");
    }

    #[test]
    fn a_world_writable_directory_is_refused_with_the_chmod_that_fixes_it() {
        let parent = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        for err in [
            ControllerDir::take(parent.path()).expect_err("too open"),
            ControllerDir::inspect(parent.path()).expect_err("too open"),
        ] {
            let message = err.to_string();
            assert!(
                message.contains("writable by its group and others (mode 0777)"),
                "{message}"
            );
            assert!(
                message.contains(&format!("chmod go-w {}", parent.path().display())),
                "{message}"
            );
        }
        assert_eq!(
            fs::read_dir(parent.path()).expect("lists").count(),
            0,
            "nothing written, not even the lock"
        );
    }

    #[test]
    fn a_symlink_or_a_file_is_refused() {
        let parent = tempfile::tempdir().expect("tempdir");
        let real = parent.path().join("real");
        fs::create_dir(&real).expect("mkdir");
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("links");
        let message = ControllerDir::take(&link).expect_err("a link").to_string();
        assert!(message.contains("is a symbolic link"), "{message}");
        assert!(message.contains(&real.display().to_string()), "{message}");

        let file = parent.path().join("file");
        fs::write(&file, b"").expect("writes");
        let message = ControllerDir::take(&file).expect_err("a file").to_string();
        assert!(message.contains("not a directory"), "{message}");
    }

    #[test]
    fn stale_temporaries_are_removed_when_the_lock_is_taken() {
        let parent = tempfile::tempdir().expect("tempdir");
        let stale = parent.path().join(".hold.json.0123456789abcdef.tmp");
        fs::write(&stale, b"half a hold").expect("writes");
        ControllerDir::inspect(parent.path()).expect("checks");
        assert!(stale.exists(), "inspecting changes nothing");
        let _dir = ControllerDir::take(parent.path()).expect("locks");
        assert!(!stale.exists());
    }
}
