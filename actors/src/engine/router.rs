//! The Router: automatic assignment for `round_robin` inboxes. One per node, started
//! once. The routing state of an inbox (its pool's presence, load, capacity and
//! rotation, and the FIFO queue of waiting conversations) lives in the backplane under
//! `routing:{inbox_id}` and changes only by compare-and-set: read, apply the pure
//! policy ([`crate::routing`]), write back if nobody wrote in between, else retry. So
//! nodes assigning at the same moment never put an agent over capacity and never
//! assign one conversation twice.
//!
//! Loads and waiting conversations come from the store (durable truth): the state is
//! rebuilt from it when missing and re-synchronised on every event that changes loads
//! (close, manual assignment, membership) — so a crashed node leaves no phantom load.
//! Presence is re-read from the backplane at every decision.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::events::{ConvEvent, WsEvent};
use super::{conversation_topic, presence_key, workspace_topic};
use crate::backplane::{Event, Payload, SharedBackplane, payload};
use crate::protocol::ConversationEvent;
use crate::routing::{AgentState, Assignment, Outcome, RoutingState};
use crate::store::{RoutingSnapshot, SharedStore};

/// Compare-and-set attempts before an event is given up (and logged).
const MAX_ATTEMPTS: usize = 100;
/// Routing state not written for this long is dropped and rebuilt from the store.
const STATE_TTL: Duration = Duration::from_secs(3600);

/// A conversation arrived in an inbox (route it, or queue it).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Arrived {
    /// Workspace.
    pub workspace_id: String,
    /// Inbox.
    pub inbox_id: String,
    /// The new conversation.
    pub conversation_id: String,
}

/// Loads or the pool of an inbox changed (close, reopen, manual assignment,
/// membership, settings): re-read them from the store and drain the queue.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Resync {
    /// Workspace.
    pub workspace_id: String,
    /// Inbox.
    pub inbox_id: String,
}

/// The node's router.
pub struct Router {
    store: SharedStore,
    backplane: SharedBackplane,
    /// Inboxes this node has routed for, by workspace (presence changes resync them).
    inboxes: HashMap<String, HashSet<String>>,
    /// Inboxes with a routing step in flight on this node.
    busy: HashSet<String>,
    /// Work for the next step of each inbox.
    pending: HashMap<String, Pending>,
    /// Last presence seen per user: heartbeats re-announce it, only changes matter.
    presence: HashMap<String, crate::protocol::PresenceState>,
    /// Per inbox, the recent average wait (seconds) of conversations that queued:
    /// an exponentially weighted moving average, for `queue` estimates.
    avg_wait: HashMap<String, f64>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

fn state_key(inbox_id: &str) -> String {
    format!("routing:{inbox_id}")
}

/// What one routing step decided.
#[derive(Debug, Default)]
struct Decision {
    assignments: Vec<Assignment>,
    /// Each agent's capacity, for the store's own check.
    capacities: HashMap<String, Option<u32>>,
    /// The assignments that took a conversation off the queue (it had waited).
    from_queue: HashSet<String>,
    /// Queue positions that changed: (conversation, new position).
    positions: Vec<(String, usize)>,
}

impl Router {
    /// Start the router (supervised).
    pub fn start(store: SharedStore, backplane: SharedBackplane) -> Addr<Self> {
        Supervisor::start(move |_| Router {
            store,
            backplane,
            inboxes: HashMap::new(),
            busy: HashSet::new(),
            pending: HashMap::new(),
            presence: HashMap::new(),
            avg_wait: HashMap::new(),
        })
    }

    fn remember(&mut self, workspace_id: &str, inbox_id: &str, ctx: &mut Context<Self>) {
        if !self.inboxes.contains_key(workspace_id) {
            let rx = self.backplane.subscribe(&workspace_topic(workspace_id));
            ctx.add_stream(BroadcastStream::new(rx));
        }
        self.inboxes
            .entry(workspace_id.to_owned())
            .or_default()
            .insert(inbox_id.to_owned());
    }

