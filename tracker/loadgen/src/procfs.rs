//! Readings of a process from `/proc`: resident memory, CPU time, and time spent waiting for a
//! CPU.

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The resident memory (VmRSS) of process `pid`, KiB.
pub fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|error| {
        anyhow::anyhow!("cannot read {path} (is --tracker-pid right?): {error}")
    })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{path} has no VmRSS line"))
}

/// CPU seconds (user + system) process `pid` has used, or `None` if it cannot be read.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let user: f64 = fields.nth(11)?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// Seconds the threads of process `pid` have spent runnable but waiting for a CPU, summed over
/// its threads (`/proc/<pid>/task/*/schedstat`, second field, in nanoseconds), or `None` if it
/// cannot be read. On a machine shared with other work this is where latency comes from.
pub fn cpu_wait_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanoseconds = 0u64;
    for task in tasks.flatten() {
        // A thread may exit between the listing and the reading.
        let Ok(schedstat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        nanoseconds += schedstat.split(' ').nth(1)?.trim().parse::<u64>().ok()?;
    }
    Some(nanoseconds as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_resident_memory_and_cpu_time() {
        let kib = resident_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib} KiB");
        let busy_until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut spins = 0u64;
        while std::time::Instant::now() < busy_until {
            spins = std::hint::black_box(spins + 1);
        }
        assert!(cpu_seconds(std::process::id()).unwrap() > 0.0);
        assert_eq!(cpu_seconds(u32::MAX), None);
        assert!(cpu_wait_seconds(std::process::id()).unwrap() >= 0.0);
        assert_eq!(cpu_wait_seconds(u32::MAX), None);
    }
}
