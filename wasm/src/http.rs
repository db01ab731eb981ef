//! CDN requests with `fetch`: an optional `Range`, the body streamed to the core as it arrives,
//! and `AbortController` to cancel.

use crate::driver::Driver;
use crate::js;
use js_sys::Uint8Array;
use peer_sdk::{Input, RequestId};
use std::ops::Range;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader, RequestInit, Response};

/// A request that made no progress for this long is aborted and reported failed (`fetch` has no
/// timeout of its own; the core retries or falls back).
const STALL_TIMEOUT: Duration = Duration::from_secs(4);

/// A running request.
pub struct Http {
    controller: Option<AbortController>,
    /// When it started or last received bytes.
    last_progress: Duration,
}

impl Http {
    /// Cancels the request; nothing more is reported for it.
    pub fn abort(&self) {
        if let Some(controller) = &self.controller {
            controller.abort();
        }
    }
}

/// How a response body maps onto the requested range.
struct Window {
    /// Bytes of the body to skip (a server that ignored `Range` sent the whole resource).
    skip: u64,
    /// Bytes of the body wanted after the skip.
    take: u64,
}

impl Driver {
    /// Fails requests that stalled for [`STALL_TIMEOUT`].
    pub fn fail_stalled_http(&mut self, now: Duration) {
        let stalled: Vec<RequestId> = self
            .http
            .iter()
            .filter(|(_, h)| now.saturating_sub(h.last_progress) > STALL_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for request in stalled {
            if let Some(http) = self.http.remove(&request) {
                http.abort();
                self.input(Input::HttpFailed(request));
            }
        }
    }

    /// Starts an HTTP GET for the core.
    pub fn start_http(&mut self, request: RequestId, url: String, range: Option<Range<u64>>) {
        let controller = AbortController::new().ok();
        self.http.insert(
            request,
            Http {
                controller: controller.clone(),
                last_progress: js::now(),
            },
        );
        let this = self.this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let finished = fetch(&this, request, &url, range, controller).await;
            Driver::with(&this, |d| {
                if d.http.remove(&request).is_some() {
                    d.input(match finished {
                        Ok(()) => Input::HttpFinished(request),
                        Err(_) => Input::HttpFailed(request),
                    });
                }
            });
        });
    }
}

/// Runs one request, handing each body chunk to the core; `Err` on any failure.
async fn fetch(
    this: &std::rc::Weak<std::cell::RefCell<Driver>>,
    request: RequestId,
    url: &str,
    range: Option<Range<u64>>,
    controller: Option<AbortController>,
) -> Result<(), JsValue> {
    let init = RequestInit::new();
    if let Some(controller) = &controller {
        init.set_signal(Some(&controller.signal()));
    }
    if let Some(range) = &range {
        let headers = web_sys::Headers::new()?;
        let last = range.end.saturating_sub(1);
        headers.set("Range", &format!("bytes={}-{last}", range.start))?;
        init.set_headers(&headers);
    }
    let response: Response = JsFuture::from(js::window().fetch_with_str_and_init(url, &init))
        .await?
        .dyn_into()?;
    let mut window = match (&range, response.status()) {
        (_, status) if !response.ok() => return Err(JsValue::from(status)),
        (Some(range), 200) => Window {
            skip: range.start,
            take: range.end - range.start,
        },
        // Done once the requested bytes are in, whether or not the end of the body is seen.
        (Some(range), _) => Window {
            skip: 0,
            take: range.end - range.start,
        },
        _ => Window {
            skip: 0,
            take: u64::MAX,
        },
    };
    let body = response.body().ok_or("no body")?;
    let reader: ReadableStreamDefaultReader = body.get_reader().dyn_into()?;
    while window.take > 0 {
        let chunk = JsFuture::from(reader.read()).await?;
        if js::get(&chunk, "done").is_truthy() {
            break;
        }
        let bytes = Uint8Array::new(&js::get(&chunk, "value")).to_vec();
        let skipped = usize::try_from(window.skip.min(bytes.len() as u64)).unwrap_or(0);
        window.skip -= skipped as u64;
        let rest = &bytes[skipped..];
        let taken = usize::try_from(window.take.min(rest.len() as u64)).unwrap_or(0);
        window.take -= taken as u64;
        let mut alive = false;
        Driver::with(this, |d| {
            let Some(http) = d.http.get_mut(&request) else {
                return;
            };
            alive = true;
            http.last_progress = js::now();
            if taken > 0 {
                d.input(Input::HttpData {
                    request,
                    bytes: &rest[..taken],
                });
            }
        });
        if !alive {
            let _ = reader.cancel();
            return Err(JsValue::from_str("aborted"));
        }
    }
    if range.is_some() && window.take > 0 {
        return Err(JsValue::from_str("truncated body"));
    }
    // Frees the connection of a body read only in part (a server that ignored `Range`).
    let _ = reader.cancel();
    Ok(())
}
