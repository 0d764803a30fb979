//! `--once`: one pass for cron and CI. It prints the plan as a table (and carries it out unless `--dry-run`)
//! and exits like terraform's detailed exit code: 0 in sync, 2 when drift was found, 1 on error — status-api
//! not reachable, not ready or stale, or an action that failed.

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shared::runtime::startup::StartupError;

use crate::clock::Clock;
use crate::config::Settings;
use crate::docker::EngineWriter;
use crate::error_chain;
use crate::executor::Executor;
use crate::freshness::{complete_view, FreshView};
use crate::journal::ActionRecord;
use crate::model::{Action, ActionKind, ActionResult, Hold};
use crate::plan::{has_drift, plan, PlanSettings};
use crate::state_dir::ControllerDirError;
use crate::status_client::StatusSource;

/// What one pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceOutcome {
    /// No drift: exit 0.
    InSync,
    /// Drift was found (and healed, unless `--dry-run`): exit 2.
    Drift,
}

impl OnceOutcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::InSync => ExitCode::SUCCESS,
            Self::Drift => ExitCode::from(2),
        }
    }
}

/// Why one pass could not do its job: exit 1.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    #[error(transparent)]
    Startup(#[from] StartupError<ControllerDirError>),
    #[error("not acting on status-api's view: {0}")]
    Held(Hold),
    #[error("{failed} of {attempted} actions failed (see the table above)")]
    ActionsFailed { failed: usize, attempted: usize },
    #[error("cannot write the plan")]
    Output(#[from] std::io::Error),
}

/// Runs one pass with the parts start-up built (`client`, `executor`, `plan_settings`), writing the table
/// to `out`. The time it plans at and the time its actions' drift was seen are the executor's clock's.
pub async fn run_once<S: StatusSource, W: EngineWriter, C: Clock>(
    settings: &Settings,
    client: &S,
    executor: &Executor<W, S, C>,
    plan_settings: &PlanSettings,
    out: &mut dyn Write,
) -> Result<OnceOutcome, OnceError> {
    let status = client
        .status(None, Duration::ZERO)
        .await
        .map_err(|err| OnceError::Held(Hold::from(&err)))?;
    let read_snapshot = || async { client.snapshot().await.map_err(|err| Hold::from(&err)) };
    let clock = executor.clock();
    let view = complete_view(
        status,
        &settings.scope(),
        None,
        true,
        clock.utc(),
        read_snapshot,
    )
    .await
    .map_err(OnceError::Held)?;
    let actions = plan(
        &view.snapshot.containers,
        &view.observed,
        plan_settings,
        clock.utc(),
    );

    if settings.dry_run || !actions.iter().any(|action| action.kind.changes_host()) {
        out.write_all(table(&actions, None, &view, settings.dry_run).as_bytes())?;
        return Ok(outcome(&actions));
    }

    let context = Arc::new(view.context(plan_settings.own_ids()));
    let now = clock.now();
    let tasks: Vec<_> = actions
        .iter()
        .filter(|action| action.kind.changes_host())
        .filter_map(|action| executor.spawn(action.clone(), context.clone(), now))
        .collect();
    let mut records = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(record) = task.await {
            records.push(record);
        }
    }
    out.write_all(table(&actions, Some(&records), &view, false).as_bytes())?;
    let failed = records
        .iter()
        .filter(|record| record.result == ActionResult::Failed)
        .count();
    if failed > 0 {
        return Err(OnceError::ActionsFailed {
            failed,
            attempted: records.len(),
        });
    }
    Ok(outcome(&actions))
}

fn outcome(actions: &[Action]) -> OnceOutcome {
    if has_drift(actions) {
        OnceOutcome::Drift
    } else {
        OnceOutcome::InSync
    }
}

/// The columns of the table, in order.
const HEADER: [&str; 7] = [
    "CONTAINER",
    "STATE",
    "DRIFT",
    "POLICY",
    "ACTION",
    "RESULT",
    "REASON",
];

/// One action's cells, in the columns' order.
type Row = [String; HEADER.len()];

/// The plan as a table for people, with what became of each action when `records` are given.
pub fn table(
    actions: &[Action],
    records: Option<&[ActionRecord]>,
    view: &FreshView,
    dry_run: bool,
) -> String {
    let scope = view.observed.scope.as_ref().map_or_else(
        || "the whole host".to_owned(),
        |scope| format!("scope {scope}"),
    );
    let members = shared::count_of(view.snapshot.containers.len(), "container");
    let taken_at = view.snapshot.taken_at.format("%Y-%m-%d %H:%M:%S UTC");
    let revision = view.observed.revision;
    if actions.is_empty() {
        return format!(
            "In sync with the snapshot of {taken_at} ({members}, {scope}, revision {revision}).\n"
        );
    }

    let rows: Vec<Row> = actions
        .iter()
        .map(|action| row(action, records, dry_run))
        .collect();
    let mut text = aligned(&rows);
    let notes = notes(records.unwrap_or_default());
    if !notes.is_empty() {
        let _ = writeln!(text);
        text.push_str(&notes);
    }
    // A wait for the engine is not a difference; a dependant waiting for its namespace owner is.
    let drift = actions
        .iter()
        .filter(|action| action.kind != ActionKind::Wait || action.waits_for.is_some())
        .count();
    let _ = writeln!(
        text,
        "\n{} from the snapshot of {taken_at} ({members}, {scope}, revision {revision}).{}",
        shared::count_of(drift, "difference"),
        if dry_run {
            " Dry run: nothing was changed."
        } else {
            ""
        }
    );
    text
}

