//! The Redis backplane: many nodes share one Redis. Commands (`PUBLISH`, the ephemeral
//! sets, `PING`) go through a [`ConnectionManager`], which reconnects by itself; every
//! call is time-boxed so that a lost Redis makes calls fail with
//! [`BackplaneError::Unavailable`] within [`OP_TIMEOUT`] instead of hanging.
//!
//! Subscriptions use one dedicated pub/sub connection per backplane, driven by a
//! background task (the *subscriber*). Each topic has one local broadcast sender that
//! every local [`Subscription`] hangs off; the subscriber forwards every Redis message
//! to the sender of its topic. [`Backplane::subscribe`] asks the subscriber (through a
//! control channel) to `SUBSCRIBE`; a topic whose receivers are all gone is
//! unsubscribed lazily, when a message for it arrives or at the next periodic sweep.
//! When the pub/sub connection drops, the subscriber reconnects with backoff
//! ([`MIN_BACKOFF`] doubling to [`MAX_BACKOFF`]) and subscribes again to every topic
//! that still has a receiver; events published while it was down are lost, which
//! subscribers notice as a `seq` gap and repair from the store.
//!
//! An event reaches this node's subscribers only through Redis, never by a local
//! shortcut, so each subscriber sees it exactly once whichever node published it.
//!
//! [`Backplane::subscribe`] cannot wait (it is not async): it returns at once and the
//! subscription takes effect when Redis confirms the `SUBSCRIBE`, usually well under a
//! millisecond later; an event published in between is not delivered. Callers that
//! must not miss it use [`RedisBackplane::subscribe_confirmed`]. A call that fails
//! with `Unavailable` because Redis did not answer in time may still take effect
//! later (a hung Redis runs the command when it wakes up).
//!
//! Every key and channel is prefixed with the `key_prefix` given to
//! [`RedisBackplane::connect`], so several deployments (or test runs) can share one
//! Redis. Ephemeral sets are sorted sets scored by expiry time in milliseconds; the
//! time comes from the Redis server (`TIME`, inside a Lua script), so clock skew
//! between nodes does not matter. That needs Redis 5 or newer (scripts that write
//! after reading `TIME`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::{Msg, RedisResult, Script};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, sleep, timeout};

use super::{Backplane, BackplaneError, Event, Payload, Subscription};

/// The longest [`RedisBackplane::connect`] waits for Redis before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest any one backplane call (or pub/sub command) waits for Redis.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The first pause before reconnecting the pub/sub connection.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause between two pub/sub reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the subscriber pings Redis (to notice a dead connection that never
/// closed) and unsubscribes topics nobody listens to any more.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// One connection attempt of the command connection.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(800);

/// One command on the command connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Channels per `SUBSCRIBE` when resubscribing after a reconnect.
const RESUBSCRIBE_CHUNK: usize = 1000;

/// The longest TTL honoured (about 100 years): keeps scores exact in a double.
const MAX_TTL_MS: u128 = 100 * 365 * 24 * 3600 * 1000;

/// `set_add`: ZADD with the server's clock, then make the key outlive its members
/// (twice the TTL, never shortening a longer expiry set by another member).
const SET_ADD_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[1])
local keep = ttl * 2
if redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], string.format('%d', keep))
end
return 0
";

/// `set_members`: drop the expired members, return the rest.
const SET_MEMBERS_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// The multi-node backplane over Redis. Cheap to share behind an `Arc`; dropping it
/// stops its subscriber task and closes every [`Subscription`] it handed out.
pub struct RedisBackplane {
    prefix: String,
    commands: ConnectionManager,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    set_add: Script,
    set_members: Script,
    cas: Script,
    _subscriber: AbortOnDrop,
}

