//! The three ways a notification is written (docs/notifications.md shows each): `json`, one documented
//! object; `slack`, `{"text": …}` with one line per item (Slack, Discord's `/slack` endpoint and Mattermost
//! all take it); `ntfy`, a plain-text body with `Title`, `Priority` and `Tags` headers. Pure: tested without
//! a receiver.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::event::{EventKind, NotifyEvent};
use super::target::Format;

/// The version of the `json` format's object: raised on any change that is not an added field.
pub const JSON_SCHEMA: u32 = 1;

/// What one request tells: one event, or a batch of heals.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    One(NotifyEvent),
    /// `heals` events, oldest first; never empty.
    Heals(Vec<NotifyEvent>),
}

impl Message {
    pub fn kind(&self) -> EventKind {
        match self {
            Self::One(event) => event.kind,
            Self::Heals(_) => EventKind::Heals,
        }
    }
}

/// A request body and the headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The `json` format: every field of the event, the host, a one-line summary, and for heals the items.
#[derive(Debug, Serialize)]
struct JsonBody<'a> {
    schema: u32,
    host: &'a str,
    kind: EventKind,
    summary: String,
    container: Option<&'a str>,
    action: Option<crate::model::ActionKind>,
    reason: Option<&'a str>,
    result: Option<crate::model::ActionResult>,
    error: Option<&'a str>,
    attempt: Option<u32>,
    time: DateTime<Utc>,
    detail: Option<&'a str>,
    /// For `heals`: each heal, with the same fields as a single event; else empty.
    items: Vec<&'a NotifyEvent>,
}

/// `message` from the controller of the engine `host`, written for `format`.
pub fn render(format: Format, host: &str, message: &Message) -> Rendered {
    match format {
        Format::Json => json(host, message),
        Format::Slack => {
            let mut text = format!("[dockstate on {host}] {}", title(message));
            for line in lines(message) {
                text.push('\n');
                text.push_str(&line);
            }
            Rendered {
                content_type: "application/json",
                headers: Vec::new(),
                body: serde_json::json!({ "text": slack_escape(&text) }).to_string(),
            }
        }
        Format::Ntfy => Rendered {
            content_type: "text/plain; charset=utf-8",
            headers: vec![
                (
                    "Title",
                    header_text(&format!("dockstate on {host}: {}", title(message))),
                ),
                ("Priority", priority(message.kind()).to_owned()),
                (
                    "Tags",
                    format!("{},dockstate,{}", emoji(message.kind()), message.kind()),
                ),
            ],
            body: lines(message).join("\n"),
        },
    }
}

fn json(host: &str, message: &Message) -> Rendered {
    let (event, items) = match message {
        Message::One(event) => (Some(event), Vec::new()),
        Message::Heals(heals) => (None, heals.iter().collect()),
    };
    let time = match message {
        Message::One(event) => event.time,
        Message::Heals(heals) => heals.last().map_or_else(Utc::now, |heal| heal.time),
    };
    let body = JsonBody {
        schema: JSON_SCHEMA,
        host,
        kind: message.kind(),
        summary: title(message),
        container: event.and_then(|event| event.container.as_deref()),
        action: event.and_then(|event| event.action),
        reason: event.and_then(|event| event.reason.as_deref()),
        result: event.and_then(|event| event.result),
        error: event.and_then(|event| event.error.as_deref()),
        attempt: event.and_then(|event| event.attempt),
        time,
        detail: event.and_then(|event| event.detail.as_deref()),
        items,
    };
    Rendered {
        content_type: "application/json",
        headers: Vec::new(),
        body: serde_json::to_string(&body).unwrap_or_default(),
    }
}

