//! The Redis backplane against a real Redis: two backplanes on one key prefix stand
//! for two nodes. Needs `PARLEY_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`);
//! without it the tests print "skipped" and pass, unless `CI` is set. The restart test
//! also needs `redis-server` on the `PATH`: it runs a private one on a free port.
//!
//! Each test uses its own key prefix and deletes its keys when it ends, even by panic.
//! Logs are silent unless `TEST_LOG=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parley_actors::backplane::redis::RedisBackplane;
use parley_actors::backplane::{Backplane, Event, Payload, Subscription};
use parley_actors::engine::events::WsEvent;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::timeout;

/// The longest any single wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(5);

/// The Redis the tests share, or `None` (after saying so) when it is not configured.
fn redis_url() -> Option<String> {
    init_logs();
    match std::env::var("PARLEY_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PARLEY_TEST_REDIS_URL must be set when CI is set"
            );
            println!("skipped: PARLEY_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// Print the backplane's logs when `TEST_LOG=1`.
fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("parley_actors=debug")
            .with_test_writer()
            .try_init();
    }
}

fn unique_prefix() -> String {
    format!("parley-test:{}:", uuid::Uuid::now_v7().simple())
}

/// An event that carries `text` (as a user id), to tell events apart.
fn payload(text: &str) -> Payload {
    parley_actors::backplane::payload(WsEvent::Membership {
        user_id: text.to_owned(),
        inbox_ids: Vec::new(),
    })
}

/// The text of the next event `payload` made (decoded from Redis on the way).
async fn recv(subscription: &mut Subscription) -> String {
    let event = timeout(WAIT, subscription.recv())
        .await
        .expect("an event within the timeout")
        .expect("an event, not an error");
    text(&event)
}

fn text(event: &Event) -> String {
    match event {
        Event::Workspace(WsEvent::Membership { user_id, .. }) => user_id.clone(),
        other => panic!("not a test event: {other:?}"),
    }
}

/// Assert that nothing more is waiting, after giving stray duplicates time to land.
async fn assert_no_more(subscription: &mut Subscription) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let next = subscription.try_recv();
    assert!(matches!(next, Err(TryRecvError::Empty)), "{next:?}");
}

/// Deletes every key under a prefix when dropped (at the end of a test or in a panic).
struct KeyCleanup {
    url: String,
    prefix: String,
}

impl Drop for KeyCleanup {
    fn drop(&mut self) {
        let deleted = (|| -> redis::RedisResult<()> {
            let client = redis::Client::open(self.url.as_str())?;
            let mut con = client.get_connection_with_timeout(WAIT)?;
            con.set_read_timeout(Some(WAIT))?;
            let pattern = format!("{}*", self.prefix);
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut con)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(&keys).exec(&mut con)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })();
        if let Err(error) = deleted {
            eprintln!(
                "could not delete the test keys under {}: {error}",
                self.prefix
            );
        }
    }
}

/// A synchronous command connection for checking Redis from the outside.
fn raw(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).unwrap();
    let con = client.get_connection_with_timeout(WAIT).unwrap();
    con.set_read_timeout(Some(WAIT)).unwrap();
    con
}

/// How many connections subscribe to `channel`.
fn subscribers(con: &mut redis::Connection, channel: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(con)
        .unwrap();
    count
}

