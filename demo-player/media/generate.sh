#!/usr/bin/env bash
# Generates the sample HLS stream the origin serves in tests and in the demo:
# 3 renditions (240p, 360p, 480p), 2-second segments aligned across renditions (fixed GOP),
# 120 seconds of a synthetic test pattern (testsrc2) with a sine tone, and a master playlist.
#
# Usage: demo-player/media/generate.sh [OUTPUT_DIR]   (default: demo-player/media/sample)
# Idempotent: does nothing when OUTPUT_DIR/master.m3u8 already exists. Safe to run concurrently
# (a lock serialises runs; the output appears atomically). Needs Debian's `ffmpeg`.
set -euo pipefail

out=${1:-"$(dirname "$0")/sample"}
duration=${SAMPLE_DURATION_SECONDS:-120}
segment_seconds=2
fps=25

[ -f "$out/master.m3u8" ] && exit 0
command -v ffmpeg >/dev/null || { echo "generate.sh: ffmpeg not found; install Debian's ffmpeg package" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
[ -f "$out/master.m3u8" ] && exit 0

work="$out.partial"
rm -rf "$work"
mkdir -p "$work"
(
    cd "$work"
    ffmpeg -hide_banner -loglevel error -nostdin \
        -f lavfi -i "testsrc2=size=854x480:rate=$fps:duration=$duration" \
        -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=$duration" \
        -filter_complex "[0:v]split=3[a][b][c];[a]scale=426:240[v240];[b]scale=640:360[v360];[c]null[v480]" \
        -map "[v240]" -map 1:a -map "[v360]" -map 1:a -map "[v480]" -map 1:a \
        -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
        -g $((fps * segment_seconds)) -keyint_min $((fps * segment_seconds)) -sc_threshold 0 \
        -b:v:0 100k -maxrate:v:0 120k -bufsize:v:0 200k \
        -b:v:1 200k -maxrate:v:1 240k -bufsize:v:1 400k \
        -b:v:2 400k -maxrate:v:2 480k -bufsize:v:2 800k \
        -c:a aac -b:a 48k -ac 2 \
        -f hls -hls_time $segment_seconds -hls_playlist_type vod -hls_flags independent_segments \
        -hls_segment_filename "%v/segment_%03d.ts" \
        -master_pl_name master.m3u8 \
        -var_stream_map "v:0,a:0,name:240p v:1,a:1,name:360p v:2,a:2,name:480p" \
        "%v/index.m3u8"
)
rm -rf "$out"
mv "$work" "$out"
