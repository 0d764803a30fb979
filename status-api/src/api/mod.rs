//! The HTTP API (SPEC "Endpoints"), described with poem-openapi so that `/docs` teaches it to someone who has
//! never seen it. Every operation answers from the in-memory [`View`](crate::view::View) of the [`Store`] or
//! the baseline in force; none calls the engine, except `POST /snapshot`, which has to read what runs now.

mod answers;
mod auth;
mod filter;
mod http;
mod operations;
mod page;
mod params;
mod payload;
mod statics;
mod workers;

use std::sync::Arc;

use bytes::Bytes;
use poem::http::header;
use poem::{EndpointExt, IntoEndpoint, Route};
use poem_openapi::{OpenApiService, Tags};
use shared::runtime::api_docs;
use shared::runtime::hosts::HostCheck;
use shared::runtime::origin::BaseUrl;
use shared::runtime::secret::Secret;
use tokio::sync::watch;

pub use self::http::route_of;
use self::operations::StatusApi;
use self::statics::Static;
pub use self::workers::FilterWorkers;
use crate::baseline::BaselineKeeper;
use crate::metrics::Metrics;
use crate::store::Store;

/// How long a long poll waits when `since` is given without `wait`.
pub const DEFAULT_WAIT_SECONDS: u64 = 30;
/// The longest `wait` accepted.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// What the operations share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The live view, kept current by the watch loop.
    pub store: Store,
    /// The owner of the baseline: `GET /snapshot` reads it, `POST /snapshot` asks it to re-baseline.
    pub keeper: Arc<BaselineKeeper>,
    pub metrics: Metrics,
    /// The bearer token; `None` turns re-baselining and spec access off.
    pub token: Option<Secret>,
    /// Turns true on shutdown, so long polls answer at once instead of holding the drain.
    pub shutdown: watch::Receiver<bool>,
    /// Where filtered `/status` answers are made, off the async runtime.
    pub workers: FilterWorkers,
    /// The `Host` names served (`--allowed-hosts`), checked before any route.
    pub hosts: HostCheck,
    /// `--controller-url`: the controller the live page shows, and the one other origin it may talk to.
    pub controller_url: Option<BaseUrl>,
}

/// The whole application: the operations, the live page at `/`, `/docs`, `/openapi.json`, the favicon, the
/// `Host` check, and the JSON-error/metrics edge.
pub fn app(state: ApiState) -> impl poem::Endpoint {
    let metrics = state.metrics.clone();
    let hosts = state.hosts.clone();
    let token_configured = state.token.is_some();
    let controller_url = state.controller_url.clone();
    let service = openapi_service(state.clone());
    let openapi_json = Arc::new(Static::new("application/json; charset=utf-8", move || {
        document(&state)
    }));
    // Swagger UI's script and style (1.5 MB) are made on the first visit rather than at start: a status-api
    // nobody browses does not carry them in memory.
    let page = Arc::new(Static::new("text/html; charset=utf-8", || {
        Bytes::from(api_docs::page("status-api"))
    }));
    let docs_file = |content_type, body: fn() -> &'static str| {
        serve_docs(Arc::new(Static::new(content_type, move || {
            Bytes::from_static(body().as_bytes())
        })))
    };
    let site = Route::new()
        .at(api_docs::PAGE_PATHS[0], serve_docs(page.clone()))
        .at(api_docs::PAGE_PATHS[1], serve_docs(page))
        .at(
            api_docs::SCRIPT_PATH,
            docs_file("text/javascript; charset=utf-8", api_docs::script),
        )
        .at(
            api_docs::STYLE_PATH,
            docs_file("text/css; charset=utf-8", api_docs::style),
        )
        .at(
            api_docs::INIT_PATH,
            docs_file("text/javascript; charset=utf-8", || api_docs::INIT_SCRIPT),
        )
        .at("/openapi.json", serve(openapi_json))
        .at("/favicon.ico", poem::get(favicon))
        .nest("/", service);
    page::with_page(site, controller_url)
        .into_endpoint()
        .with(hosts)
        .around(move |endpoint, request| {
            http::around(endpoint, request, metrics.clone(), token_configured)
        })
}

