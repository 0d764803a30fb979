//! A cuttable line to the Docker engine: a TCP listener on loopback that forwards to the engine's unix
//! socket. Point a server under test at it (`--docker-host tcp://…`) and `cut()` it to see how the server
//! lives through losing the engine, then `restore()` it — without touching the real engine. It can also
//! hold back container inspects while everything else flows (`hold_inspects()`), as a busy engine does when
//! it holds its containers' locks: events arrive, the inspects they lead to wait.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; dropping it stops everything it runs.
#[derive(Debug)]
pub struct EngineProxy {
    address: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    inspects_held: watch::Sender<bool>,
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
        let (inspects_held, held) = watch::channel(false);
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let cut = cut.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let socket = socket.clone();
                    let held = held.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(engine) = UnixStream::connect(&socket).await {
                            forward(client, engine, held).await;
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
            inspects_held,
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

    /// Holds every container inspect (`GET …/containers/{id}/json`) sent from now on until
    /// [`EngineProxy::release_inspects`]; lists, events and everything else still flow.
    pub fn hold_inspects(&self) {
        self.inspects_held.send_replace(true);
    }

    /// Lets the held inspects, and every later one, through.
    pub fn release_inspects(&self) {
        self.inspects_held.send_replace(false);
    }
}

/// Forwards one connection both ways, holding a request that is an inspect while `held` says so. A client
/// (hyper, bollard) sends one request at a time on a connection and each read starts with its head, which
/// is all the test needs to tell an inspect.
async fn forward(client: TcpStream, engine: UnixStream, mut held: watch::Receiver<bool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut engine_read, mut engine_write) = engine.into_split();
    let answers = tokio::io::copy(&mut engine_read, &mut client_write);
    let requests = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = client_read.read(&mut buffer).await?;
            if read == 0 {
                return engine_write.shutdown().await;
            }
            if is_inspect(&buffer[..read]) {
                // Closed only when the proxy is dropped, and then the connection goes too.
                let _ = held.wait_for(|held| !*held).await;
            }
            engine_write.write_all(&buffer[..read]).await?;
        }
    };
    let _ = tokio::join!(answers, requests);
}

/// Whether `request` starts with the head of a container inspect: `GET [/v1.41]/containers/{id}/json`.
fn is_inspect(request: &[u8]) -> bool {
    let Some(target) = request
        .strip_prefix(b"GET ")
        .and_then(|rest| rest.split(|byte| *byte == b' ').next())
    else {
        return false;
    };
    let path = target.split(|byte| *byte == b'?').next().unwrap_or(target);
    let path = String::from_utf8_lossy(path);
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    matches!(segments.as_slice(), [.., "containers", id, "json"] if *id != "json")
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

#[cfg(test)]
mod tests {
    use super::is_inspect;

    #[test]
    fn an_inspect_is_told_from_a_list_and_everything_else() {
        assert!(is_inspect(
            b"GET /v1.41/containers/abc123/json HTTP/1.1\r\nhost: x\r\n\r\n"
        ));
        assert!(is_inspect(
            b"GET /containers/abc/json?size=false HTTP/1.1\r\n"
        ));
        assert!(!is_inspect(
            b"GET /v1.41/containers/json?all=true HTTP/1.1\r\n"
        ));
        assert!(!is_inspect(b"GET /v1.41/events?filters=x HTTP/1.1\r\n"));
        assert!(!is_inspect(
            b"POST /v1.41/containers/abc/start HTTP/1.1\r\n"
        ));
        assert!(!is_inspect(b"GET /v1.41/images/abc/json HTTP/1.1\r\n"));
        assert!(!is_inspect(b"{\"body\": 1}"));
    }
}
