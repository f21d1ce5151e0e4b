//! The `reconnect` scenario: `N` visitors, each in a conversation, receive agent messages
//! sent open-loop at a total rate `R`. After `before`, every visitor drops its socket (no
//! close frame: the TCP connection just goes), spread over `within` (1 s by default),
//! reconnects with the same visitor token at once and sends `resume` from the last seq it
//! had. Traffic goes on for `after`, then drains.
//!
//! Measured: reconnect latency (drop → new socket open), resume latency (drop → the
//! visitor has every message the agent had acked when it dropped), the time until all
//! visitors have resumed (first drop → last resume), agent→visitor latency (due →
//! received, the outage included) and send→ack. Every visitor's seq ledger spans both
//! sockets: lost, duplicated and reordered must be 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use tokio::sync::watch;

use crate::burst::{Clock, Shared, stamp_of, stamped_body};
use crate::conn::{self, Incoming, Rx, Tx, Who};
use crate::ledger::Ledger;
use crate::node::{Cluster, Target};
use crate::procstat::{Usage, Watch};
use crate::proto::{Event, Proto, json_str};
use crate::report::{
    Checks, Latency, LogCounts, checks_line, latency_header, latency_line, usage_lines,
};
use crate::scenario::Reconnect;
use crate::setup::Workspace;
use crate::steady::{SETUP_TIMEOUT, agent_socket, visitor_with_conversation};

/// Visitors set up at once.
const SETUP_CONCURRENCY: usize = 16;
/// Visitor sockets per 127.0.0.x source address.
const PER_ADDRESS: usize = 1000;

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    senders_done: AtomicU64,
}

/// Per conversation: the highest seq the agent has had acked, and the highest seq up to
/// which the visitor has everything.
struct Progress {
    acked_top: Vec<AtomicU64>,
    visitor_prefix: Vec<AtomicU64>,
    /// When each visitor caught up after its reconnect, µs (0: not yet).
    resumed_at: Vec<AtomicU64>,
}

struct Hists {
    reconnect: Shared,
    resume: Shared,
    a2v: Shared,
    ack: Shared,
}

#[derive(Default)]
struct VisitorResult {
    ledger: Ledger,
    /// Messages the new socket got again (seq already had), dropped by the client.
    repeated: u64,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
    dropped_at: u64,
}

struct AgentResult {
    ledgers: Vec<(usize, Ledger)>,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
}

/// One `reconnect` run.
#[derive(Debug, Clone, Serialize)]
pub struct ReconnectReport {
    /// `"reconnect"`.
    pub scenario: &'static str,
    /// What was loaded.
    pub target: String,
    /// The workload.
    pub workload: Reconnect,
    /// Visitors that reconnected.
    pub reconnected: u64,
    /// Visitors that caught up.
    pub resumed: u64,
    /// Messages a visitor's new socket received again after its `resume` (a seq it already
    /// had): the protocol allows this and asks clients to de-duplicate by seq, which the
    /// generator does. Not a failure; real duplicates count in `checks`.
    pub repeated_after_resume: u64,
    /// First drop → the last visitor caught up, seconds.
    pub all_resumed_seconds: f64,
    /// Drop → new socket open.
    pub reconnect_latency: Latency,
    /// Drop → caught up with what was acked at the drop.
    pub resume_latency: Latency,
    /// Agent messages: due → the visitor receives them (outage included).
    pub agent_to_visitor: Latency,
    /// Agent messages: due → ack.
    pub ack_latency: Latency,
    /// Counts and correctness checks.
    pub checks: Checks,
    /// Resources over the traffic.
    pub usage: Usage,
    /// The servers' logs.
    pub server_log: LogCounts,
    /// Seconds spent setting up.
    pub setup_seconds: f64,
}

impl ReconnectReport {
    /// Everyone resumed, nothing lost, duplicated, reordered or refused.
    pub fn clean(&self) -> bool {
        self.checks.failures().is_empty()
            && self.resumed == self.workload.visitors as u64
            && self.reconnected == self.workload.visitors as u64
    }

