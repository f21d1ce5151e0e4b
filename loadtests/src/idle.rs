//! The `idle` scenario: hold `N` idle visitor sockets (spread over 127.0.0.x source
//! addresses, `per_address` each, so the ephemeral ports of one address never run out)
//! and weigh the server: its resident memory before the sockets, once they are all open,
//! and at the end of the hold, per socket. Then, unless `probe_rate` is 0, every socket
//! sends one message (opening a conversation) on an open-loop schedule and must get its
//! ack with seq 1: the sockets were alive, not just counted.
//!
//! One process may hold ~19,500 sockets here (`ulimit -n` is 20,000), so `N` is capped
//! at 19,400.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use tokio::sync::watch;

use crate::burst::{Clock, Shared};
use crate::conn::{self, Incoming, Who};
use crate::ledger::Ledger;
use crate::node::{Cluster, Target};
use crate::procstat::{Usage, Watch, rss_of};
use crate::proto::{Event, Proto};
use crate::report::{
    Checks, Latency, LogCounts, checks_line, latency_header, latency_line, usage_lines,
};
use crate::scenario::Idle;
use crate::setup::Workspace;
use crate::steady::HELLO;

/// Widget sessions made at once during setup.
const SESSION_CONCURRENCY: usize = 32;
/// Time for the server to settle before a memory reading.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    closed: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
}

#[derive(Default)]
struct SocketResult {
    ledger: Ledger,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
    connect_failed: bool,
}

/// One `idle` run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// `"idle"`.
    pub scenario: &'static str,
    /// What was loaded.
    pub target: String,
    /// The workload.
    pub workload: Idle,
    /// Sockets opened.
    pub connected: u64,
    /// Sockets the server closed (or that failed) while held.
    pub closed_while_held: u64,
    /// Seconds to open them all.
    pub connect_seconds: f64,
    /// Due time → socket open.
    pub connect_latency: Latency,
    /// Visitor node RSS before the sockets, KiB.
    pub rss_before_kib: u64,
    /// … with every socket open (after settling), KiB.
    pub rss_connected_kib: u64,
    /// … at the end of the hold, KiB.
    pub rss_held_kib: u64,
    /// (held − before) / connected, KiB.
    pub rss_per_socket_kib: f64,
    /// (connected − before) / connected, KiB.
    pub rss_per_socket_connected_kib: f64,
    /// The probe: due → ack.
    pub probe_ack_latency: Latency,
    /// Counts and correctness checks.
    pub checks: Checks,
    /// Resources while connecting and holding.
    pub usage: Usage,
    /// The servers' logs.
    pub server_log: LogCounts,
    /// Seconds spent setting up (sessions included).
    pub setup_seconds: f64,
}

impl IdleReport {
    /// Every socket opened and held, the probe clean.
    pub fn clean(&self) -> bool {
        self.checks.failures().is_empty() && self.closed_while_held == 0
    }

    /// The human table.
    pub fn table(&self) -> String {
        let w = &self.workload;
        let mut s = format!(
            "idle on {}: {} visitor sockets ({} per 127.0.0.x address) opened at {}/s, held {:?}\n",
            self.target, w.sockets, w.per_address, w.connect_rate, w.hold
        );
        s.push_str(&format!(
            "  opened {} in {:.1} s; closed while held: {}\n",
            self.connected, self.connect_seconds, self.closed_while_held
        ));
        s.push_str(&format!(
            "  server rss: {:.1} MiB before, {:.1} MiB all open, {:.1} MiB after the hold: **{:.2} KiB per socket** ({:.2} KiB right after opening)\n",
            self.rss_before_kib as f64 / 1024.0,
            self.rss_connected_kib as f64 / 1024.0,
            self.rss_held_kib as f64 / 1024.0,
            self.rss_per_socket_kib,
            self.rss_per_socket_connected_kib
        ));
        s.push_str(&latency_header());
        s.push_str(&latency_line("connect", &self.connect_latency));
        s.push_str(&latency_line("probe send → ack", &self.probe_ack_latency));
        if w.probe_rate > 0.0 {
            s.push_str(&checks_line(&self.checks));
        } else {
            s.push_str("  checks: no probe\n");
        }
        s.push_str(&usage_lines(&self.usage, &self.server_log));
        s
    }
}

