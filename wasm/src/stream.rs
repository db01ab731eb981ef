//! What the driver knows about the stream from the playlists that passed through the player's
//! loader: renditions and their swarm ids (`tracker/PROTOCOL.md`), the URL and tracker name of
//! every segment, media times, and the trusted hashes of the stream's hash lists. Hash lists
//! come first; segments without an entry (all of them when a rendition has no list) are left to
//! the hashes agreed at the tracker.

use crate::config::Integrity;
use crate::driver::Driver;
use crate::js;
use crate::playlist::{self, Playlist};
use peer_sdk::Input;
use peer_sdk::integrity::HashList;
use peer_sdk::stream::{HashListFetch, Listed, StreamModel, hash_list_url};
use peer_sdk::swarm_id::{info_hash, rendition_key, strip_query};
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// One rendition (variant stream).
pub struct Rendition {
    /// Media playlist URL without query.
    playlist: String,
    /// The swarm id.
    pub info_hash: [u8; 20],
}

/// Renditions and segments of the stream being played.
pub struct Stream {
    swarm_id: Option<String>,
    master: Option<String>,
    /// Renditions, numbered as the core knows them.
    pub renditions: Vec<Rendition>,
    /// Their segments and hash lists.
    pub model: StreamModel,
}

impl Stream {
    /// An empty stream; `swarm_id` overrides the stream id derived from URLs.
    pub fn new(swarm_id: Option<String>) -> Stream {
        Stream {
            swarm_id,
            master: None,
            renditions: Vec::new(),
            model: StreamModel::default(),
        }
    }

    /// The swarm id of a rendition.
    pub fn info_hash(&self, rendition: u16) -> Option<[u8; 20]> {
        self.renditions
            .get(usize::from(rendition))
            .map(|r| r.info_hash)
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
        self.renditions.push(Rendition {
            playlist: bare.to_owned(),
            info_hash,
        });
        Some(0)
    }
}

/// `uri` resolved against `base`, as the player resolves it.
fn resolve(uri: &str, base: &str) -> Option<String> {
    web_sys::Url::new_with_base(uri, base)
        .ok()
        .map(|u| u.href())
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
                Some(Rendition {
                    playlist: strip_query(&playlist).to_owned(),
                    info_hash: hash,
                })
            })
            .collect();
    }

    fn on_media(&mut self, url: &str, live: bool, segments: &[playlist::Segment]) {
        let Some(rendition) = self.stream.rendition_for_playlist(url) else {
            return;
        };
        let listed = segments
            .iter()
            .filter_map(|segment| {
                Some(Listed {
                    seq: segment.seq,
                    url: resolve(&segment.uri, url)?,
                    uri: segment.uri.clone(),
                    duration: Duration::from_secs_f64(segment.duration.min(86_400.0)),
                    hash: None,
                })
            })
            .collect();
        let infos = self.stream.model.list(rendition, listed);
        if let Integrity::HashList { suffix } = &self.settings.integrity
            && self.stream.model.wants_hash_list(rendition)
        {
            self.load_hash_list(rendition, hash_list_url(url, suffix));
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
            let fetch = fetch_hash_list(&url).await;
            Driver::with(&this, |d| d.on_hash_list(rendition, fetch));
        });
    }

    /// A hash-list fetch ended: the core learns the hashes it lacked.
    fn on_hash_list(&mut self, rendition: u16, fetch: HashListFetch) {
        for (key, hash) in self.stream.model.hash_list_fetched(rendition, fetch) {
            self.input(Input::TrackerHash {
                key,
                sha256: hash.sha256,
                size: Some(hash.size),
            });
        }
    }
}

async fn fetch_hash_list(url: &str) -> HashListFetch {
    let Ok(response) = JsFuture::from(js::window().fetch_with_str(url)).await else {
        return HashListFetch::Failed;
    };
    let Ok(response) = response.dyn_into::<web_sys::Response>() else {
        return HashListFetch::Failed;
    };
    if response.status() == 404 {
        return HashListFetch::Missing;
    }
    let text = async {
        if !response.ok() {
            return None;
        }
        JsFuture::from(response.text().ok()?)
            .await
            .ok()?
            .as_string()
    };
    match text.await.map(|t| HashList::parse(&t)) {
        Some(Ok(list)) => HashListFetch::Loaded(list),
        _ => HashListFetch::Failed,
    }
}