fn openapi_service(state: ApiState) -> OpenApiService<StatusApi, ()> {
    OpenApiService::new(
        StatusApi(state),
        "dockstate status-api",
        env!("CARGO_PKG_VERSION"),
    )
    .description(API_DESCRIPTION)
}

/// The document `/openapi.json` serves: what poem-openapi makes of the operations, with the answers of the
/// server's edge (405, 414, 421, 431) on every operation.
fn document(state: &ApiState) -> Bytes {
    let spec = openapi_service(state.clone()).spec();
    let mut document: serde_json::Value =
        serde_json::from_str(&spec).expect("poem-openapi writes JSON");
    api_docs::add_edge_answers(&mut document);
    Bytes::from(document.to_string())
}

/// A GET/HEAD endpoint for a [`Static`] body.
fn serve(body: Arc<Static>) -> impl poem::Endpoint {
    poem::get(poem::endpoint::make_sync(move |request| {
        body.answer(request.headers())
    }))
}

/// [`serve`] for a file of `/docs`, under the docs' Content-Security-Policy.
fn serve_docs(body: Arc<Static>) -> impl poem::Endpoint {
    serve(body).with(
        poem::middleware::SetHeader::new()
            .overriding(
                header::CONTENT_SECURITY_POLICY,
                api_docs::CONTENT_SECURITY_POLICY,
            )
            .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    )
}

/// The icon browsers ask for on every first visit: without it, every visit to `/docs` logs a 404.
#[poem::handler]
fn favicon() -> poem::Response {
    poem::Response::builder()
        .content_type("image/svg+xml")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(api_docs::FAVICON)
}

const API_DESCRIPTION: &str = "\
status-api watches one Docker engine and compares it with a baseline snapshot taken when it first started.

* `GET /status` — the containers now (running only, like `docker ps`; `all=true` for every state). \
Long-poll with `since=<revision>&wait=<seconds>` to be told of the next change within milliseconds.
* `GET /drift` — how the host differs from the snapshot: stopped, paused, removed, unhealthy, unexpected, changed.
* `GET /snapshot` — the baseline; `POST /snapshot` re-baselines (bearer token).
* `GET /health`, `GET /ready`, `GET /metrics` — for probes and Prometheus.

**The scope belongs to the baseline.** The snapshot records the scope it was taken in. When status-api runs with \
another scope, it is not ready (`/ready` check `scope`), `/status` says `ready: false` and why, and `/drift` answers \
409 `scope_mismatch`, until it is started with the snapshot's scope or re-baselined with `POST /snapshot`.

**Never members, never stopped.** Containers started with `--rm` are never recorded in a snapshot. Containers \
another orchestrator manages have the effective policy `ignore` (the `policy` field of `/status`), whatever \
`dockstate.policy` says: Swarm tasks (any `com.docker.swarm.*` label), Kubernetes pods on a cri-dockerd node (any \
`io.kubernetes.*` label) and `docker compose run` one-offs (`com.docker.compose.oneoff=True`). Otherwise the \
`dockstate.policy` label decides: `heal` (default), `observe`, or `ignore`; an unknown value counts as `observe`.

status-api never changes anything on the host; status-controller acts on the drift. No answer without the token \
ever contains a container's environment. Errors are `{\"error\": code, \"message\": what to fix}`.

**Host names.** Every operation answers only a request that names the server by an IP address, `localhost` or a \
name given in `--allowed-hosts` (`STATUS_API_ALLOWED_HOSTS`); any other `Host` is refused with 421 \
`host_not_allowed`, so that a web page cannot read the API through DNS rebinding.";

#[derive(Debug, Tags)]
pub(super) enum Tag {
    /// The live state of the containers.
    Status,
    /// The baseline the host is compared with.
    Snapshot,
    /// Differences between the host and the snapshot.
    Drift,
    /// Health, readiness and metrics, for probes and monitoring.
    Operations,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use poem::http::StatusCode;
    use poem::test::TestClient;
    use shared::{DriftResponse, StatusResponse};

    use super::*;
    use crate::baseline::SnapshotFile;
    use crate::docker::fake::FakeEngine;
    use crate::inventory::Inventory;
    use crate::store::Writer;

