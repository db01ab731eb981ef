//! Sidecar hash lists (`peer-sdk/PROTOCOL.md`, "Hash list"): for every media playlist the origin
//! serves `PLAYLIST.hashes` (e.g. `/240p/index.m3u8.hashes`), the SHA-256 and size of each
//! segment it lists, keyed by the segment URI exactly as the playlist writes it. Peers check
//! every byte they got from other peers against it. In live mode the list follows the live
//! window (URIs with `?seq=N`), so it names the same URIs as the playlist served at that moment.

use std::collections::HashMap;
use std::path::Path;

use m3u8_rs::Playlist;
use peer_sdk::integrity::{HashList, SegmentHash, sha256};

use crate::live::{LiveError, find_playlists, resolve};

/// What a media playlist's sidecar is named after: the playlist's path plus this suffix.
pub const SUFFIX: &str = ".hashes";

/// The trusted hashes of every media playlist's segments, computed once from the files.
#[derive(Debug, Default)]
pub struct SegmentHashes {
    /// Request path of each media playlist to its segments' URIs and hashes, in playlist order.
    playlists: HashMap<String, Vec<(String, SegmentHash)>>,
}

impl SegmentHashes {
    /// Reads every media playlist under `media_dir` and hashes the segment files it lists.
    pub fn load(media_dir: &Path) -> Result<Self, LiveError> {
        let mut files = Vec::new();
        find_playlists(media_dir, "", 0, &mut files)?;
        let mut playlists = HashMap::new();
        for (request_path, file) in files {
            let bytes = read(&file)?;
            let Ok(Playlist::MediaPlaylist(playlist)) = m3u8_rs::parse_playlist_res(&bytes) else {
                continue;
            };
            let dir = &request_path[..=request_path.rfind('/').unwrap_or(0)];
            let mut segments = Vec::with_capacity(playlist.segments.len());
            for segment in &playlist.segments {
                let path = resolve(dir, &segment.uri);
                let data = read(&media_dir.join(path.trim_start_matches('/')))?;
                let hash = SegmentHash {
                    sha256: sha256(&data),
                    size: data.len() as u64,
                };
                segments.push((segment.uri.clone(), hash));
            }
            playlists.insert(request_path, segments);
        }
        Ok(SegmentHashes { playlists })
    }

    /// The sidecar of the VOD playlist at `playlist_path`: every segment, URIs as in the file.
    pub fn vod_list(&self, playlist_path: &str) -> Option<String> {
        let segments = self.playlists.get(playlist_path)?;
        Some(render(
            segments.iter().map(|(uri, hash)| (uri.clone(), *hash)),
        ))
    }

    /// The sidecar of a live window: `listed` gives, for each segment of the window, its index
    /// in the VOD playlist at `playlist_path` and the URI the live playlist writes.
    pub fn live_list(
        &self,
        playlist_path: &str,
        listed: impl IntoIterator<Item = (usize, String)>,
    ) -> Option<String> {
        let segments = self.playlists.get(playlist_path)?;
        Some(render(listed.into_iter().filter_map(|(index, uri)| {
            segments.get(index).map(|(_, hash)| (uri, *hash))
        })))
    }
}

fn render(entries: impl Iterator<Item = (String, SegmentHash)>) -> String {
    let mut list = HashList::default();
    let mut uris = Vec::new();
    for (uri, hash) in entries {
        list.insert(uri.clone(), hash);
        uris.push(uri);
    }
    list.render(uris.iter().map(String::as_str))
}

fn read(path: &Path) -> Result<Vec<u8>, LiveError> {
    std::fs::read(path).map_err(|source| LiveError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_the_uris_they_are_given_with_the_hashes_of_the_files() {
        let hash = |n: u8| SegmentHash {
            sha256: [n; 32],
            size: u64::from(n),
        };
        let mut hashes = SegmentHashes::default();
        hashes.playlists.insert(
            "/a/index.m3u8".into(),
            vec![("s0.ts".into(), hash(1)), ("s1.ts".into(), hash(2))],
        );
        let vod = HashList::parse(&hashes.vod_list("/a/index.m3u8").unwrap()).unwrap();
        assert_eq!(vod.get("s1.ts"), Some(hash(2)));
        let live = hashes
            .live_list(
                "/a/index.m3u8",
                [(1, "s1.ts?seq=3".into()), (0, "s0.ts?seq=4".into())],
            )
            .unwrap();
        let live = HashList::parse(&live).unwrap();
        assert_eq!(live.get("s1.ts?seq=3"), Some(hash(2)));
        assert_eq!(live.get("s0.ts?seq=4"), Some(hash(1)));
        assert_eq!(live.get("s0.ts"), None);
        assert!(hashes.vod_list("/b/index.m3u8").is_none());
    }
}
