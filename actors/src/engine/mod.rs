//! The engine: the supervised actor tree that carries a message from a socket to the
//! store and out to every interested socket, on this node and others.
//!
//! ```text
//! Session (one per socket) ──Post──▶ ConversationActor ──Append──▶ Writer ──▶ Store
//!        ▲                                 │  (seq assigned in the commit)
//!        │                                 ├─ replies Ack to the poster (after commit)
//!        └──Deliver (in seq order)─────────┴─ publishes on backplane topic conv:{id};
//!                                             every node's actor for {id} delivers
//!                                             to its local subscribers
//! ```
//!
//! - [`hub::Hub`]: one per node; finds or starts (supervised) the actor of a
//!   conversation, forgets it when it passivates.
//! - [`conversation::ConversationActor`]: one per live conversation per node; orders
//!   delivery by `seq`, fills gaps from the store, replays on resume, relays typing and
//!   viewers; passivates when idle; a crash restarts it from the store.
//! - [`writer::Writer`]: one per node; group commit of appends.
//! - [`session::Session`]: one per WebSocket (agent or visitor); parses frames,
//!   enforces limits, keeps the outbound queue bounded.

pub mod conversation;
pub mod events;
pub mod hub;
pub mod outbox;
pub mod router;
pub mod session;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::backplane::SharedBackplane;
use crate::protocol;
use crate::store::SharedStore;

/// Tunables of the engine, with defaults that suit a laptop and a test alike.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Longest message body, in characters.
    pub max_body_chars: usize,
    /// Frames a visitor socket's outbound queue holds before the client is told to
    /// resume.
    pub outbound_queue: usize,
    /// The same for an agent socket (it also carries the workspace's events).
    pub agent_outbound_queue: usize,
    /// A conversation actor with no subscriber passivates after this long.
    pub idle_passivate: Duration,
    /// Typing indicators expire after this long without a refresh.
    pub typing_ttl: Duration,
    /// Presence and viewer entries expire after this long without a heartbeat.
    pub presence_ttl: Duration,
    /// How often sessions refresh presence and viewers.
    pub heartbeat: Duration,
    /// Messages per second a visitor may send (burst = 2× this).
    pub visitor_messages_per_sec: u32,
    /// Messages in one group commit, at most.
    pub max_batch: usize,
    /// Group commits in flight at once, on as many lanes (a conversation always uses
    /// the same lane, so its appends commit in order).
    pub writer_lanes: usize,
    /// Whether tests may inject faults (never in production).
    pub fault_injection: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_body_chars: 10_000,
            outbound_queue: 1024,
            agent_outbound_queue: 16_384,
            idle_passivate: Duration::from_secs(60),
            typing_ttl: Duration::from_secs(6),
            presence_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            visitor_messages_per_sec: 10,
            max_batch: 512,
            writer_lanes: 1,
            fault_injection: false,
        }
    }
}

/// What every actor of the node shares.
#[derive(Clone)]
pub struct Engine {
    /// Durable records.
    pub store: SharedStore,
    /// Cross-node fan-out and ephemeral state.
    pub backplane: SharedBackplane,
    /// Tunables.
    pub config: Arc<EngineConfig>,
    /// The node's conversation registry.
    pub hub: Addr<hub::Hub>,
    /// The node's group-commit writer.
    pub writer: Addr<writer::Writer>,
    /// The node's router (automatic assignment).
    pub router: Addr<router::Router>,
    /// Rate limit on visitors' messages, keyed by visitor id.
    pub visitor_limiter: Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// Set to true at shutdown: every session closes with 1001 (going away).
    pub shutdown: Arc<tokio::sync::watch::Sender<bool>>,
    /// Sessions open on this node.
    pub sessions: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish()
    }
}

