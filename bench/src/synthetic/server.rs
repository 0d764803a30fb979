//! The synthetic engine's HTTP side: the Docker API calls status-api and status-controller make, answered
//! from a [`Fleet`] on a unix socket, with or without the `/v1.41` prefix — `/_ping`, `/version`, `/info`,
//! `/containers/json`, `/containers/{id}/json`, `/images/{name}/json`, `/events` (streamed, with `since`,
//! `until` and `filters`, replaying the last 256 as Docker does), and `start`/`stop` for a controller that
//! acts. Every other call is answered 404 and counted, so the bench can say that nothing went unanswered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::broadcast;

use super::fleet::{label_matches, Change, Event, Fleet};

/// The API version it speaks: Docker 20.10's.
pub const API_VERSION: &str = "1.41";
/// How many past events it keeps for a `since` (Docker keeps 256).
const HISTORY: usize = 256;

type Body = BoxBody<Bytes, Infallible>;

/// An event as it was sent: the event, and its JSON line.
#[derive(Debug)]
struct Sent {
    event: Event,
    line: Bytes,
}

#[derive(Debug)]
struct State {
    fleet: Fleet,
    history: VecDeque<Arc<Sent>>,
}

/// How often a route was called, and when first and last.
#[derive(Debug, Clone, Copy)]
pub struct Calls {
    pub count: u64,
    pub first: Instant,
    pub last: Instant,
}

/// A synthetic engine: cheap to clone, clones share it.
#[derive(Debug, Clone)]
pub struct SyntheticEngine {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Arc<Sent>>,
    calls: Arc<Mutex<BTreeMap<String, Calls>>>,
}

/// Nanoseconds since the epoch, the engine's clock.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What the bench needs to know of one sent event to find it in `/status` later.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub index: usize,
    pub action: &'static str,
    pub time_ns: i64,
}

