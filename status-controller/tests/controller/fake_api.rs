//! A status-api stand-in whose answers the test sets: the only way to show the controller a view that is
//! stale, not live or not ready while the engine itself is fine. It serves `/status` (a short long poll) and
//! `/snapshot`, which is all the controller's loop asks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Query};
use poem::{get, handler, EndpointExt, Route};
use shared::{SnapshotSummary, StatusResponse};
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct State {
    pub status: StatusResponse,
    pub snapshot: SnapshotSummary,
}

#[derive(Debug, Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    pub address: SocketAddr,
    server: Arc<JoinHandle<()>>,
}

impl FakeApi {
    pub async fn start(state: State) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
        let address = *acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr())
            .ok_or_else(|| anyhow::anyhow!("no address"))?;
        let state = Arc::new(Mutex::new(state));
        let app = Route::new()
            .at("/status", get(status))
            .at("/snapshot", get(snapshot))
            .data(state.clone());
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Ok(Self {
            state,
            address,
            server: Arc::new(server),
        })
    }

    /// Changes the answers; every change is a new revision, as with the real status-api.
    pub fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().expect("not poisoned");
        change(&mut state);
        state.status.revision += 1;
    }

    pub fn stop(&self) {
        self.server.abort();
    }
}

#[handler]
async fn status(
    Data(state): Data<&Arc<Mutex<State>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<StatusResponse> {
    let since = query
        .get("since")
        .and_then(|since| since.parse::<u64>().ok());
    let current = state.lock().expect("not poisoned").status.clone();
    if since == Some(current.revision) {
        // A short long poll: enough to keep the controller from spinning.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Json(state.lock().expect("not poisoned").status.clone())
}

#[handler]
fn snapshot(Data(state): Data<&Arc<Mutex<State>>>) -> Json<SnapshotSummary> {
    Json(state.lock().expect("not poisoned").snapshot.clone())
}