    /// The human table.
    pub fn table(&self) -> String {
        let w = &self.workload;
        let mut s = format!(
            "reconnect on {}: {} visitors, {} agent socket(s) sending {} msgs/s; all drop and reconnect within {:?} after {:?}, then {:?} more\n",
            self.target, w.visitors, w.agents, w.rate, w.within, w.before, w.after
        );
        s.push_str(&format!(
            "  reconnected {} of {}, resumed {}; **all resumed {:.3} s after the first drop**; {} messages repeated after a resume (de-duplicated by seq)\n",
            self.reconnected, w.visitors, self.resumed, self.all_resumed_seconds, self.repeated_after_resume
        ));
        s.push_str(&latency_header());
        for (name, l) in [
            ("drop → socket open", &self.reconnect_latency),
            ("drop → caught up", &self.resume_latency),
            ("agent → visitor", &self.agent_to_visitor),
            ("agent send → ack", &self.ack_latency),
        ] {
            s.push_str(&latency_line(name, l));
        }
        s.push_str(&checks_line(&self.checks));
        s.push_str(&usage_lines(&self.usage, &self.server_log));
        s
    }
}

/// Run the scenario once on `target`.
pub async fn run(target: &Target, w: &Reconnect) -> anyhow::Result<ReconnectReport> {
    if target.proto() == Proto::Relay {
        bail!("reconnect needs stored messages to resume from: the relay stores none");
    }
    let started = Instant::now();
    let mut cluster = target.start().await?;
    let result = run_on(&cluster, target, w, started).await;
    cluster.stop().await;
    result
}

struct Visitor {
    tx: Tx,
    rx: Rx,
    conversation_id: String,
    hello_seq: u64,
    token: String,
}

