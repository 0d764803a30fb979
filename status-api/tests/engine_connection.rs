//! The engine connection both programs use (`shared::runtime::engine::docker_client`), against the real
//! engine through a unix socket proxy that counts the connections it accepts and can close them all, as an
//! engine that restarts does:
//!
//! - sequential requests share one connection, and requests made at once each get their own;
//! - an event stream keeps its connection while requests go on beside it, and delivers the events of a
//!   container created meanwhile;
//! - after every idle connection was closed under it, the next request is answered, on a new connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use shared::runtime::engine::{docker_client, inspect, negotiate};
use test_support::{ensure_test_images, TestScope, BUSYBOX_IMAGE};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// A unix socket in front of the engine's: counts the connections it accepts; `close_all` ends every one
/// it is forwarding.
struct CountingProxy {
    socket: PathBuf,
    accepted: Arc<AtomicUsize>,
    forwarding: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl CountingProxy {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let socket = dir.join("engine.sock");
        let listener = UnixListener::bind(&socket)?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let forwarding: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let (accepted, forwarding) = (accepted.clone(), forwarding.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let task = tokio::spawn(async move {
                        if let Ok(mut engine) = UnixStream::connect(engine_socket()).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                        }
                    });
                    forwarding.lock().expect("forwarding").push(task);
                }
            })
        };
        Ok(Self {
            socket,
            accepted,
            forwarding,
            acceptor,
        })
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection it forwards, both ways.
    fn close_all(&self) {
        for task in self.forwarding.lock().expect("forwarding").drain(..) {
            task.abort();
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.close_all();
        self.acceptor.abort();
    }
}

fn engine_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// An inspect of a name no container has: a real request, answered 404, that touches nothing.
async fn ask(docker: &bollard::Docker, scope: &TestScope) -> anyhow::Result<()> {
    let missing = scope.name("never-created");
    let found = inspect(docker, &missing, &missing).await?;
    anyhow::ensure!(found.is_none(), "{missing} exists");
    Ok(())
}

#[tokio::test]
async fn connections_to_the_engine_are_kept_open_between_requests_and_replaced_when_closed(
) -> anyhow::Result<()> {
    ensure_test_images().await?;
    let scope = TestScope::new();
    let dir = tempfile::tempdir()?;
    let proxy = CountingProxy::start(dir.path())?;
    let docker = docker_client(Some(&proxy.host()), Duration::from_secs(10))?;
    negotiate(&docker).await?;

    // One after another: one connection for all of them.
    let before = proxy.accepted();
    for _ in 0..30 {
        ask(&docker, &scope).await?;
    }
    let sequential = proxy.accepted() - before;
    assert!(
        sequential <= 1,
        "30 requests one after another opened {sequential} connections"
    );

    // At once: each its own connection, and all answered.
    let at_once = futures::future::try_join_all((0..8).map(|_| ask(&docker, &scope))).await;
    at_once?;
    assert!(
        proxy.accepted() <= before + 1 + 8,
        "8 requests at once opened {} connections",
        proxy.accepted() - before
    );

    // An event stream keeps its connection while requests go on beside it.
    let mut events = docker.events(Some(EventsOptions {
        since: None,
        until: None,
        filters: Some(std::collections::HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![scope.label()]),
        ])),
    }));
    let created = {
        let scope = &scope;
        let docker = &docker;
        async move {
            for _ in 0..10 {
                ask(docker, scope).await?;
            }
            scope.create("streamed", BUSYBOX_IMAGE, &[]).await
        }
    };
    let (id, event) = tokio::time::timeout(Duration::from_secs(20), async {
        let (id, event) = tokio::join!(created, events.next());
        (id, event)
    })
    .await
    .context("no event within 20 s")?;
    let id = id?;
    let event = event.context("the event stream ended")??;
    assert_eq!(
        event.actor.and_then(|actor| actor.id).as_deref(),
        Some(id.as_str())
    );
    assert_eq!(event.action.as_deref(), Some("create"));
    drop(events);

    // The engine closes every connection (a restart): the next request is answered on a new one.
    proxy.close_all();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proxy.accepted();
    ask(&docker, &scope).await?;
    assert_eq!(proxy.accepted(), before + 1, "a new connection");
    for _ in 0..10 {
        ask(&docker, &scope).await?;
    }
    assert_eq!(proxy.accepted(), before + 1, "and it is kept");
    Ok(())
}