/// Run the scenario once on `target`.
pub async fn run(target: &Target, w: &Idle) -> anyhow::Result<IdleReport> {
    let started = Instant::now();
    let mut cluster = target.start().await?;
    let result = run_on(&cluster, target, w, started).await;
    cluster.stop().await;
    result
}

async fn run_on(
    cluster: &Cluster,
    target: &Target,
    w: &Idle,
    started: Instant,
) -> anyhow::Result<IdleReport> {
    let proto = target.proto();
    let ws = Workspace::create(cluster, 0, None).await?;
    let tokens: Vec<String> = futures_util::stream::iter(0..w.sockets)
        .map(|_| ws.visitor_token())
        .buffered(SESSION_CONCURRENCY)
        .try_collect()
        .await?;
    let node_pids: Vec<u32> = cluster.visitor_node().pid().into_iter().collect();
    tokio::time::sleep(SETTLE).await;
    let rss_before_kib = rss_of(&node_pids);
    let setup_seconds = started.elapsed().as_secs_f64();

    let watch = Watch::of(
        cluster,
        matches!(target, Target::Spawn(o) if o.redis_url.is_some()),
    );
    let before = watch.snapshot().await;
    let counters = Arc::new(Counters::default());
    let connect = Arc::new(Shared::new()?);
    let probe = Arc::new(Shared::new()?);
    let (probe_tx, probe_rx) = watch::channel(None::<Clock>);
    let (stop_tx, stop_rx) = watch::channel(false);
    let clock = Clock {
        origin: Instant::now() + Duration::from_millis(50),
    };
    let ws_base = cluster.visitor_node().ws_base();
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            tokio::spawn(socket_task(
                proto,
                i,
                token,
                w.clone(),
                ws_base.clone(),
                clock,
                connect.clone(),
                probe.clone(),
                counters.clone(),
                probe_rx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    // Every socket open (or failed).
    let open_deadline = clock.at(u64::try_from(
        Duration::from_secs_f64(w.sockets as f64 / w.connect_rate + 30.0).as_micros(),
    )
    .unwrap_or(u64::MAX));
    loop {
        let done =
            counters.connected.load(Ordering::SeqCst) + counters.closed.load(Ordering::SeqCst);
        if done >= w.sockets as u64 || tokio::time::Instant::now() > open_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_seconds = clock.origin.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let rss_connected_kib = rss_of(&node_pids);
    let closed_before_hold = counters.closed.load(Ordering::SeqCst);
    tokio::time::sleep(w.hold).await;
    let rss_held_kib = rss_of(&node_pids);
    let closed_while_held = counters.closed.load(Ordering::SeqCst) - closed_before_hold;
    let after = watch.snapshot().await;

    // The probe: every socket sends one message.
    if w.probe_rate > 0.0 {
        let probe_clock = Clock {
            origin: Instant::now() + Duration::from_millis(50),
        };
        probe_tx.send_replace(Some(probe_clock));
        let end = probe_clock.at(u64::try_from(
            (Duration::from_secs_f64(w.sockets as f64 / w.probe_rate) + w.drain).as_micros(),
        )
        .unwrap_or(u64::MAX));
        let connected = counters.connected.load(Ordering::SeqCst);
        loop {
            let answered =
                counters.acked.load(Ordering::SeqCst) + counters.refused.load(Ordering::SeqCst);
            if answered >= connected || tokio::time::Instant::now() > end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop_tx.send_replace(true);

    let mut checks = Checks::default();
    for t in tasks {
        match t.await {
            Ok(r) => {
                for (code, n) in r.errors {
                    *checks.errors.entry(code).or_default() += n;
                }
                if let Some(f) = r.failure {
                    *checks.socket_failures.entry(f).or_default() += 1;
                }
                if r.connect_failed {
                    checks.connect_failures += 1;
                }
                // A refused probe counts under `errors`; an acked one must be seq 1.
                if w.probe_rate > 0.0 && r.ledger.top() > 0 {
                    r.ledger.check(1, &mut checks);
                }
            }
            Err(e) => *checks.socket_failures.entry(e.to_string()).or_default() += 1,
        }
    }
    checks.sent = counters.sent.load(Ordering::SeqCst);
    checks.acked = counters.acked.load(Ordering::SeqCst);
    checks.unacked = checks
        .sent
        .saturating_sub(checks.acked + counters.refused.load(Ordering::SeqCst));
    if w.probe_rate == 0.0 {
        // Nothing was meant to be sent.
        checks.sent = checks.sent.max(1);
    }
    let connected = counters.connected.load(Ordering::SeqCst);
    let per = |rss: u64| {
        if connected == 0 {
            0.0
        } else {
            rss.saturating_sub(rss_before_kib) as f64 / connected as f64
        }
    };
    let (warnings, errors) = cluster.log_counts();
    Ok(IdleReport {
        scenario: "idle",
        target: target.describe(),
        workload: w.clone(),
        connected,
        closed_while_held,
        connect_seconds,
        connect_latency: connect.latency(),
        rss_before_kib,
        rss_connected_kib,
        rss_held_kib,
        rss_per_socket_kib: per(rss_held_kib),
        rss_per_socket_connected_kib: per(rss_connected_kib),
        probe_ack_latency: probe.latency(),
        usage: watch.usage(&before, &after, checks.acked),
        checks,
        server_log: LogCounts { warnings, errors },
        setup_seconds,
    })
}

#[allow(clippy::too_many_arguments)]
async fn socket_task(
    proto: Proto,
    i: usize,
    token: String,
    w: Idle,
    ws_base: String,
    clock: Clock,
    connect: Arc<Shared>,
    probe: Arc<Shared>,
    counters: Arc<Counters>,
    mut probe_rx: watch::Receiver<Option<Clock>>,
    mut stop: watch::Receiver<bool>,
) -> SocketResult {
    let mut r = SocketResult::default();
    let due = (i as f64 * 1e6 / w.connect_rate) as u64;
    tokio::time::sleep_until(clock.at(due)).await;
    let bind = conn::spread_address(i, w.per_address);
    let (tx, mut rx) =
        match conn::connect(proto, &ws_base, Who::Visitor { token: &token }, Some(bind)).await {
            Ok(c) => c,
            Err(e) => {
                r.connect_failed = true;
                r.failure = Some(format!("connect: {e:#}"));
                counters.closed.fetch_add(1, Ordering::SeqCst);
                return r;
            }
        };
    connect.record(clock.now_us().saturating_sub(due));
    counters.connected.fetch_add(1, Ordering::SeqCst);
    let mut probe_due: Option<(Clock, u64)> = None;
    let mut probe_gone = false;
    let mut sent = false;
    loop {
        let sleep = async {
            match (probe_due, sent) {
                (Some((c, t)), false) => tokio::time::sleep_until(c.at(t)).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            changed = probe_rx.changed(), if probe_due.is_none() && !probe_gone => {
                if changed.is_err() {
                    probe_gone = true;
                    continue;
                }
                if let Some(c) = *probe_rx.borrow() {
                    probe_due = Some((c, (i as f64 * 1e6 / w.probe_rate) as u64));
                }
            }
            () = sleep => {
                sent = true;
                let body = format!("probe from socket {i}");
                if let Err(e) = tx.send(proto.send(None, HELLO, &body, 0)).await {
                    r.failure = Some(format!("write failed: {e}"));
                    break;
                }
                counters.sent.fetch_add(1, Ordering::SeqCst);
            }
            msg = rx.next() => {
                let text = match msg {
                    Incoming::Text(t) => t,
                    Incoming::Closed(why) => {
                        r.failure = Some(format!("visitor socket {why}"));
                        counters.closed.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                };
                match proto.decode(&text) {
                    Event::Ack { seq, .. } => {
                        counters.acked.fetch_add(1, Ordering::SeqCst);
                        if let Some(seq) = seq {
                            r.ledger.acked(seq);
                        }
                        if let Some((c, t)) = probe_due {
                            probe.record(c.now_us().saturating_sub(t));
                        }
                    }
                    Event::Error { code, .. } => {
                        counters.refused.fetch_add(1, Ordering::SeqCst);
                        *r.errors.entry(code.into_owned()).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    tx.close().await;
    r
}
