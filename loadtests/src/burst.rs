//! The `burst` scenario: `V` visitors arrive evenly over `T` seconds (open loop: visitor
//! `i` is due at `i·T/V` whatever happened to the others). Each opens a widget session and
//! a socket (from a 127.0.0.x source address) and sends a first message, which starts a
//! conversation; then `M` more messages, one per interval, due from its arrival time.
//! `A` agents are online with a capacity each; the router assigns every conversation.
//! The assigned agent follows it (`resume` from 0) and answers each visitor message.
//!
//! Measured: connect latency (due time → socket open, widget session included), the
//! session alone, time to assignment (first `send` → the assignee's socket receives the
//! `conversation` `assigned` frame), send→ack, visitor→agent (due time → agent receives)
//! and agent→visitor (reply written → visitor receives) latency, acks and errors. Every
//! participant keeps a per-conversation seq ledger: lost, duplicated and reordered must be
//! 0, and every conversation must be assigned.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;

use crate::conn::{self, Incoming, Rx, Tx, Who};
use crate::ledger::Ledger;
use crate::node::{Cluster, Target};
use crate::procstat::{Usage, Watch};
use crate::proto::{Event, Proto, json_str};
use crate::report::{
    Checks, Latency, LogCounts, checks_line, histogram, latency_header, latency_line, usage_lines,
};
use crate::scenario::Burst;
use crate::setup::Workspace;
use crate::steady::{HELLO, agent_socket};

/// A latency histogram shared by many tasks.
#[derive(Debug)]
pub struct Shared(Mutex<Histogram<u64>>);

impl Shared {
    /// An empty one.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Shared(Mutex::new(histogram()?)))
    }

    /// Record `us` (at least 1).
    pub fn record(&self, us: u64) {
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(us.max(1));
        }
    }

    /// The summary.
    pub fn latency(&self) -> Latency {
        self.0.lock().map(|h| Latency::of(&h)).unwrap_or_default()
    }
}

/// A clock shared by every task: microseconds since a common origin.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The origin.
    pub origin: Instant,
}

impl Clock {
    /// Now, µs after the origin.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant `us` after the origin.
    pub fn at(&self, us: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + Duration::from_micros(us))
    }
}

/// A body `<tag>=<n>;t=<µs>;xxx…` padded to `bytes`.
pub fn stamped_body(tag: &str, n: u64, t_us: u64, bytes: usize) -> String {
    let mut b = format!("{tag}={n};t={t_us};");
    while b.len() < bytes {
        b.push('x');
    }
    b
}

/// The `t=` stamp of a body made by [`stamped_body`] with `tag`.
pub fn stamp_of(body: &str, tag: &str) -> Option<u64> {
    let rest = body.strip_prefix(tag)?.strip_prefix('=')?;
    let mut parts = rest.split(';');
    parts.next()?;
    parts.next()?.strip_prefix("t=")?.parse().ok()
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    connected: AtomicU64,
    visitors_done: AtomicU64,
}

struct Hists {
    connect: Shared,
    session: Shared,
    hello_ack: Shared,
    ack: Shared,
    v2a: Shared,
    a2v: Shared,
    agent_ack: Shared,
}

/// What one visitor saw.
#[derive(Default)]
struct VisitorResult {
    conversation_id: Option<String>,
    hello_sent_us: u64,
    ledger: Ledger,
    queued: bool,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
    connect_failed: bool,
}

/// What one agent saw.
#[derive(Default)]
struct AgentResult {
    assigned_at: HashMap<String, u64>,
    ledgers: HashMap<String, Ledger>,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
}

