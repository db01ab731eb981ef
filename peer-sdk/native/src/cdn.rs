//! HTTP requests to the CDN (`reqwest` with rustls): whole segments, byte ranges, playlists.
//!
//! A [`Download`] streams its body as it arrives, so the caller sees progress (and can measure
//! bandwidth) before the end; dropping or [`Download::abort`]ing it cancels the request.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Errors of a CDN request.
#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    /// The server answered with an error status.
    #[error("HTTP status {0}")]
    Status(StatusCode),
    /// Connecting, sending or reading failed (includes bodies cut short by the server).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The body ended before the announced or requested length.
    #[error("body truncated: {received} of {expected} bytes")]
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The server answered a `Range` request with a different range.
    #[error("server sent range {0:?}, not the one requested")]
    WrongRange(String),
    /// The body is larger than the configured limit.
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
}

/// Timeouts and limits of the CDN client.
#[derive(Debug, Clone, Copy)]
pub struct CdnConfig {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Largest body accepted.
    pub max_body: u64,
}

impl Default for CdnConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            max_body: 64 * 1024 * 1024,
        }
    }
}

/// A progress report of a [`Download`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The next bytes of the body, in order.
    Data(Bytes),
    /// The body is complete.
    Done,
}

/// An HTTP client for segments and playlists. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct CdnClient {
    http: reqwest::Client,
    max_body: u64,
}

impl CdnClient {
    /// A client with these timeouts and limits.
    pub fn new(config: CdnConfig) -> Result<Self, CdnError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()?;
        Ok(Self {
            http,
            max_body: config.max_body,
        })
    }

    /// Starts a GET of `url`, of the byte `range` only when given (a `Range` request).
    pub fn fetch(&self, url: &str, range: Option<Range<u64>>) -> Download {
        let (tx, events) = mpsc::channel(32);
        let request = self.request(url, range.clone());
        let max_body = self.max_body;
        let task = tokio::spawn(async move {
            let result = stream_body(request, range, max_body, &tx).await;
            let last = result.map(|()| Progress::Done);
            let _ = tx.send(last).await;
        });
        Download { events, task }
    }

    /// GETs a whole (small) resource such as a playlist.
    pub async fn get(&self, url: &str) -> Result<Bytes, CdnError> {
        let mut download = self.fetch(url, None);
        let mut body = Vec::new();
        loop {
            match download.next().await? {
                Progress::Data(bytes) => body.extend_from_slice(&bytes),
                Progress::Done => return Ok(body.into()),
            }
        }
    }

    fn request(&self, url: &str, range: Option<Range<u64>>) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match range {
            Some(range) if range.end > range.start => {
                request.header(RANGE, format!("bytes={}-{}", range.start, range.end - 1))
            }
            _ => request,
        }
    }
}

/// Sends the body of one response to `tx` as it arrives.
async fn stream_body(
    request: reqwest::RequestBuilder,
    range: Option<Range<u64>>,
    max_body: u64,
    tx: &mpsc::Sender<Result<Progress, CdnError>>,
) -> Result<(), CdnError> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(CdnError::Status(status));
    }
    let expected = match &range {
        Some(range) => {
            check_content_range(&response, status, range)?;
            Some(range.end - range.start)
        }
        None => response.content_length(),
    };
    if expected.is_some_and(|len| len > max_body) {
        return Err(CdnError::TooLarge(max_body));
    }
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        received += chunk.len() as u64;
        if received > expected.unwrap_or(max_body).min(max_body) {
            return Err(CdnError::TooLarge(expected.unwrap_or(max_body)));
        }
        if tx.send(Ok(Progress::Data(chunk))).await.is_err() {
            return Ok(());
        }
    }
    match expected {
        Some(expected) if received != expected => Err(CdnError::Truncated { expected, received }),
        _ => Ok(()),
    }
}

/// A range request must come back as `206` with exactly the range asked for.
fn check_content_range(
    response: &reqwest::Response,
    status: StatusCode,
    range: &Range<u64>,
) -> Result<(), CdnError> {
    let header = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wanted = format!("bytes {}-{}/", range.start, range.end.saturating_sub(1));
    if status == StatusCode::PARTIAL_CONTENT && header.starts_with(&wanted) {
        Ok(())
    } else {
        Err(CdnError::WrongRange(format!("{status} {header:?}")))
    }
}

/// One request in flight. Dropping it aborts the request.
#[derive(Debug)]
pub struct Download {
    events: mpsc::Receiver<Result<Progress, CdnError>>,
    task: JoinHandle<()>,
}

impl Download {
    /// The next progress report. After [`Progress::Done`] or an error, nothing follows.
    pub async fn next(&mut self) -> Result<Progress, CdnError> {
        match self.events.recv().await {
            Some(progress) => progress,
            // Only reachable after the final report was taken.
            None => Ok(Progress::Done),
        }
    }

    /// Cancels the request; the connection is closed.
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.task.abort();
    }
}