    /// Queue work for an inbox; one step per inbox runs at a time on this node, and it
    /// takes everything that queued up meanwhile (arrivals are routed in batches).
    fn run(
        &mut self,
        workspace_id: String,
        inbox_id: String,
        arrival: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        self.remember(&workspace_id, &inbox_id, ctx);
        let work = self.pending.entry(inbox_id.clone()).or_default();
        work.workspace_id = workspace_id;
        match arrival {
            Some(id) => work.arrivals.push(id),
            None => work.resync = true,
        }
        self.step(inbox_id, ctx);
    }

    fn step(&mut self, inbox_id: String, ctx: &mut Context<Self>) {
        if self.busy.contains(&inbox_id) {
            return;
        }
        let Some(work) = self.pending.remove(&inbox_id) else {
            return;
        };
        self.busy.insert(inbox_id.clone());
        let store = self.store.clone();
        let backplane = self.backplane.clone();
        let inbox = inbox_id.clone();
        let avg_wait = self.avg_wait.get(&inbox_id).copied();
        async move {
            let started = std::time::Instant::now();
            let decision = route(
                &*store,
                &backplane,
                &work.workspace_id,
                &inbox,
                &work.arrivals,
                work.resync,
            )
            .await;
            // The decision alone (state read, presence, policy, compare-and-set), apart
            // from storing it: `parley_routing_step_seconds` covers both.
            metrics::histogram!("parley_routing_decision_seconds")
                .record(started.elapsed().as_secs_f64());
            let (stale, waits) = match decision {
                Ok(Some(d)) => {
                    apply(&*store, &backplane, &work.workspace_id, &inbox, d, started, avg_wait)
                        .await
                }
                Ok(None) => (false, Vec::new()),
                Err(e) => {
                    metrics::counter!("parley_routing_failures_total").increment(1);
                    tracing::warn!(inbox_id = %inbox, error = %e, "Routing step failed; the next event retries");
                    (false, Vec::new())
                }
            };
            (stale, waits, work.workspace_id)
        }
        .into_actor(self)
        .map(move |(stale, waits, workspace_id), act, ctx| {
            act.busy.remove(&inbox_id);
            for wait in waits {
                let avg = act.avg_wait.entry(inbox_id.clone()).or_insert(wait);
                *avg = 0.8 * *avg + 0.2 * wait;
            }
            if stale {
                // An assignment was refused (closed, taken, or at capacity meanwhile):
                // re-read the store and route what still waits.
                let work = act.pending.entry(inbox_id.clone()).or_default();
                work.workspace_id = workspace_id;
                work.resync = true;
            }
            act.step(inbox_id, ctx);
        })
        .spawn(ctx);
    }
}

impl Router {
    /// The inbox's offline policy `return`: once the agent has been offline for the
    /// grace period, their open conversations go back to the queue (every node may do
    /// it; the store's conditional update makes it happen once) and are routed again.
    fn return_when_still_offline(
        &mut self,
        workspace_id: String,
        inbox_id: String,
        agent_id: String,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let backplane = self.backplane.clone();
        let (ws, inbox) = (workspace_id.clone(), inbox_id.clone());
        async move {
            let snapshot = store.routing_snapshot(&inbox).await.ok().flatten()?;
            let grace = snapshot.return_after?;
            tokio::time::sleep(grace).await;
            let sessions = backplane
                .set_members(&presence_key(&ws, &agent_id))
                .await
                .ok()?;
            if !sessions.is_empty() {
                return None; // back in time
            }
            let returned = store
                .return_conversations(&inbox, &agent_id, "returned: agent offline")
                .await
                .ok()?;
            for record in &returned {
                metrics::counter!("parley_assignments_total", "reason" => "returned_offline")
                    .increment(1);
                super::announce_conversation(
                    &backplane,
                    &ws,
                    ConversationEvent::Assigned,
                    record.to_object(),
                )
                .await;
            }
            (!returned.is_empty()).then_some(())
        }
        .into_actor(self)
        .map(move |returned, act, ctx| {
            if returned.is_some() {
                act.run(workspace_id, inbox_id, None, ctx);
            }
        })
        .spawn(ctx);
    }
}

/// Work waiting for an inbox's next routing step.
#[derive(Debug, Default)]
struct Pending {
    workspace_id: String,
    arrivals: Vec<String>,
    resync: bool,
}

/// An inbox's shared routing state: the policy's state, and the conversations assigned
/// most recently (so that an arrival already routed by another node, or by a resync's
/// drain, is not routed again).
///
/// Only the last [`RECENT_ASSIGNED`] are kept: the state is read and written whole at
/// every step, and a set of *every* open assignment made each step cost O(conversations)
/// (a 10,000-visitor burst spent a quarter of the engine thread decoding, cloning and
/// encoding it). An arrival is announced once, right after its first message commits,
/// so a repeat can only race with the steps just before it; should one slip past the
/// window anyway, the store's conditional assignment refuses it and the step resyncs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct InboxState {
    policy: RoutingState,
    /// Named apart from the list an older build wrote as `recent` (ignored when read).
    #[serde(default)]
    recently_assigned: Recent,
}

