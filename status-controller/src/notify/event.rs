//! What a notification tells: one [`NotifyEvent`] per thing that happened, built from what the loop knows at
//! that moment. Pure data: the formats ([`super::format`]) turn it into a body for each receiver.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Action, ActionKind, ActionResult, Ended, Hold, HoldReason};

/// Why a notification is sent: the `kind` field of every format.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    /// An action the engine (or status-api) refused or failed: result `failed`.
    ActionFailed,
    /// A container failed too often and is left alone for a while.
    QuarantineEntered,
    /// A quarantine ended: served its time, a new container under the name, or a run that stayed up.
    QuarantineEnded,
    /// The controller has held (taken no action) for longer than `--notify-hold-after`.
    HoldStarted,
    /// That long hold is over: the controller acts again.
    HoldEnded,
    /// An operator stopped all actions on purpose (`POST /hold`).
    MaintenanceHoldSet,
    /// The maintenance hold expired or was lifted.
    MaintenanceHoldEnded,
    /// Actions that healed drift (`ok`), sent in batches; only with `--notify-heals`.
    Heals,
    /// A `changed` member labelled `dockstate.changed=recreate` was put back to its snapshot spec: the
    /// container someone changed is gone. Always sent, not batched.
    ChangedMemberReplaced,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One thing that happened, as every format tells it. Fields that do not apply to a kind are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyEvent {
    pub kind: EventKind,
    /// The container it is about; `None` for holds.
    pub container: Option<String>,
    /// The action tried (or held back).
    pub action: Option<ActionKind>,
    /// Why: the action's reason, the hold's reason code, or the operator's reason.
    pub reason: Option<String>,
    /// The action's result.
    pub result: Option<ActionResult>,
    /// What went wrong, for a failed action.
    pub error: Option<String>,
    /// Which attempt on this container since its count last started over.
    pub attempt: Option<u32>,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// More to say: how a quarantine ended, how long a hold lasted, a recreated container's new id.
    pub detail: Option<String>,
}

impl NotifyEvent {
    fn new(kind: EventKind, time: DateTime<Utc>) -> Self {
        Self {
            kind,
            container: None,
            action: None,
            reason: None,
            result: None,
            error: None,
            attempt: None,
            time,
            detail: None,
        }
    }

    /// The event an ended action makes, if any: `action_failed` for `failed`; a `heals` item for an `ok`
    /// that changed the host. Every other result (noop, gone, conflict, skipped) is the engine's or the next
    /// change's business, not a failure of the controller's.
    pub fn of_ended(ended: &Ended, attempt: u32) -> Option<Self> {
        let kind = match ended.result {
            ActionResult::Failed => EventKind::ActionFailed,
            ActionResult::Ok
                if ended.kind == ActionKind::Replace
                    && ended.drift == Some(shared::DriftKind::Changed) =>
            {
                EventKind::ChangedMemberReplaced
            }
            ActionResult::Ok if ended.kind.changes_host() => EventKind::Heals,
            _ => return None,
        };
        let failed = kind == EventKind::ActionFailed;
        Some(Self {
            container: Some(ended.container.clone()),
            action: Some(ended.kind),
            reason: Some(ended.reason.clone()),
            result: Some(ended.result),
            error: ended.detail.clone().filter(|_| failed),
            attempt: Some(attempt).filter(|_| failed),
            detail: ended.detail.clone().filter(|_| !failed),
            ..Self::new(kind, ended.time)
        })
    }

