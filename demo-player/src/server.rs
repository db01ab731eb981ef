//! The HTTP side: routes, the media handler, the control and stats endpoints, CORS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;

use crate::faults::{AppliedFaults, Failure, FaultConfig, FaultConfigError, FaultTable};
use crate::hashes::{self, SegmentHashes};
use crate::live::{LiveConfig, LiveError, LiveStream, SegmentCheck};
use crate::shaping::shape;
use crate::stats::{Stats, StatsSnapshot};

/// Everything the origin needs to start.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// The folder served, e.g. the output of `media/generate.sh`.
    pub media_dir: PathBuf,
    /// `Some` serves media playlists as a live window; `None` serves the folder as VOD.
    pub live: Option<LiveConfig>,
    /// Faults in force from the start.
    pub faults: FaultConfig,
}

/// Why the origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The media folder does not exist or is not a folder.
    #[error("media folder {0} is not a readable directory")]
    NoMediaDir(String),
    /// Live mode could not be set up from the folder.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The initial faults were refused.
    #[error("invalid faults: {0}")]
    Faults(#[from] FaultConfigError),
    /// The listener's address could not be read.
    #[error("listener has no local address: {0}")]
    Listener(std::io::Error),
}

/// A running origin. Dropping it shuts the origin down; so does [`RunningOrigin::shutdown`].
#[derive(Debug)]
pub struct RunningOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    serve_dir: ServeDir,
    live: Option<LiveStream>,
    hashes: SegmentHashes,
    faults: FaultTable,
    stats: Stats,
    shutdown: CancellationToken,
}

/// Starts the origin on `listener` as a task of the current tokio runtime.
pub async fn start(
    listener: TcpListener,
    config: OriginConfig,
) -> Result<RunningOrigin, StartError> {
    if !config.media_dir.is_dir() {
        return Err(StartError::NoMediaDir(
            config.media_dir.display().to_string(),
        ));
    }
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let faults = FaultTable::default();
    faults.replace(config.faults)?;
    let live = config
        .live
        .map(|live| LiveStream::load(&config.media_dir, live))
        .transpose()?;
    let hashes = SegmentHashes::load(&config.media_dir)?;
    let shared = Arc::new(Shared {
        serve_dir: ServeDir::new(&config.media_dir).append_index_html_on_directories(false),
        live,
        hashes,
        faults,
        stats: Stats::default(),
        shutdown: CancellationToken::new(),
    });
    let app = router(shared.clone());
    let shutdown = shared.shutdown.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(error) = serve.await {
            tracing::error!(%error, "origin server stopped");
        }
    });
    tracing::info!(%addr, live = shared.live.is_some(), "origin listening");
    Ok(RunningOrigin {
        addr,
        shared,
        task: Some(task),
    })
}

impl RunningOrigin {
    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The origin's URL for `path` (which starts with `/`), e.g. `url("/master.m3u8")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replaces the fault rules, as `POST /_control/faults` does.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), FaultConfigError> {
        self.shared.faults.replace(faults)
    }

    /// The request and byte counters, as `GET /_stats` returns them.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, cuts stalled and paced responses, and waits for open connections to end.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningOrigin {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
        .allow_headers(Any)
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::CONTENT_TYPE,
        ])
        .max_age(std::time::Duration::from_secs(600));
    Router::new()
        .route(
            "/_control/faults",
            get(get_faults).post(post_faults).delete(delete_faults),
        )
        .route("/_stats", get(get_stats).delete(delete_stats))
        .fallback(serve_media)
        .layer(cors)
        .with_state(shared)
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<FaultConfig> {
    Json(shared.faults.config())
}

async fn post_faults(
    State(shared): State<Arc<Shared>>,
    Json(config): Json<FaultConfig>,
) -> Response {
    match shared.faults.replace(config) {
        Ok(()) => Json(shared.faults.config()).into_response(),
        Err(error) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{error}\n")).into_response(),
    }
}

async fn delete_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared
        .faults
        .replace(FaultConfig::default())
        .expect("an empty fault list is valid");
    StatusCode::NO_CONTENT
}

async fn get_stats(State(shared): State<Arc<Shared>>) -> Json<StatsSnapshot> {
    Json(shared.stats.snapshot())
}

async fn delete_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.stats.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SegmentQuery {
    seq: Option<u64>,
}

/// Serves a file of the media folder (or a live playlist), with the faults for its path.
async fn serve_media(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let counter = shared.stats.record_request(&path);
    let faults = shared.faults.apply(&path);
    if !faults.latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(faults.latency) => {}
            () = shared.shutdown.cancelled() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    let response = match faults.failure {
        Some(Failure::Status { status }) => injected_status(status),
        _ => file_or_live(&shared, &path, request).await,
    };
    let (parts, body) = response.into_parts();
    let body = shape(
        body,
        faults_for_body(faults, parts.status),
        counter,
        shared.shutdown.clone(),
    );
    Response::from_parts(parts, body)
}

/// A status fault already replaced the body; the other faults shape successful bodies only.
fn faults_for_body(faults: AppliedFaults, status: StatusCode) -> AppliedFaults {
    if status.is_success() {
        faults
    } else {
        AppliedFaults {
            failure: None,
            ..faults
        }
    }
}

async fn file_or_live(shared: &Shared, path: &str, request: Request) -> Response {
    if let Some(playlist_path) = path.strip_suffix(hashes::SUFFIX) {
        let list = match &shared.live {
            Some(live) => live
                .listed(playlist_path, Instant::now())
                .and_then(|listed| shared.hashes.live_list(playlist_path, listed)),
            None => shared.hashes.vod_list(playlist_path),
        };
        if let Some(list) = list {
            return no_cache_text(request.method(), HASH_LIST_TYPE, list);
        }
    }
    if let Some(live) = &shared.live {
        let now = Instant::now();
        if let Some(playlist) = live.playlist(path, now) {
            return no_cache_text(request.method(), PLAYLIST_TYPE, playlist);
        }
        let Ok(Query(query)) = Query::<SegmentQuery>::try_from_uri(request.uri()) else {
            return (
                StatusCode::BAD_REQUEST,
                "seq must be a media sequence number\n",
            )
                .into_response();
        };
        if let Some(seq) = query.seq {
            if live.check_segment(path, seq, now) == Some(SegmentCheck::NotAvailable) {
                return (
                    StatusCode::NOT_FOUND,
                    "segment not available yet at this sequence number\n",
                )
                    .into_response();
            }
        }
    }
    let mut response = match shared.serve_dir.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(infallible) => match infallible {},
    };
    if response.status().is_success() {
        if let Some(content_type) = content_type(path) {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
    }
    response
}

/// A generated text (live playlist, hash list) that changes over time.
fn no_cache_text(method: &Method, content_type: &'static str, text: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    // hyper leaves out the body of a HEAD response and keeps its length.
    match *method {
        Method::GET | Method::HEAD => (headers, text).into_response(),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn injected_status(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, "failure injected by the origin's fault rules\n").into_response()
}

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const HASH_LIST_TYPE: &str = "text/plain; charset=utf-8";

/// The content type for a media file, by extension; `None` leaves the guessed type.
fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "m3u8" => PLAYLIST_TYPE,
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "aac" => "audio/aac",
        "vtt" => "text/vtt",
        _ => return None,
    })
}
