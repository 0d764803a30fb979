//! The state directory (`--state-dir`), and what status-api trusts in it. Whoever can write the snapshot decides
//! what the controller creates, so the directory and `snapshot.json` must belong to the user status-api runs
//! as (or to root) and be writable by nobody else; a directory status-api cannot write is used read-only (the
//! snapshot it holds is served, never replaced); and one status-api at a time writes there, the holder of an
//! advisory `flock` on `<state-dir>/.lock`. Files are replaced through a temporary file with a random name,
//! created exclusively and never through a symbolic link; temporaries a crash left behind are removed at start.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// The lock file, held by the one status-api that may write.
const LOCK_FILE: &str = ".lock";
/// How often a status-api waiting for the lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(500);
/// How many random temporary names are tried before a write gives up (a clash is one in 2^64).
const TEMPORARY_ATTEMPTS: usize = 4;

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
            let uid = effective_uid();
            let failed = |source| StateDirError::CreateFailed {
                path: path.to_path_buf(),
                uid,
                source,
            };
            fs::create_dir_all(path).map_err(failed)?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(failed)?;
        }
        Self::existing(path)
    }

    /// Checks an existing directory without changing anything: it must be a directory, owned by us or root,
    /// writable by nobody else. Whether we may write in it is decided here, without writing: a read-only
    /// directory holding a snapshot is served as it is.
    pub fn existing(path: &Path) -> Result<Self, StateDirError> {
        let uid = effective_uid();
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
        let writable = may_write(path);
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
        let failed = |source| StateDirError::LockFailed {
            path: lock_path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(failed)?;
        let access = match file.try_lock() {
            Ok(()) => {
                let pid = std::process::id().to_string();
                file.set_len(0).map_err(failed)?;
                file.write_all(pid.as_bytes()).map_err(failed)?;
                self.remove_stale_temporaries();
                *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
                tracing::info!(lock = %lock_path.display(), "state directory locked");
                Access::Held {
                    dir: self.path.clone(),
                }
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Access::Locked {
                    lock: lock_path.clone(),
                    holder: text.trim().parse().ok(),
                }
            }
            Err(fs::TryLockError::Error(source)) => return Err(failed(source)),
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
            Access::Held { .. } | Access::Locked { .. } => {
                let lock = self.path.join(LOCK_FILE);
                let holder = fs::read_to_string(&lock)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                Err(StateDirError::Locked { lock, holder })
            }
        }
    }

    /// The content of `name`; `None` when there is no such file. Reads only: never needs write access. The
    /// file must be a regular file (not a link), owned by us or root and writable by nobody else, checked on
    /// the file that was opened so it cannot be swapped in between.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateDirError> {
        let path = self.path.join(name);
        let failed = |source| StateDirError::ReadFailed {
            path: path.clone(),
            source,
        };
        let mut file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
                return Err(StateDirError::Symlink { path })
            }
            Err(source) => return Err(failed(source)),
        };
        let meta = file.metadata().map_err(failed)?;
        if !meta.is_file() {
            return Err(StateDirError::Untrusted {
                path: path.clone(),
                problem: "not a regular file".into(),
                fix: format!("move it aside (mv {0} {0}.bad)", path.display()),
            });
        }
        trust(&path, meta.uid(), meta.mode(), self.uid)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(failed)?;
        Ok(Some(bytes))
    }

    /// Replaces `name` with `body`, atomically: a temporary file with a random name is created exclusively
    /// (never through a symbolic link), mode 0600, written and fsynced, renamed over `name`, and the
    /// directory fsynced — a crash at any point leaves the old file or the new one, never half.
    pub fn replace(&self, name: &str, body: &[u8]) -> Result<(), StateDirError> {
        self.writable()?;
        let target = self.path.join(name);
        let failed = |source| StateDirError::WriteFailed {
            path: target.clone(),
            source,
        };
        let (temporary, mut file) = self.create_temporary(name).map_err(failed)?;
        let result = (|| {
            file.write_all(body)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temporary, &target)?;
            fs::File::open(&self.path)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        result.map_err(failed)
    }

    fn create_temporary(&self, name: &str) -> std::io::Result<(PathBuf, fs::File)> {
        let mut last = None;
        for _ in 0..TEMPORARY_ATTEMPTS {
            let path = self
                .path
                .join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(file) => return Ok((path, file)),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name was free")))
    }

    /// Removes `.<name>.*.tmp` files: what a write interrupted by a crash (or `kill -9`) left behind. Only the
    /// lock holder calls this, so no write of another status-api is in flight.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if is_temporary(name.as_bytes()) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a temporary file an interrupted write left")
                    }
                    Err(err) => {
                        tracing::warn!(path = %path.display(), error = %err, "cannot remove a stale temporary file")
                    }
                }
            }
        }
    }
}

/// Whether `name` is one of our temporary files (`.<file>.<random>.tmp`).
fn is_temporary(name: &[u8]) -> bool {
    name.starts_with(b".") && name.ends_with(b".tmp") && name.len() > b"..tmp".len()
}

/// Checks that a file or directory status-api reads its baseline from is owned by `uid` (or root, who can
/// write anything anyway) and writable by neither its group nor others; the error names what to run.
fn trust(path: &Path, owner: u32, mode: u32, uid: u32) -> Result<(), StateDirError> {
    if owner != uid && owner != 0 {
        return Err(StateDirError::Untrusted {
            path: path.to_path_buf(),
            problem: format!("owned by uid {owner}, but status-api runs as uid {uid}"),
            fix: format!("chown {uid} {}", path.display()),
        });
    }
    let foreign_write = mode & 0o022;
    if foreign_write != 0 {
        let who = match foreign_write {
            0o020 => "its group",
            0o002 => "others",
            _ => "its group and others",
        };
        return Err(StateDirError::Untrusted {
            path: path.to_path_buf(),
            problem: format!("writable by {who} (mode {:04o})", mode & 0o7777),
            fix: format!("chmod go-w {}", path.display()),
        });
    }
    Ok(())
}

/// The effective uid status-api runs as.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Whether this process may create and rename files in `dir` (access(2) with the effective ids, which also
/// sees a read-only mount), without writing anything.
fn may_write(dir: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    #[allow(unsafe_code)]
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

#[cfg(test)]
mod tests {
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
    fn temporary_names_are_recognised() {
        assert!(is_temporary(b".snapshot.json.0123456789abcdef.tmp"));
        assert!(is_temporary(b".snapshot.json.4242.tmp"));
        assert!(!is_temporary(b"snapshot.json"));
        assert!(!is_temporary(b".lock"));
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
