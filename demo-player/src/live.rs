//! Live mode: a window slid in real time over the folder's VOD media playlists, looping the content.
//!
//! Segment `seq` (the media sequence number) is file `seq % count` of its playlist, in loop
//! `seq / count`. The stream starts with `window` segments already available; segment `seq`
//! becomes available once the stream's clock (wall-clock time times `speed`) passes its end.
//! Live playlists name segments `URI?seq=N`, so every sequence number has its own URL; a request
//! for a sequence number whose time has not come yet gets 404, as from a real live origin.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use m3u8_rs::{MediaPlaylist, Playlist};

/// Most media playlists and directory entries a media folder may hold.
pub const MAX_FILES: usize = 10_000;

const MAX_DEPTH: usize = 4;

/// How the live window behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveConfig {
    /// Segments in each live playlist.
    pub window_segments: u64,
    /// How fast the stream's clock runs against the wall clock (2.0: segments come twice as fast).
    pub speed: f64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            window_segments: 6,
            speed: 1.0,
        }
    }
}

/// Why the live stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or folder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A media playlist without segments cannot be looped.
    #[error("media playlist {0} has no segments, or segments of zero duration")]
    Empty(String),
    /// No media playlist was found.
    #[error("no media playlist (.m3u8 with segments) found under {0}")]
    NoPlaylists(String),
    /// More files than [`MAX_FILES`].
    #[error("more than {MAX_FILES} entries under the media folder")]
    TooManyFiles,
    /// A bad window or speed.
    #[error("invalid live config: {0}")]
    Config(&'static str),
}

/// The live view of every media playlist in the folder.
#[derive(Debug)]
pub struct LiveStream {
    config: LiveConfig,
    started: Instant,
    looped: Vec<LoopedPlaylist>,
    /// Request path of each media playlist to its index in `looped`.
    playlists: HashMap<String, usize>,
    /// Request path of each segment file to where it sits in a looped playlist.
    segments: HashMap<String, SegmentSlot>,
}

/// What a request for a segment of the live stream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentCheck {
    /// The segment exists at this sequence number and its time has come.
    Available,
    /// The sequence number is in the future, or names another file.
    NotAvailable,
}

#[derive(Debug, Clone, Copy)]
struct SegmentSlot {
    playlist: usize,
    index: u64,
}

#[derive(Debug)]
struct LoopedPlaylist {
    template: MediaPlaylist,
    /// End time of each segment within one loop, in seconds.
    ends: Vec<f64>,
}

impl LiveStream {
    /// Finds the media playlists under `media_dir` and starts the live clock now.
    pub fn load(media_dir: &Path, config: LiveConfig) -> Result<Self, LiveError> {
        if config.window_segments == 0 || config.window_segments > 10_000 {
            return Err(LiveError::Config(
                "window must be between 1 and 10000 segments",
            ));
        }
        if !(config.speed.is_finite() && config.speed > 0.0 && config.speed <= 1000.0) {
            return Err(LiveError::Config("speed must be a number in (0, 1000]"));
        }
        let mut files = Vec::new();
        find_playlists(media_dir, "", 0, &mut files)?;
        let mut stream = LiveStream {
            config,
            started: Instant::now(),
            looped: Vec::new(),
            playlists: HashMap::new(),
            segments: HashMap::new(),
        };
        for (request_path, file) in files {
            let bytes = std::fs::read(&file).map_err(|source| LiveError::Read {
                path: file.display().to_string(),
                source,
            })?;
            let template = match m3u8_rs::parse_playlist_res(&bytes) {
                Ok(Playlist::MediaPlaylist(template)) => template,
                Ok(Playlist::MasterPlaylist(_)) => continue,
                Err(error) => {
                    tracing::warn!(path = %request_path, %error, "not a playlist; served as a plain file");
                    continue;
                }
            };
            let playlist = LoopedPlaylist::new(template)
                .ok_or_else(|| LiveError::Empty(request_path.clone()))?;
            let dir = &request_path[..=request_path.rfind('/').unwrap_or(0)];
            for (index, segment) in playlist.template.segments.iter().enumerate() {
                let slot = SegmentSlot {
                    playlist: stream.looped.len(),
                    index: index as u64,
                };
                stream.segments.insert(resolve(dir, &segment.uri), slot);
            }
            stream.playlists.insert(request_path, stream.looped.len());
            stream.looped.push(playlist);
        }
        if stream.looped.is_empty() {
            return Err(LiveError::NoPlaylists(media_dir.display().to_string()));
        }
        Ok(stream)
    }

