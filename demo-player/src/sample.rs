//! The sample stream: generated once by `media/generate.sh`, shared by tests and the demo.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The folder holding the sample stream (`master.m3u8` and one folder per rendition).
pub fn sample_media_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media/sample")
}

/// Returns the sample stream's folder, running `media/generate.sh` first when it is missing.
/// Needs Debian's `ffmpeg`; the script serialises concurrent runs across processes.
pub fn sample_media() -> std::io::Result<PathBuf> {
    static GENERATING: Mutex<()> = Mutex::new(());
    let dir = sample_media_dir();
    let _guard = GENERATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if dir.join("master.m3u8").is_file() {
        return Ok(dir);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media/generate.sh");
    let status = Command::new("bash").arg(&script).arg(&dir).status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "{} failed ({status}); is Debian's ffmpeg installed?",
            script.display()
        )));
    }
    Ok(dir)
}
