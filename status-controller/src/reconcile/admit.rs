//! Whether a planned action is carried out now, and if not, what becomes of it: a pure decision over plain
//! facts, so every gate is tested as a table without running the loop. The loop gathers the facts
//! ([`Gates`]), asks [`admit`], and carries the [`Admission`] out (journal, metrics, notifications, the
//! executor, its next wake-up), as kube-runtime's `error_policy` returns an `Action` that its runner
//! schedules.

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::backoff::Gate;
use crate::model::{Action, ActionKind, ActionResult};

/// What is true, at this pass, of the action's container and of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gates {
    /// `--dry-run`: nothing that changes the host is carried out.
    pub dry_run: bool,
    /// The operator's maintenance hold is on.
    pub held: bool,
    /// An action on the container is under way.
    pub busy: bool,
    /// The revision of the view the action was planned from.
    pub revision: u64,
    /// When an action on the container just ended: the revision status-api must pass before a view can show
    /// what it did.
    pub settling: Option<u64>,
    /// The [`HealGuard`](crate::backoff::HealGuard)'s verdict: backoff and quarantine.
    pub guard: Gate,
}

/// What the loop does with a planned action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Carry it out now.
    Go,
    /// A [`ActionKind::Wait`]: nothing to carry out. Look again at `look_again` (a wait that ends by itself,
    /// compose at work), change or not; `report` it when it is drift (a dependant waiting for its namespace
    /// owner), not when it waits for the engine.
    Wait {
        look_again: Option<DateTime<Utc>>,
        report: bool,
    },
    /// Not carried out, by its nature (a report) or by `--dry-run`: recorded once per appearance.
    Announce {
        result: ActionResult,
        detail: Option<String>,
    },
    /// The maintenance hold keeps it back: a drift held on purpose, whose heal time starts when the hold ends.
    HeldBack,
    /// The container's previous action is still under way.
    Busy,
    /// The view may not show what the container's last action did: wait for a revision after `after`.
    Settling { after: u64 },
    /// Acted on a moment ago: not before this.
    BackoffUntil(Instant),
    /// It kept failing: left alone until `until`; `entered` at the pass that put it there.
    Quarantined { until: Instant, entered: bool },
}

