//! The swarms the simulated viewers join: `count` renditions of made-up streams, with Zipf
//! popularity (a few swarms hold most viewers, most swarms hold a handful).

use rand::Rng;
use rand_distr::{Distribution, Zipf};
use sha2::{Digest, Sha256};

use crate::wire::{Id20, push_id};

/// The swarms of a run and how viewers pick one.
pub struct Swarms {
    encoded: Vec<String>,
    popularity: Zipf<f64>,
}

impl Swarms {
    /// `count` swarms whose popularity ranks follow Zipf's law with `exponent`.
    pub fn new(count: usize, exponent: f64) -> anyhow::Result<Self> {
        let count = count.max(1);
        let popularity = Zipf::new(count as f64, exponent)
            .map_err(|error| anyhow::anyhow!("invalid Zipf exponent {exponent}: {error}"))?;
        let encoded = (0..count)
            .map(|rank| {
                let mut json = String::with_capacity(48);
                push_id(&mut json, &info_hash(rank));
                json
            })
            .collect();
        Ok(Self {
            encoded,
            popularity,
        })
    }

    /// A swarm drawn by popularity: its index.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        (self.popularity.sample(rng) as usize).clamp(1, self.encoded.len()) - 1
    }

    /// The info hash of swarm `index`, encoded as a JSON string with its quotes.
    pub fn encoded(&self, index: usize) -> &str {
        &self.encoded[index]
    }
}

/// The info hash of the swarm of popularity rank `rank`, derived as the SDK derives one
/// (`tracker/PROTOCOL.md`): SHA-256 of `p2pvd/1\n<stream id>\n<rendition key>`, first 20 bytes.
fn info_hash(rank: usize) -> Id20 {
    const LADDER: [&str; 4] = [
        "bw=800000;codecs=avc1.4d401e,mp4a.40.2;res=640x360",
        "bw=1400000;codecs=avc1.4d401f,mp4a.40.2;res=842x480",
        "bw=2800000;codecs=avc1.4d401f,mp4a.40.2;res=1280x720",
        "bw=5000000;codecs=avc1.640028,mp4a.40.2;res=1920x1080",
    ];
    let stream = rank / LADDER.len();
    let text = format!(
        "p2pvd/1\nhttps://cdn.example.com/loadgen/stream-{stream}/master.m3u8\n{}",
        LADDER[rank % LADDER.len()]
    );
    let digest = Sha256::digest(text.as_bytes());
    digest[..20].try_into().expect("20 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn popularity_is_skewed_and_within_range() {
        let swarms = Swarms::new(1000, 1.0).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut hits = vec![0u32; 1000];
        for _ in 0..100_000 {
            hits[swarms.pick(&mut rng)] += 1;
        }
        assert!(
            hits[0] > 10 * hits[99].max(1),
            "{} vs {}",
            hits[0],
            hits[99]
        );
        assert!(hits.iter().filter(|&&h| h > 0).count() > 500);
    }

    #[test]
    fn swarms_have_distinct_info_hashes() {
        let swarms = Swarms::new(8, 1.0).unwrap();
        assert_ne!(swarms.encoded(0), swarms.encoded(1));
        let decoded: String = serde_json::from_str(swarms.encoded(3)).unwrap();
        assert_eq!(decoded.chars().count(), 20);
    }
}
