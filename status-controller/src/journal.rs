//! The recent actions, newest first, for `GET /actions`: what was done to which container, why, how it went
//! and how long it took. Bounded, so a crash loop that runs for days costs no more memory than one that ran
//! for a minute. With `--state-dir` every record is appended to a file there too ([`JournalFile`]) and the
//! newest are read back at start, so a restart does not forget them; without it the journal lives in memory
//! only. A journal file that cannot be read or written never stops an action: it is logged, counted in
//! `dockstate_controller_journal_problems_total{problem}` and said in `/health` (`journal_problem`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use shared::DriftKind;

use crate::journal_file::{JournalFile, Loaded, MAX_LINE};
use crate::model::{ActionKind, ActionResult, JournalProblem};
use crate::state_dir::ControllerDir;

/// How many records the journal keeps (and reads back at start).
pub const CAPACITY: usize = 256;

/// How many skipped lines are logged one by one at start; the rest are counted.
const SKIPPED_LOGGED: usize = 10;
/// How many characters of `reason` and `detail` a record cut to fit [`MAX_LINE`] keeps: even escaped six
/// bytes a character, both fit.
const CUT_TO: usize = 1000;

/// One line of `GET /actions`, and of the journal file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// When it started.
    pub time: DateTime<Utc>,
    /// The container's name.
    pub container: String,
    /// The id acted on (for a recreate, the id the container had in the snapshot).
    pub container_id: String,
    pub action: ActionKind,
    /// The drift it answered.
    pub drift: Option<DriftKind>,
    /// Why it was planned.
    pub reason: String,
    pub result: ActionResult,
    /// What happened, when there is more to say than the result (an error, a refusal, a new id).
    pub detail: Option<String>,
    pub duration_seconds: f64,
}

/// A cheap-to-clone handle to the bounded journal.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    records: VecDeque<ActionRecord>,
    /// Where records are appended too; `None` in memory only.
    file: Option<JournalFile>,
    /// `dockstate_controller_journal_problems_total`, with a file.
    problems: Option<IntCounterVec>,
    /// What reading the file back at start skipped or could not do, in words.
    start_problem: Option<String>,
    /// Why the last append failed; cleared by the next one that succeeds.
    write_problem: Option<String>,
}

impl Journal {
    /// A journal in memory only: a restart forgets it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A journal kept in `dir` (whose lock this controller holds): the newest records there are read back
    /// now, and every new one is appended. A file that cannot be used leaves a journal in memory only,
    /// logged, counted in `problems` and said in [`Journal::problem`].
    pub fn kept_in(dir: &ControllerDir, problems: IntCounterVec) -> Self {
        let count = |problem: JournalProblem, by: usize| {
            problems
                .with_label_values(&[problem.as_str()])
                .inc_by(by as u64);
        };
        let mut inner = Inner::default();
        match JournalFile::open::<ActionRecord>(dir.path(), dir.user(), CAPACITY) {
            Ok((file, loaded)) => {
                count(JournalProblem::SkippedLine, loaded.skipped.len());
                if loaded.previous_problem.is_some() {
                    count(JournalProblem::Unusable, 1);
                }
                inner.start_problem = start_problem(&loaded);
                tracing::info!(
                    path = %file.path().display(),
                    records = loaded.records.len(),
                    skipped = loaded.skipped.len(),
                    "action journal read back: /actions shows what was done before this start"
                );
                inner.records = loaded.records.into_iter().rev().collect();
                inner.file = Some(file);
            }
            Err(err) => {
                count(JournalProblem::Unusable, 1);
                let problem = err.to_string();
                tracing::error!(
                    problem,
                    "the action journal file cannot be used: actions are kept in memory only until the next \
                     start; healing goes on"
                );
                inner.start_problem = Some(problem);
            }
        }
        inner.problems = Some(problems);
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// Adds a record, forgetting the oldest beyond [`CAPACITY`], and appends it to the file when there is
    /// one; a failed append is logged and counted, never more.
    pub fn push(&self, record: ActionRecord) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(file) = inner.file.as_mut() {
            match file.append(&line_of(&record)) {
                Ok(()) => {
                    if inner.write_problem.take().is_some() {
                        tracing::info!(path = %file.path().display(), "the action journal is written again");
                    }
                }
                Err(err) => {
                    let problem = err.to_string();
                    tracing::warn!(container = %record.container, action = %record.action, problem, "action not written to the journal file");
                    if let Some(problems) = &inner.problems {
                        problems
                            .with_label_values(&[JournalProblem::WriteFailed.as_str()])
                            .inc();
                    }
                    inner.write_problem = Some(problem);
                }
            }
        }
        if inner.records.len() == CAPACITY {
            inner.records.pop_back();
        }
        inner.records.push_front(record);
    }

