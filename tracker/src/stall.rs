//! Writes that stall. A client whose network vanished acknowledges nothing: once the socket
//! buffer is full, a write to it waits until the kernel gives up, many minutes later, and the
//! connection's task, stuck in that write, hears neither pings nor shutdown. [`Bounded`] gives
//! such a write a time limit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::config::Config;

/// How long a client may leave the tracker's writes waiting: the ping interval, or the peer
/// timeout when pings are off.
pub fn write_limit(config: &Config) -> Duration {
    config
        .ping_interval()
        .unwrap_or(Duration::from_secs(config.peer_timeout))
}

/// How a bounded write ended badly.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError<E> {
    /// The write failed.
    Failed(E),
    /// The write was still waiting when its limit passed.
    Stalled,
}

pin_project! {
    /// A write with a time limit. The timer is only set once the write has had to wait: most
    /// writes complete at once, and they cost no timer (and idle connections no timer memory).
    pub struct Bounded<F> {
        #[pin]
        write: F,
        limit: Duration,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> Bounded<F> {
    /// `write`, given `limit` to complete.
    pub fn new(limit: Duration, write: F) -> Self {
        Self {
            write,
            limit,
            timer: None,
        }
    }
}

impl<F, E> Future for Bounded<F>
where
    F: Future<Output = Result<(), E>>,
{
    type Output = Result<(), WriteError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.write.poll(cx) {
            return Poll::Ready(result.map_err(WriteError::Failed));
        }
        let limit = *this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(WriteError::Stalled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_waits_past_its_limit_stalls() {
        let limit = Duration::from_millis(300);
        let ready = Bounded::new(limit, async { Ok::<(), ()>(()) });
        assert_eq!(ready.await, Ok(()));
        let failed = Bounded::new(limit, async { Err::<(), _>("broken") });
        assert_eq!(failed.await, Err(WriteError::Failed("broken")));
        let slow = Bounded::new(limit, async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<(), ()>(())
        });
        assert_eq!(slow.await, Ok(()));
        let stuck = Bounded::new(limit, std::future::pending::<Result<(), ()>>());
        assert_eq!(stuck.await, Err(WriteError::Stalled));
    }
}
