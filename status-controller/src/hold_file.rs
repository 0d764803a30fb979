//! The maintenance hold as it is kept on disk, `<state-dir>/hold.json`, so that a restart of the controller
//! does not end a hold before its time. Written atomically (a temporary file in the same directory, created
//! exclusively and never through a link, fsynced, renamed over the old one, the directory fsynced), so a crash
//! leaves the old hold or the new one, never half of one. Read only from a regular file the controller's user
//! owns and nobody else can write. A file that cannot be read or makes no sense is reported as such, never
//! replaced on its own: only the operator knows what was meant.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::runtime::state_dir::{self, OpenError, User};

/// The longest hold there is: a maintenance window is hours, never days.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 60 * 60);

/// The file's name inside `--state-dir`.
pub const FILE_NAME: &str = "hold.json";

/// A maintenance hold: no action until `until`, set by `by` for `reason`. The same shape in the file and in
/// `/hold`, `/health` and `/actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceHold {
    /// Why, in the operator's words.
    pub reason: String,
    /// Who: the `by` the operator gave, else the address the request came from.
    pub by: String,
    pub set_at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl MaintenanceHold {
    /// Whether it has run out at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.until
    }
}

/// Why the hold file could not serve.
#[derive(Debug, thiserror::Error)]
pub enum HoldFileError {
    /// Said once, in this message: `problem` is no `#[source]`.
    #[error(
        "the maintenance hold file {path} is not to be trusted: {problem}; status-controller reads only a \
         regular file its user owns and nobody else can write"
    )]
    Untrusted { path: PathBuf, problem: OpenError },
    #[error("cannot read the maintenance hold file {path}: {source}")]
    ReadFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the maintenance hold file {path} is damaged: {problem}")]
    Damaged { path: PathBuf, problem: String },
    #[error(
        "cannot write the maintenance hold file {path}: {source}. Check the free space and that the user \
         status-controller runs as may write --state-dir"
    )]
    WriteFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot remove the maintenance hold file {path}: {source}. Check that the user status-controller \
         runs as may write --state-dir"
    )]
    RemoveFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `<state-dir>/hold.json`.
#[derive(Debug, Clone)]
pub struct HoldFile {
    dir: PathBuf,
    path: PathBuf,
    /// Whom the file must belong to (or root).
    user: User,
}