/// How many of the latest assignments an inbox's state remembers.
///
/// A resync's drain on another node can assign hundreds of conversations in one step, so
/// the window must hold more than the steps just before an arrival: with 256 a test of
/// two nodes and 500 simultaneous arrivals (`multinode.rs`) failed about once in seven
/// runs — an arrival already assigned by a drain was queued again, a phantom ahead of
/// real waiters (position 244 where 1 was due).
const RECENT_ASSIGNED: usize = 2048;

/// Conversation ids, oldest first, as one `\n`-separated string: encoded and decoded
/// as a single JSON string, with no allocation per id. A list of strings here (2,048
/// of them) was most of a routing step's time in a burst: a set cloned from it, then
/// each id decoded, freed and encoded again at every step.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Recent(String);

impl Recent {
    fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split('\n').filter(|id| !id.is_empty())
    }

    /// Remember `ids` (an id holding a newline cannot be, and is left out: the store's
    /// conditional assignment still refuses a repeat of it), keeping the last `keep`.
    fn push_all<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>, keep: usize) {
        for id in ids
            .into_iter()
            .filter(|id| !id.is_empty() && !id.contains('\n'))
        {
            if !self.0.is_empty() {
                self.0.push('\n');
            }
            self.0.push_str(id);
        }
        let mut seen = 0;
        let cut = self
            .0
            .bytes()
            .enumerate()
            .rev()
            .filter(|&(_, b)| b == b'\n')
            .find(|_| {
                seen += 1;
                seen == keep
            });
        if let Some((at, _)) = cut {
            self.0.drain(..=at);
        } else if keep == 0 {
            self.0.clear();
        }
    }
}

/// Build the state of an inbox from the store, keeping the rotation of `previous`.
async fn rebuild(
    snapshot: &RoutingSnapshot,
    previous: Option<&RoutingState>,
    backplane: &SharedBackplane,
) -> Result<RoutingState, String> {
    let mut state = RoutingState::new();
    if let Some(p) = previous {
        state.counter = p.counter;
    }
    for m in &snapshot.pool {
        let mut agent = AgentState::new(m.user_id.clone());
        agent.load = m.load;
        agent.capacity = m.capacity;
        agent.last_assigned = previous
            .and_then(|p| p.agent(&m.user_id))
            .map_or(0, |a| a.last_assigned);
        state.agents.push(agent);
    }
    state.queue = snapshot.waiting.iter().cloned().collect();
    refresh_presence(&mut state, &snapshot.workspace_id, backplane).await?;
    Ok(state)
}

/// Re-read every pool member's presence (online = at least one online session).
async fn refresh_presence(
    state: &mut RoutingState,
    workspace_id: &str,
    backplane: &SharedBackplane,
) -> Result<(), String> {
    for agent in &mut state.agents {
        let members = backplane
            .set_members(&presence_key(workspace_id, &agent.id))
            .await
            .map_err(|e| e.to_string())?;
        agent.present = members.iter().any(|m| m.ends_with("\tonline"));
    }
    Ok(())
}

