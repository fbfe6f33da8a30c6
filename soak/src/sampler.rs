//! Samples a process's resident memory and open file descriptors from `/proc`.

use std::time::{Duration, Instant};

/// One sample.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Since the start of the run.
    pub at: Duration,
    /// Resident set size, bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Reads one sample of process `pid`; `None` once it is gone.
pub fn sample(pid: u32, start: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at: start.elapsed(),
        rss: rss_kib * 1024,
        fds,
    })
}
