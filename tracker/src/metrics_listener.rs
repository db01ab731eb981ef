//! The separate metrics port (`--metrics-listen`): plain HTTP serving `/metrics` only, so the
//! public port does not expose them.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::http::{self, RequestHead};
use crate::shared::Shared;

/// Serves `/metrics` on `listener` until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                shared.tasks.spawn(answer(stream, Arc::clone(&shared)));
            }
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, shared: Arc<Shared>) {
    let limit = Duration::from_secs(shared.config.handshake_timeout);
    let Ok(Ok(head)) = tokio::time::timeout(limit, RequestHead::read(&mut stream)).await else {
        return;
    };
    let mut slots = RequestHead::header_slots();
    let path = head
        .parse(&mut slots)
        .ok()
        .and_then(|request| request.path)
        .map(|target| target.split('?').next().unwrap_or(target));
    let result = match path {
        Some("/metrics") => {
            let body = render(&shared);
            http::respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        _ => http::respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    };
    if let Err(error) = result {
        tracing::debug!(%error, "metrics response failed");
    }
}

/// The metrics in Prometheus text format, with the swarm totals refreshed.
pub fn render(shared: &Shared) -> String {
    let totals = shared.registry.totals();
    shared.metrics.swarms.set(totals.swarms as i64);
    shared.metrics.peers.set(totals.peers as i64);
    shared.metrics.render()
}
