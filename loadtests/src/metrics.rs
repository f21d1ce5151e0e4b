//! The server's own view of a run, from its Prometheus `/metrics` page read at the start
//! and the end of the measured window: how many group commits the Writer made, how big
//! they were and how long they took, and the counters that mean trouble (refused appends,
//! too-slow closes, gap fills). Works for spawned and remote nodes alike.

use std::collections::HashMap;

use serde::Serialize;

/// Metric values by name, each summed over its label sets.
#[derive(Debug, Clone, Default)]
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Parse the Prometheus text format (comments skipped, labels summed over).
    pub fn parse(text: &str) -> Self {
        let mut values = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name_part, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let name = name_part.split('{').next().unwrap_or(name_part).trim();
            if let Ok(v) = value.trim().parse::<f64>() {
                *values.entry(name.to_owned()).or_insert(0.0) += v;
            }
        }
        Self(values)
    }

    fn get(&self, name: &str) -> f64 {
        self.value(name).unwrap_or(0.0)
    }

    /// A metric's value (summed over its label sets), when the page has it.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// Read `/metrics` of the node at `base` (`http://HOST:PORT`); empty when it fails.
    pub async fn fetch(http: &reqwest::Client, base: &str) -> Self {
        let Ok(res) = http.get(format!("{base}/metrics")).send().await else {
            return Self::default();
        };
        match res.text().await {
            Ok(text) => Self::parse(&text),
            Err(_) => Self::default(),
        }
    }
}

/// What the engine reported between two scrapes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineFigures {
    /// Group commits made.
    pub commits: u64,
    /// Messages per commit, on average.
    pub mean_batch: f64,
    /// Time per commit, on average, ms.
    pub mean_commit_ms: f64,
    /// Commits that failed.
    pub commit_failures: u64,
    /// Appends the Writer refused (its queue was full).
    pub writer_rejected: u64,
    /// Sockets closed because their client read too slowly (4008).
    pub too_slow_closes: u64,
    /// Conversation actors that read the store to fill a gap.
    pub gap_fills: u64,
}

impl EngineFigures {
    /// The difference `b - a`.
    pub fn between(a: &Scrape, b: &Scrape) -> Self {
        let d = |name: &str| (b.get(name) - a.get(name)).max(0.0);
        let commits = d("parley_writer_batch_size_count");
        let per_commit = |sum: f64| if commits > 0.0 { sum / commits } else { 0.0 };
        Self {
            commits: commits as u64,
            mean_batch: per_commit(d("parley_writer_batch_size_sum")),
            mean_commit_ms: per_commit(d("parley_writer_commit_seconds_sum")) * 1000.0,
            commit_failures: d("parley_writer_commit_failures_total") as u64,
            writer_rejected: d("parley_writer_rejected_total") as u64,
            too_slow_closes: d("parley_ws_too_slow_total") as u64,
            gap_fills: d("parley_conversation_gap_fills_total") as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_batches_and_times_come_from_histogram_sums() {
        let a = Scrape::parse(
            "# TYPE parley_writer_batch_size histogram\n\
             parley_writer_batch_size_sum 100\nparley_writer_batch_size_count 10\n\
             parley_writer_commit_seconds_sum 0.5\n",
        );
        let b = Scrape::parse(
            "parley_writer_batch_size_sum 1100\nparley_writer_batch_size_count 30\n\
             parley_writer_commit_seconds_sum 0.9\n\
             parley_ws_errors_total{code=\"a\"} 1\nparley_ws_errors_total{code=\"b\"} 2\n",
        );
        let f = EngineFigures::between(&a, &b);
        assert_eq!(f.commits, 20);
        assert_eq!(f.mean_batch, 50.0);
        assert!((f.mean_commit_ms - 20.0).abs() < 1e-9);
        assert_eq!(b.get("parley_ws_errors_total"), 3.0);
    }
}