impl SyntheticEngine {
    pub fn new(fleet: Fleet) -> Self {
        // Room for seconds of events at the highest rate before a slow reader is cut off (as Docker does).
        let (events, _) = broadcast::channel(1 << 16);
        Self {
            state: Arc::new(Mutex::new(State {
                fleet,
                history: VecDeque::with_capacity(HISTORY),
            })),
            events,
            calls: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves the API on `socket` until the task is dropped.
    pub async fn serve(self, socket: &Path) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let listener = UnixListener::bind(socket)?;
        Ok(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let engine = self.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let engine = engine.clone();
                        async move { Ok::<_, Infallible>(engine.answer(request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }))
    }

    /// Applies to each container of `indices` its next change, now, and sends its event.
    pub fn emit(&self, indices: impl IntoIterator<Item = usize>) -> Vec<Emitted> {
        let mut state = self.state();
        let mut emitted = Vec::new();
        for index in indices {
            let change = state.fleet.next_change(index);
            let sent = Self::change(&mut state, index, change);
            emitted.push(Emitted {
                index,
                action: match change {
                    Change::Start => "start",
                    Change::Die { .. } => "die",
                    Change::Healthy => "health_status",
                },
                time_ns: sent.event.time_ns,
            });
            // No receiver is not an error: nobody follows the stream yet.
            let _ = self.events.send(sent);
        }
        emitted
    }

    fn change(state: &mut State, index: usize, change: Change) -> Arc<Sent> {
        let event = state.fleet.apply(index, change, now_ns());
        let mut line = serde_json::to_vec(&event.to_json()).unwrap_or_default();
        line.push(b'\n');
        let sent = Arc::new(Sent {
            event,
            line: Bytes::from(line),
        });
        if state.history.len() == HISTORY {
            state.history.pop_front();
        }
        state.history.push_back(sent.clone());
        sent
    }

    /// Every route called so far (unknown ones as `404 METHOD /path`), with counts and times.
    pub fn calls(&self) -> BTreeMap<String, Calls> {
        self.calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }

    fn count(&self, route: String) {
        let now = Instant::now();
        if let Ok(mut calls) = self.calls.lock() {
            calls
                .entry(route)
                .and_modify(|calls| {
                    calls.count += 1;
                    calls.last = now;
                })
                .or_insert(Calls {
                    count: 1,
                    first: now,
                    last: now,
                });
        }
    }

    fn answer(&self, request: Request<Incoming>) -> Response<Body> {
        let path = unversioned(request.uri().path()).to_owned();
        let query = query_of(request.uri().query());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        let (route, response) = match (&method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["_ping"]) => ("ping", ping()),
            (&Method::GET, ["version"]) => ("version", json_answer(StatusCode::OK, &version())),
            (&Method::GET, ["info"]) => ("info", json_answer(StatusCode::OK, &self.info())),
            (&Method::GET, ["containers", "json"]) => ("list", self.list(&query)),
            (&Method::GET, ["containers", id, "json"]) => ("inspect", self.inspect(id)),
            (&Method::POST, ["containers", id, action @ ("start" | "stop" | "kill")]) => {
                ("action", self.act(id, action))
            }
            (&Method::GET, ["images", reference @ .., "json"]) => {
                ("image", image(&reference.join("/")))
            }
            (&Method::GET, ["events"]) => ("events", self.stream(&query)),
            _ => (
                "",
                no_such(&format!(
                    "the synthetic engine does not answer {method} {path}"
                )),
            ),
        };
        let route = if route.is_empty() {
            format!("404 {method} {path}")
        } else {
            route.to_owned()
        };
        self.count(route);
        response
    }

    fn info(&self) -> Value {
        let state = self.state();
        json!({
            "ID": "SYNT:HETI:C000", "Name": "synthetic-engine", "Containers": state.fleet.len(),
            "ServerVersion": "20.10.24-synthetic", "OperatingSystem": "synthetic", "OSType": "linux",
            "Architecture": "x86_64", "NCPU": 2, "Driver": "overlay2",
        })
    }

    fn list(&self, query: &HashMap<String, String>) -> Response<Body> {
        let all = query
            .get("all")
            .is_some_and(|all| all == "1" || all == "true");
        let filters = match Filters::parse(query.get("filters")) {
            Ok(filters) => filters,
            Err(message) => return bad_request(&message),
        };
        let listed = self.state().fleet.list_json(all, &filters.labels);
        json_answer(StatusCode::OK, &listed)
    }

    fn inspect(&self, id: &str) -> Response<Body> {
        let state = self.state();
        match state.fleet.find(id) {
            Some(index) => json_answer(StatusCode::OK, &state.fleet.inspect_json(index)),
            None => no_such(&format!("No such container: {id}")),
        }
    }

    fn act(&self, id: &str, action: &str) -> Response<Body> {
        let mut state = self.state();
        let Some(index) = state.fleet.find(id) else {
            return no_such(&format!("No such container: {id}"));
        };
        let running = matches!(
            state.fleet.next_change(index),
            Change::Die { .. } | Change::Healthy
        );
        let change = match (action, running) {
            ("start", false) => Change::Start,
            ("stop", true) => Change::Die { exit_code: 0 },
            ("kill", true) => Change::Die { exit_code: 137 },
            ("start" | "stop", _) => return empty(StatusCode::NOT_MODIFIED),
            _ => {
                return json_answer(
                    StatusCode::CONFLICT,
                    &json!({"message": format!("Container {id} is not running")}),
                )
            }
        };
        let sent = Self::change(&mut state, index, change);
        let _ = self.events.send(sent);
        empty(StatusCode::NO_CONTENT)
    }

    /// `GET /events`: the kept events from `since` (to `until`, then the end), then the live ones.
    fn stream(&self, query: &HashMap<String, String>) -> Response<Body> {
        let filters = match Filters::parse(query.get("filters")) {
            Ok(filters) => filters,
            Err(message) => return bad_request(&message),
        };
        let since = query.get("since").and_then(|since| seconds_ns(since));
        let until = query.get("until").and_then(|until| seconds_ns(until));
        let filters = Arc::new(filters);
        let (past, live) = {
            let state = self.state();
            let past: Vec<Bytes> = since
                .map(|since| {
                    state
                        .history
                        .iter()
                        .filter(|sent| {
                            sent.event.time_ns >= since
                                && until.is_none_or(|until| sent.event.time_ns <= until)
                        })
                        .filter(|sent| filters.keep(&sent.event))
                        .map(|sent| sent.line.clone())
                        .collect()
                })
                .unwrap_or_default();
            (past, self.events.subscribe())
        };
        let past = futures::stream::iter(past);
        let body: Body = if until.is_some() {
            BodyExt::boxed(StreamBody::new(past.map(|line| Ok(Frame::data(line)))))
        } else {
            let live = futures::stream::unfold((live, filters), |(mut live, filters)| async move {
                loop {
                    match live.recv().await {
                        Ok(sent) if filters.keep(&sent.event) => {
                            return Some((sent.line.clone(), (live, filters)))
                        }
                        Ok(_) => continue,
                        // A reader too slow for the stream is cut off, as Docker does.
                        Err(_) => return None,
                    }
                }
            });
            BodyExt::boxed(StreamBody::new(
                past.chain(live).map(|line| Ok(Frame::data(line))),
            ))
        };
        Response::builder()
            .header("Content-Type", "application/json")
            .header("Api-Version", API_VERSION)
            .body(body)
            .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// The engine's `filters` query parameter, the parts of it the synthetic engine honours.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub types: Vec<String>,
    pub labels: Vec<String>,
    pub events: Vec<String>,
}

impl Filters {
    /// Reads `{"label": ["k=v"], …}` or Docker's older `{"label": {"k=v": true}}`.
    pub fn parse(raw: Option<&String>) -> Result<Self, String> {
        let Some(raw) = raw.filter(|raw| !raw.is_empty()) else {
            return Ok(Self::default());
        };
        let value: Value =
            serde_json::from_str(raw).map_err(|err| format!("invalid filters: {err}"))?;
        let values = |key: &str| -> Vec<String> {
            match &value[key] {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(ToOwned::to_owned)
                    .collect(),
                Value::Object(items) => items.keys().cloned().collect(),
                _ => Vec::new(),
            }
        };
        Ok(Self {
            types: values("type"),
            labels: values("label"),
            events: values("event"),
        })
    }

    /// Whether a container event passes: of a type asked for, with every label, of an action asked for.
    pub fn keep(&self, event: &Event) -> bool {
        (self.types.is_empty() || self.types.iter().any(|kind| kind == "container"))
            && self
                .labels
                .iter()
                .all(|selector| label_matches(&event.attributes, selector))
            && (self.events.is_empty() || self.events.iter().any(|name| name == event.name()))
    }
}

/// A path without its API version: `/v1.41/containers/json` → `/containers/json`.
pub fn unversioned(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    let is_version = version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major
                .chars()
                .chain(minor.chars())
                .all(|c| c.is_ascii_digit())
    });
    if is_version {
        &rest[end..]
    } else {
        path
    }
}

