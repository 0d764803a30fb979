//! The maintenance hold: an operator stops every action for a while (`POST /hold?for=15m&reason=…`), on
//! purpose, until it runs out or `DELETE /hold` ends it. Unlike a hold for a stale view it is not a fault:
//! the controller stays ready, keeps observing and planning, and dispatches nothing.
//!
//! Every change of the hold goes through one of three transitions — [`Maintenance::set`],
//! [`Maintenance::end`] and the expiry inside [`Maintenance::state`] — and each is announced in one place
//! ([`Maintenance::announce`]): the log line, the metrics, and the listeners start-up registered with
//! [`Maintenance::on_change`] (so that, say, notifications hear of it without this module knowing them).
//!
//! With `--state-dir` the hold is kept in [`HoldFile`], so a restart does not end it early; a file that
//! cannot be read holds the controller until the operator clears it, since nobody else knows what was meant.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{Gauge, IntCounter};
use tokio::sync::watch;

use crate::hold_file::{HoldFile, HoldFileError, MaintenanceHold, MAX_HOLD};

/// The reason a hold gets when the operator gives none.
pub const DEFAULT_REASON: &str = "maintenance";
/// The longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// The longest `by`, in characters.
pub const MAX_BY_CHARS: usize = 100;

/// What `POST /hold` asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// `for`: more than zero, at most [`MAX_HOLD`].
    pub lasts: Duration,
    /// `reason`, trimmed; [`DEFAULT_REASON`] when not given.
    pub reason: String,
    /// `by`, trimmed; `None` when not given (the server then names the client's address).
    pub by: Option<String>,
}

/// Parses the query of `POST /hold`: `for` (required), `reason` and `by`. The error says what was wrong and
/// what is allowed.
pub fn parse_hold_query(query: &str) -> Result<HoldRequest, String> {
    let [lasts, reason, by] = query_values(query, ["for", "reason", "by"], "POST /hold")?;
    let Some(lasts) = lasts else {
        return Err(
            "query parameter `for` is missing: say how long to hold, e.g. POST /hold?for=15m (more than 0, \
             at most 24h)"
                .into(),
        );
    };
    Ok(HoldRequest {
        lasts: parse_for(&lasts)?,
        reason: checked_text("reason", reason, MAX_REASON_CHARS)?
            .unwrap_or_else(|| DEFAULT_REASON.to_owned()),
        by: checked_text("by", by, MAX_BY_CHARS)?,
    })
}

/// Parses the query of `DELETE /hold`: an optional `by`.
pub fn parse_end_query(query: &str) -> Result<Option<String>, String> {
    let [by] = query_values(query, ["by"], "DELETE /hold")?;
    checked_text("by", by, MAX_BY_CHARS)
}

/// `for`: a duration like `90s`, `15m` or `2h`, more than zero and at most [`MAX_HOLD`].
fn parse_for(value: &str) -> Result<Duration, String> {
    let lasts = shared::runtime::flags::parse_duration(value).map_err(|problem| {
        format!("query parameter `for`: {problem} (more than 0, at most 24h)")
    })?;
    if lasts > MAX_HOLD {
        return Err(format!(
            "query parameter `for` is `{value}`: a hold lasts at most 24h; set a new one when it ends"
        ));
    }
    Ok(lasts)
}

/// The values of the parameters `names` in `query`, decoded; an unknown or repeated parameter is refused.
fn query_values<const N: usize>(
    query: &str,
    names: [&str; N],
    endpoint: &str,
) -> Result<[Option<String>; N], String> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(at) = names.iter().position(|name| *name == key) else {
            return Err(format!(
                "unknown query parameter `{}`: {endpoint} takes {}",
                shorten(&key),
                names.join(", ")
            ));
        };
        if values[at].replace(value.into_owned()).is_some() {
            return Err(format!(
                "query parameter `{key}` is given twice: give it once"
            ));
        }
    }
    Ok(values)
}

