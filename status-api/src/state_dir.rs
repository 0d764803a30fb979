//! The state directory (`--state-dir`), and what status-api trusts in it. Whoever can write the snapshot decides
//! what the controller creates, so the directory and `snapshot.json` must belong to the user status-api runs
//! as (or to root) and be writable by nobody else; a directory status-api cannot write is used read-only (the
//! snapshot it holds is served, never replaced); and one status-api at a time writes there, the holder of an
//! advisory `flock` on `<state-dir>/.lock`. Files are replaced through a temporary file with a random name,
//! created exclusively and never through a symbolic link; temporaries a crash left behind are removed at start.
//! The mechanics are the ones status-controller's state directory uses too ([`shared::runtime::state_dir`]);
//! this module says what they mean for status-api.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use shared::runtime::state_dir::{self, Distrust, Lock, OpenError, User, LOCK_FILE};
use tokio::sync::watch;

/// Whose state directory this is, in the words of the messages.
const PROGRAM: &str = "status-api";
/// How often a status-api waiting for the lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(500);

/// What this status-api may do in its state directory, as readiness and `POST /snapshot` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// It holds the lock: it loads, and writes new snapshots.
    Held { dir: PathBuf },
    /// The directory is not writable for it: it serves the snapshot it loaded and writes nothing.
    ReadOnly { dir: PathBuf, uid: u32 },
    /// Another status-api holds the lock: this one waits, not ready, and takes over when it exits.
    Locked { lock: PathBuf, holder: Option<u32> },
}

impl Access {
    /// Whether readiness passes, and why, in words.
    pub fn check(&self) -> (bool, String) {
        match self {
            Self::Held { dir } => (true, format!("{} is ours (lock held)", dir.display())),
            Self::ReadOnly { dir, uid } => (
                true,
                format!(
                    "{} is read-only for uid {uid}: the loaded snapshot is served, POST /snapshot is refused",
                    dir.display()
                ),
            ),
            Self::Locked { lock, holder } => (
                false,
                format!(
                    "another status-api ({}) holds the lock {}: this one waits and takes over when it exits",
                    holder_in_words(*holder),
                    lock.display()
                ),
            ),
        }
    }
}

fn holder_in_words(holder: Option<u32>) -> String {
    holder.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
}

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error(
        "cannot create the state directory {path}: {source}. Create it for the user status-api runs as \
         (install -d -m 0700 -o {uid} {path}), or point --state-dir at a directory that user owns"
    )]
    CreateFailed {
        path: PathBuf,
        uid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot inspect {path}: {source}. Check that --state-dir names a directory status-api can reach")]
    InspectFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "status-api will not use {path}: it is {problem}, and whoever can write there decides what the \
         controller creates. Fix: {fix}"
    )]
    Untrusted {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error(
        "the state directory {path} is not writable for uid {uid} and holds no snapshot.json: there is no \
         baseline to serve and none can be taken. Make it writable (chown {uid} {path} && chmod 0700 {path}, \
         or mount it read-write), or put a snapshot.json there"
    )]
    ReadOnlyAndEmpty { path: PathBuf, uid: u32 },
    #[error(
        "the state directory {path} is read-only for status-api (uid {uid}): it serves the snapshot it \
         loaded but cannot write a new one. To re-baseline, make it writable (chown {uid} {path} && chmod \
         0700 {path}, or mount it read-write) and restart status-api"
    )]
    ReadOnly { path: PathBuf, uid: u32 },
    #[error(
        "another status-api ({}) holds the lock {lock} on this state directory, and only the holder writes \
         the snapshot. This one takes over when that one exits; stop it, or give each status-api its own \
         --state-dir",
        holder_in_words(*holder)
    )]
    Locked { lock: PathBuf, holder: Option<u32> },
    #[error("cannot lock {path}: {source}. Check that --state-dir is on a local filesystem status-api can write")]
    LockFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot read {path}: {source}. Fix its permissions, or point --state-dir at the directory that holds \
         it"
    )]
    ReadFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link: status-api reads only a regular file it owns. Replace the link with the \
         file it points to (cp --remove-destination \"$(readlink -f {path})\" {path})"
    )]
    Symlink { path: PathBuf },
    #[error(
        "cannot write {path}: {source}. Check the free space and the permissions of --state-dir"
    )]
    WriteFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A state directory whose owner and mode passed the checks.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// The effective uid status-api runs as.
    uid: u32,
    writable: bool,
    /// The open lock file while this status-api holds the lock; closing it releases the lock.
    lock: Mutex<Option<fs::File>>,
    access: watch::Sender<Access>,
}

impl StateDir {
    /// Creates the directory (mode 0700) when it is missing, then checks it ([`StateDir::existing`]).
    pub fn prepare(path: &Path) -> Result<Self, StateDirError> {
        if !path.exists() {
            state_dir::create_private(path).map_err(|source| StateDirError::CreateFailed {
                path: path.to_path_buf(),
                uid: state_dir::effective_uid(),
                source,
            })?;
        }
        Self::existing(path)
    }