/// One `burst` run.
#[derive(Debug, Clone, Serialize)]
pub struct BurstReport {
    /// `"burst"`.
    pub scenario: &'static str,
    /// What was loaded.
    pub target: String,
    /// The workload.
    pub workload: Burst,
    /// Visitor sockets opened.
    pub connected: u64,
    /// Conversations assigned to an agent.
    pub assigned: u64,
    /// Visitors that were told they wait in a queue.
    pub queued: u64,
    /// Due time → visitor socket open (widget session included).
    pub connect_latency: Latency,
    /// The widget session call alone.
    pub session_latency: Latency,
    /// First `send` → its ack (the conversation is created).
    pub first_ack_latency: Latency,
    /// First `send` → the assignee's socket has the `assigned` frame.
    pub time_to_assignment: Latency,
    /// Visitor messages: due → ack.
    pub visitor_ack_latency: Latency,
    /// Visitor messages: due → the agent receives them.
    pub visitor_to_agent: Latency,
    /// Agent answers: written → ack.
    pub agent_ack_latency: Latency,
    /// Agent answers: written → the visitor receives them.
    pub agent_to_visitor: Latency,
    /// Counts and correctness checks.
    pub checks: Checks,
    /// Resources from the first arrival to the end.
    pub usage: Usage,
    /// The servers' logs.
    pub server_log: LogCounts,
    /// Seconds from the first arrival until everything was answered (or the drain ended).
    pub seconds: f64,
    /// Seconds spent setting up.
    pub setup_seconds: f64,
}

impl BurstReport {
    /// Nothing lost, duplicated, reordered, refused, unassigned or unopened.
    pub fn clean(&self) -> bool {
        self.checks.failures().is_empty()
    }

    /// The human table.
    pub fn table(&self) -> String {
        let w = &self.workload;
        let mut s = format!(
            "burst on {}: {} visitors within {:?}, {} agents (capacity {} each), {} more messages per visitor every {:?}, agents {}\n",
            self.target,
            w.visitors,
            w.ramp,
            w.agents,
            w.capacity,
            w.messages,
            w.interval,
            if w.replies {
                "answer each"
            } else {
                "only read"
            }
        );
        s.push_str(&format!(
            "  connected {} of {}, assigned {}, queued {}, {:.1} s from the first arrival to the last answer\n",
            self.connected, w.visitors, self.assigned, self.queued, self.seconds
        ));
        s.push_str(&latency_header());
        for (name, l) in [
            ("connect (session + socket)", &self.connect_latency),
            ("  widget session", &self.session_latency),
            ("first send → ack", &self.first_ack_latency),
            ("time to assignment", &self.time_to_assignment),
            ("visitor send → ack", &self.visitor_ack_latency),
            ("visitor → agent", &self.visitor_to_agent),
            ("agent send → ack", &self.agent_ack_latency),
            ("agent → visitor", &self.agent_to_visitor),
        ] {
            s.push_str(&latency_line(name, l));
        }
        s.push_str(&checks_line(&self.checks));
        s.push_str(&usage_lines(&self.usage, &self.server_log));
        s
    }
}

/// Run the scenario once on `target`.
pub async fn run(target: &Target, w: &Burst) -> anyhow::Result<BurstReport> {
    if target.proto() == Proto::Relay {
        anyhow::bail!("burst needs routing: the relay has none (use steady or idle)");
    }
    let started = Instant::now();
    let mut cluster = target.start().await?;
    let result = run_on(&cluster, target, w, started).await;
    cluster.stop().await;
    result
}

