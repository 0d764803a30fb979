//! The mechanics of a private state directory, the same for both programs (status-api keeps its snapshot
//! there, status-controller its maintenance hold and action journal): whom to trust to have written it (its
//! owner, and nobody else able to write), one holder at a time (an advisory `flock` on `<dir>/.lock`), files
//! opened never through a symbolic link, and files replaced through a temporary with a random name created
//! exclusively. Each program says in its own words what a refusal means for it; this module states the facts.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file, held by the one process that may write in the directory.
pub const LOCK_FILE: &str = ".lock";
/// How many random temporary names are tried before a write gives up (a clash is one in 2^64).
const TEMPORARY_ATTEMPTS: usize = 4;

/// Why a file or directory is not trusted: what is wrong with it, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distrust {
    /// E.g. `writable by its group (mode 0770)`.
    pub problem: String,
    /// E.g. `chmod go-w /srv/state`.
    pub fix: String,
}

/// The user a program runs as: whom the files of its state directory must belong to (or root), and the
/// program's name, for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub program: &'static str,
}

impl User {
    /// `program`, running as this process's effective uid.
    pub fn current(program: &'static str) -> Self {
        Self {
            uid: effective_uid(),
            program,
        }
    }
}

/// Checks that a file or directory `user` trusts, owned by `owner` with `mode`, is owned by the user (or
/// root, who can write anything anyway) and writable by neither its group nor others.
pub fn trust(path: &Path, owner: u32, mode: u32, user: User) -> Result<(), Distrust> {
    let User { uid, program } = user;
    if owner != uid && owner != 0 {
        return Err(Distrust {
            problem: format!("owned by uid {owner}, but {program} runs as uid {uid}"),
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
        return Err(Distrust {
            problem: format!("writable by {who} (mode {:04o})", mode & 0o7777),
            fix: format!("chmod go-w {}", path.display()),
        });
    }
    Ok(())
}

/// The effective uid this process runs as.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Whether this process may create and rename files in `dir` (access(2) with the effective ids, which also
/// sees a read-only mount), without writing anything.
pub fn may_write(dir: &Path) -> bool {
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

/// Creates `dir` (and its parents) when it is missing, then makes it private (mode 0700).
pub fn create_private(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// What [`try_lock`] found.
#[derive(Debug)]
pub enum Lock {
    /// This process holds the lock for as long as it keeps the file open; its pid is in it.
    Held(fs::File),
    /// Another process holds it; `holder` is the pid it wrote, when readable.
    Busy { holder: Option<u32> },
}

/// Tries to take the lock on `dir` (`<dir>/.lock`, created 0600, never through a symbolic link). Once held,
/// this process's pid is written into it for the operator.
pub fn try_lock(dir: &Path) -> std::io::Result<Lock> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.write_all(std::process::id().to_string().as_bytes())?;
            Ok(Lock::Held(file))
        }
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Ok(Lock::Busy {
                holder: text.trim().parse().ok(),
            })
        }
        Err(fs::TryLockError::Error(err)) => Err(err),
    }
}

/// The pid written in `<dir>/.lock`, when there is one to read.
pub fn lock_holder(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(LOCK_FILE))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Why a file in the state directory could not be opened as a trusted one.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// It is a symbolic link: only a regular file is opened.
    #[error("it is a symbolic link")]
    Symlink,
    /// Not a regular file, or not trusted (see [`trust`]).
    #[error("it is {}", .0.problem)]
    Untrusted(Distrust),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens `path` to read, never through a symbolic link; `None` when there is no such file. The file must be a
/// regular file, owned by `user` or root and writable by nobody else — checked on the file that was opened, so
/// it cannot be swapped in between.
pub fn open_to_read(path: &Path, user: User) -> Result<Option<fs::File>, OpenError> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match opened {
        Ok(file) => checked(file, path, user).map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(open_failed(err)),
    }
}

/// Opens `path` to append (`O_APPEND`: every write(2) lands whole at the end), creating it with mode 0600
/// when it is missing, never through a symbolic link; the same checks as [`open_to_read`].
pub fn open_to_append(path: &Path, user: User) -> Result<fs::File, OpenError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(open_failed)?;
    checked(file, path, user)
}

fn open_failed(err: std::io::Error) -> OpenError {
    if err.raw_os_error() == Some(libc::ELOOP) {
        OpenError::Symlink
    } else {
        OpenError::Io(err)
    }
}

fn checked(file: fs::File, path: &Path, user: User) -> Result<fs::File, OpenError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpenError::Untrusted(Distrust {
            problem: "not a regular file".into(),
            fix: format!("move it aside (mv {0} {0}.bad)", path.display()),
        }));
    }
    trust(path, meta.uid(), meta.mode(), user).map_err(OpenError::Untrusted)?;
    Ok(file)
}