/// Free text from the operator: trimmed, printable, at most `max` characters; empty is the same as absent.
fn checked_text(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(format!(
            "query parameter `{name}` is {chars} characters long: keep it to {max}"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "query parameter `{name}` holds a control character (a newline, a tab, …): write it on one \
             line, in printable characters"
        ));
    }
    Ok(Some(text.to_owned()))
}

/// At most 64 characters of what a client sent, for a message.
fn shorten(text: &str) -> String {
    let short: String = text.chars().take(64).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// Whether the controller is held for maintenance, as everyone reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldState {
    /// No maintenance hold: the controller acts.
    Free,
    /// Held until the hold runs out or is ended.
    Held(MaintenanceHold),
    /// The hold file could not be read: held until the operator ends it (`DELETE /hold`) or sets a new one.
    /// The sentence names the file and the fix.
    Damaged(String),
}

impl HoldState {
    /// Whether the controller must not act.
    pub fn holds(&self) -> bool {
        !matches!(self, Self::Free)
    }

    /// The hold, when there is one that can be shown.
    pub fn hold(&self) -> Option<&MaintenanceHold> {
        match self {
            Self::Held(hold) => Some(hold),
            Self::Free | Self::Damaged(_) => None,
        }
    }

    /// The problem with the hold file, when there is one.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Self::Damaged(problem) => Some(problem),
            Self::Free | Self::Held(_) => None,
        }
    }
}

/// What ended when `DELETE /hold` ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// This hold.
    Hold(MaintenanceHold),
    /// The hold from a damaged file; the sentence says what was wrong with it.
    DamagedFile(String),
}

/// A change of the hold, as [`Maintenance::announce`] tells it.
#[derive(Debug, Clone, Copy)]
pub enum HoldChange<'a> {
    /// A hold was set; `replaced` is the one it replaced.
    Set {
        hold: &'a MaintenanceHold,
        replaced: Option<&'a HoldState>,
    },
    /// `DELETE /hold` ended it, asked by `by`.
    Ended { ended: &'a Ended, by: &'a str },
    /// It ran out.
    Expired { hold: &'a MaintenanceHold },
}

/// The metrics the hold keeps: `dockstate_controller_holds_total{reason="maintenance"}` (holds set) and
/// `dockstate_controller_hold_until_timestamp_seconds`.
#[derive(Debug, Clone)]
pub struct HoldMetrics {
    pub set: IntCounter,
    pub until: Gauge,
}