    /// What a handler test holds besides the app: the engine the server would read, and the two owners.
    struct Parts {
        engine: FakeEngine,
        inventory: Inventory,
        store: Store,
        keeper: Arc<BaselineKeeper>,
        /// Long polls end when the server stops, that is when this is dropped: keep it.
        _running: watch::Sender<bool>,
        _dir: tempfile::TempDir,
    }

    /// The app over a fake engine and a store nobody feeds yet: what a client sees before Docker has
    /// answered. Built with the same constructors as `startup`, no Docker client anywhere.
    fn cold_app(token: Option<&str>) -> (impl poem::Endpoint, Parts) {
        let (state, parts) = cold_state(token);
        (app(state), parts)
    }

    /// What [`cold_app`] serves.
    fn cold_state(token: Option<&str>) -> (ApiState, Parts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let scope: shared::Scope = Some("team=a".parse().expect("selector"));
        let engine = FakeEngine::new();
        let keeper = Arc::new(BaselineKeeper::new(
            {
                let state = crate::state_dir::StateDir::prepare(dir.path()).expect("state dir");
                state.try_lock().expect("locks");
                SnapshotFile::new(Arc::new(state))
            },
            Arc::new(engine.clone()),
            scope.clone(),
            None,
        ));
        let writer = Writer::new(scope, Duration::from_secs(30), keeper.subscribe());
        let inventory = Inventory::new(writer, Arc::new(engine.clone()));
        let store = inventory.store();
        let (running, shutdown) = watch::channel(false);
        let state = ApiState {
            store: store.clone(),
            keeper: keeper.clone(),
            metrics: Metrics::new(),
            token: token.map(Secret::from),
            shutdown,
            workers: FilterWorkers::new(1, 4, Duration::from_secs(1)),
            hosts: HostCheck::new(Default::default(), crate::config::ALLOWED_HOSTS_ENV),
            controller_url: None,
        };
        let parts = Parts {
            engine,
            inventory,
            store,
            keeper,
            _running: running,
            _dir: dir,
        };
        (state, parts)
    }

    #[test]
    fn the_state_shows_no_token() {
        let token = "api-state-s3cret";
        let (state, _parts) = cold_state(Some(token));
        let shown = format!("{state:?}");
        assert!(shown.contains("token: Some(Secret("), "{shown}");
        assert!(!shown.contains(token), "{shown}");
    }

    async fn json_of(response: poem::test::TestResponse) -> serde_json::Value {
        serde_json::from_str(&response.0.into_body().into_string().await.expect("body"))
            .expect("json")
    }

    #[tokio::test]
    async fn before_docker_answers_everything_says_what_is_missing() {
        let (app, _parts) = cold_app(None);
        let client = TestClient::new(app);

        let ready = client.get("/ready").send().await;
        ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value =
            serde_json::from_str(&ready.0.into_body().into_string().await.expect("body"))
                .expect("json");
        assert_eq!(body["status"], "NOT_READY");
        assert_eq!(body["checks"]["docker"]["status"], "DOWN");
        assert_eq!(body["checks"]["snapshot"]["status"], "DOWN");
        assert_eq!(body["checks"]["events"]["status"], "DOWN");

        for path in ["/snapshot", "/drift"] {
            let response = client.get(path).send().await;
            response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
            response.assert_json(serde_json::json!({
                "error": "no_snapshot",
                "message": "no snapshot yet: it is taken as soon as the Docker engine answers; GET /ready shows what is missing",
            })).await;
        }
        client.get("/health").send().await.assert_status_is_ok();
        let status = client.get("/status").send().await;
        status.assert_status_is_ok();
        let body: StatusResponse =
            serde_json::from_str(&status.0.into_body().into_string().await.expect("body"))
                .expect("a StatusResponse");
        assert_eq!(body.scope.as_deref(), Some("team=a"));
        assert!(!body.events_live);
    }