    /// `action` was held back: its container is quarantined after `attempts` attempts; `detail` says for how
    /// long.
    pub fn quarantine_entered(
        action: &Action,
        attempts: u32,
        detail: String,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            container: Some(action.container.clone()),
            action: Some(action.kind),
            reason: Some(action.reason.clone()),
            result: Some(ActionResult::Quarantined),
            attempt: Some(attempts),
            detail: Some(detail),
            ..Self::new(EventKind::QuarantineEntered, time)
        }
    }

    /// The quarantine of `container` (which held back `action`) ended; `detail` says how.
    pub fn quarantine_ended(
        container: &str,
        action: ActionKind,
        detail: String,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            container: Some(container.to_owned()),
            action: Some(action),
            result: Some(ActionResult::QuarantineEnded),
            detail: Some(detail),
            ..Self::new(EventKind::QuarantineEnded, time)
        }
    }

    /// The controller has held for `held_for` already, because of `hold`.
    pub fn hold_started(hold: &Hold, held_for: Duration, time: DateTime<Utc>) -> Self {
        Self {
            reason: Some(hold.reason.as_str().to_owned()),
            detail: Some(format!("{} (holding for {})", hold.detail, human(held_for))),
            ..Self::new(EventKind::HoldStarted, time)
        }
    }

    /// The long hold whose last reason was `reason` ended after `held_for`.
    pub fn hold_ended(reason: HoldReason, held_for: Duration, time: DateTime<Utc>) -> Self {
        Self {
            reason: Some(reason.as_str().to_owned()),
            detail: Some(format!("held for {}; acting again", human(held_for))),
            ..Self::new(EventKind::HoldEnded, time)
        }
    }

    /// An operator set a maintenance hold until `until`, saying `reason`.
    pub fn maintenance_hold_set(reason: &str, until: DateTime<Utc>, time: DateTime<Utc>) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            detail: Some(format!(
                "no action until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            ..Self::new(EventKind::MaintenanceHoldSet, time)
        }
    }

    /// The maintenance hold set for `reason` ended; `how` says how (expired, lifted).
    pub fn maintenance_hold_ended(reason: &str, how: &str, time: DateTime<Utc>) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            detail: Some(how.to_owned()),
            ..Self::new(EventKind::MaintenanceHoldEnded, time)
        }
    }
}

/// `1h 2m 3s`, `4m 10s`, `12s`: a duration for people.
pub fn human(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m {seconds}s"),
        _ => format!("{hours}h {minutes}m {seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(kind: ActionKind, result: ActionResult, detail: Option<&str>) -> Ended {
        Ended {
            container: "web".into(),
            kind,
            result,
            new_id: None,
            reason: "stopped: exited (137)".into(),
            drift: None,
            detail: detail.map(str::to_owned),
            time: Utc::now(),
        }
    }

    #[test]
    fn only_failures_and_heals_make_events() {
        let failed = NotifyEvent::of_ended(
            &ended(
                ActionKind::Start,
                ActionResult::Failed,
                Some("engine said no"),
            ),
            3,
        )
        .expect("a failure is told");
        assert_eq!(failed.kind, EventKind::ActionFailed);
        assert_eq!(failed.error.as_deref(), Some("engine said no"));
        assert_eq!(failed.attempt, Some(3));
        assert_eq!(failed.detail, None);

        let healed = NotifyEvent::of_ended(
            &ended(
                ActionKind::Recreate,
                ActionResult::Ok,
                Some("recreated as 0123"),
            ),
            1,
        )
        .expect("a heal is told");
        assert_eq!(healed.kind, EventKind::Heals);
        assert_eq!(healed.detail.as_deref(), Some("recreated as 0123"));
        assert_eq!((healed.error, healed.attempt), (None, None));

        for result in [
            ActionResult::Noop,
            ActionResult::Gone,
            ActionResult::Conflict,
            ActionResult::Skipped,
        ] {
            assert_eq!(
                NotifyEvent::of_ended(&ended(ActionKind::Start, result, Some("x")), 1),
                None,
                "{result}"
            );
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(human(Duration::from_secs(3723)), "1h 2m 3s");
    }

    #[test]
    fn a_changed_member_put_back_is_told_whether_heals_are_asked_for_or_not() {
        let mut replaced = ended(
            ActionKind::Replace,
            ActionResult::Ok,
            Some("recreated as 4f1c2a9e0b7d"),
        );
        replaced.drift = Some(shared::DriftKind::Changed);
        let event = NotifyEvent::of_ended(&replaced, 1).expect("an event");
        assert_eq!(event.kind, EventKind::ChangedMemberReplaced);
        assert_eq!(event.detail.as_deref(), Some("recreated as 4f1c2a9e0b7d"));
        // The replace of a dead member is a heal like any other.
        replaced.drift = Some(shared::DriftKind::Stopped);
        let event = NotifyEvent::of_ended(&replaced, 1).expect("an event");
        assert_eq!(event.kind, EventKind::Heals);
    }
}