/// Poll `check` every 20 ms until it holds or `limit` passes; returns whether it held.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_event_published_on_one_node_reaches_every_subscriber_on_both_nodes_exactly_once() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let _cleanup = KeyCleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let node_a = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let node_b = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let mut on_a = node_a.subscribe_confirmed("conversation.1").await.unwrap();
    let mut on_a_too = node_a.subscribe("conversation.1");
    let mut on_b = node_b.subscribe_confirmed("conversation.1").await.unwrap();
    let mut other_topic = node_b.subscribe_confirmed("conversation.2").await.unwrap();

    node_a
        .publish("conversation.1", payload("event"))
        .await
        .unwrap();
    node_a
        .publish("conversation.1", payload("end"))
        .await
        .unwrap();

    for subscription in [&mut on_a, &mut on_a_too, &mut on_b] {
        assert_eq!(recv(subscription).await, "event");
        assert_eq!(recv(subscription).await, "end");
        assert_no_more(subscription).await;
    }
    // The other topic saw none of it: the first thing it gets is its own event.
    node_a
        .publish("conversation.2", payload("marker"))
        .await
        .unwrap();
    assert_eq!(recv(&mut other_topic).await, "marker");
    assert_no_more(&mut other_topic).await;
}

#[tokio::test]
async fn events_arrive_in_publish_order() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let _cleanup = KeyCleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let node_a = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let node_b = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let mut on_b = node_b.subscribe_confirmed("t").await.unwrap();

    for i in 0..200 {
        node_a.publish("t", payload(&i.to_string())).await.unwrap();
    }

    for i in 0..200 {
        assert_eq!(recv(&mut on_b).await, i.to_string());
    }
}

#[tokio::test]
async fn nodes_with_different_prefixes_do_not_hear_each_other() {
    let Some(url) = redis_url() else { return };
    let (prefix_1, prefix_2) = (unique_prefix(), unique_prefix());
    let _cleanup_1 = KeyCleanup {
        url: url.clone(),
        prefix: prefix_1.clone(),
    };
    let _cleanup_2 = KeyCleanup {
        url: url.clone(),
        prefix: prefix_2.clone(),
    };
    let deployment_1 = RedisBackplane::connect(&url, &prefix_1).await.unwrap();
    let deployment_2 = RedisBackplane::connect(&url, &prefix_2).await.unwrap();
    let mut on_2 = deployment_2.subscribe_confirmed("t").await.unwrap();
    deployment_1
        .set_add("viewers", "alice", Duration::from_secs(60))
        .await
        .unwrap();

    deployment_1.publish("t", payload("for 1")).await.unwrap();
    deployment_2.publish("t", payload("for 2")).await.unwrap();

    assert_eq!(recv(&mut on_2).await, "for 2");
    assert_no_more(&mut on_2).await;
    assert!(
        deployment_2
            .set_members("viewers")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_topic_is_unsubscribed_in_redis_once_its_last_receiver_is_dropped() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let _cleanup = KeyCleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let mut con = raw(&url);
    let node = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let busy = node.subscribe_confirmed("busy").await.unwrap();
    let quiet = node.subscribe_confirmed("quiet").await.unwrap();
    let busy_channel = format!("{prefix}busy");
    let quiet_channel = format!("{prefix}quiet");
    assert_eq!(subscribers(&mut con, &busy_channel), 1);
    assert_eq!(subscribers(&mut con, &quiet_channel), 1);

    drop(busy);
    drop(quiet);
    // A topic with traffic is unsubscribed when its next event finds nobody...
    node.publish("busy", payload("anyone?")).await.unwrap();
    let busy_gone = eventually(WAIT, async || subscribers(&mut con, &busy_channel) == 0).await;
    assert!(busy_gone, "the busy topic is still subscribed");
    // ...and a quiet one by the periodic sweep.
    let quiet_gone = eventually(WAIT, async || subscribers(&mut con, &quiet_channel) == 0).await;
    assert!(quiet_gone, "the quiet topic is still subscribed");

    // Subscribing again works as if for the first time.
    let mut again = node.subscribe_confirmed("busy").await.unwrap();
    node.publish("busy", payload("back")).await.unwrap();
    assert_eq!(recv(&mut again).await, "back");
}

#[tokio::test]
async fn ephemeral_sets_are_shared_between_nodes_and_expire() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let _cleanup = KeyCleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let node_a = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let node_b = RedisBackplane::connect(&url, &prefix).await.unwrap();

    node_a
        .set_add("viewers", "carol", Duration::from_secs(60))
        .await
        .unwrap();
    node_b
        .set_add("viewers", "alice", Duration::from_secs(60))
        .await
        .unwrap();
    node_b
        .set_add("viewers", "bob", Duration::from_millis(300))
        .await
        .unwrap();

    assert_eq!(
        node_a.set_members("viewers").await.unwrap(),
        ["alice", "bob", "carol"]
    );
    assert_eq!(
        node_b.set_members("viewers").await.unwrap(),
        ["alice", "bob", "carol"]
    );
    // The key itself expires too, later than any member (never shortened by bob).
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}viewers"))
        .query(&mut raw(&url))
        .unwrap();
    assert!(pttl > 60_000, "key TTL {pttl} ms");

    let expired = eventually(WAIT, async || {
        node_a.set_members("viewers").await.unwrap() == ["alice", "carol"]
    })
    .await;
    assert!(expired, "bob never expired");

    node_a.set_remove("viewers", "alice").await.unwrap();
    assert_eq!(node_b.set_members("viewers").await.unwrap(), ["carol"]);
    assert!(node_b.set_members("nobody").await.unwrap().is_empty());
    node_a.ping().await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_port_where_nothing_listens_fails_quickly() {
    let port = free_port();
    let start = Instant::now();

    let result = RedisBackplane::connect(&format!("redis://127.0.0.1:{port}"), "x:").await;

    assert!(result.is_err());
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
}

