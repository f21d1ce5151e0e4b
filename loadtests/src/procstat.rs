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

/// A node's reading from its `/metrics` (Prometheus's process collector names, which
/// Parley serves); `None` when the page has no `process_cpu_seconds_total`.
pub fn from_metrics(scrape: &crate::metrics::Scrape, ticks: f64) -> Option<ProcSample> {
    let cpu = scrape.value("process_cpu_seconds_total")?;
    let kib = |name: &str| (scrape.value(name).unwrap_or(0.0) / 1024.0) as u64;
    Some(ProcSample {
        cpu_ticks: (cpu * ticks).round() as u64,
        rss_kib: kib("process_resident_memory_bytes"),
        peak_rss_kib: kib("process_resident_memory_max_bytes"),
        threads: scrape.value("process_threads").unwrap_or(0.0) as u64,
    })
}

/// Which other processes to sum: those whose command name is `comm` and, when `cmdline`
/// is not empty, whose command line holds one of those strings (a PostgreSQL backend's
/// command line names its database: `postgres: postgres parley_load_… 127.0.0.1(…)`).
#[derive(Debug, Clone)]
pub struct Filter {
    /// Label in reports.
    pub label: String,
    /// `/proc/<pid>/comm`.
    pub comm: String,
    /// Substrings of `/proc/<pid>/cmdline`, any of which selects the process.
    pub cmdline: Vec<String>,
}

/// The summed CPU ticks of every process `filter` selects, and how many there were.
pub fn sample_matching(filter: &Filter) -> (u64, usize) {
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
        if c.trim() != filter.comm {
            continue;
        }
        if !filter.cmdline.is_empty() {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if !filter.cmdline.iter().any(|s| cmd.contains(s.as_str())) {
                continue;
            }
        }
        if let Some(s) = sample(pid) {
            ticks += s.cpu_ticks;
            n += 1;
        }
    }
    (ticks, n)
}

/// Summed resident memory of `pids`, KiB (0 for those gone).
pub fn rss_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| sample(&p.to_string()))
        .map(|s| s.rss_kib)
        .sum()
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
    server_processes: usize,
    generator: Option<ProcSample>,
    named: Vec<(String, u64, usize)>,
    machine: (u64, u64),
}

/// What to watch during a run.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The server processes running here (summed: one or two nodes).
    pub server_pids: Vec<u32>,
    /// Nodes not started here (`--server`): their CPU time and memory come from the
    /// `process_*` figures of their `/metrics`.
    pub remote_nodes: Vec<String>,
    http: reqwest::Client,
    /// Other processes to sum (the run's PostgreSQL backends, Redis).
    pub others: Vec<Filter>,
    /// Clock ticks per second.
    pub ticks: f64,
}

impl Watch {
    /// Watch `cluster`'s servers and, when spawned with them, the run's PostgreSQL backends
    /// (plus the WAL writer) and Redis.
    pub fn of(cluster: &crate::node::Cluster, redis: bool) -> Watch {
        let mut others = Vec::new();
        if let Some(db) = cluster.database_name() {
            others.push(Filter {
                label: "postgres".into(),
                comm: "postgres".into(),
                cmdline: vec![db.to_owned(), "walwriter".into()],
            });
        }
        if redis {
            others.push(Filter {
                label: "redis-server".into(),
                comm: "redis-server".into(),
                cmdline: Vec::new(),
            });
        }
        Watch {
            server_pids: cluster.pids(),
            remote_nodes: cluster
                .nodes
                .iter()
                .filter(|n| n.pid().is_none())
                .map(|n| n.address.clone())
                .collect(),
            http: reqwest::Client::new(),
            others,
            ticks: clock_ticks(),
        }
    }

    /// Read everything now.
    pub async fn snapshot(&self) -> Snapshot {
        let mut samples: Vec<ProcSample> = self
            .server_pids
            .iter()
            .filter_map(|p| sample(&p.to_string()))
            .collect();
        for node in &self.remote_nodes {
            let scrape = crate::metrics::Scrape::fetch(&self.http, node).await;
            samples.extend(from_metrics(&scrape, self.ticks));
        }
        let server = (!samples.is_empty()).then(|| {
            samples
                .iter()
                .fold(ProcSample::default(), |a, s| ProcSample {
                    cpu_ticks: a.cpu_ticks + s.cpu_ticks,
                    rss_kib: a.rss_kib + s.rss_kib,
                    peak_rss_kib: a.peak_rss_kib + s.peak_rss_kib,
                    threads: a.threads + s.threads,
                })
        });
        Snapshot {
            at: Instant::now(),
            server,
            server_processes: samples.len(),
            generator: sample("self"),
            named: self
                .others
                .iter()
                .map(|f| {
                    let (t, c) = sample_matching(f);
                    (f.label.clone(), t, c)
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
        let server = proc_usage(a.server, b.server);
        let others: Vec<NamedUsage> = a
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
            .collect();
        let total_cpu = server.as_ref().map(|s| s.cpu_seconds).unwrap_or(0.0)
            + others.iter().map(|o| o.cpu_seconds).sum::<f64>();
        Usage {
            seconds: secs,
            server_processes: b.server_processes,
            total_cpu_seconds_per_1k_messages: per_k(total_cpu),
            server,
            load_generator: proc_usage(a.generator, b.generator),
            others,
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Wall-clock seconds between the two readings.
    pub seconds: f64,
    /// Server processes summed (one per node).
    pub server_processes: usize,
    /// The server processes together: from `/proc` when they run on this machine, else
    /// from their `/metrics`.
    pub server: Option<ProcUsage>,
    /// CPU seconds of the server, database and Redis together per 1,000 acked messages.
    pub total_cpu_seconds_per_1k_messages: f64,
    /// This process.
    pub load_generator: Option<ProcUsage>,
    /// The run's PostgreSQL backends (and the WAL writer), and Redis (every
    /// `redis-server` on the machine: it is shared).
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

    #[test]
    fn a_remote_node_is_read_from_its_process_metrics() {
        let scrape = crate::metrics::Scrape::parse(
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.34\n\
             process_resident_memory_bytes 41943040\nprocess_resident_memory_max_bytes 52428800\n\
             process_threads 9\n",
        );
        let s = from_metrics(&scrape, 100.0).unwrap();
        assert_eq!(s.cpu_ticks, 1234);
        assert_eq!((s.rss_kib, s.peak_rss_kib, s.threads), (40960, 51200, 9));
        // A page without the process figures (an older node) gives no reading.
        let old = crate::metrics::Scrape::parse("parley_ws_sessions 3\n");
        assert!(from_metrics(&old, 100.0).is_none());
    }
}