/// Told of every change of the hold, after the log line and the metrics. Called outside the hold's lock;
/// it must not block.
pub type Listener = Box<dyn Fn(&HoldChange<'_>) + Send + Sync>;

/// The maintenance hold, shared by the HTTP server (which sets and ends it) and the loop (which obeys it and
/// wakes when it runs out). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Maintenance {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<HoldState>,
    /// `None` without `--state-dir`: a restart ends the hold.
    file: Option<HoldFile>,
    /// When the current hold runs out, for the loop to wake at; changes whenever the hold does.
    until: watch::Sender<Option<DateTime<Utc>>>,
    metrics: HoldMetrics,
    listeners: Mutex<Vec<Listener>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("state", &self.state)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Maintenance {
    /// Starts free, or as the hold file says: a hold still in force is taken up again, an expired one is
    /// discarded (and its file removed), a damaged file holds.
    pub fn start(file: Option<HoldFile>, metrics: HoldMetrics, now: DateTime<Utc>) -> Self {
        let state = match file.as_ref().map(|file| file.load(now)) {
            None | Some(Ok(None)) => HoldState::Free,
            Some(Ok(Some(hold))) if hold.expired(now) => {
                tracing::warn!(
                    reason = %hold.reason, by = %hold.by, until = %hold.until.to_rfc3339(),
                    "the maintenance hold in the state directory ran out while status-controller was down: acting"
                );
                if let Some(Err(err)) = file.as_ref().map(HoldFile::remove) {
                    tracing::warn!(error = %crate::error_chain(&err), "cannot remove the expired hold file");
                }
                HoldState::Free
            }
            Some(Ok(Some(hold))) => {
                tracing::warn!(
                    reason = %hold.reason, by = %hold.by, until = %hold.until.to_rfc3339(),
                    "held for maintenance (restored from the state directory): no action until it ends"
                );
                HoldState::Held(hold)
            }
            Some(Err(err)) => {
                let problem = damaged_in_words(&err);
                tracing::error!(problem, "held: the maintenance hold file cannot be read");
                HoldState::Damaged(problem)
            }
        };
        let maintenance = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(HoldState::Free),
                file,
                until: watch::Sender::new(None),
                metrics,
                listeners: Mutex::new(Vec::new()),
            }),
        };
        maintenance.replace(&mut maintenance.lock(), state);
        maintenance
    }

    /// Adds `listener`, told of every change from now on.
    pub fn on_change(&self, listener: impl Fn(&HoldChange<'_>) + Send + Sync + 'static) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Box::new(listener));
    }

    /// Whether a hold outlives a restart (`--state-dir` given).
    pub fn persistent(&self) -> bool {
        self.inner.file.is_some()
    }

    /// The hold at `now`; a hold that has run out ends here (the expiry transition), whoever asks first.
    pub fn state(&self, now: DateTime<Utc>) -> HoldState {
        let mut state = self.lock();
        if let HoldState::Held(hold) = &*state {
            if hold.expired(now) {
                let hold = hold.clone();
                self.replace(&mut state, HoldState::Free);
                drop(state);
                self.expired(&hold);
                return HoldState::Free;
            }
        }
        state.clone()
    }

    /// Whether the controller must not act at `now`.
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        self.state(now).holds()
    }

    /// When the current hold runs out (`None`: no hold, or none that ends by itself); told of every change.
    pub fn watch(&self) -> watch::Receiver<Option<DateTime<Utc>>> {
        self.inner.until.subscribe()
    }

    /// Sets a hold from `request` at `now`, replacing any there is; `client` is who asked when the request
    /// names nobody. Written to the hold file first: a hold that could not be kept is not set. Answers the
    /// hold and what it replaced.
    pub fn set(
        &self,
        request: HoldRequest,
        client: &str,
        now: DateTime<Utc>,
    ) -> Result<(MaintenanceHold, HoldState), HoldFileError> {
        let lasts = chrono::Duration::from_std(request.lasts).unwrap_or(chrono::Duration::MAX);
        let hold = MaintenanceHold {
            reason: request.reason,
            by: request.by.unwrap_or_else(|| client.to_owned()),
            set_at: now,
            until: now + lasts,
        };
        let mut state = self.lock();
        if let Some(file) = &self.inner.file {
            file.save(&hold)?;
        }
        let before = self.replace(&mut state, HoldState::Held(hold.clone()));
        drop(state);
        let replaced = match &before {
            HoldState::Held(old) if old.expired(now) => None,
            HoldState::Free => None,
            other => Some(other),
        };
        self.announce(HoldChange::Set {
            hold: &hold,
            replaced,
        });
        let replaced = replaced.cloned().unwrap_or(HoldState::Free);
        Ok((hold, replaced))
    }

    /// Ends the hold at `now` (`DELETE /hold`, asked by `by`): `None` when there was none. The hold file goes
    /// first: a hold whose file could not be removed stays, or it would come back at the next start.
    pub fn end(&self, by: &str, now: DateTime<Utc>) -> Result<Option<Ended>, HoldFileError> {
        let mut state = self.lock();
        let ended = match &*state {
            HoldState::Free => return Ok(None),
            HoldState::Held(hold) if hold.expired(now) => {
                let hold = hold.clone();
                self.replace(&mut state, HoldState::Free);
                drop(state);
                self.expired(&hold);
                return Ok(None);
            }
            HoldState::Held(hold) => Ended::Hold(hold.clone()),
            HoldState::Damaged(problem) => Ended::DamagedFile(problem.clone()),
        };
        if let Some(file) = &self.inner.file {
            file.remove()?;
        }
        self.replace(&mut state, HoldState::Free);
        drop(state);
        self.announce(HoldChange::Ended { ended: &ended, by });
        Ok(Some(ended))
    }

    /// The expiry transition: the hold ran out; its file goes too.
    fn expired(&self, hold: &MaintenanceHold) {
        if let Some(Err(err)) = self.inner.file.as_ref().map(HoldFile::remove) {
            // Harmless: an expired hold in the file is discarded at the next start.
            tracing::warn!(error = %crate::error_chain(&err), "cannot remove the expired hold file");
        }
        self.announce(HoldChange::Expired { hold });
    }

    /// The one place a change of the hold is told: the log line at warn, the metrics, and the listeners.
    fn announce(&self, change: HoldChange<'_>) {
        self.log_and_count(change);
        let listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for listener in listeners.iter() {
            listener(&change);
        }
    }

    fn log_and_count(&self, change: HoldChange<'_>) {
        match change {
            HoldChange::Set { hold, replaced } => {
                self.inner.metrics.set.inc();
                let replaced = match replaced {
                    Some(HoldState::Held(old)) => {
                        format!("the hold by {} until {}", old.by, old.until.to_rfc3339())
                    }
                    Some(HoldState::Damaged(_)) => "the damaged hold file".to_owned(),
                    Some(HoldState::Free) | None => "nothing".to_owned(),
                };
                tracing::warn!(
                    by = %hold.by, reason = %hold.reason, until = %hold.until.to_rfc3339(), replaced,
                    "held for maintenance: no action until it ends"
                );
            }
            HoldChange::Ended {
                ended: Ended::Hold(hold),
                by,
            } => tracing::warn!(
                by, held_by = %hold.by, reason = %hold.reason, until = %hold.until.to_rfc3339(),
                "maintenance hold ended by DELETE /hold: acting again"
            ),
            HoldChange::Ended {
                ended: Ended::DamagedFile(problem),
                by,
            } => tracing::warn!(
                by, problem = %problem,
                "damaged maintenance hold file cleared by DELETE /hold: acting again"
            ),
            HoldChange::Expired { hold } => tracing::warn!(
                by = %hold.by, reason = %hold.reason, until = %hold.until.to_rfc3339(),
                "maintenance hold expired: acting again"
            ),
        }
    }

    /// Puts `next` in place, keeps the gauge and the loop's wake-up in step with it, and answers what was
    /// there before.
    fn replace(&self, state: &mut HoldState, next: HoldState) -> HoldState {
        let until = next.hold().map(|hold| hold.until);
        let gauge = match &next {
            HoldState::Free => 0.0,
            HoldState::Held(hold) => hold.until.timestamp_millis() as f64 / 1000.0,
            // Held with no end until someone acts.
            HoldState::Damaged(_) => f64::INFINITY,
        };
        self.inner.metrics.until.set(gauge);
        let before = std::mem::replace(state, next);
        self.inner.until.send_replace(until);
        before
    }

    fn lock(&self) -> MutexGuard<'_, HoldState> {
        // The state is replaced whole, never left half-written by a panic: keep using it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What `/ready` and the logs say about a hold file that cannot be read: the file, the problem and the way
