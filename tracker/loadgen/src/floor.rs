//! Loopback-floor mode: the CPU the kernel alone takes to move one message across a loopback TCP
//! connection on this machine, and so the most relayed messages/s any tracker could reach here.
//!
//! `--connections` pairs of loopback TCP sockets (the client ends bound to the viewers' source
//! addresses) play ping-pong with `--message-size`-byte messages, one message in flight per pair:
//! every message is one `write` and one `read`, as for a tracker that keeps up, where a viewer
//! gets one message at a time. Two threads, one per end, do nothing else: they wait with epoll
//! (`mio`), read until the socket is empty and write one message back per message read. No
//! WebSocket framing, no JSON, no allocation per message: what is left is the kernel's TCP and
//! the system calls. A relayed message takes several such transfers (the throughput mode
//! reports how many: `transfers_per_relayed_message`), which bounds relayed messages/s from
//! above for any server on this machine.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::peer::source_address;
use crate::procfs;

/// How often an idle end checks whether the run is over.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);

/// The result of a loopback-floor run.
#[derive(Debug, Serialize)]
pub struct FloorReport {
    /// Connection pairs playing ping-pong.
    pub connections: u64,
    /// Bytes per message.
    pub message_bytes: usize,
    /// Length of the measured window in seconds.
    pub seconds: f64,
    /// Messages moved across a connection per second (both directions together).
    pub transfers_per_sec: f64,
    /// CPU the two ends used, in cores.
    pub cpu_cores: f64,
    /// CPU per transfer (one write plus one read, kernel included), in microseconds.
    pub cpu_us_per_transfer: f64,
    /// Transfers per second if every core of the machine did nothing else.
    pub transfers_per_sec_on_all_cores: f64,
    /// The machine's cores.
    pub machine_cores: usize,
}

/// Runs the loopback-floor mode described by `config`.
pub fn run(config: &Config) -> anyhow::Result<FloorReport> {
    let size = config.message_size;
    anyhow::ensure!(size > 0, "--message-size must be at least 1");
    let (clients, servers) = connect_pairs(config.connections, config.source_addresses)
        .context("cannot open the loopback connection pairs (raise `ulimit -n`?)")?;
    eprintln!("{} loopback connection pairs open", clients.len());
    let stop = AtomicBool::new(false);
    let transfers = AtomicU64::new(0);
    let machine_cores = thread::available_parallelism().map_or(1, |n| n.get());
    let message = vec![b'x'; size];
    thread::scope(|scope| {
        let ends = [(clients, true), (servers, false)].map(|(streams, starts)| {
            let (stop, transfers, message) = (&stop, &transfers, &message);
            scope.spawn(move || {
                let outcome = ping_pong(streams, starts, message, stop, transfers);
                stop.store(true, Ordering::Relaxed);
                outcome
            })
        });
        let measured = measure(config, &stop, &transfers);
        stop.store(true, Ordering::Relaxed);
        for end in ends {
            end.join()
                .map_err(|_| anyhow::anyhow!("a ping-pong thread panicked"))??;
        }
        let (seconds, moved, cpu) = measured?;
        anyhow::ensure!(
            cpu > 0.0 && moved > 0,
            "too short to measure ({moved} transfers, {cpu} CPU seconds): raise --duration"
        );
        let cpu_us_per_transfer = cpu / moved as f64 * 1e6;
        Ok(FloorReport {
            connections: config.connections.into(),
            message_bytes: size,
            seconds,
            transfers_per_sec: moved as f64 / seconds,
            cpu_cores: cpu / seconds,
            cpu_us_per_transfer,
            transfers_per_sec_on_all_cores: machine_cores as f64 * 1e6 / cpu_us_per_transfer,
            machine_cores,
        })
    })
}

/// Waits out the warm-up, then counts transfers and process CPU over `--duration` seconds.
/// Returns the window's length, the transfers in it and the CPU seconds used.
fn measure(
    config: &Config,
    stop: &AtomicBool,
    transfers: &AtomicU64,
) -> anyhow::Result<(f64, u64, f64)> {
    let cpu = || procfs::cpu_seconds(std::process::id()).context("cannot read /proc/self/stat");
    thread::sleep(Config::seconds(config.warmup));
    let (moved_before, cpu_before, started) =
        (transfers.load(Ordering::Relaxed), cpu()?, Instant::now());
    thread::sleep(Config::seconds(config.duration));
    let (moved_after, cpu_after) = (transfers.load(Ordering::Relaxed), cpu()?);
    anyhow::ensure!(
        !stop.load(Ordering::Relaxed),
        "a ping-pong thread stopped early"
    );
    Ok((
        started.elapsed().as_secs_f64(),
        moved_after - moved_before,
        cpu_after - cpu_before,
    ))
}

