//! CPU time and peak memory of a process, from `/proc`.

use std::time::Duration;

/// User plus system CPU time consumed by `pid` so far.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU time consumed by `pid` so far, separately.
pub(crate) fn cpu_split(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): utime is
    // the 12th, stime the 13th, in clock ticks (100 per second here).
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        let ticks: u64 = fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        Duration::from_millis(ticks * 10)
    };
    (ticks(11), ticks(12))
}

/// Peak resident memory (`VmHWM`) of `pid`, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