    /// Checks an existing directory without changing anything: it must be a directory, owned by us or root,
    /// writable by nobody else. Whether we may write in it is decided here, without writing: a read-only
    /// directory holding a snapshot is served as it is.
    pub fn existing(path: &Path) -> Result<Self, StateDirError> {
        let uid = state_dir::effective_uid();
        let meta = fs::metadata(path).map_err(|source| StateDirError::InspectFailed {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(StateDirError::Untrusted {
                path: path.to_path_buf(),
                problem: "not a directory".into(),
                fix: "point --state-dir at a directory (install -d -m 0700 <dir>)".into(),
            });
        }
        trust(path, meta.uid(), meta.mode(), uid)?;
        let writable = state_dir::may_write(path);
        let access = if writable {
            // Nobody holds the lock until `try_lock` says so: until then this status-api waits.
            Access::Locked {
                lock: path.join(LOCK_FILE),
                holder: None,
            }
        } else {
            Access::ReadOnly {
                dir: path.to_path_buf(),
                uid,
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            uid,
            writable,
            lock: Mutex::new(None),
            access: watch::Sender::new(access),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The effective uid the checks were made for.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// What this status-api may do here now.
    pub fn access(&self) -> Access {
        self.access.borrow().clone()
    }

    /// Told of every change of [`StateDir::access`].
    pub fn subscribe(&self) -> watch::Receiver<Access> {
        self.access.subscribe()
    }

    /// Takes the lock if it is free. Once held, our pid is written into the lock file for the operator and the
    /// temporary files an interrupted write left behind are removed. A read-only directory takes no lock.
    pub fn try_lock(&self) -> Result<Access, StateDirError> {
        if !self.writable || self.holds_lock() {
            return Ok(self.access());
        }
        let lock_path = self.path.join(LOCK_FILE);
        let access = match state_dir::try_lock(&self.path) {
            Ok(Lock::Held(file)) => {
                state_dir::remove_stale_temporaries(&self.path);
                *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
                tracing::info!(lock = %lock_path.display(), "state directory locked");
                Access::Held {
                    dir: self.path.clone(),
                }
            }
            Ok(Lock::Busy { holder }) => Access::Locked {
                lock: lock_path,
                holder,
            },
            Err(source) => {
                return Err(StateDirError::LockFailed {
                    path: lock_path,
                    source,
                })
            }
        };
        self.access.send_if_modified(|now| {
            let changed = *now != access;
            *now = access.clone();
            changed
        });
        Ok(access)
    }

    /// Tries the lock every half second until this status-api holds it (or the directory is read-only).
    pub async fn wait_for_lock(&self) -> Result<(), StateDirError> {
        loop {
            if !matches!(self.try_lock()?, Access::Locked { .. }) {
                return Ok(());
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    /// Lets go of the lock (a waiting status-api takes over at once).
    pub fn release(&self) {
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn holds_lock(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Refuses unless this status-api may write here, with the reason `POST /snapshot` answers.
    pub fn writable(&self) -> Result<(), StateDirError> {
        match self.access() {
            Access::Held { .. } if self.holds_lock() => Ok(()),
            Access::ReadOnly { .. } => Err(StateDirError::ReadOnly {
                path: self.path.clone(),
                uid: self.uid,
            }),
            Access::Held { .. } | Access::Locked { .. } => Err(StateDirError::Locked {
                lock: self.path.join(LOCK_FILE),
                holder: state_dir::lock_holder(&self.path),
            }),
        }
    }

    /// The content of `name`; `None` when there is no such file. Reads only: never needs write access. The
    /// file must be a regular file (not a link), owned by us or root and writable by nobody else, checked on
    /// the file that was opened so it cannot be swapped in between.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateDirError> {
        let path = self.path.join(name);
        let file = match state_dir::open_to_read(
            &path,
            User {
                uid: self.uid,
                program: PROGRAM,
            },
        ) {
            Ok(None) => return Ok(None),
            Ok(Some(file)) => file,
            Err(OpenError::Symlink) => return Err(StateDirError::Symlink { path }),
            Err(OpenError::Untrusted(Distrust { problem, fix })) => {
                return Err(StateDirError::Untrusted { path, problem, fix })
            }
            Err(OpenError::Io(source)) => return Err(StateDirError::ReadFailed { path, source }),
        };
        let mut bytes = Vec::new();
        (&file)
            .read_to_end(&mut bytes)
            .map_err(|source| StateDirError::ReadFailed { path, source })?;
        Ok(Some(bytes))
    }

    /// Replaces `name` with `body`, atomically ([`state_dir::replace`]): a crash at any point leaves the old
    /// file or the new one, never half.
    pub fn replace(&self, name: &str, body: &[u8]) -> Result<(), StateDirError> {
        self.writable()?;
        state_dir::replace(&self.path, name, body).map_err(|source| StateDirError::WriteFailed {
            path: self.path.join(name),
            source,
        })
    }
}

/// Checks that a file or directory status-api reads its baseline from is owned by `uid` (or root) and
/// writable by neither its group nor others; the error names what to run.
fn trust(path: &Path, owner: u32, mode: u32, uid: u32) -> Result<(), StateDirError> {
    state_dir::trust(
        path,
        owner,
        mode,
        User {
            uid,
            program: PROGRAM,
        },
    )
    .map_err(|Distrust { problem, fix }| StateDirError::Untrusted {
        path: path.to_path_buf(),
        problem,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_directory_of_another_user_is_refused_with_the_chown_that_fixes_it() {
        let err = trust(Path::new("/srv/state"), 1234, 0o40700, 10001).expect_err("not ours");
        let message = err.to_string();
        assert!(message.contains("/srv/state"), "{message}");
        assert!(
            message.contains("owned by uid 1234, but status-api runs as uid 10001"),
            "{message}"
        );
        assert!(message.contains("chown 10001 /srv/state"), "{message}");
    }

    #[test]
    fn group_or_other_write_is_refused_with_the_chmod_that_fixes_it() {
        for (mode, who) in [
            (0o770, "its group"),
            (0o702, "others"),
            (0o777, "its group and others"),
        ] {
            let err = trust(Path::new("/srv/state"), 10001, mode, 10001).expect_err("too open");
            let message = err.to_string();
            assert!(
                message.contains(&format!("writable by {who} (mode {mode:04o})")),
                "{message}"
            );
            assert!(message.contains("chmod go-w /srv/state"), "{message}");
        }
    }

    #[test]
    fn ours_or_roots_and_private_is_trusted() {
        trust(Path::new("/srv/state"), 10001, 0o700, 10001).expect("ours");
        trust(Path::new("/srv/state"), 10001, 0o755, 10001).expect("readable by others is fine");
        trust(Path::new("/srv/state"), 0, 0o755, 10001).expect("root's");
    }

    #[test]
    fn one_holder_at_a_time_and_the_second_learns_its_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = StateDir::prepare(dir.path()).expect("trusted");
        let second = StateDir::prepare(dir.path()).expect("trusted");
        assert!(matches!(
            first.try_lock().expect("locks"),
            Access::Held { .. }
        ));
        let waiting = second.try_lock().expect("answers");
        assert_eq!(
            waiting,
            Access::Locked {
                lock: dir.path().join(LOCK_FILE),
                holder: Some(std::process::id())
            }
        );
        let err = second.writable().expect_err("not the holder");
        assert!(matches!(err, StateDirError::Locked { .. }), "{err}");
        assert!(second.replace("snapshot.json", b"{}").is_err());
        first.release();
        assert!(matches!(
            second.try_lock().expect("locks"),
            Access::Held { .. }
        ));
        second.replace("snapshot.json", b"{}").expect("writes");
    }

    #[test]
    fn the_lock_holder_removes_what_a_crash_left_and_writes_0600_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(".snapshot.json.1234.tmp");
        fs::write(&stale, b"half a snapshot").expect("writes");
        let state = StateDir::prepare(dir.path()).expect("trusted");
        state.try_lock().expect("locks");
        assert!(!stale.exists(), "the stale temporary file is gone");
        state.replace("snapshot.json", b"new").expect("writes");
        let target = dir.path().join("snapshot.json");
        assert_eq!(fs::read(&target).expect("reads"), b"new");
        let mode = fs::metadata(&target).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(".lock"), "snapshot.json".into()]
        );
    }

    #[test]
    fn a_linked_or_group_writable_file_is_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::prepare(dir.path()).expect("trusted");
        assert_eq!(state.read("snapshot.json").expect("reads"), None);
        let file = dir.path().join("snapshot.json");
        fs::write(&file, b"{}").expect("writes");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o660)).expect("chmod");
        let message = state
            .read("snapshot.json")
            .expect_err("group-writable")
            .to_string();
        assert!(
            message.contains("writable by its group (mode 0660)"),
            "{message}"
        );
        assert!(
            message.contains(&format!("chmod go-w {}", file.display())),
            "{message}"
        );

        let elsewhere = dir.path().join("elsewhere.json");
        fs::rename(&file, &elsewhere).expect("moves");
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&elsewhere, &file).expect("links");
        let err = state.read("snapshot.json").expect_err("a link");
        assert!(matches!(err, StateDirError::Symlink { .. }), "{err}");
        assert_eq!(
            state.read("elsewhere.json").expect("reads"),
            Some(b"{}".to_vec())
        );
    }

    #[test]
    fn a_group_writable_directory_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o770)).expect("chmod");
        let err = StateDir::prepare(dir.path()).expect_err("too open");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).expect("lists").count(), 0);
    }
}