async fn run_on(
    cluster: &Cluster,
    target: &Target,
    w: &Reconnect,
    started: Instant,
) -> anyhow::Result<ReconnectReport> {
    let proto = target.proto();
    let ws = Workspace::create(cluster, w.agents, None).await?;
    let mut agents = Vec::with_capacity(w.agents);
    for agent in &ws.agents {
        agents.push(agent_socket(cluster, proto, agent, None).await?);
    }
    let visitors: Vec<Visitor> = futures_util::stream::iter(0..w.visitors)
        .map(|i| {
            let ws = &ws;
            async move {
                let bind = Some(conn::spread_address(i, PER_ADDRESS));
                let (tx, rx, conversation_id, hello_seq, token) =
                    visitor_with_conversation(cluster, ws, proto, i, bind).await?;
                anyhow::Ok(Visitor {
                    tx,
                    rx,
                    conversation_id,
                    hello_seq,
                    token,
                })
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let conversations: Vec<String> = visitors.iter().map(|v| v.conversation_id.clone()).collect();

    // Agents follow their conversations and must see every first message.
    let mut agent_ledgers: Vec<Vec<(usize, Ledger)>> = Vec::with_capacity(w.agents);
    let mut agent_conns = Vec::with_capacity(w.agents);
    for (a, (tx, mut rx)) in agents.into_iter().enumerate() {
        let mine: Vec<usize> = (0..w.visitors).filter(|i| i % w.agents == a).collect();
        tx.send_all(
            mine.iter()
                .map(|&i| proto.resume(&json_str(&conversations[i]), 0)),
        )
        .await?;
        let mut ledgers: Vec<(usize, Ledger)> =
            mine.iter().map(|&i| (i, Ledger::default())).collect();
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        while seen < mine.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let text = rx.next_within(left).await?;
            if let Event::Message {
                conversation_id,
                seq,
                ..
            } = proto.decode(&text)
                && let Some(pos) = mine
                    .iter()
                    .position(|&i| conversations[i] == conversation_id)
            {
                ledgers[pos].1.received(seq);
                seen += 1;
            }
        }
        agent_ledgers.push(ledgers);
        agent_conns.push((tx, rx));
    }
    let setup_seconds = started.elapsed().as_secs_f64();

    let progress = Arc::new(Progress {
        acked_top: visitors
            .iter()
            .map(|v| AtomicU64::new(v.hello_seq))
            .collect(),
        visitor_prefix: (0..w.visitors).map(|_| AtomicU64::new(0)).collect(),
        resumed_at: (0..w.visitors).map(|_| AtomicU64::new(0)).collect(),
    });
    let hists = Arc::new(Hists {
        reconnect: Shared::new()?,
        resume: Shared::new()?,
        a2v: Shared::new()?,
        ack: Shared::new()?,
    });
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let clock = Clock {
        origin: Instant::now() + Duration::from_millis(50),
    };
    let end_us = u64::try_from((w.before + w.within + w.after).as_micros()).unwrap_or(u64::MAX);
    let watch = Watch::of(
        cluster,
        matches!(target, Target::Spawn(o) if o.redis_url.is_some()),
    );
    let before = watch.snapshot().await;

    let agent_tasks: Vec<_> = agent_conns
        .into_iter()
        .zip(agent_ledgers)
        .map(|((tx, rx), ledgers)| {
            tokio::spawn(agent_task(
                proto,
                tx,
                rx,
                ledgers,
                conversations.clone(),
                w.clone(),
                clock,
                end_us,
                hists.clone(),
                progress.clone(),
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let ws_base = cluster.visitor_node().ws_base();
    let visitor_tasks: Vec<_> = visitors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            tokio::spawn(visitor_task(
                proto,
                i,
                v,
                w.clone(),
                ws_base.clone(),
                clock,
                hists.clone(),
                progress.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    tokio::time::sleep_until(clock.at(end_us)).await;
    let drain_deadline = tokio::time::Instant::now() + w.drain;
    loop {
        let sent = counters.sent.load(Ordering::SeqCst);
        let answered =
            counters.acked.load(Ordering::SeqCst) + counters.refused.load(Ordering::SeqCst);
        let caught_up = (0..w.visitors).all(|i| {
            progress.visitor_prefix[i].load(Ordering::SeqCst)
                >= progress.acked_top[i].load(Ordering::SeqCst)
        });
        let done = counters.senders_done.load(Ordering::SeqCst) == w.agents as u64
            && answered >= sent
            && caught_up;
        if done || tokio::time::Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = watch.snapshot().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send_replace(true);

    let mut checks = Checks::default();
    let mut visitor_results = Vec::with_capacity(w.visitors);
    for t in visitor_tasks {
        match t.await {
            Ok(v) => visitor_results.push(Some(v)),
            Err(e) => {
                *checks.socket_failures.entry(e.to_string()).or_default() += 1;
                visitor_results.push(None);
            }
        }
    }
    let mut agent_by_conv: Vec<Option<Ledger>> = vec![None; w.visitors];
    for t in agent_tasks {
        match t.await {
            Ok(a) => {
                for (code, n) in a.errors {
                    *checks.errors.entry(code).or_default() += n;
                }
                if let Some(f) = a.failure {
                    *checks.socket_failures.entry(f).or_default() += 1;
                }
                for (i, l) in a.ledgers {
                    agent_by_conv[i] = Some(l);
                }
            }
            Err(e) => *checks.socket_failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let mut reconnected = 0;
    let mut resumed = 0;
    let mut repeated_after_resume = 0;
    let mut first_drop = u64::MAX;
    let mut last_resume = 0;
    for (i, v) in visitor_results.iter().enumerate() {
        let Some(v) = v else { continue };
        repeated_after_resume += v.repeated;
        for (code, n) in &v.errors {
            *checks.errors.entry(code.clone()).or_default() += n;
        }
        if let Some(f) = &v.failure {
            *checks.socket_failures.entry(f.clone()).or_default() += 1;
        } else {
            reconnected += 1;
        }
        first_drop = first_drop.min(v.dropped_at);
        let at = progress.resumed_at[i].load(Ordering::SeqCst);
        if at > 0 {
            resumed += 1;
            last_resume = last_resume.max(at);
        }
        let agent = agent_by_conv[i].as_ref();
        let top = v
            .ledger
            .top()
            .max(agent.map(Ledger::top).unwrap_or_default());
        v.ledger.check(top, &mut checks);
        if let Some(l) = agent {
            l.check(top, &mut checks);
        }
    }
    checks.sent = counters.sent.load(Ordering::SeqCst);
    checks.acked = counters.acked.load(Ordering::SeqCst);
    checks.unacked = checks
        .sent
        .saturating_sub(checks.acked + counters.refused.load(Ordering::SeqCst));
    let (warnings, errors) = cluster.log_counts();
    Ok(ReconnectReport {
        scenario: "reconnect",
        target: target.describe(),
        workload: w.clone(),
        reconnected,
        resumed,
        repeated_after_resume,
        all_resumed_seconds: if resumed > 0 && first_drop < u64::MAX {
            last_resume.saturating_sub(first_drop) as f64 / 1e6
        } else {
            0.0
        },
        reconnect_latency: hists.reconnect.latency(),
        resume_latency: hists.resume.latency(),
        agent_to_visitor: hists.a2v.latency(),
        ack_latency: hists.ack.latency(),
        usage: watch.usage(&before, &after, checks.acked),
        checks,
        server_log: LogCounts { warnings, errors },
        setup_seconds,
    })
}

/// Due time of agent message `k` to conversation `i`, µs.
fn due_us(w: &Reconnect, i: usize, k: u64) -> u64 {
    ((i as f64 + k as f64 * w.visitors as f64) * 1e6 / w.rate) as u64
}

/// What a visitor does with one frame; `Err` when the socket ended.
#[allow(clippy::too_many_arguments)]
fn on_frame(
    proto: Proto,
    i: usize,
    msg: Incoming,
    r: &mut VisitorResult,
    target: Option<u64>,
    clock: &Clock,
    hists: &Hists,
    progress: &Progress,
) -> Result<(), String> {
    let text = match msg {
        Incoming::Text(t) => t,
        Incoming::Closed(why) => return Err(format!("visitor socket {why}")),
    };
    let now = clock.now_us();
    match proto.decode(&text) {
        Event::Message { seq, body, .. } => {
            if target.is_some() {
                // After the resume: de-duplicate by seq, as the protocol asks.
                if !r.ledger.received_dedup(seq) {
                    r.repeated += 1;
                    return Ok(());
                }
            } else {
                r.ledger.received(seq);
            }
            progress.visitor_prefix[i].store(r.ledger.prefix(), Ordering::SeqCst);
            if let Some(t) = stamp_of(&body, "k") {
                hists.a2v.record(now.saturating_sub(t));
            }
            if let Some(want) = target {
                check_resumed(r, i, want, clock, hists, progress);
            }
        }
        Event::Error { code, .. } => {
            *r.errors.entry(code.into_owned()).or_default() += 1;
        }
        _ => {}
    }
    Ok(())
}

/// Mark visitor `i` resumed once it has everything up to `want`.
fn check_resumed(
    r: &VisitorResult,
    i: usize,
    want: u64,
    clock: &Clock,
    hists: &Hists,
    progress: &Progress,
) {
    if r.ledger.prefix() >= want && progress.resumed_at[i].load(Ordering::SeqCst) == 0 {
        let now = clock.now_us().max(1);
        progress.resumed_at[i].store(now, Ordering::SeqCst);
        hists.resume.record(now.saturating_sub(r.dropped_at));
    }
}

#[allow(clippy::too_many_arguments)]
async fn visitor_task(
    proto: Proto,
    i: usize,
    v: Visitor,
    w: Reconnect,
    ws_base: String,
    clock: Clock,
    hists: Arc<Hists>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> VisitorResult {
    let mut r = VisitorResult::default();
    r.ledger.acked(v.hello_seq);
    progress.visitor_prefix[i].store(r.ledger.prefix(), Ordering::SeqCst);
    let drop_at =
        u64::try_from((w.before + w.within.mul_f64(i as f64 / w.visitors as f64)).as_micros())
            .unwrap_or(u64::MAX);
    let Visitor {
        tx,
        mut rx,
        conversation_id,
        token,
        ..
    } = v;
    // Before the drop.
    loop {
        tokio::select! {
            _ = stop.changed() => {
                r.failure = Some("never dropped (the run ended first)".into());
                tx.close().await;
                return r;
            }
            () = tokio::time::sleep_until(clock.at(drop_at)) => break,
            msg = rx.next() => {
                if let Err(why) = on_frame(proto, i, msg, &mut r, None, &clock, &hists, &progress) {
                    r.failure = Some(why);
                    return r;
                }
            }
        }
    }
    // The connection just goes: no close frame.
    r.dropped_at = clock.now_us();
    let want = progress.acked_top[i].load(Ordering::SeqCst);
    drop(rx);
    drop(tx);
    let bind = Some(conn::spread_address(i, PER_ADDRESS));
    let (tx, mut rx) =
        match conn::connect(proto, &ws_base, Who::Visitor { token: &token }, bind).await {
            Ok(c) => c,
            Err(e) => {
                r.failure = Some(format!("reconnect: {e:#}"));
                return r;
            }
        };
    hists
        .reconnect
        .record(clock.now_us().saturating_sub(r.dropped_at));
    if let Err(e) = tx
        .send(proto.resume(&json_str(&conversation_id), r.ledger.top()))
        .await
    {
        r.failure = Some(format!("resume write failed: {e}"));
        return r;
    }
    check_resumed(&r, i, want, &clock, &hists, &progress);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.next() => {
                if let Err(why) = on_frame(proto, i, msg, &mut r, Some(want), &clock, &hists, &progress) {
                    r.failure = Some(why);
                    break;
                }
            }
        }
    }
    tx.close().await;
    r
}

#[allow(clippy::too_many_arguments)]
async fn agent_task(
    proto: Proto,
    tx: Tx,
    mut rx: Rx,
    ledgers: Vec<(usize, Ledger)>,
    conversations: Vec<String>,
    w: Reconnect,
    clock: Clock,
    end_us: u64,
    hists: Arc<Hists>,
    progress: Arc<Progress>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> AgentResult {
    let mine: Vec<usize> = ledgers.iter().map(|(i, _)| *i).collect();
    let quoted: Vec<String> = conversations.iter().map(|c| json_str(c)).collect();
    let send = async {
        // The agent's conversations' messages in due order.
        let mut next: Vec<u64> = vec![0; mine.len()];
        loop {
            let (j, due) = mine
                .iter()
                .enumerate()
                .map(|(j, &i)| (j, due_us(&w, i, next[j])))
                .min_by_key(|(_, d)| *d)?;
            if due >= end_us {
                return None;
            }
            tokio::time::sleep_until(clock.at(due)).await;
            let now = clock.now_us();
            let mut frames = Vec::new();
            for (j, &i) in mine.iter().enumerate() {
                while due_us(&w, i, next[j]) <= now && due_us(&w, i, next[j]) < end_us {
                    let k = next[j];
                    let t = due_us(&w, i, k);
                    frames.push(proto.send(
                        Some(&quoted[i]),
                        &k.to_string(),
                        &stamped_body("k", k, t, w.body_bytes),
                        k + 1,
                    ));
                    next[j] += 1;
                }
            }
            let n = frames.len() as u64;
            if let Err(e) = tx.send_all(frames).await {
                return Some(format!("agent write failed: {e}"));
            }
            counters.sent.fetch_add(n, Ordering::SeqCst);
            let _ = j;
        }
    };
    let send = async {
        let failure = send.await;
        counters.senders_done.fetch_add(1, Ordering::SeqCst);
        failure
    };
    let read = async {
        let mut ledgers = ledgers;
        let mut errors = BTreeMap::new();
        let mut failure = None;
        loop {
            let text = match rx.next_or_stop(&mut stop).await {
                Some(Ok(t)) => t,
                Some(Err(why)) => {
                    failure = Some(format!("agent socket {why}"));
                    break;
                }
                None => break,
            };
            let now = clock.now_us();
            match proto.decode(&text) {
                Event::Ack {
                    client_id,
                    conversation_id: Some(conv),
                    seq: Some(seq),
                } => {
                    counters.acked.fetch_add(1, Ordering::SeqCst);
                    if let Some(pos) = mine.iter().position(|&i| conversations[i] == conv) {
                        let i = mine[pos];
                        ledgers[pos].1.acked(seq);
                        progress.acked_top[i].fetch_max(seq, Ordering::SeqCst);
                        if let Some(k) = client_id.and_then(|c| c.parse::<u64>().ok()) {
                            hists.ack.record(now.saturating_sub(due_us(&w, i, k)));
                        }
                    }
                }
                Event::Message {
                    conversation_id,
                    seq,
                    ..
                } => {
                    if let Some(pos) = mine
                        .iter()
                        .position(|&i| conversations[i] == conversation_id)
                    {
                        ledgers[pos].1.received(seq);
                    }
                }
                Event::Error { code, .. } => {
                    counters.refused.fetch_add(1, Ordering::SeqCst);
                    *errors.entry(code.into_owned()).or_default() += 1;
                }
                _ => {}
            }
        }
        (ledgers, errors, failure)
    };
    let (send_failure, (ledgers, errors, failure)) = tokio::join!(send, read);
    tx.close().await;
    AgentResult {
        ledgers,
        errors,
        failure: failure.or(send_failure),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn agent_messages_are_spread_over_conversations() {
        let w = crate::scenario::ReconnectKnobs {
            visitors: Some(4),
            rate: Some(1000.0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(due_us(&w, 0, 0), 0);
        assert_eq!(due_us(&w, 1, 0), 1000);
        assert_eq!(due_us(&w, 0, 1), 4000);
    }
}