    /// The live playlist served at `path` right now, or `None` when `path` is not a media playlist.
    pub fn playlist(&self, path: &str, now: Instant) -> Option<String> {
        let playlist = self.playlist_at(path)?;
        let completed = playlist.completed(self.clock(now, playlist));
        let first = completed.saturating_sub(self.config.window_segments);
        Some(playlist.render(first, completed))
    }

    /// The segments of the live playlist at `path` right now, as their index in the folder's
    /// playlist and the URI the live playlist writes; `None` when `path` is not a media playlist.
    pub fn listed(&self, path: &str, now: Instant) -> Option<Vec<(usize, String)>> {
        let playlist = self.playlist_at(path)?;
        let completed = playlist.completed(self.clock(now, playlist));
        let first = completed.saturating_sub(self.config.window_segments);
        let count = playlist.ends.len() as u64;
        Some(
            (first..completed)
                .map(|seq| ((seq % count) as usize, playlist.live_uri(seq)))
                .collect(),
        )
    }

    /// Whether segment `path` at sequence number `seq` may be served now; `None` when `path` is
    /// not a segment of a live playlist.
    pub fn check_segment(&self, path: &str, seq: u64, now: Instant) -> Option<SegmentCheck> {
        let slot = self.segments.get(path)?;
        let playlist = &self.looped[slot.playlist];
        let count = playlist.ends.len() as u64;
        let available =
            seq % count == slot.index && seq < playlist.completed(self.clock(now, playlist));
        Some(if available {
            SegmentCheck::Available
        } else {
            SegmentCheck::NotAvailable
        })
    }

    /// The stream's clock in media seconds: starts with a full window already available.
    fn clock(&self, now: Instant, playlist: &LoopedPlaylist) -> f64 {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        elapsed * self.config.speed + playlist.end_of(self.config.window_segments - 1)
    }

    fn playlist_at(&self, path: &str) -> Option<&LoopedPlaylist> {
        self.playlists.get(path).map(|&index| &self.looped[index])
    }
}

impl LoopedPlaylist {
    fn new(template: MediaPlaylist) -> Option<Self> {
        let mut end = 0.0;
        let ends: Vec<f64> = template
            .segments
            .iter()
            .map(|segment| {
                end += f64::from(segment.duration.max(0.0));
                end
            })
            .collect();
        (ends.last().copied().unwrap_or(0.0) > 0.0).then_some(LoopedPlaylist { template, ends })
    }

    fn loop_duration(&self) -> f64 {
        self.ends[self.ends.len() - 1]
    }

    /// End time of segment `seq` on the stream's clock.
    fn end_of(&self, seq: u64) -> f64 {
        let count = self.ends.len() as u64;
        (seq / count) as f64 * self.loop_duration() + self.ends[(seq % count) as usize]
    }

    /// How many segments have ended by media time `clock`.
    fn completed(&self, clock: f64) -> u64 {
        let loops = (clock / self.loop_duration()).floor();
        let within = clock - loops * self.loop_duration();
        let in_loop = self.ends.partition_point(|&end| end <= within);
        loops as u64 * self.ends.len() as u64 + in_loop as u64
    }

    /// The URI the live playlist writes for sequence number `seq`: the file's URI plus `seq=N`.
    fn live_uri(&self, seq: u64) -> String {
        let count = self.ends.len() as u64;
        let uri = &self.template.segments[(seq % count) as usize].uri;
        let separator = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{separator}seq={seq}")
    }

