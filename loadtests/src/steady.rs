//! The `steady` scenario: `C` visitors, each in a conversation of their own, send
//! ~120-byte messages at a fixed total rate `R` for a warm-up and then a measured
//! window; `A` agent sockets have `resume`d every conversation and receive every message.
//!
//! Sending is open-loop: message `k` of conversation `i` is due at `(i + k·C) / R`
//! seconds after the start, whatever happened to the earlier ones, and both latencies
//! are measured from that due time, not from when the frame was actually written. A
//! server that falls behind therefore shows its queueing in the figures instead of
//! slowing the generator down (no coordinated omission).
//!
//! Measured:
//! - `send → ack`: the message is durable (the engine acks after the commit);
//! - `visitor → agent`: the agent receives the `message` frame;
//! - acks per second in the window; CPU and memory of the server (and database, Redis
//!   and the generator itself);
//! - per conversation, on the agent side: every acked `seq` must arrive exactly once and
//!   in order — lost, duplicated and reordered must all be 0.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use hdrhistogram::Histogram;
use tokio::sync::watch;

use crate::conn::{self, Rx, Tx, Who};
use crate::metrics::{EngineFigures, Scrape};
use crate::node::{Cluster, Target};
use crate::procstat::Watch;
use crate::proto::{Event, Proto, json_str};
use crate::report::{Checks, Latency, LogCounts, MaxRateReport, SteadyReport, histogram};
use crate::scenario::Steady;
use crate::setup::{Agent, Workspace};

/// HTTP calls and handshakes in flight at once during setup.
const SETUP_CONCURRENCY: usize = 16;
/// Longest wait for one setup step's answer (a presence frame, an ack, deliveries).
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// After the visitors stop, how long agents may take to receive the last acked messages.
const AGENT_GRACE: Duration = Duration::from_secs(5);
/// The client id of each visitor's first message (the one that opens the conversation).
pub(crate) const HELLO: &str = "hello";

/// When each message is due, relative to a common origin.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    origin: Instant,
    conversations: f64,
    rate: f64,
    window_start_us: u64,
    end_us: u64,
}

impl Schedule {
    /// Due time of message `k` of conversation `i`, µs after the origin.
    fn at(&self, i: usize, k: u64) -> u64 {
        ((i as f64 + k as f64 * self.conversations) * 1e6 / self.rate) as u64
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn instant(&self, us: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + Duration::from_micros(us))
    }

    fn measured(&self, us: u64) -> bool {
        us >= self.window_start_us && us < self.end_us
    }
}

/// Counters every task updates, read by the coordinator to know when the run drained.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    delivered: AtomicU64,
    senders_done: AtomicU64,
}

/// What one visitor socket saw.
struct VisitorStats {
    acks: Histogram<u64>,
    acked_in_window: u64,
    max_seq: u64,
    acks_out_of_order: u64,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
}

/// What one agent socket saw.
struct AgentStats {
    deliveries: Histogram<u64>,
    /// Global conversation index → how many times each seq arrived (index = seq).
    seen: HashMap<usize, Vec<u32>>,
    reordered: u64,
    failure: Option<String>,
}

/// A visitor after setup: their socket and conversation.
struct Visitor {
    tx: Tx,
    rx: Rx,
    conversation_id: String,
    hello_seq: u64,
}

/// Run the scenario once on `target` (starting and stopping it when spawned).
pub async fn run(target: &Target, w: &Steady) -> anyhow::Result<SteadyReport> {
    let started = Instant::now();
    let mut cluster = target.start().await?;
    let result = run_on(&cluster, target, w, started).await;
    cluster.stop().await;
    result
}

/// Open an agent socket on the agents' node.
pub async fn agent_socket(
    cluster: &Cluster,
    proto: Proto,
    agent: &Agent,
    capacity: Option<u32>,
) -> anyhow::Result<(Tx, Rx)> {
    conn::connect(
        proto,
        &cluster.agent_node().ws_base(),
        Who::Agent {
            token: &agent.token,
            user_id: &agent.user_id,
            capacity,
        },
        None,
    )
    .await
}

