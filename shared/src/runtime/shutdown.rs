//! The one shutdown future of both programs: Ctrl-C or SIGTERM, whichever comes first. `main` passes it to
//! `run_until_stopped`; tests pass a future of their own.

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
///
/// The handlers are installed when this is called, not when the future is first polled: `main` calls it
/// before it binds, so a SIGTERM that arrives while the program starts (say, right after it logged its
/// address) is held for the shutdown rather than killing the process with the default action. Must be called
/// inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    let interrupt = listen(SignalKind::interrupt(), "Ctrl-C");
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = received(interrupt) => tracing::info!("Ctrl-C received, shutting down"),
            () = received(terminate) => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}

fn listen(kind: SignalKind, what: &str) -> Option<Signal> {
    signal(kind)
        .inspect_err(|err| tracing::error!(error = %err, "cannot listen for {what}"))
        .ok()
}

/// Waits for the signal; never resolves when it could not be listened for.
async fn received(signal: Option<Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_not_lost() {
        let shutdown = shutdown_signal();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the SIGTERM raised before the first poll ends the wait");
    }
}
