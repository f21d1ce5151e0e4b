//! The ConversationActor: one per live conversation per node. It is the single place a
//! node orders a conversation's messages: it delivers each `seq` once, in order, to
//! every local subscriber (buffering what arrives early and filling gaps from the
//! store), replays what a resuming subscriber missed, relays typing (expiring it by
//! itself) and viewers, and passivates when idle. A crash restarts it in place
//! (`Supervised::restarting`), keeping its subscribers and their cursors, which it
//! catches up from the store: a restart loses nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::events::ConvEvent;
use super::hub::{Hub, Passivated};
use super::writer::{self, Writer};
use super::{EngineConfig, EngineError, conversation_topic, viewers_key};
use crate::backplane::{Event, Payload, SharedBackplane, payload};
use crate::protocol::{MessageObject, Participant, ServerFrame, Viewer};
use crate::store::{Appended, ConversationRecord, NewMessage, SharedStore};

/// Messages fetched per store read when catching up.
const PAGE: u32 = 500;
/// How long an out-of-order message waits for the missing ones before the store is read.
const GAP_WAIT: Duration = Duration::from_millis(200);
/// A backplane subscription may take effect a moment after it is asked for (Redis
/// confirms it asynchronously); a message published in between is read from the store
/// this long after start-up.
const SUBSCRIBE_SETTLE: Duration = Duration::from_secs(2);
/// How many of the latest message frames a conversation keeps for resumes.
const RECENT_FRAMES: usize = 16;
/// How often expired typing indicators are swept while anyone is typing.
const TYPING_SWEEP: Duration = Duration::from_millis(500);
/// Publishes of a message event tried before giving up (200 ms, doubling, between).
const PUBLISH_ATTEMPTS: u32 = 5;

/// A frame for a session's socket, serialised once for many recipients.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The JSON text of a server frame.
    pub frame: Arc<str>,
}

/// Who a subscriber is, which decides what it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// An agent (sees comments and viewers).
    Agent {
        /// The agent's user id.
        user_id: String,
    },
    /// A visitor (never sees comments or viewers).
    Visitor {
        /// The visitor's contact id.
        contact_id: String,
    },
}

impl Audience {
    fn participant_id(&self) -> &str {
        match self {
            Audience::Agent { user_id } => user_id,
            Audience::Visitor { contact_id } => contact_id,
        }
    }
    fn is_agent(&self) -> bool {
        matches!(self, Audience::Agent { .. })
    }
}

/// Read the conversation record (for authorisation before subscribing).
#[derive(Debug, Message)]
#[rtype(result = "Result<ConversationRecord, EngineError>")]
pub struct Describe;

/// Start (or restart) delivery to a session. With `after_seq`, everything after it is
/// replayed first; without, delivery starts with the next message.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Subscribe {
    /// The session's node-unique id.
    pub session_id: u64,
    /// Where frames go.
    pub recipient: Recipient<Deliver>,
    /// Who the session is.
    pub audience: Audience,
    /// Replay from after this `seq`.
    pub after_seq: Option<u64>,
}

/// Stop delivery to a session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session.
    pub session_id: u64,
}

/// Store a message and fan it out; answers after the commit.
#[derive(Debug, Message)]
#[rtype(result = "Result<Appended, EngineError>")]
pub struct Post {
    /// The message.
    pub message: NewMessage,
    /// The posting session (it gets the `ack`, not the `message` frame).
    pub origin: Option<u64>,
}

/// Someone typing, or not.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Typing {
    /// Who.
    pub who: Participant,
    /// Typing (true) or stopped.
    pub on: bool,
}

/// The viewers set changed; re-read it and tell every node.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ViewersChanged;

/// Test only: crash this actor (and its peers on other nodes).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct InjectFault;

/// Work that waits until the actor has rehydrated.
type WhenReady = Box<dyn FnOnce(&mut ConversationActor, &mut Context<ConversationActor>)>;

struct Sub {
    recipient: Recipient<Deliver>,
    audience: Audience,
    cursor: u64,
    catching_up: bool,
}

