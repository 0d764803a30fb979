//! The maintenance hold as it is kept on disk, `<state-dir>/hold.json`, so that a restart of the controller
//! does not end a hold before its time. Written atomically (a temporary file in the same directory, fsynced,
//! renamed over the old one, the directory fsynced), so a crash leaves the old hold or the new one, never
//! half of one. A file that cannot be read or makes no sense is reported as such, never replaced on its own:
//! only the operator knows what was meant.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    #[error(
        "cannot create the state directory {path}: {source}. Create it for the user status-controller runs \
         as (install -d -m 0700 -o <uid> {path}), or point --state-dir elsewhere"
    )]
    CreateDirFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--state-dir {path} is not a directory: point it at a directory status-controller may write")]
    NotADirectory { path: PathBuf },
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
}

impl HoldFile {
    /// The hold file in `dir`, which is created (mode 0700) when it is missing.
    pub fn in_dir(dir: &Path) -> Result<Self, HoldFileError> {
        if !dir.exists() {
            let failed = |source| HoldFileError::CreateDirFailed {
                path: dir.to_path_buf(),
                source,
            };
            fs::create_dir_all(dir).map_err(failed)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(failed)?;
        }
        if !dir.is_dir() {
            return Err(HoldFileError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            path: dir.join(FILE_NAME),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hold in the file; `None` when there is no file. A file that does not parse, or holds a hold no
    /// controller can have set (its end before its start, longer than [`MAX_HOLD`], or ending more than
    /// [`MAX_HOLD`] after `now`), is [`HoldFileError::Damaged`]. An expired hold is returned as it is: the
    /// caller decides what to say about it.
    pub fn load(&self, now: DateTime<Utc>) -> Result<Option<MaintenanceHold>, HoldFileError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HoldFileError::ReadFailed {
                    path: self.path.clone(),
                    source,
                })
            }
        };
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
        let temporary = self
            .dir
            .join(format!(".{FILE_NAME}.{:016x}.tmp", rand::random::<u64>()));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&body)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temporary, &self.path)?;
            self.sync_dir()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written.map_err(failed)
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
        self.sync_dir()
            .map_err(|source| HoldFileError::RemoveFailed {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes a rename or removal in the directory durable.
    fn sync_dir(&self) -> std::io::Result<()> {
        fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let file = HoldFile::in_dir(&dir.path().join("controller")).expect("creates the directory");
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
        let names: Vec<_> = fs::read_dir(dir.path().join("controller"))
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(FILE_NAME)],
            "no temporary left"
        );

        file.remove().expect("removes");
        assert_eq!(file.load(now).expect("gone"), None);
        file.remove().expect("removing nothing is fine");
    }

    #[test]
    fn an_expired_hold_is_read_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = HoldFile::in_dir(dir.path()).expect("exists");
        let long_ago = Utc::now() - chrono::Duration::hours(30);
        let old = hold(long_ago, chrono::Duration::hours(1));
        file.save(&old).expect("writes");
        let loaded = file.load(Utc::now()).expect("reads").expect("a hold");
        assert!(loaded.expired(Utc::now()));
    }

    #[test]
    fn a_damaged_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = HoldFile::in_dir(dir.path()).expect("exists");
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
    fn a_state_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("file");
        fs::write(&not_a_dir, b"").expect("writes");
        let err = HoldFile::in_dir(&not_a_dir)
            .expect_err("a file")
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
