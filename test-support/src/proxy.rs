//! A cuttable line to the Docker engine: a TCP listener on loopback that forwards to the engine's unix
//! socket. Point a server under test at it (`--docker-host tcp://…`) and `cut()` it to see how the server
//! lives through losing the engine, then `restore()` it — without touching the real engine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, UnixStream};
use tokio::task::JoinHandle;

/// The proxy; dropping it stops everything it runs.
#[derive(Debug)]
pub struct EngineProxy {
    address: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl EngineProxy {
    /// Starts forwarding 127.0.0.1:<free port> to the engine's socket (`DOCKER_HOST` if it is a
    /// `unix://` address, else /var/run/docker.sock).
    pub async fn start() -> anyhow::Result<Self> {
        let socket = engine_socket();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let cut = cut.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let socket = socket.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut engine) = UnixStream::connect(&socket).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                        }
                    });
                    if let Ok(mut open) = connections.lock() {
                        open.retain(|task| !task.is_finished());
                        open.push(forward);
                    }
                }
            })
        };
        Ok(Self {
            address,
            cut,
            connections,
            acceptor,
        })
    }

    /// The address to give as `DOCKER_HOST` / `--docker-host`.
    pub fn docker_host(&self) -> String {
        format!("tcp://{}", self.address)
    }

    /// Drops every open connection (event streams included) and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut open) = self.connections.lock() {
            for task in open.drain(..) {
                task.abort();
            }
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

fn engine_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}