/// The actor of one conversation on this node.
pub struct ConversationActor {
    id: String,
    store: SharedStore,
    backplane: SharedBackplane,
    config: Arc<EngineConfig>,
    writer: Addr<Writer>,
    hub: Addr<Hub>,
    record: Option<ConversationRecord>,
    ready: bool,
    missing: bool,
    delivered: u64,
    early: BTreeMap<u64, (MessageObject, Option<u64>)>,
    gap_timer: Option<SpawnHandle>,
    subs: HashMap<u64, Sub>,
    typing: HashMap<String, (Participant, Instant)>,
    last_typing_publish: HashMap<String, Instant>,
    viewers: Vec<Viewer>,
    last_activity: Instant,
    waiting: Vec<WhenReady>,
    /// Appends sent to the Writer, delivered in the order they were sent.
    appends: super::InOrder<(Option<MessageObject>, Option<u64>)>,
    /// A record just committed, used instead of reading it back at the first start
    /// (a restart always reads the store).
    seed: Option<ConversationRecord>,
    /// The pending typing sweep, while anyone types.
    typing_sweep: Option<SpawnHandle>,
    /// The frames of the last [`RECENT_FRAMES`] messages delivered (contiguous seqs
    /// ending at `delivered`; whether a visitor may see each): a subscriber resuming
    /// from within them is served from memory, not the store. An agent resuming a
    /// conversation just assigned to them is the common case (a burst's every
    /// assignment was a store read on the engine's thread).
    recent: VecDeque<(u64, Arc<str>, bool)>,
}

impl std::fmt::Debug for ConversationActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationActor")
            .field("id", &self.id)
            .field("delivered", &self.delivered)
            .field("subs", &self.subs.len())
            .finish()
    }
}

impl ConversationActor {
    /// A new, not yet started actor for conversation `id`.
    pub fn new(
        id: String,
        store: SharedStore,
        backplane: SharedBackplane,
        config: Arc<EngineConfig>,
        writer: Addr<Writer>,
        hub: Addr<Hub>,
    ) -> Self {
        Self {
            id,
            store,
            backplane,
            config,
            writer,
            hub,
            record: None,
            ready: false,
            missing: false,
            delivered: 0,
            early: BTreeMap::new(),
            gap_timer: None,
            subs: HashMap::new(),
            typing: HashMap::new(),
            last_typing_publish: HashMap::new(),
            viewers: Vec::new(),
            last_activity: Instant::now(),
            appends: super::InOrder::default(),
            waiting: Vec::new(),
            seed: None,
            typing_sweep: None,
            recent: VecDeque::new(),
        }
    }

    /// Start from `record` (just committed by the caller) instead of reading it back.
    pub fn seeded(mut self, record: Option<ConversationRecord>) -> Self {
        self.seed = record.filter(|r| r.id == self.id);
        self
    }

    /// Run `f` now if rehydrated, or as soon as it is.
    fn when_ready(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        if self.ready {
            f(self, ctx);
        } else {
            self.waiting.push(Box::new(f));
        }
    }

    fn rehydrate(&mut self, ctx: &mut Context<Self>) {
        let rx = self.backplane.subscribe(&conversation_topic(&self.id));
        ctx.add_stream(BroadcastStream::new(rx));
        let store = self.store.clone();
        let id = self.id.clone();
        let seed = self.seed.take();
        async move {
            match seed {
                Some(record) => Ok(Some(record)),
                None => store.conversation(&id).await,
            }
        }
        .into_actor(self)
        .map(|result, act, ctx| match result {
                Ok(Some(record)) => {
                    act.delivered = act.delivered.max(record.last_seq);
                    act.record = Some(record);
                    act.ready = true;
                    for f in std::mem::take(&mut act.waiting) {
                        f(act, ctx);
                    }
                    act.drain_early(ctx);
                    // Subscribers that survived a restart catch up from their cursors.
                    let ids: Vec<u64> = act.subs.keys().copied().collect();
                    for id in ids {
                        act.catch_up(id, ctx);
                    }
                    act.refresh_viewers(ctx);
                }
                Ok(None) => {
                    act.missing = true;
                    act.ready = true;
                    for f in std::mem::take(&mut act.waiting) {
                        f(act, ctx);
                    }
                    act.passivate(ctx);
                }
                Err(e) => {
                    tracing::error!(conversation_id = %act.id, error = %e, "Rehydration failed; restarting");
                    ctx.run_later(Duration::from_millis(500), |_, ctx| ctx.stop());
                }
            })
            .wait(ctx);
    }