/// One action's row, with what became of it when its record is among `records`.
fn row(action: &Action, records: Option<&[ActionRecord]>, dry_run: bool) -> Row {
    let record = records.and_then(|records| {
        records
            .iter()
            .find(|record| record.container == action.container && record.action == action.kind)
    });
    [
        action.container.clone(),
        action
            .state
            .map_or_else(|| "-".to_owned(), |state| state.to_string()),
        action
            .drift
            .map_or_else(|| "-".to_owned(), |drift| drift.to_string()),
        action.policy.as_str().to_owned(),
        action.kind.to_string(),
        result_cell(action, record, dry_run),
        action.reason.clone(),
    ]
}

/// The header and `rows`, each column as wide as its widest cell, the last one left ragged.
fn aligned(rows: &[Row]) -> String {
    let mut widths = HEADER.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut row = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                row.push_str(cell);
            } else {
                let _ = write!(row, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(text, "{}", row.trim_end());
    };
    line(&HEADER);
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
    text
}

/// The details of `records` that have one, a line each.
fn notes(records: &[ActionRecord]) -> String {
    let mut text = String::new();
    for record in records {
        if let Some(detail) = &record.detail {
            let _ = writeln!(text, "  {}: {detail}", record.container);
        }
    }
    text
}

fn result_cell(action: &Action, record: Option<&ActionRecord>, dry_run: bool) -> String {
    match (action.kind, record) {
        (ActionKind::Report, _) => "reported".to_owned(),
        (ActionKind::Wait, _) => "waiting".to_owned(),
        (_, Some(record)) => record.result.to_string(),
        (_, None) if dry_run => "dry run".to_owned(),
        (_, None) => "not run".to_owned(),
    }
}

/// The one-line error `main` prints for exit code 1.
pub fn describe(err: &OnceError) -> String {
    error_chain(err)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use shared::{ContainerState, DriftKind, Policy, SnapshotSummary};

    use super::*;
    use crate::model::Observed;

    fn view(members: usize) -> FreshView {
        FreshView {
            snapshot: Arc::new(SnapshotSummary {
                taken_at: Utc
                    .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
                    .single()
                    .expect("time"),
                scope: Some("team=a".into()),
                containers: (0..members)
                    .map(|i| shared::SnapshotMember {
                        name: format!("c{i}"),
                        id: format!("{i}"),
                        image: "busybox".into(),
                        image_id: String::new(),
                        labels: Default::default(),
                        shares: Default::default(),
                    })
                    .collect(),
            }),
            observed: Observed {
                revision: 42,
                scope: Some("team=a".parse().expect("selector")),
                server_container_id: None,
                containers: vec![],
            },
            observed_at: Utc::now(),
            resync_interval_seconds: 30,
        }
    }

    fn action(container: &str, kind: ActionKind, drift: DriftKind) -> Action {
        Action {
            container: container.into(),
            id: "0".repeat(64),
            kind,
            drift: Some(drift),
            policy: Policy::Heal,
            state: Some(ContainerState::Exited),
            reason: format!("{drift} reason"),
            waits_for: None,
            retry_at: None,
        }
    }

    #[test]
    fn in_sync_is_one_line() {
        let text = table(&[], None, &view(3), true);
        assert_eq!(
            text,
            "In sync with the snapshot of 2026-11-22 10:00:00 UTC (3 containers, scope team=a, revision 42).\n"
        );
    }

    #[test]
    fn a_dry_run_table_aligns_its_columns() {
        let actions = [
            action("web", ActionKind::Start, DriftKind::Stopped),
            action("a-longer-name", ActionKind::Report, DriftKind::Changed),
        ];
        let text = table(&actions, None, &view(2), true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0]
                .starts_with("CONTAINER      STATE   DRIFT    POLICY  ACTION  RESULT    REASON"),
            "{text}"
        );
        assert!(
            lines[1].starts_with(
                "web            exited  stopped  heal    start   dry run   stopped reason"
            ),
            "{text}"
        );
        assert!(
            lines[2].contains("report  reported  changed reason"),
            "{text}"
        );
        assert!(text.contains("Dry run: nothing was changed."), "{text}");
    }

    #[test]
    fn applied_tables_show_results_and_details() {
        let actions = [action("web", ActionKind::Recreate, DriftKind::Removed)];
        let record = ActionRecord {
            time: Utc::now(),
            container: "web".into(),
            container_id: "0".repeat(64),
            action: ActionKind::Recreate,
            drift: Some(DriftKind::Removed),
            reason: "removed reason".into(),
            result: ActionResult::Ok,
            detail: Some("recreated as 0123456789ab".into()),
            duration_seconds: 0.3,
        };
        let text = table(&actions, Some(&[record]), &view(1), false);
        assert!(text.contains("recreate  ok "), "{text}");
        assert!(text.contains("  web: recreated as 0123456789ab"), "{text}");
        assert!(!text.contains("Dry run"), "{text}");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(outcome(&[]), OnceOutcome::InSync);
        let mut wait = action("web", ActionKind::Wait, DriftKind::Stopped);
        wait.drift = None;
        assert_eq!(outcome(std::slice::from_ref(&wait)), OnceOutcome::InSync);
        // A dependant waiting for its namespace owner is drift.
        let mut waiting_dependant = action("app", ActionKind::Wait, DriftKind::Orphaned);
        waiting_dependant.waits_for = Some("vpn".into());
        assert_eq!(outcome(&[waiting_dependant]), OnceOutcome::Drift);
        assert_eq!(
            outcome(&[action("web", ActionKind::Report, DriftKind::Changed)]),
            OnceOutcome::Drift
        );
    }
}
