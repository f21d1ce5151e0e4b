//! The in-process backplane: one node, no other service. Topics are tokio broadcast
//! channels and ephemeral sets are maps of member to expiry instant, both behind a
//! mutex that is held only for map operations (never across an `.await`).
//!
//! Memory stays bounded without a background task: a topic's sender is dropped when a
//! publish finds no receiver left, expired members are pruned whenever their set is
//! read or written, and both maps are swept in full (amortised O(1)) each time they
//! double in size, so topics and sets nobody touches again do not pile up.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{Backplane, BackplaneError, Payload, Subscription};

/// Events a subscriber may fall behind by before it sees `RecvError::Lagged`, for a
/// topic [`super::topic_capacity`] does not size otherwise.
pub const DEFAULT_TOPIC_CAPACITY: usize = 1024;

/// Map size below which the full sweeps never run.
const MIN_SWEEP_THRESHOLD: usize = 64;

/// The single-node backplane: publish/subscribe and ephemeral sets in this process.
#[derive(Debug)]
pub struct LocalBackplane {
    /// `None`: each topic's [`super::topic_capacity`].
    capacity: Option<usize>,
    topics: Mutex<Sweeping<broadcast::Sender<Payload>>>,
    sets: Mutex<Sweeping<HashMap<String, Instant>>>,
    values: Mutex<HashMap<String, (String, Instant)>>,
    resyncs: tokio::sync::watch::Sender<u64>,
}

/// A map that remembers when to sweep it next.
#[derive(Debug)]
struct Sweeping<V> {
    map: HashMap<String, V>,
    sweep_at: usize,
}

impl<V> Sweeping<V> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP_THRESHOLD,
        }
    }

    /// Keep only the entries `keep` accepts once the map has doubled since the last
    /// sweep, so a sweep costs O(1) per insertion on average.
    fn maybe_sweep(&mut self, keep: impl FnMut(&String, &mut V) -> bool) {
        if self.map.len() >= self.sweep_at {
            self.map.retain(keep);
            self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP_THRESHOLD);
        }
    }
}