/// A new visitor on the visitors' node: session, socket, first message (which opens the
/// conversation); returns the socket, the conversation and the first message's seq.
pub async fn visitor_with_conversation(
    cluster: &Cluster,
    ws: &Workspace,
    proto: Proto,
    i: usize,
    bind: Option<std::net::Ipv4Addr>,
) -> anyhow::Result<(Tx, Rx, String, u64, String)> {
    let token = ws.visitor_token().await?;
    let (tx, mut rx) = conn::connect(
        proto,
        &cluster.visitor_node().ws_base(),
        Who::Visitor { token: &token },
        bind,
    )
    .await
    .with_context(|| format!("visitor {i}: connecting"))?;
    tx.send(proto.send(None, HELLO, &format!("hello from visitor {i}"), 0))
        .await?;
    loop {
        let text = rx
            .next_within(SETUP_TIMEOUT)
            .await
            .with_context(|| format!("visitor {i}: waiting for the first ack"))?;
        match proto.decode(&text) {
            Event::Ack {
                client_id: Some(c),
                conversation_id,
                seq,
            } if c == HELLO => {
                let conversation_id = conversation_id
                    .context("an ack without conversation_id")?
                    .into_owned();
                return Ok((tx, rx, conversation_id, seq.unwrap_or(1), token));
            }
            Event::Error { .. } => bail!("visitor {i}: first message refused: {text}"),
            _ => {}
        }
    }
}

