//! The filter workers: where a filtered `/status` answer is made — its `name` patterns compiled, the view
//! matched, the body rendered and compressed. That work runs on Tokio's blocking pool, never on the async
//! runtime that answers `/health` and the controller's long poll, and a few jobs at a time: a flood of filtered
//! requests waits in a short queue and, when that is full, is answered 503 at once instead of piling up work
//! nobody can finish.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// How many jobs wait for a worker at most; one more is refused.
pub const QUEUED_JOBS: usize = 32;

/// Runs jobs on the blocking pool, at most `parallel` at once and `queued` waiting. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FilterWorkers {
    /// One permit per job running.
    running: Arc<Semaphore>,
    /// One permit per job admitted, running or waiting.
    admitted: Arc<Semaphore>,
    parallel: usize,
    queued: usize,
}

/// Why a job did not run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(
        "status-api is making as many filtered answers as it allows ({running} at a time, {queued} waiting): \
         retry in a second; answers without `name`, `label` or `state` need none of this work"
    )]
    Busy { running: usize, queued: usize },
    #[error("the job making a filtered answer failed: {0}")]
    Failed(#[source] tokio::task::JoinError),
}

impl FilterWorkers {
    /// `parallel` jobs at once (at least one), `queued` waiting.
    pub fn new(parallel: usize, queued: usize) -> Self {
        let parallel = parallel.max(1);
        Self {
            running: Arc::new(Semaphore::new(parallel)),
            admitted: Arc::new(Semaphore::new(parallel + queued)),
            parallel,
            queued,
        }
    }

    /// Half the CPUs (at least one), so that filtered answers never take every core from the rest of the
    /// server, and [`QUEUED_JOBS`] waiting.
    pub fn for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cpus / 2, QUEUED_JOBS)
    }

    /// Runs `job` on a worker; [`JobError::Busy`] at once when the queue is full. A caller that goes away
    /// while its job waits frees its place; a job that has started finishes, holding its worker.
    pub async fn run<T, F>(&self, job: F) -> Result<T, JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let busy = || JobError::Busy {
            running: self.parallel,
            queued: self.queued,
        };
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            job()
        })
        .await
        .map_err(JobError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_a_few_at_a_time_and_a_full_queue_is_refused_at_once() {
        let workers = FilterWorkers::new(1, 2);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(released));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..3 {
            let (workers, released, running, most) = (
                workers.clone(),
                released.clone(),
                running.clone(),
                most.clone(),
            );
            jobs.push(tokio::spawn(async move {
                workers
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let _ = released.lock().expect("lock").recv();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        // One runs, two wait: the queue is full, the next is refused without waiting.
        tokio::time::timeout(Duration::from_secs(5), async {
            while running.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the first job starts");
        let refused = tokio::time::timeout(Duration::from_secs(1), workers.run(|| ()))
            .await
            .expect("refused at once");
        let err = refused.expect_err("the queue is full");
        assert!(matches!(err, JobError::Busy { running: 1, queued: 2 }), "{err}");
        assert!(err.to_string().contains("1 at a time, 2 waiting"), "{err}");
        for _ in 0..3 {
            release.send(()).expect("a job waits");
        }
        for job in jobs {
            job.await.expect("no panic").expect("ran");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "one at a time");
        workers.run(|| ()).await.expect("room again");
    }
}