    #[tokio::test]
    async fn the_cached_status_body_is_a_status_response() {
        let (app, parts) = cold_app(Some("t"));
        parts
            .keeper
            .take_if_missing()
            .await
            .expect("an empty snapshot");
        let client = TestClient::new(app);
        for path in ["/status", "/status?all=true", "/status?state=running"] {
            let response = client.get(path).send().await;
            response.assert_status_is_ok();
            response.assert_content_type("application/json; charset=utf-8");
            let text = response.0.into_body().into_string().await.expect("body");
            let parsed: StatusResponse =
                serde_json::from_str(&text).expect("every field of StatusResponse");
            assert_eq!(parsed.revision, parts.store.revision());
            assert!(parsed.snapshot_taken_at.is_some());
            // Fields with a serde default would parse even if StatusBody forgot them: ask the JSON itself.
            let raw: serde_json::Value = serde_json::from_str(&text).expect("json");
            for field in ["engine_reachable", "ready", "not_ready_reason"] {
                assert!(raw.get(field).is_some(), "{path} lacks `{field}`: {text}");
            }
        }
        let drift = client.get("/drift").send().await;
        drift.assert_status_is_ok();
        let text = drift.0.into_body().into_string().await.expect("body");
        let parsed: DriftResponse = serde_json::from_str(&text).expect("a DriftResponse");
        assert!(parsed.in_sync);
    }