impl Engine {
    /// Start the node-wide actors (once per process, outside any HTTP worker).
    pub fn start(store: SharedStore, backplane: SharedBackplane, config: EngineConfig) -> Self {
        use std::num::NonZeroU32;
        let rate = NonZeroU32::new(config.visitor_messages_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.visitor_messages_per_sec.saturating_mul(2))
            .unwrap_or(NonZeroU32::MIN);
        let visitor_limiter = Arc::new(governor::RateLimiter::keyed(
            governor::Quota::per_second(rate).allow_burst(burst),
        ));
        let config = Arc::new(config);
        let writer = writer::Writer::start(store.clone(), config.max_batch, config.writer_lanes);
        let hub = hub::Hub::start(
            store.clone(),
            backplane.clone(),
            config.clone(),
            writer.clone(),
        );
        let router = router::Router::start(store.clone(), backplane.clone());
        Self {
            store,
            backplane,
            config,
            hub,
            writer,
            router,
            visitor_limiter,
            shutdown: Arc::new(tokio::sync::watch::channel(false).0),
            sessions: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// An inbox's loads, pool or settings changed: let the router re-read them from
    /// the store and route what waits (a close frees capacity at once).
    pub fn resync_routing(&self, workspace_id: &str, inbox_id: &str) {
        self.router.do_send(router::Resync {
            workspace_id: workspace_id.to_owned(),
            inbox_id: inbox_id.to_owned(),
        });
    }

    /// Close every session of this node with 1001 (going away) so that clients
    /// reconnect, to any node, and resume; waits (up to `within`) until they are gone.
    pub async fn close_sessions(&self, within: Duration) {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + within;
        while self.sessions.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Why an engine request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// No such conversation (or not visible to the asker).
    #[error("conversation not found")]
    NotFound,
    /// The store failed; nothing was stored and the client may retry.
    #[error("could not store the message: {0}")]
    Store(String),
    /// An actor was gone (restarting); the client may retry.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
}

/// A mailbox capacity no sender reaches in practice (actix allocates nothing up front;
/// `usize::MAX` overflows its bookkeeping). For mailboxes whose order must be the order
/// `Addr::send` was called in: a full mailbox queues a message only when its request is
/// polled.
pub(crate) const UNBOUNDED_MAILBOX: usize = 1 << 24;

/// Results of work started in order (tickets), handed on in the same order whatever
/// order they finish in. Actix polls an actor's spawned futures in no set order, so a
/// session with several posts in flight (and a conversation with several appends) uses
/// this to answer, and deliver, in the order the work was started.
#[derive(Debug)]
pub(crate) struct InOrder<T> {
    next: u64,
    first_open: u64,
    ready: std::collections::BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self {
            next: 0,
            first_open: 0,
            ready: std::collections::BTreeMap::new(),
        }
    }
}

impl<T> InOrder<T> {
    /// A ticket for work starting now.
    pub(crate) fn start(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }

    /// Ticket `ticket` finished with `value`: everything now ready in ticket order.
    pub(crate) fn finish(&mut self, ticket: u64, value: T) -> Vec<T> {
        self.ready.insert(ticket, value);
        let mut out = Vec::new();
        while let Some(v) = self.ready.remove(&self.first_open) {
            out.push(v);
            self.first_open += 1;
        }
        out
    }

    /// Work started and not yet handed on.
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.next - self.first_open).unwrap_or(usize::MAX)
    }
}

/// The backplane topic of a conversation's events.
pub fn conversation_topic(id: &str) -> String {
    format!("{}{id}", crate::backplane::CONVERSATION_TOPIC)
}

/// The backplane topic of a workspace's events for its agents (conversations,
/// presence, mentions, membership). Visitor sessions do not listen to it: each would
/// decode every event of the workspace (a burst of N arrivals would cost N² decodes).
pub fn workspace_topic(id: &str) -> String {
    format!("{}{id}", crate::backplane::WORKSPACE_TOPIC)
}

/// The backplane topic of one contact's conversation events (assigned, closed,
/// reopened), which their visitor sessions listen to.
pub fn contact_topic(contact_id: &str) -> String {
    format!("{}{contact_id}", crate::backplane::CONTACT_TOPIC)
}

/// Tell every node what happened to a conversation: the workspace's agents, and (except
/// for `created`, which the visitor learns from their own `send`) the contact's visitor
/// sessions. Failures are logged: an event is a notification, the store has the truth.
pub async fn announce_conversation(
    backplane: &SharedBackplane,
    workspace_id: &str,
    event: protocol::ConversationEvent,
    conversation: protocol::ConversationObject,
) {
    let contact = (event != protocol::ConversationEvent::Created)
        .then(|| contact_topic(&conversation.contact_id));
    let workspace = workspace_topic(workspace_id);
    let payload = crate::backplane::payload(events::WsEvent::Conversation {
        event,
        conversation,
        frame: events::RenderedFrame::default(),
    });
    for topic in std::iter::once(workspace).chain(contact) {
        if let Err(e) = backplane.publish(&topic, payload.clone()).await {
            tracing::warn!(%topic, error = %e, "Could not announce a conversation change");
        }
    }
}

/// The ephemeral set of a conversation's viewers (members `user_id\tname\tsession`).
pub fn viewers_key(conversation_id: &str) -> String {
    format!("viewers:{conversation_id}")
}

/// The ephemeral set of a workspace's present users (members: user ids).
pub fn online_key(workspace_id: &str) -> String {
    format!("online:{workspace_id}")
}

/// The ephemeral set of a user's sessions (members `session\tstatus`).
pub fn presence_key(workspace_id: &str, user_id: &str) -> String {
    format!("presence:{workspace_id}:{user_id}")
}

#[cfg(test)]
mod in_order_tests {
    use proptest::prelude::*;

    use super::InOrder;

    proptest! {
        /// Whatever order work finishes in, results come out once each, in start order.
        #[test]
        fn results_leave_in_start_order(order in Just((0..40u64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut q = InOrder::default();
            let tickets: Vec<u64> = (0..40).map(|_| q.start()).collect();
            prop_assert_eq!(q.len(), 40);
            let mut out = Vec::new();
            for i in order {
                out.extend(q.finish(tickets[i as usize], i));
            }
            prop_assert_eq!(out, (0..40).collect::<Vec<_>>());
            prop_assert_eq!(q.len(), 0);
        }
    }
}