/// A private `redis-server`, killed when dropped.
struct RedisServer {
    child: Child,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        let server = Self { child };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_subscriber_hears_events_again_after_redis_restarts() {
    // Runs only where Redis tests are enabled; it needs `redis-server`, not the URL.
    let Some(_) = redis_url() else { return };
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let server = RedisServer::start(port);
    let node = RedisBackplane::connect(&url, "restart:").await.unwrap();
    let mut subscription = node.subscribe_confirmed("t").await.unwrap();
    node.publish("t", payload("before")).await.unwrap();
    assert_eq!(recv(&mut subscription).await, "before");

    drop(server);

    // While Redis is down, calls fail fast instead of hanging.
    for _ in 0..3 {
        let start = Instant::now();
        let published = node.publish("t", payload("lost")).await;
        assert!(published.is_err(), "publish succeeded with Redis down");
        assert!(
            start.elapsed() < Duration::from_millis(2500),
            "{:?}",
            start.elapsed()
        );
        let start = Instant::now();
        let added = node.set_add("s", "m", Duration::from_secs(60)).await;
        assert!(added.is_err(), "set_add succeeded with Redis down");
        assert!(
            start.elapsed() < Duration::from_millis(2500),
            "{:?}",
            start.elapsed()
        );
    }
    let pinged = eventually(WAIT, async || node.ping().await.is_err()).await;
    assert!(pinged, "ping kept succeeding with Redis down");

    let _server = RedisServer::start(port);

    // Poll-publish until the subscription hears an event again: proves both the
    // command connection and the pub/sub connection came back and resubscribed.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut heard = None;
    let mut attempt = 0;
    while heard.is_none() {
        assert!(
            Instant::now() < deadline,
            "no event after the restart within 15 s"
        );
        attempt += 1;
        let _ = node
            .publish("t", payload(&format!("after {attempt}")))
            .await;
        if let Ok(event) = timeout(Duration::from_millis(200), subscription.recv()).await {
            let event = text(&event.expect("the subscription survives the restart"));
            assert!(event.starts_with("after"), "{event}");
            heard = Some(event);
        }
    }

    // The sets work again too (the script cache of the new server starts empty).
    node.set_add("s", "m", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(node.set_members("s").await.unwrap(), ["m"]);
    let ready = eventually(WAIT, async || node.ping().await.is_ok()).await;
    assert!(ready, "ping never recovered");
}

/// Send `signal` (e.g. `-STOP`) to the private server.
fn signal(server: &RedisServer, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .expect("kill on the PATH");
    assert!(status.success(), "kill {signal} failed");
}

#[tokio::test]
async fn calls_fail_within_two_seconds_while_redis_hangs_and_recover_after() {
    let Some(_) = redis_url() else { return };
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let server = RedisServer::start(port);
    let node = RedisBackplane::connect(&url, "hang:").await.unwrap();
    let mut subscription = node.subscribe_confirmed("t").await.unwrap();

    // A stopped process keeps its sockets open but never answers.
    signal(&server, "-STOP");
    let start = Instant::now();
    let published = node.publish("t", payload("into the void")).await;
    assert!(published.is_err(), "publish succeeded with Redis hung");
    let start_members = Instant::now();
    let members = node.set_members("s").await;
    assert!(members.is_err(), "set_members succeeded with Redis hung");
    assert!(start_members.elapsed() < Duration::from_millis(2500));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let pinged = timeout(Duration::from_secs(3), node.ping()).await;
    assert!(matches!(pinged, Ok(Err(_))), "{pinged:?}");
    signal(&server, "-CONT");

    // Commands that timed out may still run once Redis wakes up: `Unavailable` means
    // "not known to have happened", so stray events may arrive; wait for a new one.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempt = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no event after Redis resumed within 15 s"
        );
        attempt += 1;
        let _ = node
            .publish("t", payload(&format!("after {attempt}")))
            .await;
        if let Ok(event) = timeout(Duration::from_millis(200), subscription.recv()).await {
            let event = text(&event.expect("the subscription survives the hang"));
            if event.starts_with("after") {
                break;
            }
        }
    }
    let ready = eventually(WAIT, async || node.ping().await.is_ok()).await;
    assert!(ready, "ping never recovered");
}