/// One compare-and-set routing step; `None` for inboxes that route by hand.
async fn route(
    store: &dyn crate::store::Store,
    backplane: &SharedBackplane,
    workspace_id: &str,
    inbox_id: &str,
    arrivals: &[String],
    resync: bool,
) -> Result<Option<Decision>, String> {
    let key = state_key(inbox_id);
    for _ in 0..MAX_ATTEMPTS {
        let raw = backplane.get(&key).await.map_err(|e| e.to_string())?;
        // Taken apart, not cloned: with a burst waiting, the state is large.
        let (previous, mut recent) = match raw
            .as_deref()
            .and_then(|r| serde_json::from_str::<InboxState>(r).ok())
        {
            Some(InboxState {
                policy,
                recently_assigned,
            }) => (Some(policy), recently_assigned),
            None => (None, Recent::default()),
        };
        let arriving: HashSet<&str> = arrivals.iter().map(String::as_str).collect();
        // The arrivals routed already (by another node, or by a resync's drain).
        let mut assigned: HashSet<String> = recent
            .iter()
            .filter(|id| arriving.contains(id))
            .map(str::to_owned)
            .collect();
        // Without state, or on a resync, the store says what loads and the queue are.
        let mut state = match previous {
            // Arrivals with state in place: only presence needs a fresh look.
            Some(mut s) if !resync => {
                refresh_presence(&mut s, workspace_id, backplane).await?;
                s
            }
            // No state yet, or a resync: the store says what loads and the queue are.
            previous => {
                let snapshot = store
                    .routing_snapshot(inbox_id)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(snapshot) = snapshot.filter(|s| s.round_robin) else {
                    // Gone, or routed by hand now: no state may linger.
                    if previous.is_some() {
                        let _ = backplane.delete(&key).await;
                    }
                    return Ok(None);
                };
                assigned.extend(
                    snapshot
                        .assigned
                        .iter()
                        .filter(|id| arriving.contains(id.as_str()))
                        .cloned(),
                );
                rebuild(&snapshot, previous.as_ref(), backplane).await?
            }
        };
        // Everything here is linear in the queue and the arrivals: a burst leaves
        // thousands waiting, and this runs on the engine's thread.
        let before: HashMap<String, usize> = state
            .queue
            .iter()
            .enumerate()
            .map(|(index, id)| (id.clone(), index))
            .collect();
        let mut assignments = state.drain();
        let from_queue: HashSet<String> = assignments
            .iter()
            .map(|a| a.conversation_id.clone())
            .filter(|id| !arriving.contains(id.as_str()))
            .collect();
        // Routed already (by this step's drain, or by another node), or listed twice:
        // never assigned twice.
        let mut seen: HashSet<&str> = assignments
            .iter()
            .map(|a| a.conversation_id.as_str())
            .collect();
        let fresh: Vec<String> = arrivals
            .iter()
            .filter(|id| !assigned.contains(*id) && seen.insert(id.as_str()))
            .cloned()
            .collect();
        for outcome in state.arrive_all(fresh) {
            if let Outcome::Assigned {
                conversation_id,
                agent_id,
            } = outcome
            {
                assignments.push(Assignment {
                    conversation_id,
                    agent_id,
                });
            }
        }
        recent.push_all(
            assignments.iter().map(|a| a.conversation_id.as_str()),
            RECENT_ASSIGNED,
        );
        let full = InboxState {
            policy: state,
            recently_assigned: recent,
        };
        let text = serde_json::to_string(&full).map_err(|e| e.to_string())?;
        let state = full.policy;
        if backplane
            .compare_and_set(&key, raw.as_deref(), &text, STATE_TTL)
            .await
            .map_err(|e| e.to_string())?
        {
            let positions = state
                .queue
                .iter()
                .enumerate()
                .filter(|(i, id)| {
                    arriving.contains(id.as_str()) || before.get(id.as_str()) != Some(i)
                })
                .map(|(i, id)| (id.clone(), i + 1))
                .collect();
            metrics::gauge!("parley_routing_queue_length", "inbox" => inbox_id.to_owned())
                .set(state.queue.len() as f64);
            let capacities = state
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.capacity))
                .collect();
            return Ok(Some(Decision {
                assignments,
                capacities,
                from_queue,
                positions,
            }));
        }
        metrics::counter!("parley_routing_cas_retries_total").increment(1);
    }
    Err(format!("no routing step after {MAX_ATTEMPTS} attempts"))
}

