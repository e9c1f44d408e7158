//! Samples the broker's memory use and the data directory's free disk, and raises or clears
//! the broker's alarms (RabbitMQ's memory high watermark and disk free limit).
//!
//! Memory is the process's resident set as the kernel reports it: what an operator sees and
//! what the OOM killer acts on. Above half the limit, queues start keeping new messages on
//! disk instead of in RAM (RabbitMQ's paging threshold), so the alarm is a last resort.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use warren_broker::Broker;
use warren_store::free_disk;

/// Free space needed above the disk limit to clear an alarm raised by a failed write.
const STORAGE_FAULT_MARGIN: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_bytes: u64,
    pub disk_free_bytes: u64,
    pub data_dir: PathBuf,
}

/// Raises the soft limit on open files to the hard one (each connection is a descriptor; the
/// usual soft default of 1024 would cap a broker at about a thousand clients, as Erlang's
/// default would RabbitMQ without its `ulimit -n` advice). Returns the limit now in force.
pub fn raise_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Bytes of RAM on the machine (MemTotal), if it can be read.
pub fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's resident set size in bytes.
pub fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

/// A limit crossed one way or the other: logs the change and reports it once.
struct Alarm {
    name: &'static str,
    on: bool,
}

impl Alarm {
    /// Returns the new state when it changed.
    fn update(&mut self, on: bool, value: u64, limit: u64) -> Option<bool> {
        if on == self.on {
            return None;
        }
        self.on = on;
        if on {
            warn!(
                value,
                limit, "{} alarm set: publishers are blocked", self.name
            );
        } else {
            info!(value, limit, "{} alarm cleared", self.name);
        }
        Some(on)
    }
}

pub fn spawn(broker: Arc<Broker>, limits: Limits) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut memory = Alarm {
            name: "memory",
            on: false,
        };
        let mut disk = Alarm {
            name: "disk",
            on: false,
        };
        let mut paging = false;
        let mut storage_fault = false;
        loop {
            tick.tick().await;
            if let Some(rss) = resident_memory() {
                if let Some(on) = memory.update(rss > limits.memory_bytes, rss, limits.memory_bytes)
                {
                    broker.alarms.set_memory(on);
                }
                let page = rss > limits.memory_bytes / 2;
                if page != paging {
                    paging = page;
                    broker.set_memory_pressure(page);
                }
            }
            if broker.take_storage_fault() && !storage_fault {
                warn!("a write to the data directory failed: the disk alarm stays on until space comes back");
                storage_fault = true;
            }
            if let Some(free) = free_disk(&limits.data_dir) {
                // After a failed write (a full disk that the configured limit did not
                // foresee, say --disk-free-limit 0), free space must clear the limit by a
                // margin before publishers may write again.
                if storage_fault && free >= limits.disk_free_bytes + STORAGE_FAULT_MARGIN {
                    storage_fault = false;
                    broker.storage_recovered();
                }
                let low = free < limits.disk_free_bytes || storage_fault;
                if let Some(on) = disk.update(low, free, limits.disk_free_bytes) {
                    broker.alarms.set_disk(on);
                }
            }
        }
    })
}
