//! Command-line flags (each also readable from a `LOADGEN_*` environment variable).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Drives a WebTorrent signaling tracker (ours or the `bittorrent-tracker` npm server) with
/// realistic viewers and prints what it delivered.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tracker-loadgen",
    version,
    after_help = "Modes:\n  \
  throughput   ramps the announce rate step by step (from --ramp-start, times --ramp-factor) \
until relayed messages/s stop growing, and reports every step and the peak; with --rate, holds \
that announce rate for --duration seconds instead (use half the peak for the latency target).\n  \
  idle-memory  opens --connections idle connections in --idle-steps steps, each announcing once, \
and reads the tracker's resident memory (VmRSS of --tracker-pid) after each step; prints KiB per \
connection (the slope between the first and last step).\n  \
  loopback-floor  no tracker: --connections pairs of loopback TCP sockets play ping-pong with \
--message-size-byte messages between two threads that only read and write (epoll), one message \
in flight each, for --duration seconds; prints the CPU per transfer, the kernel's floor under \
any tracker on this machine.\n\n\
Each viewer is one WebSocket from one of --source-addresses loopback addresses (127.0.1.1, ...), \
in one swarm drawn with Zipf popularity, announcing offers with ~1.3 KB SDPs and answering every \
offer relayed to it. The run stops by itself; --json prints the result as JSON on stdout."
)]
pub struct Config {
    /// What to measure.
    #[arg(long, env = "LOADGEN_MODE", value_enum, default_value = "throughput")]
    pub mode: Mode,

    /// The tracker's address (its WebSocket is at `/`). Loopback only. Several comma-separated
    /// addresses are replicas of one tracker: viewer `i` connects to address `i mod n`, and
    /// offers are timed separately within one replica and across replicas.
    #[arg(
        long,
        env = "LOADGEN_TRACKER",
        default_value = "127.0.0.1:8000",
        value_delimiter = ','
    )]
    pub tracker: Vec<SocketAddr>,

    /// Simulated viewers (one WebSocket each).
    #[arg(long, env = "LOADGEN_CONNECTIONS", default_value_t = 4000)]
    pub connections: u32,

    /// Loopback source addresses the connections are spread over (127.0.1.1 upwards).
    #[arg(long, env = "LOADGEN_SOURCE_ADDRESSES", default_value_t = 100)]
    pub source_addresses: u32,

    /// Swarms (stream renditions) the viewers are spread over.
    #[arg(long, env = "LOADGEN_SWARMS", default_value_t = 1000)]
    pub swarms: usize,

    /// Exponent of the Zipf popularity of swarms (larger: more skewed).
    #[arg(long, env = "LOADGEN_ZIPF_EXPONENT", default_value_t = 1.0)]
    pub zipf_exponent: f64,

    /// Fewest offers per announce.
    #[arg(long, env = "LOADGEN_OFFERS_MIN", default_value_t = 5)]
    pub offers_min: usize,

    /// Most offers per announce.
    #[arg(long, env = "LOADGEN_OFFERS_MAX", default_value_t = 10)]
    pub offers_max: usize,

    /// Hold this announce rate (announces/s over all viewers) instead of ramping.
    #[arg(long, env = "LOADGEN_RATE")]
    pub rate: Option<f64>,

    /// Seconds measured at a fixed --rate.
    #[arg(long, env = "LOADGEN_DURATION", default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds of load before measuring (each ramp step and a fixed rate).
    #[arg(long, env = "LOADGEN_WARMUP", default_value_t = 1.0)]
    pub warmup: f64,

    /// First announce rate of the ramp.
    #[arg(long, env = "LOADGEN_RAMP_START", default_value_t = 1000.0)]
    pub ramp_start: f64,

    /// Factor between ramp steps.
    #[arg(long, env = "LOADGEN_RAMP_FACTOR", default_value_t = 1.3)]
    pub ramp_factor: f64,

    /// Seconds measured per ramp step.
    #[arg(long, env = "LOADGEN_STEP_SECONDS", default_value_t = 3.0)]
    pub step_seconds: f64,

    /// Most ramp steps.
    #[arg(long, env = "LOADGEN_MAX_STEPS", default_value_t = 16)]
    pub max_steps: u32,

    /// Offers in the single announce of an idle viewer.
    #[arg(long, env = "LOADGEN_IDLE_OFFERS", default_value_t = 0)]
    pub idle_offers: usize,

    /// Memory readings in idle-memory mode (at connections/steps, 2*connections/steps, ...).
    #[arg(long, env = "LOADGEN_IDLE_STEPS", default_value_t = 4)]
    pub idle_steps: u32,

    /// Seconds to let the tracker settle before each memory reading.
    #[arg(long, env = "LOADGEN_SETTLE", default_value_t = 2.0)]
    pub settle: f64,

    /// Process id of the tracker: idle-memory mode reads its VmRSS (required there); throughput
    /// mode reports its CPU use and relayed messages per tracker CPU second. Several
    /// comma-separated ids (replicas, and the Redis they share) count their CPU together.
    #[arg(long, env = "LOADGEN_TRACKER_PID", value_delimiter = ',')]
    pub tracker_pid: Vec<u32>,

    /// Connection handshakes in flight at once.
    #[arg(long, env = "LOADGEN_CONNECT_CONCURRENCY", default_value_t = 200)]
    pub connect_concurrency: usize,

    /// Seconds allowed for opening all connections.
    #[arg(long, env = "LOADGEN_CONNECT_TIMEOUT", default_value_t = 60.0)]
    pub connect_timeout: f64,

    /// Worker threads of the load generator's runtime (1: a current-thread runtime).
    #[arg(long, env = "LOADGEN_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// Distinct SDPs generated per kind (offers, answers) and reused at random.
    #[arg(long, env = "LOADGEN_SDP_POOL", default_value_t = 512)]
    pub sdp_pool: usize,

    /// Bytes per message in loopback-floor mode (a relayed offer or answer is about 1.4 KB).
    #[arg(long, env = "LOADGEN_MESSAGE_SIZE", default_value_t = 1400)]
    pub message_size: usize,

    /// Print the result as JSON on stdout (the human summary goes to stderr).
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: bool,
}

