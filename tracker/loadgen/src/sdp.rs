//! Plausible WebRTC data-channel session descriptions, shaped like the ones a browser puts in a
//! WebTorrent offer or answer (non-trickle ICE: every candidate is in the SDP, about 1.3 KB).

use rand::Rng;

/// Whether a description opens a negotiation or answers one (`setup:actpass` vs `setup:active`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpKind {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
}

/// A pool of distinct descriptions, each already escaped as JSON string content, so building a
/// message is a copy and not an encode.
pub struct SdpPool {
    escaped: Vec<String>,
}

impl SdpPool {
    /// Generates `size` distinct descriptions of `kind`.
    pub fn generate(kind: SdpKind, size: usize, rng: &mut impl Rng) -> Self {
        let escaped = (0..size.max(1))
            .map(|_| escape_json(&description(kind, rng)))
            .collect();
        Self { escaped }
    }

    /// A randomly chosen description, escaped as JSON string content.
    pub fn pick(&self, rng: &mut impl Rng) -> &str {
        &self.escaped[rng.random_range(0..self.escaped.len())]
    }
}

/// One description with random session id, addresses, ports, ICE credentials and fingerprint.
pub fn description(kind: SdpKind, rng: &mut impl Rng) -> String {
    let session_id: u64 = rng.random_range(1_000_000_000_000_000_000..9_000_000_000_000_000_000);
    let lan = format!(
        "192.168.{}.{}",
        rng.random_range(0..=255),
        rng.random_range(2..=254)
    );
    let wan = format!(
        "{}.{}.{}.{}",
        rng.random_range(11..=223),
        rng.random_range(0..=255),
        rng.random_range(0..=255),
        rng.random_range(1..=254)
    );
    let v6 = format!(
        "2a02:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>()
    );
    let port: u16 = rng.random_range(49152..=65535);
    let v6_port: u16 = rng.random_range(49152..=65535);
    let foundation = |rng: &mut dyn rand::RngCore| rng.next_u32();
    let mdns = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}.local",
        rng.random::<u32>(),
        rng.random::<u16>(),
        rng.random_range(0..0x1000),
        rng.random_range(0..0x1000),
        rng.random_range(0..1u64 << 48)
    );
    let setup = match kind {
        SdpKind::Offer => "actpass",
        SdpKind::Answer => "active",
    };
    let fingerprint: Vec<String> = (0..32)
        .map(|_| format!("{:02X}", rng.random::<u8>()))
        .collect();
    let mut sdp = String::with_capacity(1400);
    let mut line = |text: String| {
        sdp.push_str(&text);
        sdp.push_str("\r\n");
    };
    line("v=0".into());
    line(format!("o=- {session_id} 2 IN IP4 127.0.0.1"));
    line("s=-".into());
    line("t=0 0".into());
    line("a=group:BUNDLE 0".into());
    line("a=extmap-allow-mixed".into());
    line("a=msid-semantic: WMS".into());
    line("m=application 9 UDP/DTLS/SCTP webrtc-datachannel".into());
    line(format!("c=IN IP4 {wan}"));
    line(format!(
        "a=candidate:{} 1 udp 2122260223 {lan} {port} typ host generation 0 network-id 1 network-cost 10",
        foundation(rng)
    ));
    line(format!(
        "a=candidate:{} 1 udp 2122197247 {v6} {v6_port} typ host generation 0 network-id 2 network-cost 10",
        foundation(rng)
    ));
    line(format!(
        "a=candidate:{} 1 udp 2122129151 {mdns} {port} typ host generation 0 network-id 3",
        foundation(rng)
    ));
    line(format!(
        "a=candidate:{} 1 tcp 1518280447 {lan} 9 typ host tcptype active generation 0 network-id 1 network-cost 10",
        foundation(rng)
    ));
    line(format!(
        "a=candidate:{} 1 tcp 1518217471 {v6} 9 typ host tcptype active generation 0 network-id 2 network-cost 10",
        foundation(rng)
    ));
    line(format!(
        "a=candidate:{} 1 udp 1686052607 {wan} {} typ srflx raddr {lan} rport {port} generation 0 network-id 1 network-cost 10",
        foundation(rng),
        rng.random_range(1024..=65535u16)
    ));
    line(format!("a=ice-ufrag:{}", token(rng, 4)));
    line(format!("a=ice-pwd:{}", token(rng, 24)));
    line("a=ice-options:trickle".into());
    line(format!("a=fingerprint:sha-256 {}", fingerprint.join(":")));
    line(format!("a=setup:{setup}"));
    line("a=mid:0".into());
    line("a=sctp-port:5000".into());
    line("a=max-message-size:262144".into());
    sdp
}

/// Random ICE-alphabet characters (letters, digits, `+`, `/`).
fn token(rng: &mut impl Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `text` escaped as the content of a JSON string (without the quotes).
pub fn escape_json(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string always serialises");
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn descriptions_are_browser_sized_and_distinct() {
        let mut rng = SmallRng::seed_from_u64(7);
        let a = description(SdpKind::Offer, &mut rng);
        let b = description(SdpKind::Offer, &mut rng);
        assert_ne!(a, b);
        for sdp in [&a, &b] {
            assert!((1100..1500).contains(&sdp.len()), "{} bytes", sdp.len());
            assert!(sdp.starts_with("v=0\r\n") && sdp.ends_with("\r\n"));
            assert!(sdp.contains("a=setup:actpass"));
        }
        let answer = description(SdpKind::Answer, &mut rng);
        assert!(answer.contains("a=setup:active\r\n"));
    }

    #[test]
    fn escaped_descriptions_round_trip_through_json() {
        let mut rng = SmallRng::seed_from_u64(8);
        let sdp = description(SdpKind::Answer, &mut rng);
        let json = format!("\"{}\"", escape_json(&sdp));
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), sdp);
    }
}
