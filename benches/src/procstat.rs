//! CPU pinning and CPU time, from Linux's `/proc`.

/// Pins the calling thread (and the threads it spawns later) to `cpu`. No-op if the machine
/// has fewer CPUs.
pub fn pin_to(cpu: usize) {
    if cpu >= online_cpus() {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Whether the machine has a CPU for the servers apart from the load generator's.
pub fn can_pin() -> bool {
    online_cpus() >= 2
}

/// CPUs online (whatever this process's affinity).
fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// CPU time (nanoseconds on CPU) of every thread of process `pid` so far.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