#[tokio::test]
async fn dropping_the_backplane_closes_its_subscriptions() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let _cleanup = KeyCleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let node = RedisBackplane::connect(&url, &prefix).await.unwrap();
    let mut subscription = node.subscribe_confirmed("t").await.unwrap();
    let mut con = raw(&url);
    assert_eq!(subscribers(&mut con, &format!("{prefix}t")), 1);

    drop(node);

    let ended = timeout(WAIT, subscription.recv()).await.unwrap();
    assert!(matches!(ended, Err(RecvError::Closed)), "{ended:?}");
    let gone = eventually(WAIT, async || {
        subscribers(&mut con, &format!("{prefix}t")) == 0
    })
    .await;
    assert!(gone, "the pub/sub connection outlived the backplane");
}

/// Increment a counter under `key` with compare-and-set, retrying on contention.
async fn cas_increment(node: &dyn Backplane, key: &str) {
    loop {
        let current = node.get(key).await.unwrap();
        let n: u64 = current.as_deref().map_or(0, |v| v.parse().unwrap());
        let next = (n + 1).to_string();
        if node
            .compare_and_set(key, current.as_deref(), &next, Duration::from_secs(60))
            .await
            .unwrap()
        {
            return;
        }
    }
}

#[tokio::test]
async fn compare_and_set_is_atomic_across_nodes() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let _cleanup = KeyCleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let node_a = std::sync::Arc::new(RedisBackplane::connect(&url, &prefix).await.unwrap());
    let node_b = std::sync::Arc::new(RedisBackplane::connect(&url, &prefix).await.unwrap());
    assert_eq!(node_a.get("counter").await.unwrap(), None);
    assert!(
        !node_a
            .compare_and_set("counter", Some("7"), "8", Duration::from_secs(60))
            .await
            .unwrap(),
        "an absent key does not match an expected value"
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                cas_increment(&*node, "counter").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(node_b.get("counter").await.unwrap().as_deref(), Some("200"));
    node_a.delete("counter").await.unwrap();
    assert_eq!(node_b.get("counter").await.unwrap(), None);
}