/// Compare-and-set: ARGV[1] = "1" when a current value is expected (ARGV[2]), "0"
/// when the key must be absent; ARGV[3] the new value, ARGV[4] the TTL in ms.
const CAS_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
else
  if cur ~= ARGV[2] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("prefix", &self.prefix)
            .field("connected", &self.shared.connected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// State shared by the backplane handle and its subscriber task.
struct Shared {
    /// One sender per topic (without the prefix) that this node listens to.
    topics: Mutex<HashMap<String, broadcast::Sender<Payload>>>,
    /// Whether the pub/sub connection is up and subscribed.
    connected: AtomicBool,
    /// Counts the reconnections of the pub/sub connection (see [`Backplane::resyncs`]).
    resyncs: tokio::sync::watch::Sender<u64>,
}

/// Requests from the backplane handle to its subscriber task.
enum Control {
    /// Make sure Redis sends this node the events of `topic`; answer on `confirmed`
    /// once it does.
    Subscribe {
        topic: String,
        confirmed: Option<oneshot::Sender<()>>,
    },
}

/// Aborts the subscriber task when the backplane goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lock a mutex; a poisoned one is still consistent here because no critical section
/// can panic halfway through an update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Unavailable(format!("{what}: {error}"))
}

/// Run a Redis call, failing with `Unavailable` if it errs or takes over `limit`.
async fn time_boxed<T>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, BackplaneError> {
    match timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(what, error)),
        Err(_) => Err(unavailable(
            what,
            format_args!("no answer from Redis within {limit:?}"),
        )),
    }
}

