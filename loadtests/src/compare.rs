//! `compare`: the same scenario against Parley, the Socket.IO peer and the bare relay,
//! alternately (round 1: Parley, peer, relay; round 2: the same again; …), each on a
//! fresh server and database, then every figure side by side with Parley's advantage
//! (how many times better Parley is: other ÷ Parley for figures where lower is better,
//! Parley ÷ other where higher is better). With several rounds each cell is the median.

use std::fmt::Write as _;

use serde::Serialize;

use crate::burst::BurstReport;
use crate::idle::IdleReport;
use crate::node::Kind;
use crate::reconnect::ReconnectReport;
use crate::report::{Latency, MaxRateReport, SteadyReport};

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, memory, CPU).
    Lower,
    /// Context only (machine busy).
    Neither,
}

/// One figure of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
}

fn fig(name: &str, value: f64, unit: &'static str, better: Better) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        better,
    }
}

fn lat(out: &mut Vec<Figure>, name: &str, l: &Latency) {
    for (q, v) in [("p50", l.p50_us), ("p99", l.p99_us), ("max", l.max_us)] {
        out.push(fig(
            &format!("{name} {q}"),
            v as f64 / 1000.0,
            "ms",
            Better::Lower,
        ));
    }
}

fn usage(out: &mut Vec<Figure>, u: &crate::procstat::Usage) {
    if let Some(s) = &u.server {
        out.push(fig(
            "server cpu-s per 1k msgs",
            s.cpu_seconds_per_1k_messages,
            "s",
            Better::Lower,
        ));
        out.push(fig(
            "server+db+redis cpu-s per 1k msgs",
            u.total_cpu_seconds_per_1k_messages,
            "s",
            Better::Lower,
        ));
        out.push(fig("server cpu", s.cpu_percent, "% core", Better::Neither));
        out.push(fig(
            "server rss",
            s.rss_kib as f64 / 1024.0,
            "MiB",
            Better::Lower,
        ));
    }
    out.push(fig(
        "machine busy",
        u.machine_busy_percent,
        "%",
        Better::Neither,
    ));
}

/// A report that `compare` can put side by side.
pub trait Comparable: Serialize {
    /// Its figures.
    fn figures(&self) -> Vec<Figure>;
    /// Whether the run was clean.
    fn is_clean(&self) -> bool;
}

impl Comparable for SteadyReport {
    fn figures(&self) -> Vec<Figure> {
        let mut f = vec![fig("acks/s", self.acked_per_sec, "msg/s", Better::Higher)];
        lat(&mut f, "send→ack", &self.ack_latency);
        lat(&mut f, "visitor→agent", &self.delivery_latency);
        usage(&mut f, &self.usage);
        f
    }
    fn is_clean(&self) -> bool {
        self.clean()
    }
}

impl Comparable for MaxRateReport {
    fn figures(&self) -> Vec<Figure> {
        let mut f = vec![fig(
            "highest clean rate (p99 bound)",
            self.best_rate.unwrap_or(0.0),
            "msg/s",
            Better::Higher,
        )];
        let best = self
            .steps
            .iter()
            .rfind(|s| Some(s.workload.rate) == self.best_rate);
        if let Some(b) = best {
            for mut x in b.figures() {
                x.name = format!("at that rate: {}", x.name);
                f.push(x);
            }
        }
        f
    }
    fn is_clean(&self) -> bool {
        self.best_rate.is_some()
    }
}

impl Comparable for BurstReport {
    fn figures(&self) -> Vec<Figure> {
        let mut f = vec![
            fig("assigned", self.assigned as f64, "", Better::Higher),
            fig(
                "first arrival → last answer",
                self.seconds,
                "s",
                Better::Lower,
            ),
        ];
        lat(&mut f, "connect", &self.connect_latency);
        lat(&mut f, "time to assignment", &self.time_to_assignment);
        lat(&mut f, "visitor→agent", &self.visitor_to_agent);
        lat(&mut f, "agent→visitor", &self.agent_to_visitor);
        usage(&mut f, &self.usage);
        f
    }
    fn is_clean(&self) -> bool {
        self.clean()
    }
}

