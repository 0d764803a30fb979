//! The filter workers: where a filtered `/status` answer is made — its `name` patterns compiled, the view
//! matched, the body rendered and compressed. That work runs on a few threads of its own at a low priority,
//! never on the async runtime that answers `/health` and the controller's long poll. Jobs wait in a short
//! queue; a request that finds it full waits a moment for a place (so a flood is slowed down, not spun), and
//! is then answered 503 instead of piling up work nobody can finish.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};

/// How many jobs wait for a worker at most.
pub const QUEUED_JOBS: usize = 32;
/// How long a request waits for a place in the queue before it is answered 503.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// A job as the workers see it: it sends its own result.
type Job = Box<dyn FnOnce() + Send>;

/// Runs jobs on `parallel` threads with `queued` places to wait. Cheap to clone; the threads end when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct FilterWorkers {
    jobs: SyncSender<Job>,
    /// One permit per job admitted, running or queued: the bound on both.
    admitted: Arc<Semaphore>,
    parallel: usize,
    queued: usize,
    /// How long a job waits for a place before it is refused.
    admission_wait: Duration,
}

/// Why a job did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(
        "status-api is making as many filtered answers as it allows ({running} at a time, {queued} waiting) and \
         no place came free within {waited:?}: retry in a second; answers without `name`, `label` or `state` \
         need none of this work"
    )]
    Busy {
        running: usize,
        queued: usize,
        waited: Duration,
    },
    #[error("the job making a filtered answer failed (a bug: please report it)")]
    Failed,
}

impl FilterWorkers {
    /// `parallel` threads (at least one) at nice
    /// [`BACKGROUND_NICE`](shared::runtime::process::BACKGROUND_NICE), `queued` jobs waiting at most, and a
    /// request that finds the queue full waits `admission_wait` for a place.
    pub fn new(parallel: usize, queued: usize, admission_wait: Duration) -> Self {
        let parallel = parallel.max(1);
        // Room for every admitted job: sending never blocks.
        let (jobs, waiting) = mpsc::sync_channel::<Job>(parallel + queued);
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..parallel {
            let waiting = Arc::clone(&waiting);
            let spawned = std::thread::Builder::new()
                .name(format!("filter-worker-{n}"))
                .spawn(move || work(&waiting));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a filter worker thread");
            }
        }
        Self {
            jobs,
            admitted: Arc::new(Semaphore::new(parallel + queued)),
            parallel,
            queued,
            admission_wait,
        }
    }

    /// Half the CPUs (at least one), so that filtered answers never take every core, [`QUEUED_JOBS`] waiting,
    /// and [`ADMISSION_WAIT`].
    pub fn for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cpus / 2, QUEUED_JOBS, ADMISSION_WAIT)
    }

    /// Runs `job` on a worker; [`JobError::Busy`] when no place in the queue came free within the admission
    /// wait. A job whose caller went away before a worker took it up is skipped.
    pub async fn run<T, F>(&self, job: F) -> Result<T, JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admitted = Arc::clone(&self.admitted).acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(self.admission_wait, admitted).await else {
            return Err(JobError::Busy {
                running: self.parallel,
                queued: self.queued,
                waited: self.admission_wait,
            });
        };
        let (done, result) = oneshot::channel();
        let boxed: Job = Box::new(move || {
            let _permit = permit;
            if !done.is_closed() {
                let _ = done.send(job());
            }
        });
        self.jobs.try_send(boxed).map_err(|_| JobError::Failed)?;
        result.await.map_err(|_| JobError::Failed)
    }
}

/// A worker's life: take the next job, run it, until every sender is gone. A job that panics loses its
/// answer (its caller is told it failed), not the worker.
fn work(waiting: &Mutex<Receiver<Job>>) {
    if !shared::runtime::process::lower_thread_priority() {
        tracing::debug!("filter worker runs at the normal priority");
    }
    loop {
        let next = waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        let Ok(job) = next else { return };
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a filtered /status answer panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_a_few_at_a_time_and_a_full_queue_is_refused_at_once() {
        let workers = FilterWorkers::new(1, 2, Duration::from_millis(200));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let job = || {
            let (released, running, most) = (released.clone(), running.clone(), most.clone());
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _ = released.lock().expect("lock").recv();
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        // The first runs; two more wait (a job is queued when its future is first polled).
        let mut first = Box::pin(workers.run(job()));
        assert!(futures::poll!(&mut first).is_pending());
        tokio::time::timeout(Duration::from_secs(5), async {
            while running.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the first job starts");
        let mut waiting = [Box::pin(workers.run(job())), Box::pin(workers.run(job()))];
        for queued in &mut waiting {
            assert!(futures::poll!(queued).is_pending());
        }
        // The queue is full: the next waits for a place, and is refused when none comes free in time.
        let asked = std::time::Instant::now();
        let err = workers.run(|| ()).await.expect_err("the queue is full");
        assert!(asked.elapsed() >= Duration::from_millis(200));
        assert!(
            matches!(
                err,
                JobError::Busy {
                    running: 1,
                    queued: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("1 at a time, 2 waiting"), "{err}");
        // One that waits while a place comes free gets it.
        let mut patient = Box::pin(workers.run(|| 5));
        assert!(futures::poll!(&mut patient).is_pending());
        for _ in 0..3 {
            release.send(()).expect("a job waits");
        }
        first.await.expect("ran");
        for queued in waiting {
            queued.await.expect("ran");
        }
        assert_eq!(patient.await.expect("admitted once a place came free"), 5);
        assert_eq!(most.load(Ordering::SeqCst), 1, "one at a time");
        assert_eq!(workers.run(|| 7).await.expect("room again"), 7);
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone() {
        let workers = FilterWorkers::new(1, 1, Duration::from_secs(1));
        let failed = workers.run(|| panic!("a bug")).await;
        assert!(matches!(failed, Err(JobError::Failed)));
        assert_eq!(workers.run(|| 1).await.expect("the worker lives on"), 1);
    }
}
