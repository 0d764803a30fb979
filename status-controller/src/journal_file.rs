//! The action journal on disk, so that `GET /actions` still shows after a restart what the controller did
//! before it: `<state-dir>/actions.jsonl`, one JSON object per line, each line appended with a single write(2)
//! on an `O_APPEND` file (mode 0600, never through a symbolic link), so a line lands whole or — when the
//! machine goes down mid-write — torn at the very end. At 1 MiB the file is renamed to `actions.jsonl.1`
//! (replacing the one before) and a new one begun: the journal never takes more than about 2 MiB.
//!
//! At start both files are read back (the previous one first), and the newest records — as many as the
//! journal keeps in memory — are served again. A line that does not parse is skipped and reported, never
//! fatal; a torn last line is cut off before the first new line is appended, so it cannot glue onto it.
//! Nothing here ever stops an action: a journal that cannot be written is reported, and kept in memory.
//!
//! The file knows lines, not actions: what a line holds is the caller's (`journal`), so this module imports
//! nothing of the crate.

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use shared::runtime::state_dir::{self, OpenError, User};

/// The journal's file inside `--state-dir`.
pub const FILE_NAME: &str = "actions.jsonl";
/// The file before the last rotation.
pub const PREVIOUS_FILE_NAME: &str = "actions.jsonl.1";
/// The size at which the file is rotated.
pub const ROTATE_AT: u64 = 1024 * 1024;
/// The longest line a caller appends (it cuts a longer record to fit): what a torn line can cost at most.
pub const MAX_LINE: usize = 16 * 1024;
/// How much of each file is read at start: its newest part, a little more than a full file.
const READ_AT_MOST: u64 = ROTATE_AT + MAX_LINE as u64;

/// Why the journal file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalFileError {
    /// Said once, in this message: `problem` is no `#[source]`.
    #[error(
        "the action journal {path} is not to be trusted: {problem}; status-controller uses only a regular \
         file its user owns and nobody else can write. Move it aside (mv {path} {path}.bad) and restart"
    )]
    Untrusted { path: PathBuf, problem: OpenError },
    #[error("cannot open the action journal {path}: {source}")]
    OpenFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the action journal {path}: {source}")]
    ReadFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot append to the action journal {path}: {source}. Check the free space of --state-dir; the \
         action is in /actions until the controller restarts"
    )]
    WriteFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot rotate the action journal {path} to {PREVIOUS_FILE_NAME}: {source}. Check that \
         status-controller may write --state-dir"
    )]
    RotateFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A line read back at start that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    pub file: &'static str,
    /// From 1, counted in the part of the file that was read.
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for SkippedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.why)
    }
}

/// What reading the journal back found.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The newest records, oldest first, at most as many as were asked for.
    pub records: Vec<T>,
    pub skipped: Vec<SkippedLine>,
    /// Problems with the previous file, which is then left out (the current one is still used).
    pub previous_problem: Option<JournalFileError>,
}

/// The open journal file, appended to by one controller (the holder of the state directory's lock).
#[derive(Debug)]
pub struct JournalFile {
    dir: PathBuf,
    /// Whom the files must belong to.
    user: User,
    file: fs::File,
    /// Its size, as this controller wrote it: when to rotate.
    size: u64,
}

