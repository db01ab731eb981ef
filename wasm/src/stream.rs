//! What the driver knows about the stream from the playlists that passed through the player's
//! loader: renditions and their swarm ids (`tracker/PROTOCOL.md`), the URL and tracker name of
//! every segment, media times, and the trusted hashes of the stream's hash lists. Hash lists
//! come first; segments without an entry (all of them when a rendition has no list) are left to
//! the hashes agreed at the tracker.

use crate::config::Integrity;
use crate::driver::Driver;
use crate::js;
use crate::playlist::{self, Playlist};
use crate::vec_map::VecMap;
use peer_sdk::integrity::{HashList, SegmentHash, tracker_segment_name};
use peer_sdk::swarm_id::{info_hash, rendition_key, strip_query};
use peer_sdk::{Input, SegmentInfo, SegmentKey};
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Segments remembered per rendition behind the newest one (the player never asks older ones).
const REMEMBERED: u64 = 64;

/// One rendition (variant stream).
pub struct Rendition {
    /// Media playlist URL without query.
    playlist: String,
    /// The swarm id.
    pub info_hash: [u8; 20],
    /// The newest segment listed so far: sequence number, start, duration.
    last: Option<(u64, Duration, Duration)>,
    /// The latest hash list loaded (a live stream's list follows its window).
    hashes: Option<HashList>,
    /// A hash list request is running.
    hash_list_loading: bool,
    /// The hash list does not exist (404): it is not asked for again.
    no_hash_list: bool,
}

/// A known segment.
struct Known {
    key: SegmentKey,
    /// The URI as the playlist writes it (the hash list's key).
    uri: String,
    start: Duration,
    duration: Duration,
    /// Its trusted hash was given to the core.
    trusted: bool,
}

/// Renditions and segments of the stream being played.
pub struct Stream {
    swarm_id: Option<String>,
    master: Option<String>,
    /// Renditions, numbered as the core knows them.
    pub renditions: Vec<Rendition>,
    by_url: VecMap<String, Known>,
}

impl Stream {
    /// An empty stream; `swarm_id` overrides the stream id derived from URLs.
    pub fn new(swarm_id: Option<String>) -> Stream {
        Stream {
            swarm_id,
            master: None,
            renditions: Vec::new(),
            by_url: VecMap::default(),
        }
    }

    /// The segment the player requests at `url`.
    pub fn segment_at(&self, url: &str) -> Option<SegmentKey> {
        self.by_url.get(url).map(|k| k.key)
    }

    /// When a segment ends, in the core's media time.
    pub fn segment_end(&self, key: SegmentKey) -> Option<Duration> {
        self.by_url
            .values()
            .find(|k| k.key == key)
            .map(|k| k.start + k.duration)
    }

    /// The swarm id of a rendition.
    pub fn info_hash(&self, rendition: u16) -> Option<[u8; 20]> {
        self.renditions
            .get(usize::from(rendition))
            .map(|r| r.info_hash)
    }

    /// A segment's name in the tracker's hash agreement, if the tracker takes it.
    pub fn tracker_name(&self, key: SegmentKey) -> Option<&str> {
        let known = self.by_url.values().find(|k| k.key == key)?;
        tracker_segment_name(&known.uri)
    }

    /// The known segments of `rendition` the tracker names `name`.
    pub fn keys_named(&self, rendition: u16, name: &str) -> Vec<SegmentKey> {
        self.by_url
            .values()
            .filter(|k| k.key.rendition == rendition && tracker_segment_name(&k.uri) == Some(name))
            .map(|k| k.key)
            .collect()
    }

    /// The rendition whose swarm id is `info_hash`.
    pub fn rendition_of(&self, info_hash: &[u8; 20]) -> Option<u16> {
        let index = self
            .renditions
            .iter()
            .position(|r| r.info_hash == *info_hash)?;
        u16::try_from(index).ok()
    }

    fn stream_id<'a>(&'a self, url: &'a str) -> &'a str {
        self.swarm_id.as_deref().unwrap_or_else(|| strip_query(url))
    }

    fn rendition_for_playlist(&mut self, url: &str) -> Option<u16> {
        let bare = strip_query(url);
        if let Some(index) = self.renditions.iter().position(|r| r.playlist == bare) {
            return u16::try_from(index).ok();
        }
        if self.master.is_some() {
            return None;
        }
        // A media playlist played without a master playlist: the stream has one rendition.
        let info_hash = info_hash(self.stream_id(url), bare);
        self.renditions
            .push(Rendition::new(bare.to_owned(), info_hash));
        Some(0)
    }
}

impl Rendition {
    fn new(playlist: String, info_hash: [u8; 20]) -> Rendition {
        Rendition {
            playlist,
            info_hash,
            last: None,
            hashes: None,
            hash_list_loading: false,
            no_hash_list: false,
        }
    }
}

/// `uri` resolved against `base`, as the player resolves it.
fn resolve(uri: &str, base: &str) -> Option<String> {
    web_sys::Url::new_with_base(uri, base)
        .ok()
        .map(|u| u.href())
}