async fn run_on(
    cluster: &Cluster,
    target: &Target,
    w: &Burst,
    started: Instant,
) -> anyhow::Result<BurstReport> {
    let proto = target.proto();
    let ws = Arc::new(Workspace::create(cluster, w.agents, Some(w.capacity)).await?);
    let mut agents = Vec::with_capacity(w.agents);
    for agent in &ws.agents {
        let (tx, rx) = agent_socket(cluster, proto, agent, Some(w.capacity)).await?;
        agents.push((tx, rx, agent.user_id.clone()));
    }
    let hists = Arc::new(Hists {
        connect: Shared::new()?,
        session: Shared::new()?,
        hello_ack: Shared::new()?,
        ack: Shared::new()?,
        v2a: Shared::new()?,
        a2v: Shared::new()?,
        agent_ack: Shared::new()?,
    });
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let clock = Clock {
        origin: Instant::now() + Duration::from_millis(100),
    };
    let setup_seconds = started.elapsed().as_secs_f64();
    let watch = Watch::of(
        cluster,
        matches!(target, Target::Spawn(o) if o.redis_url.is_some()),
    );
    let before = watch.snapshot().await;

    let agent_tasks: Vec<_> = agents
        .into_iter()
        .map(|(tx, rx, me)| {
            tokio::spawn(agent_task(
                proto,
                tx,
                rx,
                me,
                w.clone(),
                clock,
                hists.clone(),
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let ws_base = cluster.visitor_node().ws_base();
    let visitor_tasks: Vec<_> = (0..w.visitors)
        .map(|i| {
            tokio::spawn(visitor_task(
                proto,
                i,
                w.clone(),
                ws.clone(),
                ws_base.clone(),
                clock,
                hists.clone(),
                counters.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    // Wait until every visitor has all its acks and answers, or the drain ends.
    let last_due = w.ramp + w.interval * u32::try_from(w.messages).unwrap_or(u32::MAX);
    let deadline = clock.at(u64::try_from((last_due + w.drain).as_micros()).unwrap_or(u64::MAX));
    while counters.visitors_done.load(Ordering::SeqCst) < w.visitors as u64
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = clock.origin.elapsed().as_secs_f64();
    let after = watch.snapshot().await;
    // A moment for anything extra (a duplicate) to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send_replace(true);

    let mut checks = Checks::default();
    let mut visitors = Vec::with_capacity(w.visitors);
    for t in visitor_tasks {
        match t.await {
            Ok(v) => visitors.push(v),
            Err(e) => *checks.socket_failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let mut assigned_at: HashMap<String, u64> = HashMap::new();
    let mut agent_ledgers: HashMap<String, Ledger> = HashMap::new();
    for t in agent_tasks {
        match t.await {
            Ok(a) => {
                for (code, n) in a.errors {
                    *checks.errors.entry(code).or_default() += n;
                }
                if let Some(f) = a.failure {
                    *checks.socket_failures.entry(f).or_default() += 1;
                }
                assigned_at.extend(a.assigned_at);
                agent_ledgers.extend(a.ledgers);
            }
            Err(e) => *checks.socket_failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let tta = Shared::new()?;
    let mut queued = 0;
    for v in &visitors {
        for (code, n) in &v.errors {
            *checks.errors.entry(code.clone()).or_default() += n;
        }
        if let Some(f) = &v.failure {
            *checks.socket_failures.entry(f.clone()).or_default() += 1;
        }
        if v.connect_failed {
            checks.connect_failures += 1;
        }
        queued += u64::from(v.queued);
        let Some(conv) = &v.conversation_id else {
            continue;
        };
        let agent = agent_ledgers.get(conv);
        let top = v
            .ledger
            .top()
            .max(agent.map(Ledger::top).unwrap_or_default());
        v.ledger.check(top, &mut checks);
        match (agent, assigned_at.get(conv)) {
            (Some(l), Some(at)) => {
                l.check(top, &mut checks);
                tta.record(at.saturating_sub(v.hello_sent_us));
            }
            _ => checks.unassigned += 1,
        }
    }
    checks.sent = counters.sent.load(Ordering::SeqCst);
    checks.acked = counters.acked.load(Ordering::SeqCst);
    checks.unacked = checks
        .sent
        .saturating_sub(checks.acked + counters.refused.load(Ordering::SeqCst));
    let (warnings, errors) = cluster.log_counts();
    Ok(BurstReport {
        scenario: "burst",
        target: target.describe(),
        workload: w.clone(),
        connected: counters.connected.load(Ordering::SeqCst),
        assigned: assigned_at.len() as u64,
        queued,
        connect_latency: hists.connect.latency(),
        session_latency: hists.session.latency(),
        first_ack_latency: hists.hello_ack.latency(),
        time_to_assignment: tta.latency(),
        visitor_ack_latency: hists.ack.latency(),
        visitor_to_agent: hists.v2a.latency(),
        agent_ack_latency: hists.agent_ack.latency(),
        agent_to_visitor: hists.a2v.latency(),
        usage: watch.usage(&before, &after, checks.acked),
        checks,
        server_log: LogCounts { warnings, errors },
        seconds,
        setup_seconds,
    })
}

/// Due time of visitor `i`'s arrival, µs.
fn arrival_us(w: &Burst, i: usize) -> u64 {
    (w.ramp.as_secs_f64() * 1e6 * i as f64 / w.visitors as f64) as u64
}

#[allow(clippy::too_many_arguments)]
async fn visitor_task(
    proto: Proto,
    i: usize,
    w: Burst,
    ws: Arc<Workspace>,
    ws_base: String,
    clock: Clock,
    hists: Arc<Hists>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> VisitorResult {
    let mut r = VisitorResult::default();
    let due = arrival_us(&w, i);
    tokio::time::sleep_until(clock.at(due)).await;
    let bind: Ipv4Addr = conn::spread_address(i, w.per_address);
    let opened = async {
        let token = ws.visitor_token().await?;
        hists.session.record(clock.now_us().saturating_sub(due));
        conn::connect(proto, &ws_base, Who::Visitor { token: &token }, Some(bind)).await
    };
    let (tx, mut rx): (Tx, Rx) = match opened.await {
        Ok(c) => c,
        Err(e) => {
            r.connect_failed = true;
            r.failure = Some(format!("visitor connect: {e:#}"));
            counters.visitors_done.fetch_add(1, Ordering::SeqCst);
            return r;
        }
    };
    hists.connect.record(clock.now_us().saturating_sub(due));
    counters.connected.fetch_add(1, Ordering::SeqCst);

    // The first message starts the conversation; the next ones go to the same one (a
    // visitor's send without conversation_id posts in their newest open conversation).
    r.hello_sent_us = clock.now_us();
    let hello = stamped_body("h", 0, r.hello_sent_us, w.body_bytes);
    if let Err(e) = tx.send(proto.send(None, HELLO, &hello, 0)).await {
        r.failure = Some(format!("visitor write failed: {e}"));
        counters.visitors_done.fetch_add(1, Ordering::SeqCst);
        return r;
    }
    counters.sent.fetch_add(1, Ordering::SeqCst);
    let expected_acks = 1 + w.messages;
    let expected_answers = if w.replies { 1 + w.messages } else { 0 };
    let (mut acks, mut answers) = (0u64, 0u64);
    let mut done = false;
    let mut k = 1u64;
    let interval_us = u64::try_from(w.interval.as_micros()).unwrap_or(u64::MAX);
    loop {
        let next_send = (k <= w.messages).then(|| due + k * interval_us);
        let sleep = async {
            match next_send {
                Some(t) => tokio::time::sleep_until(clock.at(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            () = sleep => {
                let t = due + k * interval_us;
                let frame = proto.send(None, &k.to_string(), &stamped_body("k", k, t, w.body_bytes), k);
                if let Err(e) = tx.send(frame).await {
                    r.failure = Some(format!("visitor write failed: {e}"));
                    break;
                }
                counters.sent.fetch_add(1, Ordering::SeqCst);
                k += 1;
            }
            msg = rx.next() => {
                let text = match msg {
                    Incoming::Text(t) => t,
                    Incoming::Closed(why) => {
                        r.failure = Some(format!("visitor socket {why}"));
                        break;
                    }
                };
                let now = clock.now_us();
                match proto.decode(&text) {
                    Event::Ack { client_id, conversation_id, seq } => {
                        counters.acked.fetch_add(1, Ordering::SeqCst);
                        acks += 1;
                        if let Some(seq) = seq {
                            r.ledger.acked(seq);
                        }
                        match client_id.as_deref() {
                            Some(HELLO) => {
                                hists.hello_ack.record(now.saturating_sub(r.hello_sent_us));
                                r.conversation_id = conversation_id.map(|c| c.into_owned());
                            }
                            Some(c) => {
                                if let Ok(k) = c.parse::<u64>() {
                                    hists.ack.record(now.saturating_sub(due + k * interval_us));
                                }
                            }
                            None => {}
                        }
                    }
                    Event::Message { seq, body, .. } => {
                        r.ledger.received(seq);
                        if let Some(t) = stamp_of(&body, "r") {
                            hists.a2v.record(now.saturating_sub(t));
                            answers += 1;
                        }
                    }
                    Event::Queue { .. } => r.queued = true,
                    Event::Error { code, .. } => {
                        counters.refused.fetch_add(1, Ordering::SeqCst);
                        *r.errors.entry(code.into_owned()).or_default() += 1;
                    }
                    Event::Unreadable => {
                        *r.errors.entry("unreadable frame".into()).or_default() += 1;
                    }
                    _ => {}
                }
                if !done && acks >= expected_acks && answers >= expected_answers {
                    done = true;
                    counters.visitors_done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
    if !done {
        counters.visitors_done.fetch_add(1, Ordering::SeqCst);
    }
    tx.close().await;
    r
}

#[allow(clippy::too_many_arguments)]
async fn agent_task(
    proto: Proto,
    tx: Tx,
    mut rx: Rx,
    me: String,
    w: Burst,
    clock: Clock,
    hists: Arc<Hists>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> AgentResult {
    let mut r = AgentResult::default();
    // Reply client id → when it was written.
    let mut written: HashMap<String, u64> = HashMap::new();
    loop {
        let text = match rx.next_or_stop(&mut stop).await {
            Some(Ok(t)) => t,
            Some(Err(why)) => {
                r.failure = Some(format!("agent socket {why}"));
                break;
            }
            None => break,
        };
        let now = clock.now_us();
        match proto.decode(&text) {
            Event::Conversation {
                event,
                conversation_id,
                assignee_id,
            } if event == "assigned" && assignee_id.as_deref() == Some(me.as_str()) => {
                if r.assigned_at.contains_key(conversation_id.as_ref()) {
                    continue;
                }
                r.assigned_at.insert(conversation_id.to_string(), now);
                r.ledgers
                    .insert(conversation_id.to_string(), Ledger::default());
                let resume = proto.resume(&json_str(&conversation_id), 0);
                if let Err(e) = tx.send(resume).await {
                    r.failure = Some(format!("agent write failed: {e}"));
                    break;
                }
            }
            Event::Message {
                conversation_id,
                seq,
                body,
            } => {
                let Some(ledger) = r.ledgers.get_mut(conversation_id.as_ref()) else {
                    continue;
                };
                // The agent `resume`d from 0 when it was assigned; a socket that already
                // followed the conversation may get again what it had (docs/protocol.md), so
                // messages are de-duplicated by seq, as the protocol asks of clients, and each
                // is answered once.
                if !ledger.received_dedup(seq) {
                    continue;
                }
                let visitor_message = stamp_of(&body, "k");
                if let Some(t) = visitor_message {
                    hists.v2a.record(now.saturating_sub(t));
                }
                if w.replies && (visitor_message.is_some() || stamp_of(&body, "h").is_some()) {
                    let client_id = format!("r{seq}");
                    let t = clock.now_us();
                    let frame = proto.send(
                        Some(&json_str(&conversation_id)),
                        &client_id,
                        &stamped_body("r", seq, t, w.body_bytes),
                        seq,
                    );
                    written.insert(format!("{conversation_id}/{client_id}"), t);
                    if let Err(e) = tx.send(frame).await {
                        r.failure = Some(format!("agent write failed: {e}"));
                        break;
                    }
                    counters.sent.fetch_add(1, Ordering::SeqCst);
                }
            }
            Event::Ack {
                client_id,
                conversation_id,
                seq,
            } => {
                counters.acked.fetch_add(1, Ordering::SeqCst);
                if let (Some(c), Some(conv)) = (client_id, conversation_id) {
                    if let Some(t) = written.remove(&format!("{conv}/{c}")) {
                        hists.agent_ack.record(now.saturating_sub(t));
                    }
                    if let (Some(l), Some(seq)) = (r.ledgers.get_mut(conv.as_ref()), seq) {
                        l.acked(seq);
                    }
                }
            }
            Event::Error { code, .. } => {
                counters.refused.fetch_add(1, Ordering::SeqCst);
                *r.errors.entry(code.into_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
    tx.close().await;
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn stamps_round_trip_through_bodies() {
        let b = stamped_body("r", 7, 123_456, 120);
        assert_eq!(b.len(), 120);
        assert_eq!(stamp_of(&b, "r"), Some(123_456));
        assert_eq!(stamp_of(&b, "k"), None);
        assert_eq!(stamp_of("k=1;xx", "k"), None);
    }

    #[test]
    fn arrivals_spread_evenly_over_the_ramp() {
        let w = crate::scenario::BurstKnobs {
            visitors: Some(4),
            ramp: Some("2s".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(arrival_us(&w, 0), 0);
        assert_eq!(arrival_us(&w, 1), 500_000);
        assert_eq!(arrival_us(&w, 3), 1_500_000);
    }
}