fn query_of(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `since`/`until` as the engine takes them: seconds since the epoch, with a fraction or not.
pub fn seconds_ns(value: &str) -> Option<i64> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let whole: i64 = whole.parse().ok()?;
    let digits: String = fraction.chars().take(9).collect();
    let fraction: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(whole * 1_000_000_000 + fraction)
}

fn version() -> Value {
    json!({
        "Platform": {"Name": "synthetic"},
        "Components": [{"Name": "Engine", "Version": "20.10.24-synthetic",
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Os": "linux"}}],
        "Version": "20.10.24-synthetic", "ApiVersion": API_VERSION, "MinAPIVersion": "1.12",
        "GitCommit": "synthetic", "GoVersion": "none", "Os": "linux", "Arch": "amd64",
        "KernelVersion": "synthetic", "BuildTime": "2026-12-07T00:00:00.000000000+00:00",
    })
}

fn image(reference: &str) -> Response<Body> {
    if Fleet::knows_image(reference) {
        let id = super::fleet::image_id(reference);
        json_answer(
            StatusCode::OK,
            &json!({"Id": id, "RepoTags": [reference], "Size": 1_000_000}),
        )
    } else {
        no_such(&format!("No such image: {reference}"))
    }
}

fn ping() -> Response<Body> {
    Response::builder()
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Api-Version", API_VERSION)
        .header("Ostype", "linux")
        .body(Full::new(Bytes::from_static(b"OK")).boxed())
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

fn json_answer(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Api-Version", API_VERSION)
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default())).boxed())
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

fn no_such(message: &str) -> Response<Body> {
    json_answer(StatusCode::NOT_FOUND, &json!({ "message": message }))
}

fn bad_request(message: &str) -> Response<Body> {
    json_answer(StatusCode::BAD_REQUEST, &json!({ "message": message }))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::fleet::{Fleet, PROBE_LABEL};

    #[test]
    fn paths_are_read_with_or_without_the_api_version() {
        assert_eq!(unversioned("/v1.41/containers/json"), "/containers/json");
        assert_eq!(unversioned("/v1.47/_ping"), "/_ping");
        assert_eq!(unversioned("/_ping"), "/_ping");
        assert_eq!(unversioned("/version"), "/version");
        assert_eq!(unversioned("/volumes/x"), "/volumes/x");
        assert_eq!(unversioned("/v1.41"), "");
    }

    #[test]
    fn since_and_until_are_seconds_with_a_fraction() {
        assert_eq!(seconds_ns("12"), Some(12_000_000_000));
        assert_eq!(seconds_ns("12.5"), Some(12_500_000_000));
        assert_eq!(
            seconds_ns("1765000000.123456789"),
            Some(1_765_000_000_123_456_789)
        );
        assert_eq!(seconds_ns("x"), None);
    }

    #[test]
    fn filters_read_both_forms_and_keep_what_they_name() {
        let mut fleet = Fleet::new(12, ("dockstate.test", "t1"), 1_000);
        let die = fleet.apply(10, Change::Die { exit_code: 1 }, 2_000);
        let healthy = fleet.apply(1, Change::Healthy, 3_000);
        let filters = Filters::parse(Some(
            &r#"{"type":["container"],"label":["dockstate.test=t1"],"event":["die","health_status"]}"#.to_owned(),
        ))
        .expect("filters");
        assert!(filters.keep(&die));
        assert!(filters.keep(&healthy));
        let only_start =
            Filters::parse(Some(&r#"{"event":{"start":true}}"#.to_owned())).expect("filters");
        assert!(!only_start.keep(&die));
        let probes =
            Filters::parse(Some(&format!(r#"{{"label":["{PROBE_LABEL}"]}}"#))).expect("filters");
        assert!(probes.keep(&die));
        assert!(!probes.keep(&healthy));
        let images = Filters::parse(Some(&r#"{"type":["image"]}"#.to_owned())).expect("filters");
        assert!(!images.keep(&die));
        assert_eq!(Filters::parse(None), Ok(Filters::default()));
        assert!(Filters::parse(Some(&"{".to_owned())).is_err());
    }

    #[test]
    fn emitted_events_are_kept_for_a_later_since_and_change_the_inspect() {
        let engine = SyntheticEngine::new(Fleet::new(4, ("dockstate.test", "t1"), 1_000));
        let emitted = engine.emit([2, 2]);
        assert_eq!(
            emitted.iter().map(|e| e.action).collect::<Vec<_>>(),
            ["die", "start"]
        );
        assert!(emitted[0].time_ns <= emitted[1].time_ns);
        let state = engine.state();
        assert_eq!(state.history.len(), 2);
        assert_eq!(state.fleet.inspect_json(2)["State"]["Running"], true);
    }
}