/// out.
fn damaged_in_words(err: &HoldFileError) -> String {
    format!(
        "{}. status-controller stays held, as nobody but the operator knows what was meant: end the hold \
         with DELETE /hold, or set a new one with POST /hold (the bearer token is needed for either)",
        crate::error_chain(err)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> HoldMetrics {
        HoldMetrics {
            set: IntCounter::new("holds", "holds set").expect("valid"),
            until: Gauge::new("until", "until").expect("valid"),
        }
    }

    fn request(lasts: Duration) -> HoldRequest {
        HoldRequest {
            lasts,
            reason: "kernel update".into(),
            by: Some("alice".into()),
        }
    }

    #[test]
    fn for_reason_and_by_are_parsed_and_checked() {
        let parsed =
            parse_hold_query("for=15m&reason=%20kernel+update%20&by=alice").expect("valid");
        assert_eq!(
            parsed,
            HoldRequest {
                lasts: Duration::from_secs(900),
                reason: "kernel update".into(),
                by: Some("alice".into()),
            }
        );
        let defaults = parse_hold_query("for=90s").expect("valid");
        assert_eq!(defaults.reason, DEFAULT_REASON);
        assert_eq!(defaults.by, None);
        assert_eq!(
            parse_hold_query("for=24h&reason=").expect("valid").reason,
            DEFAULT_REASON
        );
        assert_eq!(
            parse_hold_query("for=2h").expect("valid").lasts,
            Duration::from_secs(7200)
        );

        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let cases = [
            (String::new(), "`for` is missing"),
            ("reason=x".to_owned(), "`for` is missing"),
            ("for=0s".to_owned(), "zero"),
            ("for=abc".to_owned(), "not a duration"),
            ("for=25h".to_owned(), "at most 24h"),
            ("for=1h&for=2h".to_owned(), "given twice"),
            (
                "for=1h&duration=2h".to_owned(),
                "unknown query parameter `duration`",
            ),
            (
                format!("for=1h&reason={long}"),
                "201 characters long: keep it to 200",
            ),
            ("for=1h&reason=a%0Ab".to_owned(), "control character"),
            (
                format!("for=1h&by={}", "y".repeat(MAX_BY_CHARS + 1)),
                "keep it to 100",
            ),
        ];
        for (query, hint) in cases {
            let err = parse_hold_query(&query).expect_err(&query);
            assert!(err.contains(hint), "{query}: {err}");
        }
        assert_eq!(parse_end_query("by=bob"), Ok(Some("bob".into())));
        assert_eq!(parse_end_query(""), Ok(None));
        assert!(parse_end_query("for=1h").is_err());
    }

    #[test]
    fn a_hold_is_set_replaced_ended_and_runs_out() {
        let metrics = metrics();
        let maintenance = Maintenance::start(None, metrics.clone(), Utc::now());
        let now = Utc::now();
        assert_eq!(maintenance.state(now), HoldState::Free);
        assert_eq!(maintenance.end("bob", now).expect("no file"), None);

        let (hold, replaced) = maintenance
            .set(request(Duration::from_secs(60)), "127.0.0.1", now)
            .expect("no file to write");
        assert_eq!(replaced, HoldState::Free);
        assert_eq!(hold.by, "alice");
        assert_eq!(hold.until, now + chrono::Duration::seconds(60));
        assert!(maintenance.holds(now));
        assert_eq!(*maintenance.watch().borrow(), Some(hold.until));
        assert_eq!(metrics.set.get(), 1);
        assert_eq!(
            metrics.until.get(),
            hold.until.timestamp_millis() as f64 / 1000.0
        );

        let anonymous = HoldRequest {
            by: None,
            ..request(Duration::from_secs(30))
        };
        let (second, replaced) = maintenance.set(anonymous, "10.0.0.7", now).expect("set");
        assert_eq!(replaced, HoldState::Held(hold));
        assert_eq!(second.by, "10.0.0.7", "the client, when nobody is named");
        assert_eq!(metrics.set.get(), 2);

        let ended = maintenance.end("bob", now).expect("ends");
        assert_eq!(ended, Some(Ended::Hold(second.clone())));
        assert!(!maintenance.holds(now));
        assert_eq!(metrics.until.get(), 0.0);
        assert_eq!(*maintenance.watch().borrow(), None);

        maintenance
            .set(request(Duration::from_secs(30)), "c", now)
            .expect("set");
        assert!(maintenance.holds(now + chrono::Duration::seconds(29)));
        assert_eq!(
            maintenance.state(now + chrono::Duration::seconds(30)),
            HoldState::Free,
            "runs out at its end"
        );
        assert_eq!(metrics.until.get(), 0.0);
    }

    #[test]
    fn every_transition_is_told_once_to_the_listeners() {
        let maintenance = Maintenance::start(None, metrics(), Utc::now());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        maintenance.on_change(move |change| {
            let line = match change {
                HoldChange::Set { hold, replaced } => {
                    format!("set by {} replacing {}", hold.by, replaced.is_some())
                }
                HoldChange::Ended { by, .. } => format!("ended by {by}"),
                HoldChange::Expired { hold } => format!("expired, set by {}", hold.by),
            };
            sink.lock().expect("not poisoned").push(line);
        });
        let now = Utc::now();
        maintenance
            .set(request(Duration::from_secs(60)), "c", now)
            .expect("set");
        maintenance
            .set(request(Duration::from_secs(60)), "c", now)
            .expect("set");
        maintenance.end("bob", now).expect("ended");
        maintenance.end("bob", now).expect("nothing to end");
        maintenance
            .set(request(Duration::from_secs(1)), "c", now)
            .expect("set");
        let later = now + chrono::Duration::seconds(2);
        assert!(!maintenance.holds(later));
        assert!(!maintenance.holds(later), "runs out once");
        assert_eq!(
            *heard.lock().expect("not poisoned"),
            [
                "set by alice replacing false",
                "set by alice replacing true",
                "ended by bob",
                "set by alice replacing false",
                "expired, set by alice",
            ]
        );
    }

    #[test]
    fn a_hold_outlives_a_restart_with_a_state_dir_but_never_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = || {
            Some(HoldFile::in_dir(
                dir.path(),
                shared::runtime::state_dir::User::current("status-controller"),
            ))
        };
        let now = Utc::now();
        let first = Maintenance::start(file(), metrics(), now);
        assert!(first.persistent());
        let (hold, _) = first
            .set(request(Duration::from_secs(600)), "c", now)
            .expect("written");
        drop(first);

        let later = now + chrono::Duration::seconds(300);
        let restarted = Maintenance::start(file(), metrics(), later);
        assert_eq!(restarted.state(later), HoldState::Held(hold.clone()));

        let after_its_end = now + chrono::Duration::seconds(601);
        let metrics = metrics();
        let expired = Maintenance::start(file(), metrics.clone(), after_its_end);
        assert_eq!(
            expired.state(after_its_end),
            HoldState::Free,
            "discarded at start"
        );
        assert!(
            !dir.path().join(crate::hold_file::FILE_NAME).exists(),
            "and its file removed"
        );
        assert_eq!(metrics.until.get(), 0.0);

        restarted
            .set(request(Duration::from_secs(60)), "c", later)
            .expect("written");
        restarted.end("bob", later).expect("ended");
        let again = Maintenance::start(file(), self::metrics(), later);
        assert_eq!(
            again.state(later),
            HoldState::Free,
            "an ended hold stays ended"
        );
    }

    #[test]
    fn a_damaged_file_holds_until_the_operator_ends_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::hold_file::FILE_NAME);
        std::fs::write(&path, b"not json").expect("writes");
        let metrics = metrics();
        let now = Utc::now();
        let maintenance = Maintenance::start(
            Some(HoldFile::in_dir(
                dir.path(),
                shared::runtime::state_dir::User::current("status-controller"),
            )),
            metrics.clone(),
            now,
        );
        let state = maintenance.state(now);
        assert!(state.holds());
        let problem = state.problem().expect("a problem").to_owned();
        assert!(problem.contains(&path.display().to_string()), "{problem}");
        assert!(problem.contains("DELETE /hold"), "{problem}");
        assert_eq!(metrics.until.get(), f64::INFINITY);
        assert!(path.exists(), "never replaced on its own");
        assert!(
            maintenance.holds(now + chrono::Duration::days(7)),
            "a damaged file never runs out"
        );

        let ended = maintenance.end("bob", now).expect("removed");
        assert_eq!(ended, Some(Ended::DamagedFile(problem)));
        assert!(!path.exists());
        assert_eq!(maintenance.state(now), HoldState::Free);
    }
}
