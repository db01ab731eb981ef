//! `segment-hashes PLAYLIST [--dir DIR]`: prints the sidecar hash list (`PROTOCOL.md`, "Hash
//! list") of every segment a media playlist lists, read from DIR (default: the playlist's folder).

use anyhow::Context as _;
use clap::Parser;
use peer_sdk::integrity::{HashList, SegmentHash, sha256};
use std::path::PathBuf;

/// Generates the SHA-256 hash list published next to a media playlist.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The HLS media playlist (.m3u8).
    playlist: PathBuf,
    /// Folder holding the segments (default: the playlist's folder).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.playlist)
        .with_context(|| format!("reading {}", args.playlist.display()))?;
    let dir = args.dir.unwrap_or_else(|| {
        args.playlist
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    });
    let uris: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let mut list = HashList::default();
    for uri in &uris {
        let path = dir.join(uri.split(['?', '#']).next().unwrap_or(uri));
        let data =
            std::fs::read(&path).with_context(|| format!("reading segment {}", path.display()))?;
        list.insert(
            *uri,
            SegmentHash {
                sha256: sha256(&data),
                size: data.len() as u64,
            },
        );
    }
    print!("{}", list.render(uris.iter().copied()));
    Ok(())
}
