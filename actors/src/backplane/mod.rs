//! The backplane port: what nodes share that is not durable — fan-out of events between
//! nodes (publish/subscribe on topics) and ephemeral sets whose members expire by
//! themselves (presence, viewers). Two implementations: [`local::LocalBackplane`] (one
//! process, the default) and [`redis::RedisBackplane`] (many nodes).
//!
//! Losing the backplane degrades presence, typing and cross-node fan-out; it never
//! loses or duplicates a message, because messages are durable in the store first and
//! clients resume from their last `seq`.

pub mod local;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use crate::engine::events::Event;

/// An event as subscribers receive it: one allocation shared by every subscriber on
/// this node (see [`Event`] for what crosses between nodes).
pub type Payload = Arc<Event>;

/// Wrap an event for [`Backplane::publish`].
pub fn payload(event: impl Into<Event>) -> Payload {
    Arc::new(event.into())
}

/// A subscription to one topic on this node. Every event published to the topic on
/// any node, this one included, arrives once, in publish order per publisher.
/// `RecvError::Lagged` means events were dropped because this receiver fell behind:
/// the subscriber must resynchronise from the store.
pub type Subscription = broadcast::Receiver<Payload>;

/// Events one subscriber of `topic` may fall behind by before it sees
/// `RecvError::Lagged`. A topic's buffer is allocated when its first subscriber comes
/// (about 48 bytes per slot, shared by the topic's subscribers on this node), so it is
/// sized by what the topic carries: a workspace's topic carries every conversation
/// event of a busy workspace to its agents and must absorb a burst of arrivals; a
/// conversation's topic its messages (a lagging conversation actor reads the store
/// instead); a contact's topic a handful of events in a conversation's life (one per
/// visitor session, so it must stay small).
pub fn topic_capacity(topic: &str) -> usize {
    if topic.starts_with(WORKSPACE_TOPIC) {
        16_384
    } else if topic.starts_with(CONTACT_TOPIC) {
        16
    } else if topic.starts_with(CONVERSATION_TOPIC) {
        256
    } else {
        local::DEFAULT_TOPIC_CAPACITY
    }
}

/// The prefix of a workspace's topic (`engine::workspace_topic`).
pub const WORKSPACE_TOPIC: &str = "ws:";
/// The prefix of a conversation's topic (`engine::conversation_topic`).
pub const CONVERSATION_TOPIC: &str = "conv:";
/// The prefix of a contact's topic (`engine::contact_topic`).
pub const CONTACT_TOPIC: &str = "contact:";

/// Why a backplane call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackplaneError {
    /// Redis (or the transport) failed; the call may succeed later.
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
    /// An event could not be encoded for other nodes (a bug, not a passing failure).
    #[error("backplane event not encodable: {0}")]
    Encode(String),
}

/// What nodes share, besides the store.
#[async_trait::async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// Send `payload` to every subscriber of `topic` on every node, this one included.
    async fn publish(&self, topic: &str, payload: Payload) -> Result<(), BackplaneError>;

    /// Publish at once, without waiting, when this backplane can (one process: the
    /// local backplane always can); otherwise hand `payload` back, for
    /// [`Backplane::publish`]. Spares a caller on a busy thread a task per event.
    fn publish_now(&self, topic: &str, payload: Payload) -> Result<(), Payload> {
        let _ = topic;
        Err(payload)
    }

    /// Receive the events published to `topic` from now on. Dropping the receiver
    /// ends the subscription (the implementation unsubscribes when no receiver is left).
    fn subscribe(&self, topic: &str) -> Subscription;

    /// Add (or refresh) `member` in the ephemeral set `key`; it expires after `ttl`
    /// unless refreshed.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), BackplaneError>;

    /// Remove `member` from the set `key` now.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), BackplaneError>;

    /// The unexpired members of the set `key`, sorted.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackplaneError>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), BackplaneError>;

    /// A counter that goes up each time this node's subscriptions were re-established
    /// after the backplane was unreachable. Events published meanwhile may never have
    /// arrived, so every subscriber that must not miss one (a conversation's messages)
    /// reads the store when it changes. It never changes on a backplane that cannot
    /// lose events ([`local::LocalBackplane`]).
    fn resyncs(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Whether a subscriber may miss events: a subscription that is live only some time
    /// after `subscribe` returns (Redis subscribes asynchronously), or a connection that
    /// can drop. Subscribers that must not miss one then read the store once their
    /// subscription has settled and at every [`Backplane::resyncs`] change. The local
    /// backplane (one process) answers false: nothing to read back.
    fn can_lose_events(&self) -> bool {
        true
    }

    /// The value stored under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<String>, BackplaneError>;

    /// Atomically (across nodes) replace the value of `key` with `new` if it is still
    /// `expected` (`None` = the key is absent); true when it was replaced. The value
    /// expires after `ttl` unless written again. The building block of state that
    /// several nodes change at once (routing).
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError>;

    /// Delete `key` (its state is rebuilt from the store when next needed).
    async fn delete(&self, key: &str) -> Result<(), BackplaneError>;
}

/// A shared handle to whichever backplane the node runs.
pub type SharedBackplane = Arc<dyn Backplane>;
