//! Swarm id (`info_hash`) derivation, as agreed with the tracker (`tracker/PROTOCOL.md`).

use crate::integrity::sha256;

/// The 20-byte swarm id of one rendition of a stream.
///
/// `stream_id` is the integrator's explicit id, or the master playlist URL without query and
/// fragment; `rendition_key` comes from [`rendition_key`] (or is the media playlist URL without
/// query when there is no master playlist).
pub fn info_hash(stream_id: &str, rendition_key: &str) -> [u8; 20] {
    let digest = sha256(format!("p2pvd/1\n{stream_id}\n{rendition_key}").as_bytes());
    let mut id = [0; 20];
    id.copy_from_slice(&digest[..20]);
    id
}

/// `bw=<BANDWIDTH>;codecs=<CODECS>;res=<WIDTHxHEIGHT>`, empty values for absent attributes.
pub fn rendition_key(
    bandwidth: Option<u64>,
    codecs: Option<&str>,
    resolution: Option<&str>,
) -> String {
    format!(
        "bw={};codecs={};res={}",
        bandwidth.map(|b| b.to_string()).unwrap_or_default(),
        codecs.unwrap_or_default(),
        resolution.unwrap_or_default()
    )
}

/// A URL without its query string and fragment.
pub fn strip_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenised_urls_meet_in_one_swarm() {
        let key = rendition_key(Some(800_000), Some("avc1.4d401f"), None);
        assert_eq!(key, "bw=800000;codecs=avc1.4d401f;res=");
        let a = info_hash(strip_query("https://cdn1/x/master.m3u8?token=a"), &key);
        let b = info_hash(strip_query("https://cdn1/x/master.m3u8?token=b#t"), &key);
        assert_eq!(a, b);
        assert_ne!(
            a,
            info_hash("https://cdn1/x/master.m3u8", "bw=1;codecs=;res=")
        );
    }
}