    fn frame_for(&self, m: &MessageObject) -> (Arc<str>, Option<Arc<str>>) {
        let text = ServerFrame::message(m.clone()).text();
        let visitor = m.visible_to_visitor().then(|| text.clone());
        (text, visitor)
    }

    /// A committed message arrived (from our writer or the backplane).
    fn on_message(&mut self, m: MessageObject, origin: Option<u64>, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        if m.seq <= self.delivered {
            return;
        }
        if let Some(r) = &mut self.record {
            r.last_seq = r.last_seq.max(m.seq);
            r.last_message_at = r.last_message_at.max(m.created_at);
        }
        self.early.insert(m.seq, (m, origin));
        self.drain_early(ctx);
        if !self.early.is_empty() && self.gap_timer.is_none() {
            self.gap_timer = Some(ctx.run_later(GAP_WAIT, |act, ctx| {
                act.gap_timer = None;
                if !act.early.is_empty() {
                    act.fill_gap(ctx);
                }
            }));
        }
    }

    fn drain_early(&mut self, _ctx: &mut Context<Self>) {
        if !self.ready || self.missing {
            return;
        }
        while let Some(entry) = self.early.first_entry() {
            let seq = *entry.key();
            if seq <= self.delivered {
                entry.remove();
                continue;
            }
            if seq != self.delivered + 1 {
                break;
            }
            let (m, origin) = entry.remove();
            self.delivered = seq;
            let (all, visitors) = self.frame_for(&m);
            if self.recent.len() >= RECENT_FRAMES {
                self.recent.pop_front();
            }
            self.recent
                .push_back((seq, all.clone(), visitors.is_some()));
            for (id, sub) in &mut self.subs {
                if sub.catching_up || sub.cursor >= seq {
                    continue;
                }
                sub.cursor = seq;
                if Some(*id) == origin {
                    continue;
                }
                let frame = if sub.audience.is_agent() {
                    Some(all.clone())
                } else {
                    visitors.clone()
                };
                if let Some(frame) = frame {
                    sub.recipient.do_send(Deliver { frame });
                }
            }
        }
    }