    #[tokio::test]
    async fn the_live_page_and_its_files_are_served_under_a_strict_policy() {
        let (app, _parts) = cold_app(None);
        let client = TestClient::new(app);
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/ui.js", "text/javascript; charset=utf-8"),
            ("/ui.css", "text/css; charset=utf-8"),
        ] {
            let response = client.get(path).send().await;
            assert_eq!(response.0.status(), StatusCode::OK, "{path}");
            response.assert_content_type(content_type);
            response.assert_header(
                header::CONTENT_SECURITY_POLICY,
                page::content_security_policy(None),
            );
            response.assert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
            let etag = response.0.headers()[header::ETAG].clone();
            let again = client
                .get(path)
                .header(header::IF_NONE_MATCH, etag)
                .send()
                .await;
            again.assert_status(StatusCode::NOT_MODIFIED);
        }
        let html = client.get("/").send().await.0.into_body().into_string();
        assert!(html.await.expect("body").contains("id=\"containers\""));
        // Like /docs, the page is no operation of the API.
        let document = json_of(client.get("/openapi.json").send().await).await;
        let paths = document["paths"].as_object().expect("paths");
        assert!(!paths.contains_key("/"), "{:?}", paths.keys());
    }

    #[tokio::test]
    async fn the_document_states_the_filter_bounds() {
        let (app, _parts) = cold_app(None);
        let client = TestClient::new(app);
        let document = json_of(client.get("/openapi.json").send().await).await;
        let operation = &document["paths"]["/status"]["get"];
        let parameters = operation["parameters"].as_array().expect("parameters");
        for name in ["label", "name"] {
            let parameter = parameters
                .iter()
                .find(|p| p["name"] == name)
                .expect("a parameter");
            assert_eq!(
                parameter["schema"]["maxItems"],
                serde_json::json!(filter::MAX_FILTER_VALUES),
                "{parameter}"
            );
        }
        // Every query the document allows fits the request line: each parameter at its bounds, every
        // character of a text percent-encoded from four UTF-8 bytes (12 bytes a character).
        let mut longest = "GET /status? HTTP/1.1".len();
        for parameter in parameters {
            let name = parameter["name"].as_str().expect("a name").len();
            let schema = &parameter["schema"];
            let (count, value) = if schema["type"] == "array" {
                let items = &schema["items"];
                let items = match items.get("$ref").and_then(serde_json::Value::as_str) {
                    Some(reference) => {
                        &document["components"]["schemas"]
                            [reference.trim_start_matches("#/components/schemas/")]
                    }
                    None => items,
                };
                let value = match items["enum"].as_array() {
                    Some(values) => values.iter().filter_map(|v| v.as_str()).map(str::len).max(),
                    None => items["maxLength"].as_u64().map(|n| 12 * n as usize),
                };
                (
                    schema["maxItems"].as_u64().expect("maxItems") as usize,
                    value,
                )
            } else {
                let value = match schema["type"].as_str() {
                    Some("boolean") => Some("false".len()),
                    Some("integer") => schema["maximum"].as_f64().map(|n| n.to_string().len()),
                    _ => None,
                };
                (1, value)
            };
            let value = value.unwrap_or_else(|| panic!("unbounded: {parameter}"));
            longest += count * (name + "=".len() + value + "&".len());
        }
        assert!(
            longest <= shared::runtime::connections::MAX_REQUEST_LINE,
            "the longest query the document allows is {longest} bytes"
        );
        let name = parameters
            .iter()
            .find(|p| p["name"] == "name")
            .expect("name");
        assert_eq!(name["schema"]["items"]["format"], serde_json::Value::Null);
        assert_eq!(name["schema"]["items"]["example"], "^web-");
        assert!(name["description"]
            .as_str()
            .unwrap_or_default()
            .contains("RE2"));

        let busy = &operation["responses"]["503"];
        assert!(busy["headers"]["RETRY-AFTER"].is_object(), "{busy}");
        let bad = operation["responses"]["400"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            bad.contains("more than 8") && bad.contains("32 KiB"),
            "{bad}"
        );
    }

    #[tokio::test]
    async fn every_operation_lists_the_edge_answers_and_no_description_leaks_rustdoc() {
        let (app, _parts) = cold_app(Some("t"));
        let client = TestClient::new(app);
        let text = client.get("/openapi.json").send().await.0.into_body();
        let text = text.into_string().await.expect("text");
        for leak in ["[`", "`](", "crate::", "super::"] {
            assert!(!text.contains(leak), "`{leak}` in the document");
        }
        let document: serde_json::Value = serde_json::from_str(&text).expect("json");
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                for status in ["405", "414", "421", "431"] {
                    let answer = &operation["responses"][status];
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn the_docs_are_a_real_page_under_a_policy_that_lets_swagger_ui_run() {
        let (app, _parts) = cold_app(None);
        let client = TestClient::new(app);
        for path in [
            "/docs",
            "/docs/",
            api_docs::SCRIPT_PATH,
            api_docs::STYLE_PATH,
            api_docs::INIT_PATH,
        ] {
            let response = client.get(path).send().await;
            assert_eq!(response.0.status(), StatusCode::OK, "{path}");
            response.assert_header(
                header::CONTENT_SECURITY_POLICY,
                api_docs::CONTENT_SECURITY_POLICY,
            );
        }
        let page = client.get("/docs").send().await.0.into_body();
        let page = page.into_string().await.expect("text");
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("<title>dockstate status-api — API docs</title>"));
    }

    #[tokio::test]
    async fn status_says_what_ready_says_and_a_long_poll_learns_when_it_changes() {
        let (app, parts) = cold_app(None);
        let client = TestClient::new(app);

        let cold = json_of(client.get("/status").send().await).await;
        assert_eq!(cold["ready"], false);
        assert_eq!(cold["engine_reachable"], false);
        let reason = cold["not_ready_reason"].as_str().unwrap_or_default();
        for part in [
            "docker: not contacted yet",
            "events: event stream not connected",
            "snapshot: no snapshot yet",
        ] {
            assert!(reason.contains(part), "{reason}");
        }

        // Docker answers: the store is fed and the stream is live; only the snapshot is missing.
        parts.engine.put("a1", "web", "running", &[("team", "a")]);
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(parts.inventory.watch(shutdown));
        for _ in 0..200 {
            if parts.store.view().events_live {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let fed = json_of(client.get("/status").send().await).await;
        assert_eq!(fed["engine_reachable"], true);
        assert_eq!(fed["ready"], false);
        assert_eq!(
            fed["not_ready_reason"],
            "snapshot: no snapshot yet: it is taken as soon as Docker answers"
        );
        assert_eq!(fed["containers"][0]["in_snapshot"], false);

        // A snapshot is taken while a client long-polls: the poll is told, and the answer is ready.
        let revision = fed["revision"].as_u64().expect("a revision");
        let poll = client
            .get("/status")
            .query("since", &revision)
            .query("wait", &30)
            .send();
        let take = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            parts.keeper.take_if_missing().await.expect("taken")
        };
        let (answer, _) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(poll, take) })
                .await
                .expect("the long poll answers when the baseline changes");
        let ready = json_of(answer).await;
        assert!(ready["revision"].as_u64() > Some(revision), "{ready}");
        assert_eq!(ready["ready"], true, "{ready}");
        assert_eq!(ready["not_ready_reason"], serde_json::Value::Null);
        assert_eq!(ready["containers"][0]["in_snapshot"], true);
        client.get("/ready").send().await.assert_status_is_ok();
        client.get("/snapshot").send().await.assert_status_is_ok();
    }
}