    /// The live playlist holding sequence numbers `first..end`.
    fn render(&self, first: u64, end: u64) -> String {
        let count = self.ends.len() as u64;
        let mut live = self.template.clone();
        live.media_sequence = first;
        live.discontinuity_sequence = first / count;
        live.playlist_type = None;
        live.end_list = false;
        live.segments = (first..end)
            .map(|seq| {
                let mut segment = self.template.segments[(seq % count) as usize].clone();
                segment.uri = self.live_uri(seq);
                segment.discontinuity = seq % count == 0 && seq != first;
                segment
            })
            .collect();
        let mut text = Vec::new();
        live.write_to(&mut text)
            .expect("writing to a Vec cannot fail");
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// The request path of `uri` found in a playlist served from request directory `dir` (ending in `/`).
pub(crate) fn resolve(dir: &str, uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{dir}{path}")
    }
}

/// Collects `(request path, file)` for every `.m3u8` under `dir`.
pub(crate) fn find_playlists(
    dir: &Path,
    request_dir: &str,
    depth: usize,
    found: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), LiveError> {
    let read_error = |source| LiveError::Read {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if found.len() >= MAX_FILES {
            return Err(LiveError::TooManyFiles);
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(read_error)?;
        if file_type.is_dir() && depth < MAX_DEPTH {
            find_playlists(
                &entry.path(),
                &format!("{request_dir}/{name}"),
                depth + 1,
                found,
            )?;
        } else if file_type.is_file() && name.ends_with(".m3u8") {
            found.push((format!("{request_dir}/{name}"), entry.path()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::MediaSegment;

    fn looped(durations: &[f32]) -> LoopedPlaylist {
        let segments = durations
            .iter()
            .enumerate()
            .map(|(index, &duration)| MediaSegment {
                uri: format!("s{index}.ts"),
                duration,
                ..MediaSegment::default()
            })
            .collect();
        LoopedPlaylist::new(MediaPlaylist {
            segments,
            ..MediaPlaylist::default()
        })
        .unwrap()
    }

    #[test]
    fn segments_complete_at_their_end_times_across_loops() {
        let playlist = looped(&[2.0, 3.0, 1.0]);
        assert_eq!(playlist.end_of(0), 2.0);
        assert_eq!(playlist.end_of(4), 11.0);
        for (clock, completed) in [
            (0.0, 0),
            (1.99, 0),
            (2.0, 1),
            (5.5, 2),
            (6.0, 3),
            (10.9, 4),
            (11.0, 5),
            (18.0, 9),
        ] {
            assert_eq!(playlist.completed(clock), completed, "at {clock} s");
        }
    }

    #[test]
    fn live_playlist_marks_each_wrap_with_a_discontinuity() {
        let rendered = looped(&[2.0, 3.0, 1.0]).render(2, 7);
        let Ok(Playlist::MediaPlaylist(live)) = m3u8_rs::parse_playlist_res(rendered.as_bytes())
        else {
            panic!("not a media playlist: {rendered}");
        };
        assert_eq!((live.media_sequence, live.discontinuity_sequence), (2, 0));
        let uris: Vec<_> = live
            .segments
            .iter()
            .map(|segment| segment.uri.as_str())
            .collect();
        assert_eq!(
            uris,
            [
                "s2.ts?seq=2",
                "s0.ts?seq=3",
                "s1.ts?seq=4",
                "s2.ts?seq=5",
                "s0.ts?seq=6"
            ]
        );
        let wraps: Vec<_> = live
            .segments
            .iter()
            .map(|segment| segment.discontinuity)
            .collect();
        assert_eq!(wraps, [false, true, false, false, true]);
        assert!(!live.end_list && live.playlist_type.is_none());
    }

    #[test]
    fn empty_or_zero_length_playlists_cannot_loop() {
        assert!(LoopedPlaylist::new(MediaPlaylist::default()).is_none());
        let zero = looped(&[1.0]).template.segments[0].clone();
        let zero = MediaSegment {
            duration: 0.0,
            ..zero
        };
        let playlist = MediaPlaylist {
            segments: vec![zero],
            ..MediaPlaylist::default()
        };
        assert!(LoopedPlaylist::new(playlist).is_none());
    }
}