/// What a run measures.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Relayed messages per second and announce-to-offer latency.
    Throughput,
    /// Tracker resident memory per idle connection.
    IdleMemory,
    /// The kernel's CPU per message across loopback TCP, with no tracker.
    LoopbackFloor,
}

impl Config {
    /// Refuses settings that cannot make a run.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.tracker.is_empty() && self.tracker.iter().all(|addr| addr.ip().is_loopback()),
            "--tracker must be loopback addresses"
        );
        anyhow::ensure!(self.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(
            self.offers_min <= self.offers_max,
            "--offers-min must not exceed --offers-max"
        );
        anyhow::ensure!(
            self.ramp_factor > 1.0,
            "--ramp-factor must be greater than 1"
        );
        anyhow::ensure!(
            self.rate.is_none_or(|rate| rate > 0.0),
            "--rate must be positive"
        );
        anyhow::ensure!(
            (1..=63_500).contains(&self.source_addresses),
            "--source-addresses must be within 1..=63500"
        );
        Ok(())
    }

    /// CPU seconds the `--tracker-pid` processes used so far, `None` without any.
    pub fn server_cpu_seconds(&self) -> Option<f64> {
        sum_over(&self.tracker_pid, crate::procfs::cpu_seconds)
    }

    /// Seconds the `--tracker-pid` processes' threads waited for a CPU so far.
    pub fn server_cpu_wait_seconds(&self) -> Option<f64> {
        sum_over(&self.tracker_pid, crate::procfs::cpu_wait_seconds)
    }

    /// Seconds as a duration.
    pub fn seconds(value: f64) -> Duration {
        Duration::from_secs_f64(value.max(0.0))
    }
}

/// The sum of `read` over `pids`, `None` if there are none or any cannot be read.
fn sum_over(pids: &[u32], read: fn(u32) -> Option<f64>) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| read(pid)).sum()
}