/// Carry out a decision: persist assignments, announce them, tell the waiting their
/// positions.
async fn apply(
    store: &dyn crate::store::Store,
    backplane: &SharedBackplane,
    workspace_id: &str,
    inbox_id: &str,
    decision: Decision,
    started: std::time::Instant,
    avg_wait: Option<f64>,
) -> (bool, Vec<f64>) {
    let mut stale = false;
    // Waits of conversations that had to queue, for the estimate.
    let mut waits = Vec::new();
    // Store every assignment of the step at once: on SQLite they share one group commit,
    // on PostgreSQL they run side by side (the store serialises those of one agent).
    let stored = futures_util::future::join_all(decision.assignments.iter().map(|a| {
        let capacity = decision.capacities.get(&a.agent_id).copied().flatten();
        store.assign_if_unassigned(&a.conversation_id, &a.agent_id, capacity, "round_robin")
    }))
    .await;
    tracing::debug!(
        inbox_id,
        assignments = stored.len(),
        refused = stored.iter().filter(|r| matches!(r, Ok(None))).count(),
        failed = stored.iter().filter(|r| r.is_err()).count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Routing step stored"
    );
    for (a, result) in decision.assignments.iter().zip(stored) {
        match result {
            Ok(Some(record)) => {
                metrics::counter!("parley_assignments_total", "reason" => "round_robin")
                    .increment(1);
                let waited = (chrono::Utc::now() - record.created_at)
                    .to_std()
                    .unwrap_or_default();
                metrics::histogram!("parley_time_to_assignment_seconds")
                    .record(waited.as_secs_f64());
                if decision.from_queue.contains(&a.conversation_id) {
                    waits.push(waited.as_secs_f64());
                }
                metrics::histogram!("parley_routing_step_seconds")
                    .record(started.elapsed().as_secs_f64());
                super::announce_conversation(
                    backplane,
                    workspace_id,
                    ConversationEvent::Assigned,
                    record.to_object(),
                )
                .await;
            }
            // Closed or assigned by hand in the meantime: the load counted for it is
            // wrong, so the state is re-read from the store.
            Ok(None) => stale = true,
            Err(e) => {
                tracing::warn!(conversation_id = %a.conversation_id, error = %e, "Could not store an assignment");
                stale = true;
            }
        }
    }
    if stale {
        let _ = backplane.delete(&state_key(inbox_id)).await;
    }
    for (conversation_id, position) in decision.positions {
        publish(
            backplane,
            &conversation_topic(&conversation_id),
            ConvEvent::Queue {
                position,
                estimate_seconds: avg_wait.map(|w| (w * position as f64).ceil() as u64),
            },
        )
        .await;
    }
    (stale, waits)
}

async fn publish(backplane: &SharedBackplane, topic: &str, event: ConvEvent) {
    if let Err(e) = backplane.publish(topic, payload(event)).await {
        tracing::warn!(%topic, error = %e, "Could not publish a routing event");
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    /// Recovery: listen to every round-robin inbox's workspace and resync each, so
    /// conversations that waited across a restart are routed as soon as someone can
    /// take them.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        async move { store.round_robin_inboxes().await }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(inboxes) => {
                    for (workspace_id, inbox_id) in inboxes {
                        act.run(workspace_id, inbox_id, None, ctx);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Router could not list inboxes at start"),
            })
            .spawn(ctx);
    }
}

impl Supervised for Router {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("Router restarting");
        metrics::counter!("parley_actor_restarts_total", "actor" => "router").increment(1);
        self.inboxes.clear();
    }
}

impl Handler<Arrived> for Router {
    type Result = ();