/// One line that says what happened.
pub fn title(message: &Message) -> String {
    let event = match message {
        Message::Heals(heals) => return shared::count_of(heals.len(), "heal"),
        Message::One(event) => event,
    };
    let container = event.container.as_deref().unwrap_or("-");
    let action = event.action.map_or("-", |action| action.as_str());
    let reason = event.reason.as_deref().unwrap_or("-");
    match event.kind {
        EventKind::ActionFailed => format!("{action} of {container} failed"),
        EventKind::QuarantineEntered => format!("{container} quarantined"),
        EventKind::QuarantineEnded => format!("{container} out of quarantine"),
        EventKind::HoldStarted => format!("holding, no action taken: {reason}"),
        EventKind::HoldEnded => "acting again after a long hold".to_owned(),
        EventKind::MaintenanceHoldSet => format!("maintenance hold set: {reason}"),
        EventKind::MaintenanceHoldEnded => format!("maintenance hold ended: {reason}"),
        EventKind::Heals => format!("{container} healed: {action}"),
        EventKind::ChangedMemberReplaced => format!("{container} put back to its snapshot spec"),
    }
}

/// The message's lines for people: one per event, with what there is to say about it.
pub fn lines(message: &Message) -> Vec<String> {
    match message {
        Message::One(event) => vec![line(event)],
        Message::Heals(heals) => heals.iter().map(line).collect(),
    }
}

fn line(event: &NotifyEvent) -> String {
    let container = event.container.as_deref().unwrap_or("-");
    let action = event.action.map_or("-", |action| action.as_str());
    let reason = event.reason.as_deref().unwrap_or("-");
    let detail = event.detail.as_deref().unwrap_or("");
    match event.kind {
        EventKind::ActionFailed => format!(
            "{container}: {action} failed (attempt {}): {} (why: {reason})",
            event.attempt.unwrap_or(1),
            event.error.as_deref().unwrap_or("no detail")
        ),
        EventKind::QuarantineEntered => {
            format!("{container}: {action} held back, quarantined: {detail} (why: {reason})")
        }
        EventKind::QuarantineEnded => format!("{container}: quarantine {detail}"),
        EventKind::HoldStarted => format!("holding ({reason}): {detail}"),
        EventKind::HoldEnded | EventKind::MaintenanceHoldSet | EventKind::MaintenanceHoldEnded => {
            format!("{}: {detail} ({reason})", event.kind)
        }
        EventKind::Heals if detail.is_empty() => format!("{container}: {action} ok ({reason})"),
        EventKind::Heals => format!("{container}: {action} ok, {detail} ({reason})"),
        EventKind::ChangedMemberReplaced => format!("{container}: {detail} (why: {reason})"),
    }
}

/// ntfy's priority: what needs someone high, heals low.
fn priority(kind: EventKind) -> &'static str {
    match kind {
        EventKind::ActionFailed | EventKind::QuarantineEntered | EventKind::HoldStarted => "high",
        EventKind::Heals => "low",
        EventKind::QuarantineEnded
        | EventKind::ChangedMemberReplaced
        | EventKind::HoldEnded
        | EventKind::MaintenanceHoldSet
        | EventKind::MaintenanceHoldEnded => "default",
    }
}

/// An ntfy tag that it shows as an emoji.
fn emoji(kind: EventKind) -> &'static str {
    match kind {
        EventKind::ActionFailed => "x",
        EventKind::QuarantineEntered => "rotating_light",
        EventKind::HoldStarted => "warning",
        EventKind::MaintenanceHoldSet => "construction",
        EventKind::Heals => "wrench",
        EventKind::ChangedMemberReplaced => "leftwards_arrow_with_hook",
        EventKind::QuarantineEnded | EventKind::HoldEnded | EventKind::MaintenanceHoldEnded => {
            "white_check_mark"
        }
    }
}