impl JournalFile {
    /// Opens (or creates) the journal in the state directory `dir`, whose files must belong to `user`, and
    /// reads back its newest `keep` records (lines that parse as `T`), the previous file's included. A torn
    /// last line is cut off here, so the next append starts on a line of its own.
    pub fn open<T: DeserializeOwned>(
        dir: &Path,
        user: User,
        keep: usize,
    ) -> Result<(Self, Loaded<T>), JournalFileError> {
        let path = dir.join(FILE_NAME);
        let file =
            state_dir::open_to_append(&path, user).map_err(|source| not_opened(&path, source))?;
        let read_failed = |source| JournalFileError::ReadFailed {
            path: path.clone(),
            source,
        };
        let (start, current) = read_tail(&file).map_err(read_failed)?;
        let mut loaded = Loaded {
            records: Vec::new(),
            skipped: Vec::new(),
            previous_problem: None,
        };
        let mut records = VecDeque::with_capacity(keep);
        match read_previous(dir, user) {
            Ok(Some(previous)) => parse_lines(
                &previous,
                PREVIOUS_FILE_NAME,
                keep,
                &mut records,
                &mut loaded.skipped,
            ),
            Ok(None) => {}
            Err(problem) => loaded.previous_problem = Some(problem),
        }
        parse_lines(&current, FILE_NAME, keep, &mut records, &mut loaded.skipped);
        loaded.records = records.into();

        // A last line without its newline is torn: cut it off, or the next line would be glued onto it.
        let whole = current
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |newline| newline + 1);
        let size = start + whole as u64;
        if whole < current.len() {
            file.set_len(size)
                .map_err(|source| JournalFileError::WriteFailed {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                user,
                file,
                size,
            },
            loaded,
        ))
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Appends `line` (one line of JSON with its newline, at most [`MAX_LINE`] bytes) with one write(2),
    /// rotating first when it would take the file past [`ROTATE_AT`]. A write cut short (a full disk) is
    /// taken back, so no torn line stays behind.
    pub fn append(&mut self, line: &[u8]) -> Result<(), JournalFileError> {
        if self.size > 0 && self.size + line.len() as u64 > ROTATE_AT {
            self.rotate()?;
        }
        let failed = |source| JournalFileError::WriteFailed {
            path: self.path(),
            source,
        };
        let written = loop {
            match (&self.file).write(line) {
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match written {
            Ok(written) if written == line.len() => {
                self.size += written as u64;
                Ok(())
            }
            Ok(written) => {
                let _ = self.file.set_len(self.size);
                Err(failed(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("only {written} of {} bytes were written", line.len()),
                )))
            }
            Err(err) => Err(failed(err)),
        }
    }

    /// `actions.jsonl` becomes `actions.jsonl.1` (the one before is dropped), and a new file is begun.
    fn rotate(&mut self) -> Result<(), JournalFileError> {
        let path = self.path();
        let failed = |source| JournalFileError::RotateFailed {
            path: path.clone(),
            source,
        };
        fs::rename(&path, self.dir.join(PREVIOUS_FILE_NAME)).map_err(failed)?;
        self.file = state_dir::open_to_append(&path, self.user)
            .map_err(|source| not_opened(&path, source))?;
        self.size = 0;
        state_dir::sync_dir(&self.dir).map_err(failed)
    }
}

fn not_opened(path: &Path, source: OpenError) -> JournalFileError {
    let path = path.to_path_buf();
    match source {
        OpenError::Io(source) => JournalFileError::OpenFailed { path, source },
        problem => JournalFileError::Untrusted { path, problem },
    }
}

/// The previous file's newest part; `None` when there is none.
fn read_previous(dir: &Path, user: User) -> Result<Option<Vec<u8>>, JournalFileError> {
    let path = dir.join(PREVIOUS_FILE_NAME);
    let file = match state_dir::open_to_read(&path, user) {
        Ok(None) => return Ok(None),
        Ok(Some(file)) => file,
        Err(source) => return Err(not_opened(&path, source)),
    };
    read_tail(&file)
        .map(|(_, bytes)| Some(bytes))
        .map_err(|source| JournalFileError::ReadFailed { path, source })
}

/// The last [`READ_AT_MOST`] bytes of `file` and where they start. When that is not the whole file, the
/// first, partial line is dropped (the start then moves past it).
fn read_tail(mut file: &fs::File) -> std::io::Result<(u64, Vec<u8>)> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(READ_AT_MOST);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(READ_AT_MOST).read_to_end(&mut bytes)?;
    if start > 0 {
        let first = bytes
            .iter()
            .position(|byte| *byte == b'\n')
            .map_or(bytes.len(), |newline| newline + 1);
        bytes.drain(..first);
        return Ok((start + first as u64, bytes));
    }
    Ok((start, bytes))
}

