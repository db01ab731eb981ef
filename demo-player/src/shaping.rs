//! Response bodies shaped by the faults: paced to a bandwidth cap, truncated or stalled, and counted.

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::faults::{AppliedFaults, Failure, MAX_STALL};
use crate::stats::ByteCounter;

/// How long a truncated body waits before failing, so the bytes before the cut reach the client.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Why a shaped body ended early; hyper then closes the connection without finishing the response.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// A truncation fault cut the body.
    #[error("body truncated by an injected fault")]
    Truncated,
    /// The origin is shutting down.
    #[error("origin shutting down")]
    ShuttingDown,
    /// The inner body failed (e.g. a file read error).
    #[error("reading the body failed: {0}")]
    Inner(#[from] axum::Error),
}

/// Wraps `body` so it is sent as `faults` say, counting the bytes that go out in `counter`.
pub fn shape(
    body: Body,
    faults: AppliedFaults,
    counter: ByteCounter,
    shutdown: CancellationToken,
) -> Body {
    let shaper = Shaper {
        inner: body.into_data_stream(),
        pending: Bytes::new(),
        sent: 0,
        started: None,
        stalled: false,
        finished: false,
        faults,
        counter,
        shutdown,
    };
    Body::from_stream(futures_util::stream::unfold(shaper, Shaper::next_chunk))
}

struct Shaper {
    inner: BodyDataStream,
    pending: Bytes,
    sent: u64,
    started: Option<Instant>,
    stalled: bool,
    finished: bool,
    faults: AppliedFaults,
    counter: ByteCounter,
    shutdown: CancellationToken,
}

impl Shaper {
    async fn next_chunk(mut self) -> Option<(Result<Bytes, ShapeError>, Self)> {
        if self.finished {
            return None;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.pending.is_empty() {
            match self.inner.next().await? {
                Ok(bytes) => self.pending = bytes,
                Err(error) => return self.fail(error.into()),
            }
        }
        let mut take = self.pending.len() as u64;
        if let Some(rate) = self.faults.bandwidth_bytes_per_sec {
            // About ten chunks a second keeps the pace smooth without flooding the socket.
            take = take.min((rate / 10).clamp(1, 64 * 1024));
        }
        match self.faults.failure {
            Some(Failure::Truncate { after_bytes }) => {
                if self.sent >= after_bytes {
                    // hyper drops unflushed bytes when a body fails; it flushes while the body
                    // is pending, so pause briefly to let the bytes before the cut go out.
                    sleep_until(Instant::now() + FLUSH_PAUSE, &self.shutdown).await;
                    return self.fail(ShapeError::Truncated);
                }
                take = take.min(after_bytes - self.sent);
            }
            Some(Failure::Stall {
                after_bytes,
                for_ms,
            }) if !self.stalled => {
                if self.sent >= after_bytes {
                    self.stalled = true;
                    let stall = for_ms
                        .map_or(MAX_STALL, Duration::from_millis)
                        .min(MAX_STALL);
                    if !sleep_until(Instant::now() + stall, &self.shutdown).await {
                        return self.fail(ShapeError::ShuttingDown);
                    }
                } else {
                    take = take.min(after_bytes - self.sent);
                }
            }
            _ => {}
        }
        let chunk = self.pending.split_to(take as usize);
        self.sent += take;
        if let Some(rate) = self.faults.bandwidth_bytes_per_sec {
            let due = started + Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if !sleep_until(due, &self.shutdown).await {
                return self.fail(ShapeError::ShuttingDown);
            }
        }
        self.counter.add(take);
        Some((Ok(chunk), self))
    }

    fn fail(mut self, error: ShapeError) -> Option<(Result<Bytes, ShapeError>, Self)> {
        self.finished = true;
        Some((Err(error), self))
    }
}

/// Sleeps until `deadline`; false when the origin began shutting down first.
async fn sleep_until(deadline: Instant, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => true,
        () = shutdown.cancelled() => false,
    }
}
