//! What a run found: latency summaries (from HDR histograms, in microseconds), counts,
//! the correctness checks, resource use; printed as a table for people and written as
//! JSON (`--json FILE`) for tools. The JSON has the same figures as the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::metrics::EngineFigures;
use crate::procstat::Usage;
use crate::scenario::Steady;

/// Highest latency a histogram holds, µs (longer ones are clamped to it).
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// A new latency histogram (1 µs to 10 min, 3 significant digits).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

/// Percentiles of one latency, µs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// Summarise a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// Per-run counts and checks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checks {
    /// `send` frames written (warm-up included).
    pub sent: u64,
    /// `ack`s received.
    pub acked: u64,
    /// Sent but neither acked nor refused by the end of the drain.
    pub unacked: u64,
    /// `error` frames, by code.
    pub errors: BTreeMap<String, u64>,
    /// Sockets that closed or failed during the run, by reason.
    pub socket_failures: BTreeMap<String, u64>,
    /// Acked seqs an agent never received.
    pub lost: u64,
    /// Seqs an agent received more than once.
    pub duplicated: u64,
    /// Messages an agent received after a higher seq of the same conversation.
    pub reordered: u64,
    /// Acks whose seq was not above the previous ack's on the same socket.
    pub acks_out_of_order: u64,
    /// Conversations no agent was assigned (burst).
    pub unassigned: u64,
    /// Sockets that could not be opened (or set up).
    pub connect_failures: u64,
}

impl Checks {
    /// What went wrong, in words; empty when the run was clean.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut count = |n: u64, what: &str| {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        };
        count(self.unacked, "unacked");
        count(self.lost, "lost");
        count(self.duplicated, "duplicated");
        count(self.reordered, "reordered");
        count(self.acks_out_of_order, "acks out of order");
        count(self.unassigned, "conversations never assigned");
        count(self.connect_failures, "sockets not opened");
        for (code, n) in &self.errors {
            f.push(format!("{n} error frames `{code}`"));
        }
        for (why, n) in &self.socket_failures {
            f.push(format!("{n} sockets failed: {why}"));
        }
        if self.sent == 0 {
            f.push("nothing was sent".into());
        }
        f
    }
}

/// Warnings and errors in the spawned server's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogCounts {
    /// `WARN` lines.
    pub warnings: u64,
    /// `ERROR` lines and panics.
    pub errors: u64,
}

/// One `steady` run.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyReport {
    /// `"steady"`.
    pub scenario: &'static str,
    /// What was loaded (`sqlite+local (spawned …)`, or a URL).
    pub target: String,
    /// The workload.
    pub workload: Steady,
    /// Acks received in the measured window, per second.
    pub acked_per_sec: f64,
    /// `send` → `ack` (durable), from the scheduled send time.
    pub ack_latency: Latency,
    /// `send` by the visitor → `message` at the agent, from the scheduled send time.
    pub delivery_latency: Latency,
    /// Counts and correctness checks.
    pub checks: Checks,
    /// CPU and memory over the measured window.
    pub usage: Usage,
    /// The engine's own figures over the measured window (from `/metrics`).
    pub engine: EngineFigures,
    /// The spawned server's log.
    pub server_log: LogCounts,
    /// Seconds spent setting up (server start, sessions, sockets, first messages).
    pub setup_seconds: f64,
}

/// Microseconds as milliseconds with sensible digits.
pub fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

impl SteadyReport {
    /// Whether the run was clean (nothing lost, duplicated, reordered, refused or
    /// unacknowledged).
    pub fn clean(&self) -> bool {
        self.checks.failures().is_empty()
    }

    /// Clean, and the p99 ack latency within `max_p99_us`.
    pub fn passes(&self, max_p99_us: u64) -> bool {
        self.clean() && self.ack_latency.count > 0 && self.ack_latency.p99_us <= max_p99_us
    }

    /// The human table.
    pub fn table(&self) -> String {
        let w = &self.workload;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "steady on {}: {} conversations, {} agent socket(s), {} msgs/s offered, {:?} measured after {:?} warm-up, {}-byte bodies",
            self.target, w.conversations, w.agents, w.rate, w.duration, w.warmup, w.body_bytes
        );
        s.push_str(&latency_header());
        s.push_str(&latency_line("send → ack (durable)", &self.ack_latency));
        s.push_str(&latency_line("visitor → agent", &self.delivery_latency));
        let _ = writeln!(
            s,
            "  throughput: {:.0} acks/s in the window ({} msgs/s offered)",
            self.acked_per_sec, w.rate
        );
        s.push_str(&checks_line(&self.checks));
        let e = &self.engine;
        // Only Parley has a Writer (the peer and the relay have no `/metrics`).
        if e.commits > 0 || e.writer_rejected > 0 {
            let _ = writeln!(
                s,
                "  engine: {} group commits, {:.1} msgs per commit, {:.2} ms per commit; refused appends {}, commit failures {}, too-slow closes {}, gap fills {}",
                e.commits,
                e.mean_batch,
                e.mean_commit_ms,
                e.writer_rejected,
                e.commit_failures,
                e.too_slow_closes,
                e.gap_fills
            );
        }
        s.push_str(&usage_lines(&self.usage, &self.server_log));
        s
    }
}