impl RedisBackplane {
    /// Connect to the Redis at `url` (`redis://[user:password@]host:port[/db]`); every
    /// key and channel this backplane touches starts with `key_prefix`.
    ///
    /// Opens the command connection and the pub/sub connection and starts the
    /// subscriber task, so it must be called inside a tokio runtime. Fails with
    /// [`BackplaneError::Unavailable`] if the URL is invalid or Redis does not answer
    /// within [`CONNECT_TIMEOUT`].
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, BackplaneError> {
        let client = redis::Client::open(url).map_err(|e| unavailable("invalid Redis URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One retry per reconnection: a call made while Redis is down fails fast
            // (the next call tries again) instead of waiting out a long backoff.
            .set_number_of_retries(1)
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF);
        let connecting = async {
            let commands = ConnectionManager::new_with_config(client.clone(), config).await?;
            let pubsub = client.get_async_pubsub().await?;
            Ok((commands, pubsub))
        };
        let (commands, pubsub) =
            time_boxed("cannot connect to Redis", CONNECT_TIMEOUT, connecting).await?;

        let shared = Arc::new(Shared {
            topics: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(true),
            resyncs: tokio::sync::watch::channel(0).0,
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let subscriber = Subscriber {
            client,
            prefix: key_prefix.to_owned(),
            shared: Arc::clone(&shared),
            control: control_rx,
            active: HashSet::new(),
        };
        let task = tokio::spawn(subscriber.run(pubsub));
        tracing::info!(key_prefix = %key_prefix, "Redis backplane connected");
        Ok(Self {
            prefix: key_prefix.to_owned(),
            commands,
            shared,
            control,
            set_add: Script::new(SET_ADD_LUA),
            set_members: Script::new(SET_MEMBERS_LUA),
            cas: Script::new(CAS_LUA),
            _subscriber: AbortOnDrop(task),
        })
    }

    /// Like [`Backplane::subscribe`], but returns only once Redis has confirmed the
    /// subscription, so no event published after this returns is missed. Use it
    /// when the subscriber reads the store next and must not miss an event that
    /// lands between that read and its subscription taking effect.
    ///
    /// Fails with [`BackplaneError::Unavailable`] if the pub/sub connection is down
    /// or Redis does not confirm within [`OP_TIMEOUT`].
    pub async fn subscribe_confirmed(&self, topic: &str) -> Result<Subscription, BackplaneError> {
        let (confirmed, answer) = oneshot::channel();
        let receiver = self.subscribe_inner(topic, Some(confirmed));
        match timeout(OP_TIMEOUT, answer).await {
            Ok(Ok(())) => Ok(receiver),
            Ok(Err(_)) => Err(BackplaneError::Unavailable(
                "pub/sub connection to Redis is down".to_owned(),
            )),
            Err(_) => Err(unavailable(
                "subscribe",
                format_args!("not confirmed by Redis within {OP_TIMEOUT:?}"),
            )),
        }
    }

    fn subscribe_inner(&self, topic: &str, confirmed: Option<oneshot::Sender<()>>) -> Subscription {
        let mut topics = lock(&self.shared.topics);
        let (receiver, is_new) = match topics.get(topic) {
            Some(sender) => (sender.subscribe(), false),
            None => {
                let (sender, receiver) = broadcast::channel(super::topic_capacity(topic));
                topics.insert(topic.to_owned(), sender);
                (receiver, true)
            }
        };
        // A known topic is subscribed already (or will be on reconnect): only a new
        // topic, or a caller who wants the confirmation, needs the subscriber task.
        // Sent under the lock so it is ordered after any unsubscription of the topic.
        if is_new || confirmed.is_some() {
            // The task only stops when this backplane is dropped: a failed send
            // cannot happen while `self` is alive.
            let _ = self.control.send(Control::Subscribe {
                topic: topic.to_owned(),
                confirmed,
            });
        }
        receiver
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait::async_trait]
impl Backplane for RedisBackplane {
    async fn publish(&self, topic: &str, payload: Payload) -> Result<(), BackplaneError> {
        let mut commands = self.commands.clone();
        let channel = self.key(topic);
        let mut publish = redis::cmd("PUBLISH");
        let text =
            serde_json::to_vec(&*payload).map_err(|e| BackplaneError::Encode(e.to_string()))?;
        publish.arg(&channel).arg(text);
        let sent = publish.query_async::<i64>(&mut commands);
        time_boxed("publish", OP_TIMEOUT, sent).await?;
        Ok(())
    }

    fn subscribe(&self, topic: &str) -> Subscription {
        self.subscribe_inner(topic, None)
    }

    fn resyncs(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.resyncs.subscribe()
    }

    async fn get(&self, key: &str) -> Result<Option<String>, BackplaneError> {
        let mut commands = self.commands.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.key(key));
        let read = get.query_async::<Option<String>>(&mut commands);
        time_boxed("get", OP_TIMEOUT, read).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        let mut commands = self.commands.clone();
        let ttl_ms = ttl.as_millis().clamp(1, MAX_TTL_MS);
        let mut invocation = self.cas.key(self.key(key));
        invocation
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(ttl_ms.to_string());
        let swapped = invocation.invoke_async::<i64>(&mut commands);
        Ok(time_boxed("compare_and_set", OP_TIMEOUT, swapped).await? == 1)
    }

    async fn delete(&self, key: &str) -> Result<(), BackplaneError> {
        let mut commands = self.commands.clone();
        let mut del = redis::cmd("DEL");
        del.arg(self.key(key));
        let deleted = del.query_async::<i64>(&mut commands);
        time_boxed("delete", OP_TIMEOUT, deleted).await?;
        Ok(())
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), BackplaneError> {
        let mut commands = self.commands.clone();
        // At least 1 ms: PEXPIRE 0 would delete the key.
        let ttl_ms = ttl.as_millis().clamp(1, MAX_TTL_MS);
        let mut invocation = self.set_add.key(self.key(key));
        invocation.arg(member).arg(ttl_ms.to_string());
        let add = invocation.invoke_async::<i64>(&mut commands);
        time_boxed("set_add", OP_TIMEOUT, add).await?;
        Ok(())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), BackplaneError> {
        let mut commands = self.commands.clone();
        let mut remove = redis::cmd("ZREM");
        remove.arg(self.key(key)).arg(member);
        let removed = remove.query_async::<i64>(&mut commands);
        time_boxed("set_remove", OP_TIMEOUT, removed).await?;
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, BackplaneError> {
        let mut commands = self.commands.clone();
        let invocation = self.set_members.key(self.key(key));
        let read = invocation.invoke_async::<Vec<String>>(&mut commands);
        let mut members = time_boxed("set_members", OP_TIMEOUT, read).await?;
        members.sort_unstable();
        Ok(members)
    }

    async fn ping(&self) -> Result<(), BackplaneError> {
        if !self.shared.connected.load(Ordering::Relaxed) {
            return Err(BackplaneError::Unavailable(
                "pub/sub connection to Redis is down".to_owned(),
            ));
        }
        let mut commands = self.commands.clone();
        let ping = redis::cmd("PING");
        let pong = ping.query_async::<String>(&mut commands);
        time_boxed("ping", OP_TIMEOUT, pong).await?;
        Ok(())
    }
}

/// Why the subscriber stopped serving a pub/sub connection.
enum Exit {
    /// The backplane was dropped: stop for good.
    Closed,
    /// The connection failed: reconnect.
    Lost(String),
}

/// The background task that owns the pub/sub connection.
struct Subscriber {
    client: redis::Client,
    prefix: String,
    shared: Arc<Shared>,
    control: mpsc::UnboundedReceiver<Control>,
    /// The topics Redis has confirmed on the current connection.
    active: HashSet<String>,
}

impl Subscriber {
    async fn run(mut self, first: redis::aio::PubSub) {
        let mut next = Some(first);
        let mut backoff = MIN_BACKOFF;
        let mut attempts: u32 = 0;
        loop {
            let pubsub = match next.take() {
                Some(pubsub) => pubsub,
                None => {
                    if !self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempts += 1;
                    match timeout(OP_TIMEOUT, self.client.get_async_pubsub()).await {
                        Ok(Ok(pubsub)) => pubsub,
                        Ok(Err(error)) => {
                            tracing::debug!(
                                key_prefix = %self.prefix, attempts, %error,
                                "Pub/sub reconnection failed"
                            );
                            continue;
                        }
                        Err(_) => {
                            tracing::debug!(
                                key_prefix = %self.prefix, attempts,
                                "Pub/sub reconnection timed out"
                            );
                            continue;
                        }
                    }
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            if let Err(error) = self.resubscribe(&mut sink).await {
                tracing::debug!(
                    key_prefix = %self.prefix, attempts, %error,
                    "Pub/sub resubscription failed"
                );
                continue;
            }
            self.shared.connected.store(true, Ordering::Relaxed);
            if attempts > 0 {
                tracing::info!(
                    key_prefix = %self.prefix, attempts, topics = self.active.len(),
                    "Pub/sub reconnected"
                );
                // Whatever was published while the connection was down never came:
                // subscribers read the store.
                self.shared.resyncs.send_modify(|n| *n += 1);
                metrics::counter!("parley_backplane_resyncs_total").increment(1);
            }
            backoff = MIN_BACKOFF;
            attempts = 0;

            let exit = self.serve(&mut sink, &mut stream).await;
            self.shared.connected.store(false, Ordering::Relaxed);
            self.active.clear();
            match exit {
                Exit::Closed => return,
                Exit::Lost(reason) => tracing::warn!(
                    key_prefix = %self.prefix, %reason,
                    "Pub/sub connection lost, reconnecting"
                ),
            }
        }
    }

    /// Wait `delay` before the next connection attempt. Requests that arrive
    /// meanwhile are dropped (their topics are in the map, so the resubscription
    /// covers them; a waiting `subscribe_confirmed` learns the connection is down).
    /// Returns `false` when the backplane has been dropped.
    async fn pause(&mut self, delay: Duration) -> bool {
        let wake = sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return true,
                request = self.control.recv() => {
                    if request.is_none() {
                        return false;
                    }
                }
            }
        }
    }

    /// Subscribe a fresh connection to every topic that still has a receiver, and
    /// forget the others.
    async fn resubscribe(&mut self, sink: &mut PubSubSink) -> Result<(), BackplaneError> {
        self.active.clear();
        let live: Vec<String> = {
            let mut topics = lock(&self.shared.topics);
            topics.retain(|_, sender| sender.receiver_count() > 0);
            topics.keys().cloned().collect()
        };
        for chunk in live.chunks(RESUBSCRIBE_CHUNK) {
            let channels: Vec<String> = chunk.iter().map(|topic| self.channel(topic)).collect();
            time_boxed("subscribe", OP_TIMEOUT, sink.subscribe(&channels)).await?;
        }
        self.active.extend(live);
        Ok(())
    }

    /// Forward messages and handle requests until the connection fails or the
    /// backplane is dropped.
    async fn serve(&mut self, sink: &mut PubSubSink, stream: &mut PubSubStream) -> Exit {
        let mut health = tokio::time::interval(HEALTH_INTERVAL);
        health.set_missed_tick_behavior(MissedTickBehavior::Delay);
        health.reset();
        loop {
            let outcome = tokio::select! {
                message = stream.next() => match message {
                    Some(message) => match self.forward(&message) {
                        Some(dead) => self.unsubscribe(sink, vec![dead]).await,
                        None => Ok(()),
                    },
                    None => return Exit::Lost("the connection closed".to_owned()),
                },
                request = self.control.recv() => match request {
                    Some(request) => self.handle(sink, request).await,
                    None => return Exit::Closed,
                },
                _ = health.tick() => self.check(sink).await,
            };
            if let Err(error) = outcome {
                return Exit::Lost(error.to_string());
            }
        }
    }

    /// Hand a message to its topic's local subscribers. Returns the topic if nobody
    /// listens to it any more, so the caller unsubscribes it.
    fn forward(&self, message: &Msg) -> Option<String> {
        let topic = message.get_channel_name().strip_prefix(&self.prefix)?;
        // Decoded once here (outside the lock), then shared by the topic's subscribers.
        let event = serde_json::from_slice::<Event>(message.get_payload_bytes());
        let mut topics = lock(&self.shared.topics);
        match topics.get(topic) {
            Some(sender) if sender.receiver_count() > 0 => {
                match event {
                    // Fails only if the last receiver went away just now; the next
                    // message or sweep unsubscribes it.
                    Ok(event) => {
                        let _ = sender.send(Arc::new(event));
                    }
                    Err(error) => tracing::warn!(
                        key_prefix = %self.prefix, topic, %error,
                        "Dropped an unreadable pub/sub message"
                    ),
                }
                None
            }
            Some(_) => {
                topics.remove(topic);
                Some(topic.to_owned())
            }
            None => self.active.contains(topic).then(|| topic.to_owned()),
        }
    }

    async fn handle(
        &mut self,
        sink: &mut PubSubSink,
        request: Control,
    ) -> Result<(), BackplaneError> {
        match request {
            Control::Subscribe { topic, confirmed } => {
                if !self.active.contains(&topic) {
                    let live = {
                        let mut topics = lock(&self.shared.topics);
                        match topics.get(&topic) {
                            Some(sender) if sender.receiver_count() > 0 => true,
                            Some(_) => {
                                // Dropped before we got to it: forget it, so that a
                                // later subscribe starts over with a new request.
                                topics.remove(&topic);
                                false
                            }
                            None => false,
                        }
                    };
                    if !live {
                        return Ok(());
                    }
                    let channel = self.channel(&topic);
                    time_boxed("subscribe", OP_TIMEOUT, sink.subscribe(&channel)).await?;
                    self.active.insert(topic);
                }
                if let Some(confirmed) = confirmed {
                    let _ = confirmed.send(());
                }
                Ok(())
            }
        }
    }

    /// The periodic check: unsubscribe the topics nobody listens to, and make sure
    /// the connection still answers.
    async fn check(&mut self, sink: &mut PubSubSink) -> Result<(), BackplaneError> {
        let dead: Vec<String> = {
            let mut topics = lock(&self.shared.topics);
            topics.retain(|_, sender| sender.receiver_count() > 0);
            self.active
                .iter()
                .filter(|topic| !topics.contains_key(*topic))
                .cloned()
                .collect()
        };
        if !dead.is_empty() {
            self.unsubscribe(sink, dead).await?;
        }
        time_boxed("ping", OP_TIMEOUT, sink.ping::<redis::Value>()).await?;
        Ok(())
    }

    async fn unsubscribe(
        &mut self,
        sink: &mut PubSubSink,
        topics: Vec<String>,
    ) -> Result<(), BackplaneError> {
        for chunk in topics.chunks(RESUBSCRIBE_CHUNK) {
            let channels: Vec<String> = chunk.iter().map(|topic| self.channel(topic)).collect();
            time_boxed("unsubscribe", OP_TIMEOUT, sink.unsubscribe(&channels)).await?;
            for topic in chunk {
                self.active.remove(topic);
            }
        }
        Ok(())
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }
}