/// Decides what becomes of `action` given `gates`. The order is the rule: a wait and a report are never
/// carried out whatever else holds; `--dry-run` records rather than holds; the hold keeps back what would
/// otherwise be tried; an action under way, a view that is not yet new enough, and the backoff each make it
/// wait its turn.
pub fn admit(action: &Action, gates: &Gates) -> Admission {
    if action.kind == ActionKind::Wait {
        return Admission::Wait {
            look_again: action.retry_at,
            report: action.waits_for.is_some(),
        };
    }
    if !action.kind.changes_host() {
        return Admission::Announce {
            result: ActionResult::Reported,
            detail: None,
        };
    }
    if gates.dry_run {
        return Admission::Announce {
            result: ActionResult::DryRun,
            detail: Some("dry run: not carried out".into()),
        };
    }
    if gates.held {
        return Admission::HeldBack;
    }
    if gates.busy {
        return Admission::Busy;
    }
    if let Some(after) = gates.settling.filter(|after| gates.revision <= *after) {
        return Admission::Settling { after };
    }
    match gates.guard {
        Gate::Go => Admission::Go,
        Gate::Wait { until } => Admission::BackoffUntil(until),
        Gate::Quarantined { until, entered } => Admission::Quarantined { until, entered },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn action(kind: ActionKind) -> Action {
        Action {
            container: "web".into(),
            id: "web-id".into(),
            kind,
            drift: None,
            policy: Default::default(),
            state: None,
            reason: "a test".into(),
            waits_for: None,
            retry_at: None,
        }
    }

    fn dependant_wait() -> Action {
        Action {
            waits_for: Some("owner".into()),
            ..action(ActionKind::Wait)
        }
    }

    fn compose_wait(at: DateTime<Utc>) -> Action {
        Action {
            retry_at: Some(at),
            ..action(ActionKind::Wait)
        }
    }

    /// Every gate open: a fresh view, no hold, no action under way, no backoff.
    const OPEN: Gates = Gates {
        dry_run: false,
        held: false,
        busy: false,
        revision: 8,
        settling: None,
        guard: Gate::Go,
    };

    /// Every gate shut at once.
    fn shut(now: Instant) -> Gates {
        Gates {
            dry_run: true,
            held: true,
            busy: true,
            revision: 7,
            settling: Some(7),
            guard: Gate::Quarantined {
                until: now,
                entered: true,
            },
        }
    }

    fn reported() -> Admission {
        Admission::Announce {
            result: ActionResult::Reported,
            detail: None,
        }
    }

    fn dry_run() -> Admission {
        Admission::Announce {
            result: ActionResult::DryRun,
            detail: Some("dry run: not carried out".into()),
        }
    }

    #[test]
    fn each_gate_in_its_turn() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3);
        let at = Utc::now();
        let start = || action(ActionKind::Start);
        let cases: Vec<(&str, Action, Gates, Admission)> = vec![
            ("all open: go", start(), OPEN, Admission::Go),
            (
                "a stop of an unexpected container goes too",
                action(ActionKind::Stop),
                OPEN,
                Admission::Go,
            ),
            (
                "a wait for the engine: nothing, said nowhere",
                action(ActionKind::Wait),
                OPEN,
                Admission::Wait {
                    look_again: None,
                    report: false,
                },
            ),
            (
                "a wait that ends by itself: look again then",
                compose_wait(at),
                OPEN,
                Admission::Wait {
                    look_again: Some(at),
                    report: false,
                },
            ),
            (
                "a dependant waiting for its owner: drift, reported",
                dependant_wait(),
                OPEN,
                Admission::Wait {
                    look_again: None,
                    report: true,
                },
            ),
            (
                "a wait, every gate shut: still only a wait",
                compose_wait(at),
                shut(now),
                Admission::Wait {
                    look_again: Some(at),
                    report: false,
                },
            ),
            ("a report", action(ActionKind::Report), OPEN, reported()),
            (
                "a report, every gate shut: still reported",
                action(ActionKind::Report),
                shut(now),
                reported(),
            ),
            (
                "dry run",
                start(),
                Gates {
                    dry_run: true,
                    ..OPEN
                },
                dry_run(),
            ),
            (
                "dry run is recorded even while held, busy, quarantined",
                start(),
                shut(now),
                dry_run(),
            ),
            (
                "held",
                start(),
                Gates { held: true, ..OPEN },
                Admission::HeldBack,
            ),
            (
                "held comes before busy, settling and backoff",
                start(),
                Gates {
                    dry_run: false,
                    ..shut(now)
                },
                Admission::HeldBack,
            ),
            (
                "busy",
                start(),
                Gates { busy: true, ..OPEN },
                Admission::Busy,
            ),
            (
                "busy comes before settling and backoff",
                start(),
                Gates {
                    busy: true,
                    settling: Some(9),
                    guard: Gate::Wait { until: later },
                    ..OPEN
                },
                Admission::Busy,
            ),
            (
                "settling: the view is the one the action ended at",
                start(),
                Gates {
                    settling: Some(8),
                    ..OPEN
                },
                Admission::Settling { after: 8 },
            ),
            (
                "settling: an older view",
                start(),
                Gates {
                    settling: Some(9),
                    ..OPEN
                },
                Admission::Settling { after: 9 },
            ),
            (
                "settled: a newer view",
                start(),
                Gates {
                    settling: Some(7),
                    ..OPEN
                },
                Admission::Go,
            ),
            (
                "settling comes before the backoff",
                start(),
                Gates {
                    settling: Some(8),
                    guard: Gate::Wait { until: later },
                    ..OPEN
                },
                Admission::Settling { after: 8 },
            ),
            (
                "backing off",
                start(),
                Gates {
                    guard: Gate::Wait { until: later },
                    ..OPEN
                },
                Admission::BackoffUntil(later),
            ),
            (
                "settled, then backing off",
                start(),
                Gates {
                    settling: Some(7),
                    guard: Gate::Wait { until: later },
                    ..OPEN
                },
                Admission::BackoffUntil(later),
            ),
            (
                "entering quarantine",
                start(),
                Gates {
                    guard: Gate::Quarantined {
                        until: later,
                        entered: true,
                    },
                    ..OPEN
                },
                Admission::Quarantined {
                    until: later,
                    entered: true,
                },
            ),
            (
                "in quarantine",
                action(ActionKind::Restart),
                Gates {
                    guard: Gate::Quarantined {
                        until: later,
                        entered: false,
                    },
                    ..OPEN
                },
                Admission::Quarantined {
                    until: later,
                    entered: false,
                },
            ),
        ];
        for (case, action, gates, expected) in cases {
            assert_eq!(admit(&action, &gates), expected, "{case}");
        }
    }
}