/// Replaces `dir/name` with `body`, atomically: a temporary file with a random name is created exclusively
/// (never through a symbolic link), mode 0600, written and fsynced, renamed over `name`, and the directory
/// fsynced — a crash at any point leaves the old file or the new one, never half. The caller holds the lock.
pub fn replace(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let (temporary, mut file) = create_temporary(dir, name)?;
    let result = (|| {
        file.write_all(body)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Makes a rename, creation or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Creates `.<name>.<random>.tmp` in `dir`: exclusively, never through a symbolic link, mode 0600.
fn create_temporary(dir: &Path, name: &str) -> std::io::Result<(PathBuf, fs::File)> {
    let mut last = None;
    for _ in 0..TEMPORARY_ATTEMPTS {
        let path = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name was free")))
}

/// Removes `.<name>.*.tmp` files from `dir`: what a write interrupted by a crash (or `kill -9`) left behind.
/// Only the lock holder calls this, so no write of another process is in flight.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_temporary(entry.file_name().as_bytes()) {
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

/// Whether `name` is one of the temporary files [`replace`] writes (`.<file>.<random>.tmp`).
fn is_temporary(name: &[u8]) -> bool {
    name.starts_with(b".") && name.ends_with(b".tmp") && name.len() > b"..tmp".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, program: &'static str) -> User {
        User { uid, program }
    }

    #[test]
    fn a_directory_of_another_user_is_refused_with_the_chown_that_fixes_it() {
        let err = trust(
            Path::new("/srv/state"),
            1234,
            0o40700,
            user(10001, "status-api"),
        )
        .expect_err("not ours");
        assert_eq!(
            err.problem,
            "owned by uid 1234, but status-api runs as uid 10001"
        );
        assert_eq!(err.fix, "chown 10001 /srv/state");
    }

    #[test]
    fn group_or_other_write_is_refused_with_the_chmod_that_fixes_it() {
        for (mode, who) in [
            (0o770, "its group"),
            (0o702, "others"),
            (0o777, "its group and others"),
        ] {
            let err = trust(
                Path::new("/srv/state"),
                10001,
                mode,
                user(10001, "status-controller"),
            )
            .expect_err("too open");
            assert_eq!(err.problem, format!("writable by {who} (mode {mode:04o})"));
            assert_eq!(err.fix, "chmod go-w /srv/state");
        }
    }

    #[test]
    fn ours_or_roots_and_private_is_trusted() {
        trust(Path::new("/srv/state"), 10001, 0o700, user(10001, "x")).expect("ours");
        trust(Path::new("/srv/state"), 10001, 0o755, user(10001, "x"))
            .expect("readable by others is fine");
        trust(Path::new("/srv/state"), 0, 0o755, user(10001, "x")).expect("root's");
    }

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temporary(b".snapshot.json.0123456789abcdef.tmp"));
        assert!(is_temporary(b".hold.json.4242.tmp"));
        assert!(!is_temporary(b"snapshot.json"));
        assert!(!is_temporary(b".lock"));
        assert!(!is_temporary(b"actions.jsonl.1"));
    }

    #[test]
    fn one_holder_at_a_time_and_the_other_learns_its_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Lock::Held(first) = try_lock(dir.path()).expect("locks") else {
            panic!("the first takes the lock");
        };
        match try_lock(dir.path()).expect("answers") {
            Lock::Busy { holder } => assert_eq!(holder, Some(std::process::id())),
            Lock::Held(_) => panic!("two holders"),
        }
        assert_eq!(lock_holder(dir.path()), Some(std::process::id()));
        drop(first);
        assert!(matches!(
            try_lock(dir.path()).expect("locks"),
            Lock::Held(_)
        ));
    }

    #[test]
    fn a_replace_is_atomic_private_and_leaves_no_temporary_and_stale_ones_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(".snapshot.json.1234.tmp");
        fs::write(&stale, b"half a snapshot").expect("writes");
        remove_stale_temporaries(dir.path());
        assert!(!stale.exists(), "the stale temporary file is gone");
        replace(dir.path(), "snapshot.json", b"new").expect("writes");
        let target = dir.path().join("snapshot.json");
        assert_eq!(fs::read(&target).expect("reads"), b"new");
        let mode = fs::metadata(&target).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("snapshot.json")]);
    }

    #[test]
    fn links_and_foreign_writable_files_are_not_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = User::current("x");
        let file = dir.path().join("hold.json");
        assert!(open_to_read(&file, me).expect("none").is_none());
        fs::write(&file, b"{}").expect("writes");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).expect("chmod");
        let err = open_to_read(&file, me).expect_err("world-writable");
        assert_eq!(
            err.to_string(),
            "it is writable by its group and others (mode 0666)"
        );
        let err = open_to_append(&file, me).expect_err("world-writable");
        assert!(matches!(err, OpenError::Untrusted(_)), "{err}");

        let elsewhere = dir.path().join("elsewhere");
        fs::rename(&file, &elsewhere).expect("moves");
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&elsewhere, &file).expect("links");
        assert!(matches!(open_to_read(&file, me), Err(OpenError::Symlink)));
        assert!(matches!(open_to_append(&file, me), Err(OpenError::Symlink)));

        let created = dir.path().join("actions.jsonl");
        open_to_append(&created, me).expect("creates");
        let mode = fs::metadata(&created).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