/// Slack reads `&`, `<` and `>` as markup: they are escaped as its documentation asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A header value is visible ASCII: anything else becomes `?`.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{ActionKind, ActionResult};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 9, 30, 0)
            .single()
            .expect("time")
    }

    fn failed() -> NotifyEvent {
        NotifyEvent {
            kind: EventKind::ActionFailed,
            container: Some("web".into()),
            action: Some(ActionKind::Recreate),
            reason: Some("removed: not on the host".into()),
            result: Some(ActionResult::Failed),
            error: Some("image app:1 is not on this host <pull it>".into()),
            attempt: Some(2),
            time: at(),
            detail: None,
        }
    }

    fn heal(container: &str) -> NotifyEvent {
        NotifyEvent {
            kind: EventKind::Heals,
            container: Some(container.into()),
            action: Some(ActionKind::Start),
            reason: Some("stopped: exited (137)".into()),
            result: Some(ActionResult::Ok),
            error: None,
            attempt: None,
            time: at(),
            detail: None,
        }
    }

    #[test]
    fn json_is_one_object_with_every_field() {
        let rendered = render(Format::Json, "docker-1", &Message::One(failed()));
        assert_eq!(rendered.content_type, "application/json");
        let body: serde_json::Value = serde_json::from_str(&rendered.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "schema": 1, "host": "docker-1", "kind": "action_failed",
                "summary": "recreate of web failed",
                "container": "web", "action": "recreate", "reason": "removed: not on the host",
                "result": "failed", "error": "image app:1 is not on this host <pull it>", "attempt": 2,
                "time": "2026-12-02T09:30:00Z", "detail": null, "items": []
            })
        );
    }

    #[test]
    fn json_heals_are_items() {
        let rendered = render(
            Format::Json,
            "h",
            &Message::Heals(vec![heal("a"), heal("b")]),
        );
        let body: serde_json::Value = serde_json::from_str(&rendered.body).expect("json");
        assert_eq!(body["kind"], "heals");
        assert_eq!(body["summary"], "2 heals");
        assert_eq!(body["container"], serde_json::Value::Null);
        assert_eq!(body["items"][1]["container"], "b");
        assert_eq!(body["items"][1]["result"], "ok");
        assert_eq!(body["items"][1]["time"], "2026-12-02T09:30:00Z");
    }

    #[test]
    fn slack_is_text_with_a_line_per_item_escaped() {
        let rendered = render(Format::Slack, "docker-1", &Message::One(failed()));
        let body: serde_json::Value = serde_json::from_str(&rendered.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"text": "[dockstate on docker-1] recreate of web failed\nweb: recreate failed \
                (attempt 2): image app:1 is not on this host &lt;pull it&gt; (why: removed: not on the host)"})
        );
        let rendered = render(
            Format::Slack,
            "h",
            &Message::Heals(vec![heal("a"), heal("b")]),
        );
        let body: serde_json::Value = serde_json::from_str(&rendered.body).expect("json");
        assert_eq!(
            body["text"],
            "[dockstate on h] 2 heals\na: start ok (stopped: exited (137))\nb: start ok (stopped: exited (137))"
        );
    }

    #[test]
    fn ntfy_is_plain_text_with_title_priority_and_tags() {
        let rendered = render(Format::Ntfy, "docker-1", &Message::One(failed()));
        assert_eq!(rendered.content_type, "text/plain; charset=utf-8");
        assert_eq!(
            rendered.headers,
            vec![
                (
                    "Title",
                    "dockstate on docker-1: recreate of web failed".to_owned()
                ),
                ("Priority", "high".to_owned()),
                ("Tags", "x,dockstate,action_failed".to_owned()),
            ]
        );
        assert!(
            rendered
                .body
                .starts_with("web: recreate failed (attempt 2)"),
            "{}",
            rendered.body
        );
        let heals = render(Format::Ntfy, "höst", &Message::Heals(vec![heal("a")]));
        assert_eq!(heals.headers[0].1, "dockstate on h?st: 1 heal");
        assert_eq!(heals.headers[1].1, "low");
        assert_eq!(heals.body, "a: start ok (stopped: exited (137))");
    }

    #[test]
    fn every_kind_has_a_title_and_a_line() {
        use strum::VariantArray;
        for kind in EventKind::VARIANTS {
            let event = NotifyEvent {
                kind: *kind,
                ..failed()
            };
            let message = Message::One(event);
            assert!(!title(&message).is_empty());
            assert!(!lines(&message)[0].is_empty());
            assert!(["high", "default", "low"].contains(&priority(*kind)));
        }
    }
}
