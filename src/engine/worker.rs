//! The engine's own thread: applying batches and taking snapshots run on
//! one long-lived thread, not on whichever of tokio's blocking threads is
//! free.
//!
//! Why: the allocator (mimalloc) gives every thread a heap of its own, and a
//! heap keeps pages it has freed into for reuse by that thread. Batches
//! that hopped between six blocking threads left six heaps each holding a
//! batch's worth of freed memory: in the engine benchmark, streaming at a
//! million items added 579 MiB to the resident set, against 219 MiB on one
//! thread. Work that must not wait behind a batch (a sink's outbox read,
//! a rebuild on demand) stays on the blocking pool.
//!
//! A second long-lived thread, the helper, computes documents beside the
//! engine's thread while roots are refreshed ([`super::outputs`]): the
//! same reasoning gives it one heap, not one per refresh.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use super::{Engine, EngineError};

type Job = Box<dyn FnOnce() + Send>;

pub(super) struct Worker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Worker {
    /// Starts the thread; it ends when the worker is dropped and its queue
    /// is empty.
    pub fn start(name: &str) -> Worker {
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            });
        if let Err(error) = started {
            // Jobs then fail with `EngineError::Stopped`, which restarts
            // the pipeline: no work is silently lost.
            tracing::error!(%error, thread = name, "could not start a thread of the engine");
        }
        Worker {
            jobs: Mutex::new(jobs),
        }
    }

    /// Runs `work` on the worker's thread. A panic in it is an error, as a
    /// panic on a blocking thread was.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, EngineError>> {
        let (done, result) = oneshot::channel();
        let sent = self.send(work, move |outcome| {
            let _ = done.send(outcome);
        });
        tokio::spawn(async move {
            if !sent {
                return Err(EngineError::Stopped);
            }
            result.await.unwrap_or(Err(EngineError::Stopped))
        })
    }

    /// Runs `work` on the worker's thread for a caller that blocks on the
    /// result (the engine's thread waiting for its helper), outside of any
    /// async runtime or inside one.
    pub fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
    ) -> Submitted<T> {
        let (done, result) = mpsc::sync_channel(1);
        let sent = self.send(work, move |outcome| {
            let _ = done.send(outcome);
        });
        Submitted(sent.then_some(result))
    }

    /// Drops `value` on the worker's thread, without waiting. A reader of a
    /// large transaction holds hundreds of thousands of decoded rows, most
    /// of them allocated on the helper's thread: freeing them there costs
    /// the engine's thread nothing, and the allocator frees them locally
    /// instead of through another thread's queue. If the thread has
    /// stopped, the value is dropped here.
    pub fn release<T: Send + 'static>(&self, value: T) {
        let _ = self.send(
            move || {
                drop(value);
                Ok(())
            },
            |_| {},
        );
    }

    /// Queues `work`; `deliver` gets its result or its panic as an error.
    /// False when the thread has stopped.
    fn send<T: 'static>(
        &self,
        work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
        deliver: impl FnOnce(Result<T, EngineError>) + Send + 'static,
    ) -> bool {
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(EngineError::Panicked(message))
            });
            deliver(outcome);
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .is_ok()
    }
}

/// The result of [`Worker::submit`], to wait for.
pub(super) struct Submitted<T>(Option<mpsc::Receiver<Result<T, EngineError>>>);

impl<T> Submitted<T> {
    pub fn wait(self) -> Result<T, EngineError> {
        self.0
            .and_then(|result| result.recv().ok())
            .unwrap_or(Err(EngineError::Stopped))
    }
}

impl Engine {
    /// Runs `work` with this engine on the engine's thread.
    pub fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, EngineError>> {
        let engine = Arc::clone(self);
        self.worker.run(move || work(&engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_one_thread_in_order_and_a_panic_is_an_error() {
        let worker = Worker::start("test");
        let first = worker.run(|| Ok(std::thread::current().id()));
        let second = worker.run(|| Ok(std::thread::current().id()));
        let (first, second) = (
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        );
        assert_eq!(first, second);
        assert_ne!(first, std::thread::current().id());
        let panicked = worker.run::<()>(|| panic!("boom")).await.unwrap();
        assert!(matches!(panicked, Err(EngineError::Panicked(m)) if m == "boom"));
        assert_eq!(
            worker.run(|| Ok(7)).await.unwrap().unwrap(),
            7,
            "it goes on"
        );
        let on_its_thread = worker.submit(|| Ok(std::thread::current().id()));
        assert_eq!(
            on_its_thread.wait().unwrap(),
            first,
            "a blocking caller too"
        );
        let panicked = worker.submit::<()>(|| panic!("again")).wait();
        assert!(matches!(panicked, Err(EngineError::Panicked(m)) if m == "again"));
    }

    #[test]
    fn a_released_value_is_dropped_on_the_workers_thread() {
        struct Dropped(mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let worker = Worker::start("test");
        let its_thread = worker.submit(|| Ok(std::thread::current().id())).wait();
        let (sender, dropped_on) = mpsc::channel();
        worker.release(Dropped(sender));
        let dropped_on = dropped_on
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the value is dropped");
        assert_eq!(dropped_on, its_thread.unwrap());
        assert_ne!(dropped_on, std::thread::current().id());
    }
}