/// Opens `count` loopback TCP connections, the client ends from the viewers' source addresses;
/// returns the client ends and the accepted server ends, in the same order.
fn connect_pairs(count: u32, addresses: u32) -> anyhow::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let target = listener.local_addr()?;
    let mut clients = Vec::with_capacity(count as usize);
    let mut servers = Vec::with_capacity(count as usize);
    for index in 0..count {
        let socket = connect_from(source_address(index, addresses).into(), target)?;
        let (server, _) = listener.accept()?;
        for stream in [&socket, &server] {
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
        }
        clients.push(TcpStream::from_std(socket));
        servers.push(TcpStream::from_std(server));
    }
    Ok((clients, servers))
}

/// A blocking TCP connection to `target` from `source` (any port).
fn connect_from(source: IpAddr, target: SocketAddr) -> anyhow::Result<std::net::TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// One end of every pair: sends the first `message` on each connection if `starts`, then answers
/// every message it reads with one, until `stop`. Counts messages read in `transfers`.
fn ping_pong(
    mut streams: Vec<TcpStream>,
    starts: bool,
    message: &[u8],
    stop: &AtomicBool,
    transfers: &AtomicU64,
) -> anyhow::Result<()> {
    let mut poll = Poll::new()?;
    for (index, stream) in streams.iter_mut().enumerate() {
        poll.registry()
            .register(stream, Token(index), Interest::READABLE)?;
    }
    if starts {
        for stream in &mut streams {
            send(stream, message)?;
        }
    }
    let mut partial = vec![0usize; streams.len()];
    let mut buffer = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(POLL_TIMEOUT))?;
        for event in &events {
            let Token(index) = event.token();
            let stream = &mut streams[index];
            let answered = answer(stream, &mut buffer, &mut partial[index], message);
            match answered {
                Ok(read) => transfers.fetch_add(read, Ordering::Relaxed),
                // The other end closes its sockets once the run is over: no error then.
                Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
                Err(error) => return Err(error),
            };
        }
    }
    Ok(())
}

/// Reads what `stream` holds and writes one `message` back per whole message read; returns how
/// many were read.
fn answer(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    partial: &mut usize,
    message: &[u8],
) -> anyhow::Result<u64> {
    let read = drain(stream, buffer, partial, message.len())?;
    for _ in 0..read {
        send(stream, message)?;
    }
    Ok(read)
}

/// Reads `stream` until it is empty; returns how many whole messages completed. `partial` holds
/// the bytes of a message not yet complete.
fn drain(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    partial: &mut usize,
    size: usize,
) -> anyhow::Result<u64> {
    let mut completed = 0;
    loop {
        match stream.read(buffer) {
            Ok(0) => anyhow::bail!("a loopback connection closed"),
            Ok(read) => {
                *partial += read;
                completed += (*partial / size) as u64;
                *partial %= size;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(completed),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// Writes one whole message: with one message in flight the socket always has room.
fn send(stream: &mut TcpStream, message: &[u8]) -> anyhow::Result<()> {
    let written = stream.write(message)?;
    anyhow::ensure!(
        written == message.len(),
        "a {}-byte write took only {written} bytes: the socket buffer is full",
        message.len()
    );
    Ok(())
}

impl FloorReport {
    /// The human-readable summary.
    pub fn summary(&self) -> String {
        format!(
            "loopback floor: {} connection pairs, {}-byte messages, one in flight each: {:.0} \
             transfers/s on {:.2} cores = {:.2} µs of CPU per transfer (write + read, kernel \
             included); {:.0} transfers/s if all {} cores did nothing else",
            self.connections,
            self.message_bytes,
            self.transfers_per_sec,
            self.cpu_cores,
            self.cpu_us_per_transfer,
            self.transfers_per_sec_on_all_cores,
            self.machine_cores
        )
    }
}