async fn run_on(
    cluster: &Cluster,
    target: &Target,
    w: &Steady,
    started: Instant,
) -> anyhow::Result<SteadyReport> {
    let c = w.conversations;
    let proto = target.proto();
    let ws = Workspace::create(cluster, w.agents, None).await?;
    let mut agent_conns = Vec::with_capacity(w.agents);
    for agent in &ws.agents {
        agent_conns.push(agent_socket(cluster, proto, agent, None).await?);
    }

    // Visitors, each opening a conversation.
    let visitors: Vec<Visitor> = futures_util::stream::iter(0..c)
        .map(|i| {
            let ws = &ws;
            async move {
                let (tx, rx, conversation_id, hello_seq, _) =
                    visitor_with_conversation(cluster, ws, proto, i, None).await?;
                anyhow::Ok(Visitor {
                    tx,
                    rx,
                    conversation_id,
                    hello_seq,
                })
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;

    // Agents resume every conversation (conversation i to agent i % A) and must receive
    // its first message before the clock starts.
    let counters = Arc::new(Counters::default());
    let (stop_visitors, visitors_stop) = watch::channel(false);
    let (stop_agents, agents_stop) = watch::channel(false);
    let schedule = Schedule {
        // Set for real below, once setup is done.
        origin: Instant::now(),
        conversations: c as f64,
        rate: w.rate,
        window_start_us: u64::try_from(w.warmup.as_micros()).unwrap_or(u64::MAX),
        end_us: u64::try_from((w.warmup + w.duration).as_micros()).unwrap_or(u64::MAX),
    };
    let (origin_tx, origin_rx) = watch::channel(schedule);
    let mut agent_tasks = Vec::with_capacity(w.agents);
    let mut agent_txs = Vec::with_capacity(w.agents);
    for (a, (tx, rx)) in agent_conns.into_iter().enumerate() {
        let convs: HashMap<String, usize> = visitors
            .iter()
            .enumerate()
            .filter(|(i, _)| i % w.agents == a)
            .map(|(i, v)| (v.conversation_id.clone(), i))
            .collect();
        let ids: Vec<String> = convs.keys().cloned().collect();
        agent_tasks.push(tokio::spawn(agent_task(
            proto,
            rx,
            histogram()?,
            convs,
            origin_rx.clone(),
            counters.clone(),
            agents_stop.clone(),
        )));
        tx.send_all(ids.iter().map(|id| proto.resume(&json_str(id), 0)))
            .await?;
        agent_txs.push(tx);
    }
    // The relay stores nothing, so a `resume` replays nothing: its agents never see the
    // first messages and are checked from the seq after them.
    let replays = proto != Proto::Relay;
    let expected_hellos: u64 = if replays {
        visitors.iter().map(|v| v.hello_seq).sum()
    } else {
        0
    };
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while counters.delivered.load(Ordering::SeqCst) < expected_hellos {
        if Instant::now() > deadline {
            bail!(
                "agents received {} of the {expected_hellos} first messages within {SETUP_TIMEOUT:?}",
                counters.delivered.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The clock starts.
    let schedule = Schedule {
        origin: Instant::now() + Duration::from_millis(50),
        ..schedule
    };
    origin_tx.send_replace(schedule);
    let setup_seconds = started.elapsed().as_secs_f64();
    let hello_seqs: Vec<u64> = visitors.iter().map(|v| v.hello_seq).collect();
    let hello_seqs_for_check = hello_seqs.clone();
    let mut visitor_tasks = Vec::with_capacity(c);
    for (i, v) in visitors.into_iter().enumerate() {
        visitor_tasks.push(tokio::spawn(visitor_task(
            proto,
            i,
            v,
            histogram()?,
            schedule,
            w.body_bytes,
            counters.clone(),
            visitors_stop.clone(),
        )));
    }
    let watch = Watch::of(
        cluster,
        matches!(target, Target::Spawn(o) if o.redis_url.is_some()),
    );
    let http = ws.http().clone();
    let metrics_base = cluster.visitor_node().address.clone();
    tokio::time::sleep_until(schedule.instant(schedule.window_start_us)).await;
    let before = watch.snapshot().await;
    let scrape_before = Scrape::fetch(&http, &metrics_base).await;
    tokio::time::sleep_until(schedule.instant(schedule.end_us)).await;
    let after = watch.snapshot().await;
    let scrape_after = Scrape::fetch(&http, &metrics_base).await;

    // Drain: every send answered and every ack delivered, or the drain time is up.
    let drain_deadline = Instant::now() + w.drain;
    loop {
        let sent = counters.sent.load(Ordering::SeqCst);
        let acked = counters.acked.load(Ordering::SeqCst);
        let refused = counters.refused.load(Ordering::SeqCst);
        let delivered = counters.delivered.load(Ordering::SeqCst);
        let done = counters.senders_done.load(Ordering::SeqCst) == c as u64
            && acked + refused >= sent
            && delivered >= acked + expected_hellos;
        if done || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_visitors.send_replace(true);

    let mut checks = Checks::default();
    let mut acks = histogram()?;
    let mut acked_in_window = 0;
    let mut max_seq = hello_seqs;
    for (i, t) in visitor_tasks.into_iter().enumerate() {
        match t.await {
            Ok(v) => {
                acks.add(&v.acks)?;
                acked_in_window += v.acked_in_window;
                if let Some(m) = max_seq.get_mut(i) {
                    *m = (*m).max(v.max_seq);
                }
                checks.acks_out_of_order += v.acks_out_of_order;
                for (code, n) in v.errors {
                    *checks.errors.entry(code).or_default() += n;
                }
                if let Some(f) = v.failure {
                    *checks.socket_failures.entry(f).or_default() += 1;
                }
            }
            Err(e) => *checks.socket_failures.entry(e.to_string()).or_default() += 1,
        }
    }
    // The acks are in: give the agents a moment to receive what was acked last (when the
    // drain ran out, acks may still have been arriving).
    let acked_total = counters.acked.load(Ordering::SeqCst);
    let grace = Instant::now() + AGENT_GRACE;
    while counters.delivered.load(Ordering::SeqCst) < acked_total + expected_hellos
        && Instant::now() < grace
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_agents.send_replace(true);
    let mut deliveries = histogram()?;
    for t in agent_tasks {
        match t.await {
            Ok(a) => {
                deliveries.add(&a.deliveries)?;
                checks.reordered += a.reordered;
                for (i, seen) in &a.seen {
                    let top = max_seq.get(*i).copied().unwrap_or(0);
                    let first = if replays {
                        1
                    } else {
                        hello_seqs_for_check.get(*i).copied().unwrap_or(0) + 1
                    };
                    for seq in first..=top {
                        match seen.get(seq as usize).copied().unwrap_or(0) {
                            0 => checks.lost += 1,
                            1 => {}
                            n => checks.duplicated += u64::from(n - 1),
                        }
                    }
                    // Duplicates past the last ack (acks still in flight) count too.
                    for n in seen.iter().skip(top as usize + 1) {
                        checks.duplicated += u64::from(n.saturating_sub(1));
                    }
                }
                if let Some(f) = a.failure {
                    *checks.socket_failures.entry(f).or_default() += 1;
                }
            }
            Err(e) => *checks.socket_failures.entry(e.to_string()).or_default() += 1,
        }
    }
    for tx in agent_txs {
        tx.close().await;
    }
    checks.sent = counters.sent.load(Ordering::SeqCst);
    checks.acked = counters.acked.load(Ordering::SeqCst);
    checks.unacked = checks
        .sent
        .saturating_sub(checks.acked + counters.refused.load(Ordering::SeqCst));

    Ok(SteadyReport {
        scenario: "steady",
        target: target.describe(),
        workload: w.clone(),
        acked_per_sec: acked_in_window as f64 / w.duration.as_secs_f64(),
        ack_latency: Latency::of(&acks),
        delivery_latency: Latency::of(&deliveries),
        checks,
        usage: watch.usage(&before, &after, acked_in_window),
        engine: EngineFigures::between(&scrape_before, &scrape_after),
        server_log: {
            let (warnings, errors) = cluster.log_counts();
            LogCounts { warnings, errors }
        },
        setup_seconds,
    })
}

/// The body of message `k`: the schedule index, then padding to `body_bytes`.
pub fn body(k: u64, body_bytes: usize) -> String {
    let mut body = format!("k={k};");
    while body.len() < body_bytes {
        body.push('x');
    }
    body
}

/// Write conversation `i`'s messages on schedule until the end; returns why it stopped
/// early, if it did.
async fn send_on_schedule(
    proto: Proto,
    tx: &Tx,
    i: usize,
    conversation: &str,
    schedule: Schedule,
    body_bytes: usize,
    counters: &Counters,
) -> Option<String> {
    let mut k = 0;
    loop {
        let due = schedule.at(i, k);
        if due >= schedule.end_us {
            return None;
        }
        tokio::time::sleep_until(schedule.instant(due)).await;
        let now = schedule.now_us();
        // Everything due by now goes out together (a late wake-up or a slow write
        // does not move the schedule).
        let first = k;
        while schedule.at(i, k) <= now && schedule.at(i, k) < schedule.end_us {
            k += 1;
        }
        let frames = (first..k).map(|k| {
            proto.send(
                Some(conversation),
                &k.to_string(),
                &body(k, body_bytes),
                k + 1,
            )
        });
        if let Err(e) = tx.send_all(frames).await {
            return Some(format!("visitor socket write failed: {e}"));
        }
        counters.sent.fetch_add(k - first, Ordering::SeqCst);
    }
}

#[allow(clippy::too_many_arguments)]
async fn visitor_task(
    proto: Proto,
    i: usize,
    v: Visitor,
    acks: Histogram<u64>,
    schedule: Schedule,
    body_bytes: usize,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> VisitorStats {
    let Visitor {
        tx,
        mut rx,
        conversation_id,
        hello_seq,
    } = v;
    let conversation = json_str(&conversation_id);
    let send = async {
        let failure = send_on_schedule(
            proto,
            &tx,
            i,
            &conversation,
            schedule,
            body_bytes,
            &counters,
        )
        .await;
        counters.senders_done.fetch_add(1, Ordering::SeqCst);
        failure
    };
    let read = async {
        let mut s = VisitorStats {
            acks,
            acked_in_window: 0,
            max_seq: hello_seq,
            acks_out_of_order: 0,
            errors: BTreeMap::new(),
            failure: None,
        };
        let mut last_seq = hello_seq;
        loop {
            let text = match rx.next_or_stop(&mut stop).await {
                Some(Ok(t)) => t,
                Some(Err(why)) => {
                    s.failure = Some(format!("visitor socket {why}"));
                    break;
                }
                None => break,
            };
            let now = schedule.now_us();
            match proto.decode(&text) {
                Event::Ack { client_id, seq, .. } => {
                    counters.acked.fetch_add(1, Ordering::SeqCst);
                    if let Some(seq) = seq {
                        if seq <= last_seq {
                            s.acks_out_of_order += 1;
                        }
                        last_seq = last_seq.max(seq);
                        s.max_seq = s.max_seq.max(seq);
                    }
                    if let Some(k) = client_id.and_then(|c| c.parse::<u64>().ok()) {
                        let due = schedule.at(i, k);
                        if schedule.measured(due) {
                            s.acks.saturating_record(now.saturating_sub(due).max(1));
                        }
                    }
                    if schedule.measured(now) {
                        s.acked_in_window += 1;
                    }
                }
                Event::Error { code, .. } => {
                    counters.refused.fetch_add(1, Ordering::SeqCst);
                    *s.errors.entry(code.into_owned()).or_default() += 1;
                }
                Event::Unreadable => {
                    *s.errors.entry("unreadable frame".into()).or_default() += 1;
                }
                _ => {}
            }
        }
        s
    };
    let (send_failure, mut stats) = tokio::join!(send, read);
    if stats.failure.is_none() {
        stats.failure = send_failure;
    }
    tx.close().await;
    stats
}

async fn agent_task(
    proto: Proto,
    mut rx: Rx,
    deliveries: Histogram<u64>,
    convs: HashMap<String, usize>,
    schedule: watch::Receiver<Schedule>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> AgentStats {
    let mut a = AgentStats {
        deliveries,
        seen: convs.values().map(|i| (*i, Vec::new())).collect(),
        reordered: 0,
        failure: None,
    };
    let mut highest: HashMap<usize, u64> = HashMap::new();
    loop {
        let text = match rx.next_or_stop(&mut stop).await {
            Some(Ok(t)) => t,
            Some(Err(why)) => {
                a.failure = Some(format!("agent socket {why}"));
                break;
            }
            None => break,
        };
        let Event::Message {
            conversation_id,
            seq,
            body,
        } = proto.decode(&text)
        else {
            continue;
        };
        let Some(&i) = convs.get(conversation_id.as_ref()) else {
            continue;
        };
        counters.delivered.fetch_add(1, Ordering::SeqCst);
        let sched = *schedule.borrow();
        let now = sched.now_us();
        if let Some(seen) = a.seen.get_mut(&i) {
            let at = usize::try_from(seq).unwrap_or(usize::MAX).min(50_000_000);
            if seen.len() <= at {
                seen.resize(at + 1, 0);
            }
            if let Some(n) = seen.get_mut(at) {
                *n += 1;
            }
        }
        let top = highest.entry(i).or_default();
        if seq < *top {
            a.reordered += 1;
        }
        *top = (*top).max(seq);
        let k = body
            .strip_prefix("k=")
            .and_then(|rest| rest.split(';').next())
            .and_then(|k| k.parse::<u64>().ok());
        if let Some(k) = k {
            let due = sched.at(i, k);
            if sched.measured(due) {
                a.deliveries
                    .saturating_record(now.saturating_sub(due).max(1));
            }
        }
    }
    a
}

/// Run at rising rates to find the highest whose p99 ack latency is within
/// `max_p99_us` with nothing lost or refused: double from `w.rate` until a step fails,
/// then bisect `refine` times between the last pass and the first failure. Each step is
/// a full run on a fresh node (when spawned).
pub async fn find_max(
    target: &Target,
    w: &Steady,
    max_p99_us: u64,
    refine: u32,
    mut on_step: impl FnMut(&SteadyReport),
) -> anyhow::Result<MaxRateReport> {
    const MAX_STEPS: usize = 16;
    let mut steps = Vec::new();
    let mut pass: Option<f64> = None;
    let mut fail: Option<f64> = None;
    let mut rate = w.rate;
    // Up (or down, when the first rate fails) by factors of two.
    while steps.len() < MAX_STEPS {
        let r = step(target, w, rate).await?;
        on_step(&r);
        let ok = r.passes(max_p99_us);
        steps.push(r);
        if ok {
            pass = Some(rate);
            if fail.is_some() {
                break;
            }
            rate *= 2.0;
        } else {
            fail = Some(rate);
            if pass.is_some() || rate <= 1.0 {
                break;
            }
            rate /= 2.0;
        }
    }
    // Then between the last pass and the first failure above it.
    for _ in 0..refine {
        let (Some(lo), Some(hi)) = (pass, fail) else {
            break;
        };
        let mid = round2((lo + hi) / 2.0);
        if mid <= lo || mid >= hi || steps.len() >= MAX_STEPS {
            break;
        }
        let r = step(target, w, mid).await?;
        on_step(&r);
        let ok = r.passes(max_p99_us);
        steps.push(r);
        if ok {
            pass = Some(mid);
        } else {
            fail = Some(mid);
        }
    }
    Ok(MaxRateReport {
        max_p99_us,
        best_rate: pass,
        steps,
    })
}

/// One step of the search: a run at `rate`, then a pause for the machine to settle
/// (database dropped, sockets out of TIME_WAIT).
async fn step(target: &Target, w: &Steady, rate: f64) -> anyhow::Result<SteadyReport> {
    let r = run(target, &w.at_rate(rate)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(r)
}

/// Round to two significant digits (rates like 3700, not 3712.5).
fn round2(x: f64) -> f64 {
    if x <= 0.0 {
        return x;
    }
    let scale = 10f64.powi(x.log10().floor() as i32 - 1);
    (x / scale).round() * scale
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn schedule(conversations: usize, rate: f64) -> Schedule {
        Schedule {
            origin: Instant::now(),
            conversations: conversations as f64,
            rate,
            window_start_us: 1_000_000,
            end_us: 3_000_000,
        }
    }

    #[test]
    fn the_schedule_spreads_sends_evenly_over_conversations() {
        let s = schedule(4, 1000.0);
        // 1000/s in total: one every millisecond, round-robin over the conversations.
        assert_eq!(s.at(0, 0), 0);
        assert_eq!(s.at(1, 0), 1000);
        assert_eq!(s.at(3, 0), 3000);
        assert_eq!(s.at(0, 1), 4000);
        assert_eq!(s.at(2, 5), 22_000);
        assert!(s.measured(1_000_000) && !s.measured(999_999) && !s.measured(3_000_000));
    }

    #[test]
    fn frames_carry_the_schedule_index_and_the_body_size() {
        let f = Proto::Parley.send(Some("\"c1\""), "42", &body(42, 120), 43);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["client_id"], "42");
        assert_eq!(v["conversation_id"], "c1");
        let body = v["body"].as_str().unwrap();
        assert_eq!(body.len(), 120);
        assert!(body.starts_with("k=42;"));
    }

    #[test]
    fn bisection_rates_are_round() {
        assert_eq!(round2(3712.5), 3700.0);
        assert_eq!(round2(1500.0), 1500.0);
        assert_eq!(round2(96.0), 96.0);
    }
}