/// Adds the records of `bytes` (a file's lines, oldest first) to `records`, keeping only the newest `keep`;
/// a line that does not parse is skipped and told in `skipped` (a last line without its newline as torn).
pub fn parse_lines<T: DeserializeOwned>(
    bytes: &[u8],
    file: &'static str,
    keep: usize,
    records: &mut VecDeque<T>,
    skipped: &mut Vec<SkippedLine>,
) {
    let mut lines = bytes.split(|byte| *byte == b'\n').peekable();
    let mut number = 0;
    while let Some(line) = lines.next() {
        number += 1;
        let last = lines.peek().is_none();
        if line.is_empty() {
            continue;
        }
        if last {
            skipped.push(SkippedLine {
                file,
                line: number,
                why: format!(
                    "torn: {} bytes without an end of line (written when the controller or the machine \
                     stopped)",
                    line.len()
                ),
            });
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(record) => {
                if records.len() == keep {
                    records.pop_front();
                }
                if keep > 0 {
                    records.push_back(record);
                }
            }
            Err(err) => skipped.push(SkippedLine {
                file,
                line: number,
                why: format!("not a record ({err})"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde::{Deserialize, Serialize};

    use super::*;

    /// What the tests journal: a number to follow the order by, and some text.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Entry {
        number: usize,
        text: String,
    }

    fn line(number: usize) -> Vec<u8> {
        let entry = Entry {
            number,
            text: "started again after a kill -9 of its main process".into(),
        };
        let mut line = serde_json::to_vec(&entry).expect("json");
        line.push(b'\n');
        line
    }

    fn numbers(records: &[Entry]) -> Vec<usize> {
        records.iter().map(|entry| entry.number).collect()
    }

    fn me() -> User {
        User::current("status-controller")
    }

    fn open(dir: &Path, keep: usize) -> (JournalFile, Loaded<Entry>) {
        JournalFile::open(dir, me(), keep).expect("opens")
    }

    #[test]
    fn records_come_back_newest_last_and_bounded_from_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, loaded) = open(dir.path(), 10);
        assert!(loaded.records.is_empty() && loaded.skipped.is_empty());
        for number in 0..25 {
            file.append(&line(number)).expect("appends");
        }
        drop(file);
        let path = dir.path().join(FILE_NAME);
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).expect("reads");
        assert_eq!(text.lines().count(), 25, "one line per record");

        let (_, loaded) = open(dir.path(), 10);
        assert_eq!(numbers(&loaded.records), (15..25).collect::<Vec<_>>());
        assert!(loaded.skipped.is_empty());
    }

    #[test]
    fn a_torn_last_line_is_skipped_reported_and_cut_off_before_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = open(dir.path(), 10);
        file.append(&line(1)).expect("appends");
        file.append(&line(2)).expect("appends");
        drop(file);
        // A crash mid-write: half a line, no end of line.
        let path = dir.path().join(FILE_NAME);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("opens")
            .write_all(&line(3)[..20])
            .expect("writes");

        let (mut file, loaded) = open(dir.path(), 10);
        assert_eq!(numbers(&loaded.records), [1, 2]);
        assert_eq!(loaded.skipped.len(), 1);
        let skipped = loaded.skipped[0].to_string();
        assert!(
            skipped.starts_with("actions.jsonl line 3: torn: 20 bytes without an end of line"),
            "{skipped}"
        );
        file.append(&line(4)).expect("appends");
        drop(file);

        let (_, loaded) = open(dir.path(), 10);
        assert_eq!(
            numbers(&loaded.records),
            [1, 2, 4],
            "4 is not glued onto the torn 3"
        );
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    }

    #[test]
    fn a_damaged_line_is_skipped_and_the_rest_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = open(dir.path(), 10);
        file.append(&line(1)).expect("appends");
        file.append(b"{\"number\": \"one\"}\n").expect("appends");
        file.append(b"\xff\xfe\n").expect("appends");
        file.append(&line(2)).expect("appends");
        drop(file);

        let (_, loaded) = open(dir.path(), 10);
        assert_eq!(numbers(&loaded.records), [1, 2]);
        let lines: Vec<_> = loaded.skipped.iter().map(|skipped| skipped.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(
            loaded.skipped[0].why.starts_with("not a record"),
            "{:?}",
            loaded.skipped
        );
    }

    #[test]
    fn the_file_rotates_at_its_bound_keeps_one_previous_and_both_are_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = open(dir.path(), 256);
        // Two rotations, then ten more lines.
        let (mut rotations, mut total, mut after) = (0, 0, 0);
        while after < 10 {
            let size = file.size;
            file.append(&line(total)).expect("appends");
            total += 1;
            if file.size < size {
                rotations += 1;
            }
            if rotations == 2 {
                after += 1;
            }
        }
        drop(file);
        let longest = line(total).len() as u64;
        let current = fs::metadata(dir.path().join(FILE_NAME))
            .expect("exists")
            .len();
        let previous =
            fs::metadata(dir.path().join(PREVIOUS_FILE_NAME)).expect("one previous file");
        assert!(
            previous.len() <= ROTATE_AT && previous.len() > ROTATE_AT - longest,
            "{}",
            previous.len()
        );
        assert_eq!(previous.permissions().mode() & 0o777, 0o600);
        assert!(current <= 10 * longest, "a new file was begun: {current}");
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [FILE_NAME, PREVIOUS_FILE_NAME],
            "one previous file only"
        );

        let (_, loaded) = open(dir.path(), 256);
        assert_eq!(
            numbers(&loaded.records),
            (total - 256..total).collect::<Vec<_>>(),
            "the newest, across both files, in order"
        );
    }

    #[test]
    fn a_linked_or_foreign_writable_journal_is_not_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, b"").expect("writes");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("links");
        let err = JournalFile::open::<Entry>(dir.path(), me(), 10).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(err.to_string().contains("Move it aside"), "{err}");

        fs::remove_file(&path).expect("unlinks");
        fs::write(&path, b"").expect("writes");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o622)).expect("chmod");
        let err = JournalFile::open::<Entry>(dir.path(), me(), 10).expect_err("group-writable");
        assert!(
            err.to_string().contains("writable by its group and others"),
            "{err}"
        );

        // A bad previous file is left out; the current one is still used.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(PREVIOUS_FILE_NAME)).expect("links");
        let (_, loaded) = open(dir.path(), 10);
        let problem = loaded.previous_problem.expect("said").to_string();
        assert!(problem.contains("actions.jsonl.1"), "{problem}");
    }
}