    /// Read from the store what the backplane did not bring.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        metrics::counter!("parley_conversation_gap_fills_total").increment(1);
        let store = self.store.clone();
        let id = self.id.clone();
        let after = self.delivered;
        async move { store.messages_after(&id, after, PAGE).await }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(ms) => {
                    for m in ms {
                        act.early.entry(m.seq).or_insert((m, None));
                    }
                    act.drain_early(ctx);
                    if !act.early.is_empty() && act.gap_timer.is_none() {
                        act.gap_timer = Some(ctx.run_later(GAP_WAIT, |act, ctx| {
                            act.gap_timer = None;
                            if !act.early.is_empty() {
                                act.fill_gap(ctx);
                            }
                        }));
                    }
                }
                Err(e) => {
                    tracing::warn!(conversation_id = %act.id, error = %e, "Gap fill failed; retrying");
                    act.gap_timer = Some(ctx.run_later(GAP_WAIT * 5, |act, ctx| {
                        act.gap_timer = None;
                        act.fill_gap(ctx);
                    }));
                }
            })
            .spawn(ctx);
    }

    /// Replay to one subscriber from its cursor until it reaches live delivery.
    fn catch_up(&mut self, session_id: u64, ctx: &mut Context<Self>) {
        let Some(sub) = self.subs.get_mut(&session_id) else {
            return;
        };
        // Everything after the cursor is among the recent frames: replay from memory
        // and go live at once (what is stored beyond `delivered` arrives live).
        if self
            .recent
            .front()
            .is_some_and(|(oldest, _, _)| *oldest <= sub.cursor + 1)
        {
            for (seq, frame, visible) in &self.recent {
                if *seq <= sub.cursor {
                    continue;
                }
                sub.cursor = *seq;
                if *visible || sub.audience.is_agent() {
                    sub.recipient.do_send(Deliver {
                        frame: frame.clone(),
                    });
                }
            }
            sub.catching_up = false;
            return;
        }
        sub.catching_up = true;
        let after = sub.cursor;
        let store = self.store.clone();
        let id = self.id.clone();
        async move { store.messages_after(&id, after, PAGE).await }
            .into_actor(self)
            .map(move |result, act, ctx| {
                let delivered = act.delivered;
                let Some(sub) = act.subs.get_mut(&session_id) else {
                    return;
                };
                match result {
                    Ok(ms) => {
                        let full = ms.len() == PAGE as usize;
                        for m in ms {
                            if m.seq <= sub.cursor {
                                continue;
                            }
                            sub.cursor = m.seq;
                            if sub.audience.is_agent() || m.visible_to_visitor() {
                                let frame = ServerFrame::message(m).text();
                                sub.recipient.do_send(Deliver { frame });
                            }
                        }
                        if full || sub.cursor < delivered {
                            act.catch_up(session_id, ctx);
                        } else {
                            sub.catching_up = false;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(conversation_id = %act.id, error = %e, "Replay failed; retrying");
                        ctx.run_later(GAP_WAIT * 5, move |act, ctx| act.catch_up(session_id, ctx));
                    }
                }
            })
            .spawn(ctx);
    }

    fn send_to(&self, frame: &ServerFrame, agents_only: bool, except: Option<&str>) {
        let text = frame.text();
        for sub in self.subs.values() {
            if agents_only && !sub.audience.is_agent() {
                continue;
            }
            if except == Some(sub.audience.participant_id()) {
                continue;
            }
            sub.recipient.do_send(Deliver {
                frame: text.clone(),
            });
        }
    }

    fn typing_frame(&self, who: &Participant, on: bool) -> ServerFrame {
        ServerFrame::Typing {
            conversation_id: self.id.clone(),
            who: who.clone(),
            on,
        }
    }

    fn on_typing(&mut self, who: Participant, on: bool, ctx: &mut Context<Self>) {
        let key = format!("{:?}:{}", who.kind, who.id);
        let was = self.typing.contains_key(&key);
        if on {
            self.typing
                .insert(key, (who.clone(), Instant::now() + self.config.typing_ttl));
            self.arm_typing_sweep(ctx);
        } else {
            self.typing.remove(&key);
        }
        if was != on {
            self.send_to(&self.typing_frame(&who, on), false, Some(&who.id));
        }
    }

    /// Sweep expired typing indicators every [`TYPING_SWEEP`] while anyone is typing.
    /// A timer only then: a conversation nobody types in is never woken by it (one
    /// interval per live conversation was 20,000 wake-ups a second at 10,000).
    fn arm_typing_sweep(&mut self, ctx: &mut Context<Self>) {
        if self.typing_sweep.is_some() || self.typing.is_empty() {
            return;
        }
        self.typing_sweep = Some(ctx.run_later(TYPING_SWEEP, |act, ctx| {
            act.typing_sweep = None;
            act.expire_typing();
            act.arm_typing_sweep(ctx);
        }));
    }

    fn expire_typing(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .typing
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            if let Some((who, _)) = self.typing.remove(&key) {
                self.send_to(&self.typing_frame(&who, false), false, Some(&who.id));
            }
        }
    }

    fn refresh_viewers(&mut self, ctx: &mut Context<Self>) {
        if !self.subs.values().any(|s| s.audience.is_agent()) && self.viewers.is_empty() {
            return;
        }
        let backplane = self.backplane.clone();
        let key = viewers_key(&self.id);
        async move { backplane.set_members(&key).await }
            .into_actor(self)
            .map(|result, act, _ctx| {
                let Ok(members) = result else { return };
                let mut users: Vec<Viewer> = Vec::new();
                for m in members {
                    let mut parts = m.split('\t');
                    let (Some(id), Some(name)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    if !users.iter().any(|u| u.id == id) {
                        users.push(Viewer {
                            id: id.to_owned(),
                            name: name.to_owned(),
                        });
                    }
                }
                users.sort_by(|a, b| a.id.cmp(&b.id));
                if users != act.viewers {
                    act.viewers = users.clone();
                    act.send_to(
                        &ServerFrame::Viewers {
                            conversation_id: act.id.clone(),
                            users,
                        },
                        true,
                        None,
                    );
                }
            })
            .spawn(ctx);
    }

    /// Read what the store has past what was delivered, unless a read is pending.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.ready && !self.missing && self.gap_timer.is_none() {
            self.fill_gap(ctx);
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        self.refresh_viewers(ctx);
        // No store read here: events lost by the backplane are read from the store
        // when it says it reconnected (`resyncs`), when a later message shows a gap,
        // and once after start-up (`SUBSCRIBE_SETTLE`). An idle conversation costs
        // nothing.
        let idle = self.last_activity.elapsed() >= self.config.idle_passivate;
        if self.subs.is_empty() && self.typing.is_empty() && idle {
            tracing::debug!(conversation_id = %self.id, "Passivating idle conversation");
            self.passivate(ctx);
        }
    }

    /// Leave the hub's registry, then stop. The hub must drop its address first:
    /// the Supervisor restarts an actor that stops while an address to it is alive.
    fn passivate(&mut self, ctx: &mut Context<Self>) {
        let hub = self.hub.clone();
        let msg = Passivated {
            id: self.id.clone(),
            addr: ctx.address(),
        };
        async move {
            let _ = hub.send(msg).await;
        }
        .into_actor(self)
        .map(|(), _act, ctx| ctx.stop())
        .wait(ctx);
    }

    /// Tell the agents a new comment @mentions (on the workspace topic, every node).
    fn publish_mentions(&self, message: &MessageObject) {
        if message.kind != crate::protocol::MessageKind::Comment {
            return;
        }
        let user_ids = crate::protocol::mentioned_user_ids(&message.body);
        let Some(record) = &self.record else { return };
        if user_ids.is_empty() {
            return;
        }
        let event = super::events::WsEvent::Mention {
            inbox_id: record.inbox_id.clone(),
            user_ids,
            message: message.clone(),
        };
        // Published from a task, after this message's own frames have gone out.
        let payload = payload(event);
        let topic = super::workspace_topic(&record.workspace_id);
        let backplane = self.backplane.clone();
        actix::spawn(async move {
            if let Err(e) = backplane.publish(&topic, payload).await {
                tracing::warn!(%topic, error = %e, "Could not announce a mention");
            }
        });
    }

    fn publish(&self, event: ConvEvent) {
        // A message that other nodes never hear of would wait there for the next one
        // (or the backplane's reconnection): retry it a few times. Receivers drop
        // what they delivered already, so a late or repeated publish is harmless.
        let attempts = if matches!(event, ConvEvent::Message { .. }) {
            PUBLISH_ATTEMPTS
        } else {
            1
        };
        let topic = conversation_topic(&self.id);
        let Err(payload) = self.backplane.publish_now(&topic, payload(event)) else {
            return;
        };
        let backplane = self.backplane.clone();
        actix::spawn(async move {
            let mut delay = GAP_WAIT;
            for attempt in 1..=attempts {
                match backplane.publish(&topic, payload.clone()).await {
                    Ok(()) => return,
                    Err(e) if attempt == attempts => {
                        tracing::warn!(%topic, error = %e, "Publish failed; other nodes will fill the gap from the store");
                        metrics::counter!("parley_backplane_publish_failures_total").increment(1);
                    }
                    Err(_) => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        });
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A full mailbox makes `Addr::send` queue the message later, when its request is
        // polled, which could reorder a session's pipelined posts. Sessions bound what
        // they have in flight instead.
        ctx.set_mailbox_capacity(super::UNBOUNDED_MAILBOX);
        metrics::gauge!("parley_conversation_actors").increment(1.0);
        self.rehydrate(ctx);
        // Events published while the backplane was unreachable never arrive: read the
        // store each time it reconnects, and once when the subscription has settled.
        // In one process (the local backplane) nothing is lost and a subscription is
        // live when `subscribe` returns: no settle read (it was one store read per new
        // conversation, a tenth of the engine thread in a burst).
        if self.backplane.can_lose_events() {
            ctx.add_stream(WatchStream::from_changes(self.backplane.resyncs()).map(Resync));
            ctx.run_later(SUBSCRIBE_SETTLE, |act, ctx| act.resync(ctx));
        }
        // Heartbeats start at a random point of the first period, so that actors
        // started together (a burst of visitors) do not all read the store at once.
        let heartbeat = self.config.heartbeat;
        let offset = heartbeat
            .mul_f64(f64::from(uuid::Uuid::new_v4().as_u64_pair().0 as u32) / f64::from(u32::MAX));
        ctx.run_later(offset, move |_, ctx| {
            ctx.run_interval(heartbeat, |act, ctx| act.heartbeat(ctx));
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!("parley_conversation_actors").decrement(1.0);
    }
}

impl Supervised for ConversationActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(conversation_id = %self.id, subscribers = self.subs.len(), "Conversation actor restarting from the store");
        metrics::counter!("parley_actor_restarts_total", "actor" => "conversation").increment(1);
        self.ready = false;
        self.record = None;
        self.early.clear();
        self.gap_timer = None;
        self.typing.clear();
        self.typing_sweep = None;
        self.recent.clear();
        // Appends in flight were dropped with the old context (their senders get a
        // mailbox error and retry); what they stored arrives through the catch-up.
        self.appends = super::InOrder::default();
        for sub in self.subs.values_mut() {
            sub.catching_up = true;
        }
    }
}

impl StreamHandler<Result<Payload, BroadcastStreamRecvError>> for ConversationActor {
    fn handle(&mut self, item: Result<Payload, BroadcastStreamRecvError>, ctx: &mut Context<Self>) {
        let payload = match item {
            Ok(p) => p,
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                tracing::warn!(conversation_id = %self.id, lagged = n, "Backplane lagged; reading the store");
                self.fill_gap(ctx);
                return;
            }
        };
        let Event::Conversation(event) = &*payload else {
            tracing::warn!(conversation_id = %self.id, "Ignoring a workspace event on a conversation's topic");
            return;
        };
        match event {
            ConvEvent::Message { message } => {
                // This actor's own messages come back this way: already delivered.
                if message.seq <= self.delivered {
                    self.last_activity = Instant::now();
                } else {
                    self.on_message(message.clone(), None, ctx);
                }
            }
            ConvEvent::Typing { who, on } => self.on_typing(who.clone(), *on, ctx),
            ConvEvent::ViewersChanged => self.refresh_viewers(ctx),
            ConvEvent::Queue {
                position,
                estimate_seconds,
            } => {
                let frame = ServerFrame::Queue {
                    conversation_id: self.id.clone(),
                    position: *position,
                    estimate_seconds: *estimate_seconds,
                };
                self.send_to(&frame, false, None);
            }
            ConvEvent::Fault => {
                if self.config.fault_injection {
                    tracing::error!(conversation_id = %self.id, "Injected fault: stopping to be restarted");
                    ctx.stop();
                }
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The backplane subscription ended (shutdown); nothing to do.
    }
}

/// The backplane reconnected (see `Backplane::resyncs`).
struct Resync(u64);

impl StreamHandler<Resync> for ConversationActor {
    fn handle(&mut self, Resync(generation): Resync, ctx: &mut Context<Self>) {
        tracing::debug!(conversation_id = %self.id, generation, "Backplane reconnected; reading the store");
        self.resync(ctx);
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Describe> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<ConversationRecord, EngineError>>;

    fn handle(&mut self, _: Describe, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.when_ready(ctx, move |act, _| {
            let _ = tx.send(act.record.clone().ok_or(EngineError::NotFound));
        });
        Box::pin(
            async move {
                rx.await
                    .unwrap_or(Err(EngineError::Unavailable("restarting".into())))
            }
            .into_actor(self),
        )
    }
}

impl Handler<Subscribe> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.when_ready(ctx, move |act, ctx| {
            if act.missing {
                let _ = tx.send(Err(EngineError::NotFound));
                return;
            }
            let cursor = msg.after_seq.unwrap_or(act.delivered);
            act.subs.insert(
                msg.session_id,
                Sub {
                    recipient: msg.recipient,
                    audience: msg.audience,
                    cursor,
                    catching_up: false,
                },
            );
            if cursor < act.delivered {
                act.catch_up(msg.session_id, ctx);
            }
            // Show who is typing and viewing now.
            for (who, _) in act.typing.values() {
                if let Some(sub) = act.subs.get(&msg.session_id)
                    && sub.audience.participant_id() != who.id
                {
                    let frame: Arc<str> = serde_json::to_string(&act.typing_frame(who, true))
                        .unwrap_or_default()
                        .into();
                    sub.recipient.do_send(Deliver { frame });
                }
            }
            if let Some(sub) = act.subs.get(&msg.session_id)
                && sub.audience.is_agent()
                && !act.viewers.is_empty()
            {
                let frame = ServerFrame::Viewers {
                    conversation_id: act.id.clone(),
                    users: act.viewers.clone(),
                }
                .text();
                sub.recipient.do_send(Deliver { frame });
            }
            let _ = tx.send(Ok(()));
        });
        Box::pin(
            async move {
                rx.await
                    .unwrap_or(Err(EngineError::Unavailable("restarting".into())))
            }
            .into_actor(self),
        )
    }
}

impl Handler<Unsubscribe> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        self.subs.remove(&msg.session_id);
        self.last_activity = Instant::now();
    }
}

