//! CPU and memory from `/proc` (Linux): where the CPU went during a run — the server,
//! the load generator itself, the database and Redis, and the machine as a whole (which
//! shows anything else that was busy at the same time).

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Peak resident memory, KiB.
    pub peak_rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

/// Read `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` when the process is gone.
pub fn sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime 15, num_threads 20.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let threads: u64 = fields.get(17)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_ticks: utime + stime,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
        threads,
    })
}

/// The summed CPU ticks of every process whose command name is `comm` (e.g. all
/// `postgres` backends), and how many there were.
pub fn sample_by_name(comm: &str) -> (u64, usize) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut ticks = 0;
    let mut n = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if c.trim() != comm {
            continue;
        }
        if let Some(s) = sample(pid) {
            ticks += s.cpu_ticks;
            n += 1;
        }
    }
    (ticks, n)
}

/// Machine CPU from `/proc/stat`: (busy ticks, total ticks) over all cores.
pub fn machine() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle (4th) and iowait (5th) are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Everything read at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    server: Option<ProcSample>,
    generator: Option<ProcSample>,
    named: Vec<(String, u64, usize)>,
    machine: (u64, u64),
}

/// What to watch during a run.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The server's pid, when it runs here.
    pub server_pid: Option<u32>,
    /// Command names whose processes are summed (`postgres`, `redis-server`).
    pub names: Vec<String>,
    /// Clock ticks per second.
    pub ticks: f64,
}

impl Watch {
    /// Read everything now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            server: self.server_pid.and_then(|p| sample(&p.to_string())),
            generator: sample("self"),
            named: self
                .names
                .iter()
                .map(|n| {
                    let (t, c) = sample_by_name(n);
                    (n.clone(), t, c)
                })
                .collect(),
            machine: machine(),
        }
    }

    /// Usage between two snapshots; `messages` is what was done in between (for CPU per
    /// 1,000 messages).
    pub fn usage(&self, a: &Snapshot, b: &Snapshot, messages: u64) -> Usage {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let per_k = |cpu: f64| {
            if messages == 0 {
                0.0
            } else {
                cpu * 1000.0 / messages as f64
            }
        };
        let proc_usage = |x: Option<ProcSample>, y: Option<ProcSample>| match (x, y) {
            (Some(x), Some(y)) => {
                let cpu = y.cpu_ticks.saturating_sub(x.cpu_ticks) as f64 / self.ticks;
                Some(ProcUsage {
                    cpu_seconds: cpu,
                    cpu_percent: 100.0 * cpu / secs,
                    cpu_seconds_per_1k_messages: per_k(cpu),
                    rss_kib: y.rss_kib,
                    peak_rss_kib: y.peak_rss_kib,
                    threads: y.threads,
                })
            }
            _ => None,
        };
        let (busy0, total0) = a.machine;
        let (busy1, total1) = b.machine;
        let machine_busy_percent = if total1 > total0 {
            // Of all cores together: 100 % = every core busy.
            100.0 * busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64
        } else {
            0.0
        };
        Usage {
            seconds: secs,
            server: proc_usage(a.server, b.server),
            load_generator: proc_usage(a.generator, b.generator),
            others: a
                .named
                .iter()
                .zip(&b.named)
                .map(|((name, t0, _), (_, t1, n))| {
                    let cpu = t1.saturating_sub(*t0) as f64 / self.ticks;
                    NamedUsage {
                        name: name.clone(),
                        processes: *n,
                        cpu_seconds: cpu,
                        cpu_percent: 100.0 * cpu / secs,
                        cpu_seconds_per_1k_messages: per_k(cpu),
                    }
                })
                .collect(),
            machine_busy_percent,
        }
    }
}

/// One process's use over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcUsage {
    /// CPU seconds (user + system).
    pub cpu_seconds: f64,
    /// CPU seconds per second, as a percentage of one core.
    pub cpu_percent: f64,
    /// CPU seconds per 1,000 acked messages.
    pub cpu_seconds_per_1k_messages: f64,
    /// Resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Peak resident memory, KiB.
    pub peak_rss_kib: u64,
    /// Threads at the end.
    pub threads: u64,
}

/// All processes of one name over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct NamedUsage {
    /// Command name.
    pub name: String,
    /// Processes found at the end.
    pub processes: usize,
    /// CPU seconds, summed.
    pub cpu_seconds: f64,
    /// As a percentage of one core.
    pub cpu_percent: f64,
    /// CPU seconds per 1,000 acked messages.
    pub cpu_seconds_per_1k_messages: f64,
}

/// Resource use over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Wall-clock seconds between the two readings.
    pub seconds: f64,
    /// The server, when it runs on this machine.
    pub server: Option<ProcUsage>,
    /// This process.
    pub load_generator: Option<ProcUsage>,
    /// Database and Redis processes (every process of that name on the machine).
    pub others: Vec<NamedUsage>,
    /// The whole machine's busy time as a percentage of all its cores.
    pub machine_busy_percent: f64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn this_process_can_be_read() {
        let s = sample("self").unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
    }
}