/// Lock a mutex; a poisoned one is still consistent here because no critical section
/// can panic halfway through an update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalBackplane {
    /// A backplane whose topics buffer [`super::topic_capacity`] events per subscriber.
    pub fn new() -> Self {
        Self::with(None)
    }

    /// A backplane whose topics all buffer `capacity` events (at least 1) per
    /// subscriber.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with(Some(capacity.max(1)))
    }

    fn with(capacity: Option<usize>) -> Self {
        Self {
            capacity,
            topics: Mutex::new(Sweeping::new()),
            sets: Mutex::new(Sweeping::new()),
            values: Mutex::new(HashMap::new()),
            resyncs: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Default for LocalBackplane {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Backplane for LocalBackplane {
    async fn publish(&self, topic: &str, payload: Payload) -> Result<(), BackplaneError> {
        let _ = self.publish_now(topic, payload);
        Ok(())
    }

    fn publish_now(&self, topic: &str, payload: Payload) -> Result<(), Payload> {
        let mut topics = lock(&self.topics);
        if let Some(sender) = topics.map.get(topic)
            && sender.send(payload).is_err()
        {
            // No receiver left: the topic is over until someone subscribes again.
            topics.map.remove(topic);
        }
        Ok(())
    }

    fn resyncs(&self) -> tokio::sync::watch::Receiver<u64> {
        // In one process nothing is ever lost: the counter stays at 0.
        self.resyncs.subscribe()
    }

    fn can_lose_events(&self) -> bool {
        // In one process a subscription is live when `subscribe` returns.
        false
    }

    fn subscribe(&self, topic: &str) -> Subscription {
        let mut topics = lock(&self.topics);
        if let Some(sender) = topics.map.get(topic) {
            return sender.subscribe();
        }
        topics.maybe_sweep(|_, sender| sender.receiver_count() > 0);
        let capacity = self
            .capacity
            .unwrap_or_else(|| super::topic_capacity(topic));
        let (sender, receiver) = broadcast::channel(capacity);
        topics.map.insert(topic.to_owned(), sender);
        receiver
    }

    async fn get(&self, key: &str) -> Result<Option<String>, BackplaneError> {
        let now = Instant::now();
        let mut values = lock(&self.values);
        match values.get(key) {
            Some((v, expiry)) if *expiry > now => Ok(Some(v.clone())),
            Some(_) => {
                values.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        let now = Instant::now();
        let mut values = lock(&self.values);
        let current = values
            .get(key)
            .filter(|(_, expiry)| *expiry > now)
            .map(|(v, _)| v.as_str());
        if current != expected {
            return Ok(false);
        }
        let expires = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        values.insert(key.to_owned(), (new.to_owned(), expires));
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), BackplaneError> {
        lock(&self.values).remove(key);
        Ok(())
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), BackplaneError> {
        let now = Instant::now();
        // A TTL too large to represent means "practically never".
        let expires = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let mut sets = lock(&self.sets);
        if !sets.map.contains_key(key) {
            sets.maybe_sweep(|_, members| {
                members.retain(|_, expiry| *expiry > now);
                !members.is_empty()
            });
        }
        let members = sets.map.entry(key.to_owned()).or_default();
        members.retain(|_, expiry| *expiry > now);
        members.insert(member.to_owned(), expires);
        Ok(())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), BackplaneError> {
        let mut sets = lock(&self.sets);
        if let Some(members) = sets.map.get_mut(key) {
            members.remove(member);
            if members.is_empty() {
                sets.map.remove(key);
            }
        }
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackplaneError> {
        let now = Instant::now();
        let mut sets = lock(&self.sets);
        let Some(members) = sets.map.get_mut(key) else {
            return Ok(Vec::new());
        };
        members.retain(|_, expiry| *expiry > now);
        let mut live: Vec<String> = members.keys().cloned().collect();
        if live.is_empty() {
            sets.map.remove(key);
        }
        live.sort_unstable();
        Ok(live)
    }

    async fn ping(&self) -> Result<(), BackplaneError> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {

    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    use tokio::time::timeout;

    use super::*;
    use crate::backplane::Event;
    use crate::engine::events::WsEvent;

    const WAIT: Duration = Duration::from_secs(5);

    /// An event that carries `text` (as a user id), to tell events apart.
    fn payload(text: &str) -> Payload {
        super::super::payload(WsEvent::Membership {
            user_id: text.to_owned(),
            inbox_ids: Vec::new(),
        })
    }

    /// The text of the next event `payload` made.
    async fn recv(subscription: &mut Subscription) -> String {
        let event = timeout(WAIT, subscription.recv())
            .await
            .expect("an event within the timeout")
            .expect("an event, not an error");
        match &*event {
            Event::Workspace(WsEvent::Membership { user_id, .. }) => user_id.clone(),
            other => panic!("not a test event: {other:?}"),
        }
    }

    fn topic_count(backplane: &LocalBackplane) -> usize {
        lock(&backplane.topics).map.len()
    }

    /// Poll `set_members` until `done` accepts it or the deadline passes.
    async fn members_eventually(
        backplane: &LocalBackplane,
        key: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let members = backplane.set_members(key).await.unwrap();
            if done(&members) || Instant::now() >= deadline {
                return members;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_published_event_reaches_every_subscriber_of_its_topic_once() {
        let backplane = LocalBackplane::new();
        let mut first = backplane.subscribe("conversation.1");
        let mut second = backplane.subscribe("conversation.1");

        backplane
            .publish("conversation.1", payload("hello"))
            .await
            .unwrap();

        assert_eq!(recv(&mut first).await, "hello");
        assert_eq!(recv(&mut second).await, "hello");
        assert!(matches!(first.try_recv(), Err(TryRecvError::Empty)));
        assert!(matches!(second.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn topics_are_isolated_from_each_other() {
        let backplane = LocalBackplane::new();
        let mut one = backplane.subscribe("conversation.1");
        let mut two = backplane.subscribe("conversation.2");

        backplane
            .publish("conversation.1", payload("for one"))
            .await
            .unwrap();
        backplane
            .publish("conversation.2", payload("for two"))
            .await
            .unwrap();

        assert_eq!(recv(&mut one).await, "for one");
        assert_eq!(recv(&mut two).await, "for two");
        assert!(matches!(one.try_recv(), Err(TryRecvError::Empty)));
        assert!(matches!(two.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn events_arrive_in_publish_order() {
        let backplane = LocalBackplane::new();
        let mut subscription = backplane.subscribe("t");

        for i in 0..100 {
            backplane
                .publish("t", payload(&i.to_string()))
                .await
                .unwrap();
        }

        for i in 0..100 {
            assert_eq!(recv(&mut subscription).await, i.to_string());
        }
    }

    #[tokio::test]
    async fn publishing_to_a_topic_nobody_subscribes_to_succeeds_and_keeps_nothing() {
        let backplane = LocalBackplane::new();

        backplane.publish("nobody", payload("x")).await.unwrap();

        assert_eq!(topic_count(&backplane), 0);
    }

    #[tokio::test]
    async fn a_topic_whose_receivers_are_all_dropped_is_unsubscribed() {
        let backplane = LocalBackplane::new();
        let first = backplane.subscribe("t");
        let second = backplane.subscribe("t");
        assert_eq!(topic_count(&backplane), 1);

        drop(first);
        backplane.publish("t", payload("still one")).await.unwrap();
        assert_eq!(topic_count(&backplane), 1);

        drop(second);
        backplane.publish("t", payload("nobody")).await.unwrap();
        assert_eq!(topic_count(&backplane), 0);

        let mut again = backplane.subscribe("t");
        backplane.publish("t", payload("fresh")).await.unwrap();
        assert_eq!(recv(&mut again).await, "fresh");
    }

    #[tokio::test]
    async fn abandoned_topics_are_swept_when_the_map_grows() {
        let backplane = LocalBackplane::new();
        for i in 0..10 * MIN_SWEEP_THRESHOLD {
            drop(backplane.subscribe(&format!("abandoned.{i}")));
        }
        let _live = backplane.subscribe("live");

        assert!(topic_count(&backplane) <= MIN_SWEEP_THRESHOLD + 1);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_lagged() {
        let backplane = LocalBackplane::with_capacity(4);
        let mut slow = backplane.subscribe("t");

        for i in 0..10 {
            backplane
                .publish("t", payload(&i.to_string()))
                .await
                .unwrap();
        }

        let lagged = timeout(WAIT, slow.recv()).await.unwrap();
        assert!(matches!(lagged, Err(RecvError::Lagged(6))), "{lagged:?}");
        // After the lag it resumes with the oldest event still buffered.
        assert_eq!(recv(&mut slow).await, "6");
    }

    #[tokio::test]
    async fn each_topic_lags_past_its_own_capacity() {
        let backplane = LocalBackplane::new();
        for (topic, capacity) in [
            ("t", DEFAULT_TOPIC_CAPACITY),
            ("ws:w1", 16_384),
            ("conv:c1", 256),
            ("contact:k1", 16),
        ] {
            assert_eq!(super::super::topic_capacity(topic), capacity);
            let mut slow = backplane.subscribe(topic);
            for i in 0..capacity + 1 {
                backplane
                    .publish(topic, payload(&i.to_string()))
                    .await
                    .unwrap();
            }
            let lagged = timeout(WAIT, slow.recv()).await.unwrap();
            assert!(
                matches!(lagged, Err(RecvError::Lagged(1))),
                "{topic}: {lagged:?}"
            );
        }
    }

    #[tokio::test]
    async fn set_members_are_sorted_and_removable() {
        let backplane = LocalBackplane::new();
        let ttl = Duration::from_secs(60);
        backplane.set_add("viewers", "carol", ttl).await.unwrap();
        backplane.set_add("viewers", "alice", ttl).await.unwrap();
        backplane.set_add("viewers", "bob", ttl).await.unwrap();
        backplane.set_add("viewers", "alice", ttl).await.unwrap();

        assert_eq!(
            backplane.set_members("viewers").await.unwrap(),
            ["alice", "bob", "carol"]
        );

        backplane.set_remove("viewers", "bob").await.unwrap();
        backplane.set_remove("viewers", "nobody").await.unwrap();
        backplane.set_remove("no-such-set", "bob").await.unwrap();

        assert_eq!(
            backplane.set_members("viewers").await.unwrap(),
            ["alice", "carol"]
        );
        assert!(backplane.set_members("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn set_members_expire_after_their_ttl_unless_refreshed() {
        let backplane = LocalBackplane::new();
        backplane
            .set_add("typing", "short", Duration::from_millis(100))
            .await
            .unwrap();
        backplane
            .set_add("typing", "long", Duration::from_secs(60))
            .await
            .unwrap();

        let members = members_eventually(&backplane, "typing", |m| m == ["long"]).await;
        assert_eq!(members, ["long"]);

        // Refreshing restarts the clock.
        backplane
            .set_add("typing", "long", Duration::from_millis(100))
            .await
            .unwrap();
        let members = members_eventually(&backplane, "typing", <[String]>::is_empty).await;
        assert!(members.is_empty(), "{members:?}");
        assert!(lock(&backplane.sets).map.is_empty());
    }

    #[tokio::test]
    async fn a_refresh_keeps_a_member_that_would_otherwise_expire() {
        let backplane = LocalBackplane::new();
        let ttl = Duration::from_millis(500);
        backplane.set_add("presence", "agent", ttl).await.unwrap();
        let start = Instant::now();

        // Refresh every 50 ms for more than two TTLs: the member never disappears.
        while start.elapsed() < ttl * 5 / 2 {
            backplane.set_add("presence", "agent", ttl).await.unwrap();
            assert_eq!(backplane.set_members("presence").await.unwrap(), ["agent"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn ping_always_succeeds() {
        LocalBackplane::new().ping().await.unwrap();
    }
}
