//! The process's own resource use on `/metrics`, under the names of Prometheus's
//! standard process collector (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …), read from `/proc/self` at each scrape.
//!
//! They let a dashboard, or `parley-load` loading a node it did not start, see the
//! server's CPU time and memory without access to the machine. On a system without
//! `/proc` (not Linux) the lines are left out.

use std::fmt::Write as _;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`USER_HZ`): 100 on every Linux
/// architecture Parley builds for (x86-64, AArch64).
const USER_HZ: f64 = 100.0;

/// One reading of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Peak resident memory (`VmHWM`), bytes.
    pub peak_resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch (0 when unknown).
    pub start_time_seconds: f64,
    /// Open file descriptors (sockets included), when countable.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors, when known.
    pub max_fds: Option<u64>,
}

/// Parse `/proc/<pid>/stat` and `/proc/<pid>/status`; `boot_time` is `btime` of
/// `/proc/stat` (seconds since the epoch). `None` when `stat` is not readable as such.
pub fn parse(stat: &str, status: &str, boot_time: Option<u64>) -> Option<ProcessSample> {
    // The command name may hold spaces and parentheses: the fields start after the last
    // ')'. fields[0] is field 3 (state); utime is field 14, stime 15, num_threads 20,
    // starttime 22.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let (utime, stime, threads) = (field(11)?, field(12)?, field(17)?);
    let start_time_seconds = match (field(19), boot_time) {
        (Some(ticks), Some(boot)) => boot as f64 + ticks as f64 / USER_HZ,
        _ => 0.0,
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Some(ProcessSample {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        resident_bytes: kib("VmRSS:"),
        peak_resident_bytes: kib("VmHWM:"),
        virtual_bytes: kib("VmSize:"),
        threads,
        start_time_seconds,
        open_fds: None,
        max_fds: None,
    })
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`.
fn parse_max_fds(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `btime` of `/proc/stat`.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Read this process now; `None` without `/proc`.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_boot_time);
    let mut s = parse(&stat, &status, boot)?;
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    s.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(parse_max_fds);
    Some(s)
}

/// The sample in the Prometheus text format.
pub fn render(s: &ProcessSample) -> String {
    let known = |v: f64| (v > 0.0).then(|| v.to_string());
    // (name, type, help, value: `None` leaves the metric out)
    let metrics = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            Some(s.cpu_seconds.to_string()),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            Some(s.resident_bytes.to_string()),
        ),
        (
            "process_resident_memory_max_bytes",
            "gauge",
            "Peak resident memory size in bytes (VmHWM).",
            Some(s.peak_resident_bytes.to_string()),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            Some(s.virtual_bytes.to_string()),
        ),
        (
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            Some(s.threads.to_string()),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            known(s.start_time_seconds),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            s.open_fds.map(|n| n.to_string()),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            s.max_fds.map(|n| n.to_string()),
        ),
    ];
    let mut out = String::with_capacity(1024);
    for (name, kind, help, value) in metrics {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    // A real /proc/<pid>/stat line, with a command name holding ") (".
    const STAT: &str = "4242 (par ley) (x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 \
                        1234 566 0 0 20 0 11 0 987654 1000000000 9000 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17415 0 0 0 17 1 0 0 0 0 0";
    const STATUS: &str = "Name:\tparley\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n\
                          VmSize:\t 1048576 kB\nThreads:\t11\n";

    #[test]
    fn cpu_memory_threads_and_start_time_come_from_stat_and_status() {
        let s = parse(STAT, STATUS, Some(1_700_000_000)).unwrap();
        assert_eq!(s.cpu_seconds, 18.0); // (1234 + 566) / 100
        assert_eq!(s.resident_bytes, 40960 * 1024);
        assert_eq!(s.peak_resident_bytes, 51200 * 1024);
        assert_eq!(s.virtual_bytes, 1_048_576 * 1024);
        assert_eq!(s.threads, 11);
        assert_eq!(s.start_time_seconds, 1_700_000_000.0 + 9876.54);
    }

    #[test]
    fn a_stat_that_is_cut_short_or_garbled_reads_as_nothing() {
        assert_eq!(parse("4242 (parley) S 1 2 3", STATUS, None), None);
        assert_eq!(parse("no parenthesis here", STATUS, None), None);
        assert_eq!(parse(&STAT.replace("1234", "x"), STATUS, None), None);
        // Without the boot time the start time is unknown, the rest still reads.
        let s = parse(STAT, "", None).unwrap();
        assert_eq!((s.start_time_seconds, s.resident_bytes), (0.0, 0));
    }

    #[test]
    fn limits_and_boot_time_are_found_by_their_labels() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576));
        assert_eq!(parse_max_fds("Max processes 10 10"), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn the_rendering_is_prometheus_text_with_the_standard_names() {
        let s = ProcessSample {
            cpu_seconds: 1.5,
            resident_bytes: 2048,
            threads: 3,
            open_fds: Some(7),
            ..ProcessSample::default()
        };
        let text = render(&s);
        assert!(
            text.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"
            )
        );
        assert!(text.contains("\nprocess_resident_memory_bytes 2048\n"));
        assert!(text.contains("\nprocess_threads 3\n"));
        assert!(text.contains("\nprocess_open_fds 7\n"));
        assert!(!text.contains("process_max_fds"));
        assert!(!text.contains("process_start_time_seconds"));
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let s = sample().unwrap();
        assert!(s.resident_bytes > 0 && s.threads >= 1, "{s:?}");
        assert!(s.open_fds.unwrap() >= 3, "{s:?}");
        assert!(s.start_time_seconds > 1_600_000_000.0, "{s:?}");
    }
}
