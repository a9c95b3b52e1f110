//! argon2 on a few threads of its own, one per core, for the whole life of the provider.
//!
//! Each verification allocates 19 MiB. On tokio's blocking pool the verifications of a flood
//! ran on ever new threads, and glibc's allocator keeps a freed block of that size in the arena
//! of the thread that freed it: a parallel flood of wrong secrets grew a server from 46 MiB to
//! 373 MiB, and the memory stayed. On a fixed set of threads each arena holds at most one
//! block, so memory stays within one block per core whatever the load.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// The argon2 threads; they end when this is dropped.
pub(crate) struct Argon2Threads {
    jobs: mpsc::Sender<Job>,
}

impl Argon2Threads {
    /// Starts `count` threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<Argon2Threads> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("iocd-argon2-{index}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, not while it runs.
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else {
                        return;
                    };
                    // A panicking job loses its answer (the caller sees `None`), not the thread.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                })?;
        }
        Ok(Argon2Threads { jobs })
    }

    /// Runs `work` on one of the threads; `None` if it could not run or panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = answer.send(work());
            }))
            .ok()?;
        answered.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_threads_and_a_panic_loses_only_its_answer() {
        let threads = Argon2Threads::start(2).unwrap();
        let name = threads
            .run(|| std::thread::current().name().map(str::to_string))
            .await;
        assert!(name.flatten().unwrap().starts_with("iocd-argon2-"));
        assert_eq!(threads.run(|| -> u8 { panic!("boom") }).await, None);
        for n in 0..4u32 {
            assert_eq!(threads.run(move || n * 2).await, Some(n * 2));
        }
    }
}