impl Comparable for IdleReport {
    fn figures(&self) -> Vec<Figure> {
        let mut f = vec![
            fig(
                "rss per idle socket",
                self.rss_per_socket_kib,
                "KiB",
                Better::Lower,
            ),
            fig(
                "server rss with all open",
                self.rss_held_kib as f64 / 1024.0,
                "MiB",
                Better::Lower,
            ),
            fig(
                "seconds to open all",
                self.connect_seconds,
                "s",
                Better::Lower,
            ),
        ];
        lat(&mut f, "connect", &self.connect_latency);
        lat(&mut f, "probe send→ack", &self.probe_ack_latency);
        f.push(fig(
            "machine busy",
            self.usage.machine_busy_percent,
            "%",
            Better::Neither,
        ));
        f
    }
    fn is_clean(&self) -> bool {
        self.clean()
    }
}

impl Comparable for ReconnectReport {
    fn figures(&self) -> Vec<Figure> {
        let mut f = vec![fig(
            "all resumed after",
            self.all_resumed_seconds,
            "s",
            Better::Lower,
        )];
        lat(&mut f, "drop→open", &self.reconnect_latency);
        lat(&mut f, "drop→caught up", &self.resume_latency);
        lat(&mut f, "agent→visitor", &self.agent_to_visitor);
        usage(&mut f, &self.usage);
        f
    }
    fn is_clean(&self) -> bool {
        self.clean()
    }
}

/// One target's runs.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRuns {
    /// Which.
    pub kind: Kind,
    /// Its description.
    pub target: String,
    /// Each run's full report.
    pub runs: Vec<serde_json::Value>,
    /// Each run's figures.
    pub figures: Vec<Vec<Figure>>,
    /// Whether every run was clean.
    pub clean: bool,
}

/// A comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The scenario.
    pub scenario: String,
    /// Rounds run.
    pub rounds: usize,
    /// Per target, in the order run.
    pub targets: Vec<TargetRuns>,
    /// The side-by-side table (figure, unit, one median per target, Parley's advantage
    /// over each other target).
    pub rows: Vec<Row>,
}