impl HoldFile {
    /// The hold file in the state directory `dir` (checked by [`ControllerDir`]), which must belong to
    /// `user`.
    ///
    /// [`ControllerDir`]: crate::state_dir::ControllerDir
    pub fn in_dir(dir: &Path, user: User) -> Self {
        Self {
            dir: dir.to_path_buf(),
            path: dir.join(FILE_NAME),
            user,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hold in the file; `None` when there is no file. A file that does not parse, or holds a hold no
    /// controller can have set (its end before its start, longer than [`MAX_HOLD`], or ending more than
    /// [`MAX_HOLD`] after `now`), is [`HoldFileError::Damaged`]. An expired hold is returned as it is: the
    /// caller decides what to say about it.
    pub fn load(&self, now: DateTime<Utc>) -> Result<Option<MaintenanceHold>, HoldFileError> {
        let read_failed = |source| HoldFileError::ReadFailed {
            path: self.path.clone(),
            source,
        };
        let file = match state_dir::open_to_read(&self.path, self.user) {
            Ok(None) => return Ok(None),
            Ok(Some(file)) => file,
            Err(OpenError::Io(source)) => return Err(read_failed(source)),
            Err(problem) => {
                return Err(HoldFileError::Untrusted {
                    path: self.path.clone(),
                    problem,
                })
            }
        };
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes).map_err(read_failed)?;
        let damaged = |problem: String| HoldFileError::Damaged {
            path: self.path.clone(),
            problem,
        };
        let hold: MaintenanceHold = serde_json::from_slice(&bytes)
            .map_err(|err| damaged(format!("it is not a hold status-controller wrote ({err})")))?;
        let max = chrono::Duration::from_std(MAX_HOLD).unwrap_or(chrono::Duration::MAX);
        if hold.until <= hold.set_at {
            return Err(damaged(format!(
                "it ends ({}) before it starts ({})",
                hold.until.to_rfc3339(),
                hold.set_at.to_rfc3339()
            )));
        }
        if hold.until - hold.set_at > max || hold.until - now > max {
            return Err(damaged(format!(
                "it lasts until {}, more than 24 h: no hold may be that long",
                hold.until.to_rfc3339()
            )));
        }
        Ok(Some(hold))
    }

    /// Replaces the file with `hold`, atomically, mode 0600.
    pub fn save(&self, hold: &MaintenanceHold) -> Result<(), HoldFileError> {
        let failed = |source| HoldFileError::WriteFailed {
            path: self.path.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(hold).map_err(|err| failed(err.into()))?;
        state_dir::replace(&self.dir, FILE_NAME, &body).map_err(failed)
    }

    /// Removes the file; no file is fine.
    pub fn remove(&self) -> Result<(), HoldFileError> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(HoldFileError::RemoveFailed {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        state_dir::sync_dir(&self.dir).map_err(|source| HoldFileError::RemoveFailed {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The hold file in `dir`, for this process's user.
    fn in_dir(dir: &Path) -> HoldFile {
        HoldFile::in_dir(dir, User::current("status-controller"))
    }

    fn hold(set_at: DateTime<Utc>, lasts: chrono::Duration) -> MaintenanceHold {
        MaintenanceHold {
            reason: "kernel update".into(),
            by: "alice".into(),
            set_at,
            until: set_at + lasts,
        }
    }

    #[test]
    fn a_hold_round_trips_through_the_file_atomically_and_privately() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = crate::state_dir::ControllerDir::take(&dir.path().join("controller"))
            .expect("creates the directory");
        let file = HoldFile::in_dir(taken.path(), taken.user());
        let now = Utc::now();
        assert_eq!(file.load(now).expect("no file is fine"), None);

        let first = hold(now, chrono::Duration::minutes(15));
        file.save(&first).expect("writes");
        assert_eq!(file.load(now).expect("reads"), Some(first));
        let second = hold(now, chrono::Duration::hours(2));
        file.save(&second).expect("replaces");
        assert_eq!(file.load(now).expect("reads"), Some(second));

        let mode = fs::metadata(file.path())
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let mut names: Vec<_> = fs::read_dir(dir.path().join("controller"))
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(".lock"), FILE_NAME.into()],
            "no temporary left"
        );

        file.remove().expect("removes");
        assert_eq!(file.load(now).expect("gone"), None);
        file.remove().expect("removing nothing is fine");
    }

    #[test]
    fn an_expired_hold_is_read_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = in_dir(dir.path());
        let long_ago = Utc::now() - chrono::Duration::hours(30);
        let old = hold(long_ago, chrono::Duration::hours(1));
        file.save(&old).expect("writes");
        let loaded = file.load(Utc::now()).expect("reads").expect("a hold");
        assert!(loaded.expired(Utc::now()));
    }

    #[test]
    fn a_damaged_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = in_dir(dir.path());
        let now = Utc::now();
        let cases: [(&[u8], &str); 2] = [
            (
                b"{\"reason\": \"half a hold",
                "not a hold status-controller wrote",
            ),
            (b"[]", "not a hold status-controller wrote"),
        ];
        for (body, problem) in cases {
            fs::write(file.path(), body).expect("writes");
            let err = file.load(now).expect_err("damaged").to_string();
            assert!(err.contains(problem), "{err}");
            assert!(err.contains(&file.path().display().to_string()), "{err}");
        }
        for (bad, problem) in [
            (hold(now, chrono::Duration::hours(-1)), "before it starts"),
            (hold(now, chrono::Duration::hours(25)), "more than 24 h"),
            (
                hold(
                    now + chrono::Duration::hours(10),
                    chrono::Duration::hours(20),
                ),
                "more than 24 h",
            ),
        ] {
            fs::write(file.path(), serde_json::to_vec(&bad).expect("json")).expect("writes");
            let err = file.load(now).expect_err("impossible").to_string();
            assert!(err.contains(problem), "{err}");
        }
    }

    #[test]
    fn a_linked_or_world_writable_hold_file_is_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = in_dir(dir.path());
        let now = Utc::now();
        file.save(&hold(now, chrono::Duration::minutes(5)))
            .expect("writes");
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o666)).expect("chmod");
        let err = file.load(now).expect_err("world-writable").to_string();
        assert!(err.contains("writable by its group and others"), "{err}");
        assert!(err.contains("nobody else can write"), "{err}");

        let elsewhere = dir.path().join("elsewhere.json");
        fs::rename(file.path(), &elsewhere).expect("moves");
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&elsewhere, file.path()).expect("links");
        let err = file.load(now).expect_err("a link").to_string();
        assert!(err.contains("symbolic link"), "{err}");
        file.remove().expect("the link goes");
        assert!(elsewhere.exists(), "not what it pointed to");
    }
}
