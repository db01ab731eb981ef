//! Small bridges to the browser: reading and building plain JS objects, the clock, timers.

use js_sys::{Function, Object, Reflect};
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// A property of a JS object (`undefined` when absent or when `target` is not an object).
pub fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A string property.
pub fn get_string(target: &JsValue, key: &str) -> Option<String> {
    get(target, key).as_string()
}

/// A numeric property.
pub fn get_f64(target: &JsValue, key: &str) -> Option<f64> {
    get(target, key).as_f64()
}

/// Sets a property on a plain object.
pub fn set(target: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(target, &JsValue::from_str(key), &value.into());
}

/// The browser window (this package runs on pages, not in workers).
pub fn window() -> web_sys::Window {
    web_sys::window().expect("the peer SDK runs in a browser window")
}

/// Monotonic time since the page started.
pub fn now() -> Duration {
    let ms = window().performance().map_or(0.0, |p| p.now());
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

/// Runs `callback` once after `delay`; returns the timer handle.
pub fn set_timeout(callback: &Function, delay: Duration) -> i32 {
    let ms = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
    window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(callback, ms)
        .unwrap_or(0)
}

/// Calls a one-shot Rust closure after `delay` (the closure is freed after it ran).
pub fn after(delay: Duration, callback: impl FnOnce() + 'static) {
    let callback = Closure::once_into_js(callback);
    set_timeout(callback.unchecked_ref(), delay);
}

/// The browser's `crypto.subtle` (`None` outside secure contexts).
pub fn subtle() -> Option<web_sys::SubtleCrypto> {
    let crypto: JsValue = window().crypto().ok()?.into();
    let subtle = get(&crypto, "subtle");
    subtle.is_object().then(|| subtle.unchecked_into())
}

/// A uniformly random `u64` (peer ids, engine seed, backoff jitter; nothing secret).
pub fn random_u64() -> u64 {
    let high = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let low = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (high << 32) | low
}

/// 20 random bytes (peer and offer ids); a peer id starts with this SDK's client prefix.
pub fn random_id(prefix: &[u8]) -> [u8; 20] {
    let mut id = [0u8; 20];
    for chunk in id.chunks_mut(8) {
        let bytes = random_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    id[..prefix.len()].copy_from_slice(prefix);
    id
}