/// One line of the side-by-side table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Figure.
    pub name: String,
    /// Unit.
    pub unit: &'static str,
    /// Median per target (same order as `targets`).
    pub values: Vec<Option<f64>>,
    /// Parley's advantage over each target after the first (×; > 1: Parley better).
    pub parley_advantage: Vec<Option<f64>>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl CompareReport {
    /// Start an empty comparison.
    pub fn new(scenario: &str, rounds: usize) -> Self {
        CompareReport {
            scenario: scenario.to_owned(),
            rounds,
            targets: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Add one run of `kind`.
    pub fn add<R: Comparable>(
        &mut self,
        kind: Kind,
        target: String,
        report: &R,
    ) -> anyhow::Result<()> {
        let run = serde_json::to_value(report)?;
        let figures = report.figures();
        let clean = report.is_clean();
        match self.targets.iter_mut().find(|t| t.kind == kind) {
            Some(t) => {
                t.runs.push(run);
                t.figures.push(figures);
                t.clean &= clean;
            }
            None => self.targets.push(TargetRuns {
                kind,
                target,
                runs: vec![run],
                figures: vec![figures],
                clean,
            }),
        }
        self.rows = self.build_rows();
        Ok(())
    }

    fn build_rows(&self) -> Vec<Row> {
        let mut names: Vec<(String, &'static str, Better)> = Vec::new();
        for t in &self.targets {
            for run in &t.figures {
                for f in run {
                    if !names.iter().any(|(n, _, _)| *n == f.name) {
                        names.push((f.name.clone(), f.unit, f.better));
                    }
                }
            }
        }
        names
            .into_iter()
            .map(|(name, unit, better)| {
                let values: Vec<Option<f64>> = self
                    .targets
                    .iter()
                    .map(|t| {
                        median(
                            t.figures
                                .iter()
                                .flat_map(|run| run.iter().filter(|f| f.name == name))
                                .map(|f| f.value)
                                .collect(),
                        )
                    })
                    .collect();
                let parley = self
                    .targets
                    .iter()
                    .position(|t| t.kind == Kind::Parley)
                    .and_then(|i| values[i]);
                let parley_advantage = self
                    .targets
                    .iter()
                    .zip(&values)
                    .filter(|(t, _)| t.kind != Kind::Parley)
                    .map(|(_, other)| match (parley, *other, better) {
                        (Some(p), Some(o), Better::Higher) if o > 0.0 => Some(p / o),
                        (Some(p), Some(o), Better::Lower) if p > 0.0 => Some(o / p),
                        _ => None,
                    })
                    .collect();
                Row {
                    name,
                    unit,
                    values,
                    parley_advantage,
                }
            })
            .collect()
    }

    /// Whether every run of every target was clean.
    pub fn all_clean(&self) -> bool {
        self.targets.iter().all(|t| t.clean)
    }

    /// The side-by-side table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "compare `{}`, {} round(s), targets run alternately; cells are medians\n",
            self.scenario, self.rounds
        );
        for t in &self.targets {
            let _ = writeln!(
                s,
                "  {}: {} ({} run(s), {})",
                t.kind.name(),
                t.target,
                t.runs.len(),
                if t.clean { "all clean" } else { "NOT CLEAN" }
            );
        }
        let others: Vec<&TargetRuns> = self
            .targets
            .iter()
            .filter(|t| t.kind != Kind::Parley)
            .collect();
        let _ = write!(s, "{:<50}{:>7}", "figure", "unit");
        for t in &self.targets {
            let _ = write!(s, "{:>12}", t.kind.name());
        }
        for t in &others {
            let _ = write!(s, "{:>18}", format!("Parley vs {}", short(t.kind)));
        }
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "{:<50}{:>7}", r.name, r.unit);
            for v in &r.values {
                let _ = write!(s, "{:>12}", v.map(num).unwrap_or_else(|| "-".into()));
            }
            for a in &r.parley_advantage {
                let _ = write!(
                    s,
                    "{:>18}",
                    a.map(|a| format!("{a:.2}×")).unwrap_or_else(|| "-".into())
                );
            }
            s.push('\n');
        }
        s.push_str("(Parley vs X: how many times better Parley is; > 1 means Parley is better)\n");
        s
    }
}

fn short(k: Kind) -> &'static str {
    match k {
        Kind::Parley => "parley",
        Kind::SocketIo => "sio",
        Kind::Relay => "relay",
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn medians_and_advantages_go_the_right_way() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        let mut c = CompareReport::new("x", 1);
        #[derive(Serialize)]
        struct R(Vec<(f64, f64)>);
        impl Comparable for R {
            fn figures(&self) -> Vec<Figure> {
                vec![
                    fig("rate", self.0[0].0, "msg/s", Better::Higher),
                    fig("p99", self.0[0].1, "ms", Better::Lower),
                ]
            }
            fn is_clean(&self) -> bool {
                true
            }
        }
        c.add(Kind::Parley, "p".into(), &R(vec![(1000.0, 2.0)]))
            .unwrap();
        c.add(Kind::SocketIo, "s".into(), &R(vec![(250.0, 10.0)]))
            .unwrap();
        assert_eq!(c.rows[0].parley_advantage, vec![Some(4.0)]);
        assert_eq!(c.rows[1].parley_advantage, vec![Some(5.0)]);
        assert!(c.table().contains("4.00×"));
    }
}
