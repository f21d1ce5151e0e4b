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
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _, TryStreamExt as _};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Api, Login};
use crate::metrics::{EngineFigures, Scrape};
use crate::node::{Node, Target};
use crate::procstat::Watch;
use crate::report::{Checks, Latency, LogCounts, MaxRateReport, SteadyReport, histogram};
use crate::scenario::Steady;
use crate::ws::{self, Frame, Payload, Socket};

/// HTTP calls and handshakes in flight at once during setup.
const SETUP_CONCURRENCY: usize = 16;
/// Longest wait for one setup step's answer (a presence frame, an ack, deliveries).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// After the visitors stop, how long agents may take to receive the last acked messages.
const AGENT_GRACE: Duration = Duration::from_secs(5);
/// The client id of each visitor's first message (the one that opens the conversation).
const HELLO: &str = "hello";

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
    socket: Socket,
    conversation_id: String,
    hello_seq: u64,
}

/// Run the scenario once on `target` (starting and stopping it when spawned).
pub async fn run(target: &Target, w: &Steady) -> anyhow::Result<SteadyReport> {
    let started = Instant::now();
    let mut node = target.start().await?;
    let result = run_on(&node, target, w, started).await;
    node.stop().await;
    result
}

async fn next_frame(stream: &mut SplitStream<Socket>) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(SETUP_TIMEOUT, stream.next()).await {
            Err(_) => bail!("no frame within {SETUP_TIMEOUT:?}"),
            Ok(None) => bail!("socket closed"),
            Ok(Some(Err(e))) => bail!("socket failed: {e}"),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Close(c)))) => bail!("socket closed by the server: {c:?}"),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Open an agent socket and wait for the agent's own presence (its workspace
/// subscription is then in place).
async fn agent_socket(node: &Node, agent: &Login) -> anyhow::Result<Socket> {
    let socket = ws::connect(&format!(
        "{}/ws/agent?token={}",
        node.ws_base(),
        agent.token
    ))
    .await?;
    let (sink, mut stream) = socket.split();
    loop {
        let text = next_frame(&mut stream).await.context("agent socket")?;
        if let Ok(f) = serde_json::from_str::<Frame>(&text)
            && f.ty == "presence"
            && f.user_id.as_deref() == Some(agent.user_id.as_str())
        {
            break;
        }
    }
    sink.reunite(stream).context("reuniting the agent socket")
}

/// A new visitor: widget session, socket, first message (which opens the conversation).
async fn visitor(node: &Node, api: &Api, channel_id: &str, i: usize) -> anyhow::Result<Visitor> {
    let token = api.widget_session(channel_id).await?;
    let socket = ws::connect(&format!("{}/ws/visitor?token={token}", node.ws_base())).await?;
    let (mut sink, mut stream) = socket.split();
    let hello = serde_json::json!({
        "type": "send", "client_id": HELLO, "body": format!("hello from visitor {i}")
    });
    sink.send(Message::text(hello.to_string())).await?;
    loop {
        let text = next_frame(&mut stream)
            .await
            .with_context(|| format!("visitor {i}: waiting for the first ack"))?;
        let f: Frame = serde_json::from_str(&text)?;
        match f.ty.as_ref() {
            "ack" if f.client_id.as_deref() == Some(HELLO) => {
                let conversation_id = f
                    .conversation_id
                    .context("an ack without conversation_id")?
                    .into_owned();
                return Ok(Visitor {
                    socket: sink.reunite(stream)?,
                    conversation_id,
                    hello_seq: f.seq.unwrap_or(1),
                });
            }
            "error" => bail!("visitor {i}: first message refused: {text}"),
            _ => {}
        }
    }
}