/// The resource lines every table ends with: server(s), database, Redis, the generator,
/// the machine.
pub fn usage_lines(u: &Usage, log: &LogCounts) -> String {
    let mut s = String::new();
    if let Some(p) = &u.server {
        let _ = writeln!(
            s,
            "  server ({} process{}): {:.1} cpu-s ({:.0}% of a core), {:.3} cpu-s per 1k msgs, rss {:.1} MiB (peak {:.1}), {} threads; log: {} warnings, {} errors",
            u.server_processes,
            if u.server_processes == 1 { "" } else { "es" },
            p.cpu_seconds,
            p.cpu_percent,
            p.cpu_seconds_per_1k_messages,
            p.rss_kib as f64 / 1024.0,
            p.peak_rss_kib as f64 / 1024.0,
            p.threads,
            log.warnings,
            log.errors
        );
    }
    for o in &u.others {
        let _ = writeln!(
            s,
            "  {} ({} processes): {:.1} cpu-s ({:.0}% of a core), {:.3} cpu-s per 1k msgs",
            o.name, o.processes, o.cpu_seconds, o.cpu_percent, o.cpu_seconds_per_1k_messages
        );
    }
    if u.server.is_some() {
        let _ = writeln!(
            s,
            "  server + database + redis: {:.3} cpu-s per 1k msgs",
            u.total_cpu_seconds_per_1k_messages
        );
    }
    if let Some(p) = &u.load_generator {
        let _ = writeln!(
            s,
            "  load generator: {:.1} cpu-s ({:.0}% of a core), rss {:.1} MiB",
            p.cpu_seconds,
            p.cpu_percent,
            p.rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(
        s,
        "  machine: {:.0}% of all cores busy over the window (everything on it, not only this run)",
        u.machine_busy_percent
    );
    s
}

/// One latency line of a table: name, p50, p90, p99, p99.9, max (ms), count.
pub fn latency_line(name: &str, l: &Latency) -> String {
    format!(
        "  {:<26}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}\n",
        name,
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us),
        l.count
    )
}

/// The header of [`latency_line`]s.
pub fn latency_header() -> String {
    format!(
        "  {:<26}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}\n",
        "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "count"
    )
}

/// The checks line.
pub fn checks_line(c: &Checks) -> String {
    let failures = c.failures();
    format!(
        "  checks: sent {}, acked {}, unacked {}, errors {}, lost {}, duplicated {}, reordered {}: {}\n",
        c.sent,
        c.acked,
        c.unacked,
        c.errors.values().sum::<u64>(),
        c.lost,
        c.duplicated,
        c.reordered,
        if failures.is_empty() {
            "clean".to_owned()
        } else {
            format!("FAILED ({})", failures.join(", "))
        }
    )
}

/// The search for the highest clean rate within a p99 bound.
#[derive(Debug, Clone, Serialize)]
pub struct MaxRateReport {
    /// The p99 ack latency bound, µs.
    pub max_p99_us: u64,
    /// The highest rate that passed, if any.
    pub best_rate: Option<f64>,
    /// Every step, in the order run.
    pub steps: Vec<SteadyReport>,
}

impl MaxRateReport {
    /// One line per step and the verdict.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>10}{:>12}{:>10}{:>10}{:>12}{:>12}{:>10}  verdict",
            "rate", "acks/s", "ack p50", "ack p99", "deliv p50", "deliv p99", "srv cpu%"
        );
        for r in &self.steps {
            let cpu = r
                .usage
                .server
                .as_ref()
                .map(|p| format!("{:.0}", p.cpu_percent))
                .unwrap_or_else(|| "-".into());
            let verdict = if r.passes(self.max_p99_us) {
                "pass".to_owned()
            } else if !r.clean() {
                format!("FAIL: {}", r.checks.failures().join(", "))
            } else {
                "p99 too high".to_owned()
            };
            let _ = writeln!(
                s,
                "{:>10}{:>12.0}{:>10}{:>10}{:>12}{:>12}{:>10}  {}",
                r.workload.rate,
                r.acked_per_sec,
                ms(r.ack_latency.p50_us),
                ms(r.ack_latency.p99_us),
                ms(r.delivery_latency.p50_us),
                ms(r.delivery_latency.p99_us),
                cpu,
                verdict
            );
        }
        let _ = match self.best_rate {
            Some(r) => writeln!(
                s,
                "highest clean rate with p99 ack ≤ {} ms: {r} msgs/s",
                ms(self.max_p99_us)
            ),
            None => writeln!(
                s,
                "no rate passed (p99 ack ≤ {} ms, nothing lost)",
                ms(self.max_p99_us)
            ),
        };
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn latency_summaries_read_the_histogram() {
        let mut h = histogram().unwrap();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((499..=501).contains(&l.p50_us), "{l:?}");
        assert!((989..=991).contains(&l.p99_us), "{l:?}");
        assert_eq!(l.max_us, 1000);
        assert_eq!(Latency::of(&histogram().unwrap()), Latency::default());
    }

    #[test]
    fn a_clean_run_has_no_failures_and_any_loss_is_one() {
        let clean = Checks {
            sent: 10,
            acked: 10,
            ..Default::default()
        };
        assert!(clean.failures().is_empty());
        let lossy = Checks {
            lost: 1,
            ..clean.clone()
        };
        assert_eq!(lossy.failures(), vec!["1 lost".to_owned()]);
    }
}
