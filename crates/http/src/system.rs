//! What the node reports about its process and host (Linux `/proc`; zeros elsewhere).

use std::fs;

/// A `Key:   1234 kB` line of a /proc file, in bytes.
fn proc_kib(path: &str, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory of this process.
pub fn resident_memory() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:")
}

pub fn total_memory() -> u64 {
    proc_kib("/proc/meminfo", "MemTotal:")
}

pub fn open_fds() -> u64 {
    fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

pub fn max_fds() -> u64 {
    fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

pub fn processors() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