    fn handle(&mut self, msg: Arrived, ctx: &mut Context<Self>) {
        self.run(
            msg.workspace_id,
            msg.inbox_id,
            Some(msg.conversation_id),
            ctx,
        );
    }
}

impl Handler<Resync> for Router {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Context<Self>) {
        self.run(msg.workspace_id, msg.inbox_id, None, ctx);
    }
}

impl StreamHandler<Result<Payload, BroadcastStreamRecvError>> for Router {
    fn handle(&mut self, item: Result<Payload, BroadcastStreamRecvError>, ctx: &mut Context<Self>) {
        let Ok(payload) = item else { return };
        // Someone came online (or left): their inboxes may now drain. Heartbeats
        // re-announce unchanged presence; those change nothing.
        if let Event::Workspace(WsEvent::Presence { user_id, status }) = &*payload
            && self.presence.insert(user_id.clone(), *status) != Some(*status)
        {
            let all: Vec<(String, String)> = self
                .inboxes
                .iter()
                .flat_map(|(ws, inboxes)| inboxes.iter().map(move |i| (ws.clone(), i.clone())))
                .collect();
            for (ws, inbox) in all {
                if *status == crate::protocol::PresenceState::Offline {
                    self.return_when_still_offline(ws.clone(), inbox.clone(), user_id.clone(), ctx);
                }
                self.run(ws, inbox, None, ctx);
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    fn ids(r: &Recent) -> Vec<&str> {
        r.iter().collect()
    }

    #[test]
    fn recent_keeps_the_last_ids_in_order() {
        let mut r = Recent::default();
        r.push_all(["a", "b"], 3);
        assert_eq!(ids(&r), ["a", "b"]);
        r.push_all(["c", "d", "e"], 3);
        assert_eq!(ids(&r), ["c", "d", "e"]);
        assert_eq!(r.0, "c\nd\ne");
        r.push_all([], 3);
        assert_eq!(ids(&r), ["c", "d", "e"]);
        r.push_all(["f"], 1);
        assert_eq!(ids(&r), ["f"]);
        r.push_all(["g"], 0);
        assert!(ids(&r).is_empty());
    }

    proptest::proptest! {
        /// Whatever the batches and the window, what is remembered is the last `keep`
        /// ids pushed, in order (a list as the model).
        #[test]
        fn recent_is_the_last_ids_pushed(
            batches in proptest::collection::vec(
                proptest::collection::vec("[a-z0-9-]{1,8}", 0..6), 0..12),
            keep in 0usize..10,
        ) {
            let mut r = Recent::default();
            let mut model: Vec<String> = Vec::new();
            for batch in &batches {
                r.push_all(batch.iter().map(String::as_str), keep);
                model.extend(batch.iter().cloned());
                let start = model.len().saturating_sub(keep);
                model.drain(..start);
                proptest::prop_assert_eq!(ids(&r), model.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn recent_leaves_out_ids_it_cannot_hold() {
        let mut r = Recent::default();
        r.push_all(["a", "", "b\nc", "d"], 10);
        assert_eq!(ids(&r), ["a", "d"]);
    }

    #[test]
    fn the_state_is_one_json_string_of_ids_and_reads_an_older_builds_state() {
        let mut state = InboxState::default();
        state
            .recently_assigned
            .push_all(["c1", "c2"], RECENT_ASSIGNED);
        let text = serde_json::to_string(&state).expect("encodes");
        assert!(text.contains(r#""recently_assigned":"c1\nc2""#), "{text}");
        let back: InboxState = serde_json::from_str(&text).expect("decodes");
        assert_eq!(back.recently_assigned, state.recently_assigned);

        // An older build wrote `recent` as a list: its state still reads (policy kept,
        // the list ignored), and a state without the field reads as none remembered.
        let mut old = serde_json::to_value(&state).expect("value");
        let map = old.as_object_mut().expect("object");
        map.remove("recently_assigned");
        map.insert("recent".into(), serde_json::json!(["c1", "c2"]));
        let read: InboxState = serde_json::from_value(old).expect("older state decodes");
        assert_eq!(read.recently_assigned, Recent::default());
    }
}