fn trusted(hashes: Option<&HashList>, uri: &str) -> Option<SegmentHash> {
    let hashes = hashes?;
    hashes.get(uri).or_else(|| hashes.get(strip_query(uri)))
}

impl Driver {
    /// A playlist passed through the player's loader: learn renditions or segments from it.
    pub fn on_playlist(&mut self, url: &str, text: &str) {
        match playlist::parse(text) {
            Some(Playlist::Master(variants)) => self.on_master(url, &variants),
            Some(Playlist::Media { live, segments }) => self.on_media(url, live, &segments),
            None => {}
        }
    }

    fn on_master(&mut self, url: &str, variants: &[playlist::Variant]) {
        if self.stream.master.as_deref() == Some(strip_query(url)) {
            return;
        }
        let stream_id = self.stream.stream_id(url).to_owned();
        self.stream.master = Some(strip_query(url).to_owned());
        self.stream.renditions = variants
            .iter()
            .filter_map(|v| {
                let playlist = resolve(&v.uri, url)?;
                let key = rendition_key(v.bandwidth, v.codecs.as_deref(), v.resolution.as_deref());
                let hash = info_hash(&stream_id, &key);
                Some(Rendition::new(strip_query(&playlist).to_owned(), hash))
            })
            .collect();
    }

    fn on_media(&mut self, url: &str, live: bool, segments: &[playlist::Segment]) {
        let Some(rendition) = self.stream.rendition_for_playlist(url) else {
            return;
        };
        let Some(state) = self.stream.renditions.get_mut(usize::from(rendition)) else {
            return;
        };
        let mut infos = Vec::new();
        for segment in segments {
            let Some(segment_url) = resolve(&segment.uri, url) else {
                continue;
            };
            let duration = Duration::from_secs_f64(segment.duration.min(86_400.0));
            let start = match state.last {
                Some((seq, _, _)) if segment.seq <= seq => continue,
                Some((seq, start, last)) if seq + 1 == segment.seq => start + last,
                _ => duration * u32::try_from(segment.seq).unwrap_or(u32::MAX),
            };
            state.last = Some((segment.seq, start, duration));
            let key = SegmentKey {
                rendition,
                seq: segment.seq,
            };
            let hash = trusted(state.hashes.as_ref(), &segment.uri);
            infos.push(SegmentInfo {
                key,
                url: segment_url.clone(),
                start,
                duration,
                hash,
            });
            let known = Known {
                key,
                uri: segment.uri.clone(),
                start,
                duration,
                trusted: hash.is_some(),
            };
            self.stream.by_url.insert(segment_url, known);
        }
        if let Some((newest, _, _)) = state.last {
            let oldest = newest.saturating_sub(REMEMBERED);
            self.stream
                .by_url
                .retain(|_, k| k.key.rendition != rendition || k.key.seq >= oldest);
        }
        let untrusted = self
            .stream
            .by_url
            .values()
            .any(|k| k.key.rendition == rendition && !k.trusted);
        if let Integrity::HashList { suffix } = &self.settings.integrity
            && untrusted
            && !state.hash_list_loading
            && !state.no_hash_list
        {
            state.hash_list_loading = true;
            self.load_hash_list(rendition, format!("{}{suffix}", strip_query(url)));
        }
        self.input(Input::Playlist {
            rendition,
            live,
            segments: &infos,
        });
    }

    fn load_hash_list(&self, rendition: u16, url: String) {
        let this = self.this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut missing = false;
            let text = async {
                let response = JsFuture::from(js::window().fetch_with_str(&url))
                    .await
                    .ok()?;
                let response: web_sys::Response = response.dyn_into().ok()?;
                missing = response.status() == 404;
                if !response.ok() {
                    return None;
                }
                JsFuture::from(response.text().ok()?)
                    .await
                    .ok()?
                    .as_string()
            };
            let list = text.await.and_then(|t| HashList::parse(&t).ok());
            Driver::with(&this, |d| d.on_hash_list(rendition, list, missing));
        });
    }

    /// A hash list arrived (or failed: `None`; `missing` when it does not exist): the core
    /// learns the hashes it lacked.
    fn on_hash_list(&mut self, rendition: u16, list: Option<HashList>, missing: bool) {
        let Some(state) = self.stream.renditions.get_mut(usize::from(rendition)) else {
            return;
        };
        state.hash_list_loading = false;
        state.no_hash_list = missing;
        let Some(list) = list else {
            return;
        };
        let mut known = Vec::new();
        for k in self.stream.by_url.values_mut() {
            if k.key.rendition == rendition
                && !k.trusted
                && let Some(hash) = trusted(Some(&list), &k.uri)
            {
                k.trusted = true;
                known.push((k.key, hash));
            }
        }
        for (key, hash) in known {
            self.input(Input::TrackerHash {
                key,
                sha256: hash.sha256,
                size: Some(hash.size),
            });
        }
        if let Some(state) = self.stream.renditions.get_mut(usize::from(rendition)) {
            state.hashes = Some(list);
        }
    }
}
