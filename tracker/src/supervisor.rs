//! Long-running background tasks restarted if they ever fail, so that one bug (or one panic in a
//! dependency) does not silently stop peer expiry or file reloads for the life of the process.

use std::future::Future;
use std::time::Duration;

use prometheus::IntCounter;

/// Pause before a restart, so a task that fails at once does not spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs the task `start` makes until it returns; if it panics, counts the failure in
/// `restarts`, logs it, and starts a fresh one.
pub async fn supervise<F, Fut>(name: &'static str, restarts: IntCounter, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Ok(()) => return,
            Err(error) => {
                restarts.inc();
                tracing::error!(task = name, %error, "background task failed; restarting it");
                tokio::time::sleep(RESTART_DELAY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_counted_and_restarted_until_it_returns() {
        let restarts = IntCounter::new("restarts", "test").unwrap();
        let runs = Arc::new(AtomicU32::new(0));
        let started = Arc::clone(&runs);
        supervise("test", restarts.clone(), move || {
            let run = started.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(run >= 2, "failing on purpose in run {run}");
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(restarts.get(), 2);
    }
}