async fn run_on(
    node: &Node,
    target: &Target,
    w: &Steady,
    started: Instant,
) -> anyhow::Result<SteadyReport> {
    let c = w.conversations;
    let api = Api::new(&node.address)?;
    let admin = api
        .login(&node.admin_email, &node.admin_password)
        .await
        .context("logging in as the admin")?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = &run_id[..12];

    // Agents, and an inbox with them as members.
    let mut agents = Vec::with_capacity(w.agents);
    for a in 0..w.agents {
        let agent = api
            .create_agent(&admin, &format!("agent{a}-{run_id}@load.test"))
            .await
            .context("creating an agent")?;
        agents.push(agent);
    }
    let member_ids: Vec<String> = agents.iter().map(|a| a.user_id.clone()).collect();
    let channel_id = api
        .create_chat(&admin, &format!("Load {run_id}"), &member_ids)
        .await
        .context("creating the inbox and chat channel")?;
    let mut agent_sockets = Vec::with_capacity(w.agents);
    for agent in &agents {
        agent_sockets.push(agent_socket(node, agent).await?);
    }

    // Visitors, each opening a conversation.
    let visitors: Vec<Visitor> = futures_util::stream::iter(0..c)
        .map(|i| {
            let api = &api;
            let channel_id = &channel_id;
            async move { visitor(node, api, channel_id, i).await }
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
    let mut agent_sinks = Vec::with_capacity(w.agents);
    for (a, socket) in agent_sockets.into_iter().enumerate() {
        let (mut sink, stream) = socket.split();
        let convs: HashMap<String, usize> = visitors
            .iter()
            .enumerate()
            .filter(|(i, _)| i % w.agents == a)
            .map(|(i, v)| (v.conversation_id.clone(), i))
            .collect();
        let ids: Vec<String> = convs.keys().cloned().collect();
        agent_tasks.push(tokio::spawn(agent_task(
            stream,
            histogram()?,
            convs,
            origin_rx.clone(),
            counters.clone(),
            agents_stop.clone(),
        )));
        for id in ids {
            let resume =
                serde_json::json!({"type": "resume", "conversation_id": id, "after_seq": 0});
            sink.feed(Message::text(resume.to_string())).await?;
        }
        sink.flush().await?;
        agent_sinks.push(sink);
    }
    let expected_hellos: u64 = visitors.iter().map(|v| v.hello_seq).sum();
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
    let mut visitor_tasks = Vec::with_capacity(c);
    for (i, v) in visitors.into_iter().enumerate() {
        visitor_tasks.push(tokio::spawn(visitor_task(
            i,
            v,
            histogram()?,
            schedule,
            w.body_bytes,
            counters.clone(),
            visitors_stop.clone(),
        )));
    }
    let watch = Watch {
        server_pid: node.pid(),
        names: match target {
            Target::Spawn(o) => {
                let mut names = Vec::new();
                if o.database_url.is_some() {
                    names.push("postgres".to_owned());
                }
                if o.redis_url.is_some() {
                    names.push("redis-server".to_owned());
                }
                names
            }
            Target::Remote { .. } => Vec::new(),
        },
        ticks: crate::procstat::clock_ticks(),
    };
    tokio::time::sleep_until(schedule.instant(schedule.window_start_us)).await;
    let before = watch.snapshot();
    let scrape_before = Scrape::fetch(api.http(), &node.address).await;
    tokio::time::sleep_until(schedule.instant(schedule.end_us)).await;
    let after = watch.snapshot();
    let scrape_after = Scrape::fetch(api.http(), &node.address).await;

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
                    for seq in 1..=top {
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
    for mut sink in agent_sinks {
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
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
        server_log: LogCounts {
            warnings: node.log.warnings.load(Ordering::Relaxed),
            errors: node.log.errors.load(Ordering::Relaxed),
        },
        setup_seconds,
    })
}

/// The text of message `k` of a conversation (`conversation` is JSON-quoted already).
fn send_frame(conversation: &str, k: u64, body_bytes: usize) -> String {
    let mut body = format!("k={k};");
    while body.len() < body_bytes {
        body.push('x');
    }
    format!(
        r#"{{"type":"send","client_id":"{k}","conversation_id":{conversation},"body":"{body}"}}"#
    )
}

/// Write conversation `i`'s messages on schedule until the end; returns why it stopped
/// early, if it did.
async fn send_on_schedule(
    sink: &mut SplitSink<Socket, Message>,
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
        while schedule.at(i, k) <= now && schedule.at(i, k) < schedule.end_us {
            if let Err(e) = sink
                .feed(Message::text(send_frame(conversation, k, body_bytes)))
                .await
            {
                return Some(format!("visitor socket write failed: {e}"));
            }
            counters.sent.fetch_add(1, Ordering::SeqCst);
            k += 1;
        }
        if let Err(e) = sink.flush().await {
            return Some(format!("visitor socket write failed: {e}"));
        }
    }
}

async fn visitor_task(
    i: usize,
    v: Visitor,
    acks: Histogram<u64>,
    schedule: Schedule,
    body_bytes: usize,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> VisitorStats {
    let (mut sink, mut stream) = v.socket.split();
    let conversation = serde_json::Value::String(v.conversation_id).to_string();
    let send = async {
        let failure =
            send_on_schedule(&mut sink, i, &conversation, schedule, body_bytes, &counters).await;
        counters.senders_done.fetch_add(1, Ordering::SeqCst);
        failure
    };
    let read = async {
        let mut s = VisitorStats {
            acks,
            acked_in_window: 0,
            max_seq: v.hello_seq,
            acks_out_of_order: 0,
            errors: BTreeMap::new(),
            failure: None,
        };
        let mut last_seq = v.hello_seq;
        loop {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                _ = stop.changed() => break,
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => {
                    s.failure = Some(format!(
                        "visitor socket closed by the server ({})",
                        c.map(|c| u16::from(c.code)).unwrap_or(0)
                    ));
                    break;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    s.failure = Some(format!("visitor socket failed: {e}"));
                    break;
                }
                None => {
                    s.failure = Some("visitor socket closed".into());
                    break;
                }
            };
            let now = schedule.now_us();
            let Ok(f) = serde_json::from_str::<Frame>(&text) else {
                *s.errors.entry("unreadable frame".into()).or_default() += 1;
                continue;
            };
            match f.ty.as_ref() {
                "ack" => {
                    counters.acked.fetch_add(1, Ordering::SeqCst);
                    if let Some(seq) = f.seq {
                        if seq <= last_seq {
                            s.acks_out_of_order += 1;
                        }
                        last_seq = last_seq.max(seq);
                        s.max_seq = s.max_seq.max(seq);
                    }
                    if let Some(k) = f.client_id.and_then(|c| c.parse::<u64>().ok()) {
                        let due = schedule.at(i, k);
                        if schedule.measured(due) {
                            s.acks.saturating_record(now.saturating_sub(due).max(1));
                        }
                    }
                    if schedule.measured(now) {
                        s.acked_in_window += 1;
                    }
                }
                "error" => {
                    counters.refused.fetch_add(1, Ordering::SeqCst);
                    let code = f.code.as_deref().unwrap_or("unknown").to_owned();
                    *s.errors.entry(code).or_default() += 1;
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
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    stats
}

async fn agent_task(
    mut stream: SplitStream<Socket>,
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
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = stop.changed() => break,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                a.failure = Some(format!(
                    "agent socket closed by the server ({})",
                    c.map(|c| u16::from(c.code)).unwrap_or(0)
                ));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                a.failure = Some(format!("agent socket failed: {e}"));
                break;
            }
            None => {
                a.failure = Some("agent socket closed".into());
                break;
            }
        };
        let Ok(f) = serde_json::from_str::<Frame>(&text) else {
            continue;
        };
        let Some(Payload::Message(m)) = f.message.filter(|_| f.ty == "message") else {
            continue;
        };
        let Some(&i) = convs.get(m.conversation_id.as_ref()) else {
            continue;
        };
        counters.delivered.fetch_add(1, Ordering::SeqCst);
        let sched = *schedule.borrow();
        let now = sched.now_us();
        if let Some(seen) = a.seen.get_mut(&i) {
            let at = usize::try_from(m.seq).unwrap_or(usize::MAX);
            if seen.len() <= at {
                seen.resize(at + 1, 0);
            }
            if let Some(n) = seen.get_mut(at) {
                *n += 1;
            }
        }
        let top = highest.entry(i).or_default();
        if m.seq < *top {
            a.reordered += 1;
        }
        *top = (*top).max(m.seq);
        let k = m
            .body
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
        let f = send_frame("\"c1\"", 42, 120);
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
