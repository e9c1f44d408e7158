//! This process's CPU time, to tell whether the load generator itself was the bottleneck.

use std::time::Duration;

/// Linux reports utime and stime in USER_HZ ticks, which is 100 on every architecture the
/// kernel exports to user space through /proc (it is fixed by the ABI, unlike CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of this process, all threads, or None off Linux.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_cpu(&stat)
}

/// utime (field 14) + stime (field 15) from a /proc/<pid>/stat line. The command name (field 2)
/// is in parentheses and may contain spaces, so fields are counted after its closing one.
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ")": state is field 3, so utime (14) is the 12th token and stime the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime() {
        let line = "4242 (beam.smp (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    30 0 123 456 78 18446744073709551615";
        assert_eq!(parse_stat_cpu(line), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn reads_own_process() {
        assert!(process_cpu().is_some());
    }
}