impl Handler<Post> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<Appended, EngineError>>;

    fn handle(&mut self, mut msg: Post, _ctx: &mut Context<Self>) -> Self::Result {
        metrics::counter!("parley_conversation_posts_total").increment(1);
        self.last_activity = Instant::now();
        // A message is written in its conversation's channel (an agent's reply to an
        // email conversation is an email).
        if let Some(record) = &self.record {
            msg.message.channel = record.channel;
        }
        let origin = msg.origin;
        // Queued with the Writer now, not when the future is first polled: appends leave
        // in the order they arrived (a session may have several in flight).
        let answer = writer::append(&self.writer, msg.message);
        let ticket = self.appends.start();
        Box::pin(
            async move {
                answer
                    .await
                    .unwrap_or_else(|_| Err(EngineError::Unavailable("writer restarted".into())))
            }
            .into_actor(self)
            .map(move |result, act, ctx| {
                metrics::counter!("parley_conversation_posts_answered_total").increment(1);
                // Deliver in the order the appends were sent (= seq order), whatever
                // order their futures are polled in.
                let stored = match &result {
                    Ok(Appended::New(m)) => Some(m.clone()),
                    _ => None,
                };
                for (m, origin) in act.appends.finish(ticket, (stored, origin)) {
                    if let Some(m) = m {
                        act.publish(ConvEvent::Message { message: m.clone() });
                        act.publish_mentions(&m);
                        act.on_message(m, origin, ctx);
                    }
                }
                if let Ok(Appended::NoConversation) = &result {
                    return Err(EngineError::NotFound);
                }
                result
            }),
        )
    }
}

impl Handler<Typing> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Typing, _ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        let key = format!("{:?}:{}", msg.who.kind, msg.who.id);
        // Throttle: an "on" refresh goes out at most every third of the TTL.
        if msg.on
            && let Some(last) = self.last_typing_publish.get(&key)
            && last.elapsed() < self.config.typing_ttl / 3
            && self.typing.contains_key(&key)
        {
            if let Some(entry) = self.typing.get_mut(&key) {
                entry.1 = Instant::now() + self.config.typing_ttl;
            }
            return;
        }
        self.last_typing_publish.insert(key, Instant::now());
        self.publish(ConvEvent::Typing {
            who: msg.who,
            on: msg.on,
        });
    }
}

impl Handler<ViewersChanged> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: ViewersChanged, ctx: &mut Context<Self>) {
        self.publish(ConvEvent::ViewersChanged);
        self.refresh_viewers(ctx);
    }
}

impl Handler<InjectFault> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: InjectFault, ctx: &mut Context<Self>) {
        if self.config.fault_injection {
            self.publish(ConvEvent::Fault);
            tracing::error!(conversation_id = %self.id, "Injected fault: stopping to be restarted");
            ctx.stop();
        }
    }
}