    /// Up to `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> Vec<ActionRecord> {
        self.lock().records.iter().take(limit).cloned().collect()
    }

    /// What is wrong with the journal file, for `/health`: the last failed append, else what reading it
    /// back at start skipped; `None` when all is well (or there is no file).
    pub fn problem(&self) -> Option<String> {
        let inner = self.lock();
        inner
            .write_problem
            .clone()
            .or_else(|| inner.start_problem.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A record list is never left half-written by a panic: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `record` as one line of JSON with its newline. A record whose line would pass [`MAX_LINE`] (an engine
/// error of many kilobytes) has its `reason` and `detail` cut to [`CUT_TO`] characters each.
fn line_of(record: &ActionRecord) -> Vec<u8> {
    let mut line = serde_json::to_vec(record).unwrap_or_default();
    if line.len() > MAX_LINE {
        let shorter = ActionRecord {
            reason: shorten(&record.reason),
            detail: record.detail.as_deref().map(shorten),
            ..record.clone()
        };
        line = serde_json::to_vec(&shorter).unwrap_or_default();
    }
    line.push(b'\n');
    line
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(CUT_TO) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Logs what reading the journal back skipped, and says it in one sentence for `/health`.
fn start_problem(loaded: &Loaded<ActionRecord>) -> Option<String> {
    for skipped in loaded.skipped.iter().take(SKIPPED_LOGGED) {
        tracing::warn!(file = skipped.file, line = skipped.line, why = %skipped.why, "skipped a line of the action journal");
    }
    let mut sentences = Vec::new();
    if let Some(problem) = &loaded.previous_problem {
        let problem = problem.to_string();
        tracing::warn!(problem, "the previous action journal file is left out");
        sentences.push(problem);
    }
    if let Some(first) = loaded.skipped.first() {
        sentences.push(format!(
            "at start, {} of the action journal could not be read and {} skipped (first: {first}); the \
             others are in /actions",
            shared::count_of(loaded.skipped.len(), "line"),
            if loaded.skipped.len() == 1 { "was" } else { "were" },
        ));
    }
    (!sentences.is_empty()).then(|| sentences.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(container: &str) -> ActionRecord {
        ActionRecord {
            time: Utc::now(),
            container: container.into(),
            container_id: "0".repeat(64),
            action: ActionKind::Start,
            drift: Some(DriftKind::Stopped),
            reason: "exited with exit code 137".into(),
            result: ActionResult::Ok,
            detail: None,
            duration_seconds: 0.25,
        }
    }

    #[test]
    fn newest_first_and_bounded() {
        let journal = Journal::new();
        for i in 0..CAPACITY + 10 {
            journal.push(record(&format!("c{i}")));
        }
        let recent = journal.recent(usize::MAX);
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].container, format!("c{}", CAPACITY + 9));
        assert_eq!(recent[CAPACITY - 1].container, "c10");
        assert_eq!(journal.recent(2).len(), 2);
    }

    fn problems() -> IntCounterVec {
        crate::metrics::Metrics::new().journal_problems()
    }

    fn count(problems: &IntCounterVec, problem: JournalProblem) -> u64 {
        problems.with_label_values(&[problem.as_str()]).get()
    }

    #[test]
    fn a_journal_kept_in_the_state_dir_outlives_a_restart() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = ControllerDir::take(parent.path()).expect("a trusted directory");
        let before = Journal::kept_in(&dir, problems());
        for name in ["a", "b", "c"] {
            before.push(record(name));
        }
        let pushed = before.recent(usize::MAX);
        drop(before);

        let after = Journal::kept_in(&dir, problems());
        assert_eq!(
            after.recent(usize::MAX),
            pushed,
            "the same records, newest first"
        );
        assert_eq!(after.problem(), None);
        after.push(record("d"));
        assert_eq!(after.recent(1)[0].container, "d");
        assert!(
            Journal::new().recent(usize::MAX).is_empty(),
            "memory only: nothing read"
        );
    }

    #[test]
    fn skipped_lines_are_counted_and_said_without_stopping_anything() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = ControllerDir::take(parent.path()).expect("a trusted directory");
        let journal = Journal::kept_in(&dir, problems());
        journal.push(record("a"));
        drop(journal);
        let path = dir.path().join(crate::journal_file::FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes.extend_from_slice(b"{\"time\":\"2026-");
        std::fs::write(&path, bytes).expect("writes");

        let counter = problems();
        let journal = Journal::kept_in(&dir, counter.clone());
        assert_eq!(count(&counter, JournalProblem::SkippedLine), 1);
        let problem = journal.problem().expect("said");
        assert!(
            problem.contains("1 line of the action journal"),
            "{problem}"
        );
        assert!(problem.contains("torn"), "{problem}");
        journal.push(record("b"));
        let names: Vec<_> = journal
            .recent(usize::MAX)
            .into_iter()
            .map(|r| r.container)
            .collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn an_unusable_file_leaves_a_journal_in_memory_that_says_so() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = ControllerDir::take(parent.path()).expect("a trusted directory");
        let elsewhere = parent.path().join("elsewhere");
        std::fs::write(&elsewhere, b"").expect("writes");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(crate::journal_file::FILE_NAME))
            .expect("links");
        let counter = problems();
        let journal = Journal::kept_in(&dir, counter.clone());
        assert_eq!(count(&counter, JournalProblem::Unusable), 1);
        let problem = journal.problem().expect("said");
        assert!(problem.contains("symbolic link"), "{problem}");
        assert_eq!(
            problem.matches("symbolic link").count(),
            1,
            "said once: {problem}"
        );
        journal.push(record("a"));
        assert_eq!(
            journal.recent(1)[0].container,
            "a",
            "actions are still journalled"
        );
        assert_eq!(
            std::fs::read(&elsewhere).expect("reads"),
            b"",
            "never written through the link"
        );
    }

    #[test]
    fn a_huge_record_is_cut_to_fit_one_line() {
        let mut huge = record("web");
        huge.detail = Some("é".repeat(100_000));
        huge.reason = "\u{1}".repeat(100_000);
        let line = line_of(&huge);
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert_eq!(line.last(), Some(&b'\n'));
        let back: ActionRecord = serde_json::from_slice(&line).expect("still a record");
        assert_eq!(back.detail.expect("kept").chars().count(), CUT_TO + 1);
        assert_eq!(back.container, "web");
        let small = record("web");
        assert_eq!(
            serde_json::from_slice::<ActionRecord>(&line_of(&small)).expect("a record"),
            small,
            "a record that fits is kept whole"
        );
    }

    #[test]
    fn records_serialise_in_snake_case() {
        let json = serde_json::to_value(record("web")).expect("serialises");
        assert_eq!(json["action"], "start");
        assert_eq!(json["drift"], "stopped");
        assert_eq!(json["result"], "ok");
        assert_eq!(json["duration_seconds"], 0.25);
        for result in <ActionResult as strum::VariantArray>::VARIANTS {
            assert_eq!(
                serde_json::to_value(result).expect("serialises"),
                result.as_str()
            );
        }
    }
}
