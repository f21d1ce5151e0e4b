//! The engine on its own (in-memory store, in-process backplane): ordering by `seq`,
//! gap filling from the store, resume, and supervision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parley_actors::backplane::SharedBackplane;
use parley_actors::backplane::local::LocalBackplane;
use parley_actors::engine::conversation::{Audience, Deliver, InjectFault, Post, Subscribe};
use parley_actors::engine::events::ConvEvent;
use parley_actors::engine::hub::GetConversation;
use parley_actors::engine::{Engine, EngineConfig, conversation_topic};
use parley_actors::protocol::{Channel, MessageKind, Participant, ParticipantKind};
use parley_actors::store::memory::MemoryStore;
use parley_actors::store::{Appended, NewConversation, NewMessage, SharedStore, Store};
use tokio::sync::mpsc;

/// Collects what a session would be sent.
struct Probe(mpsc::UnboundedSender<serde_json::Value>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Probe {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        let _ = self.0.send(serde_json::from_str(&msg.frame).unwrap());
    }
}

fn message(conv: &str, client_id: &str) -> NewMessage {
    NewMessage {
        workspace_id: "W".into(),
        conversation_id: conv.into(),
        kind: MessageKind::Message,
        sender: Participant {
            kind: ParticipantKind::Agent,
            id: "a".into(),
            name: "A".into(),
        },
        body: client_id.into(),
        attachments: Vec::new(),
        channel: Channel::Chat,
        client_id: Some(client_id.into()),
    }
}

async fn setup(fault_injection: bool) -> (Engine, Arc<MemoryStore>, SharedBackplane, String) {
    let store = Arc::new(MemoryStore::default());
    let backplane: SharedBackplane = Arc::new(LocalBackplane::new());
    let shared: SharedStore = store.clone();
    let engine = Engine::start(
        shared,
        backplane.clone(),
        EngineConfig {
            fault_injection,
            ..EngineConfig::default()
        },
    );
    let conv = store
        .create_conversation(NewConversation {
            workspace_id: "W".into(),
            inbox_id: "I".into(),
            channel_id: "C".into(),
            channel: Channel::Chat,
            contact_id: "K".into(),
        })
        .await
        .unwrap();
    (engine, store, backplane, conv.id)
}

async fn next_seq(rx: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> u64 {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a frame in time")
            .expect("probe alive");
        if f["type"] == "message" {
            return f["message"]["seq"].as_u64().unwrap();
        }
    }
}

#[actix::test]
async fn an_early_message_waits_for_the_missing_one_which_comes_from_the_store() {
    let (engine, store, backplane, conv) = setup(false).await;
    let addr = engine
        .hub
        .send(GetConversation { id: conv.clone() })
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    addr.send(Subscribe {
        session_id: 1,
        recipient: probe.recipient(),
        audience: Audience::Agent {
            user_id: "x".into(),
        },
        after_seq: None,
    })
    .await
    .unwrap()
    .unwrap();

    // Another node commits seq 1 and 2, but only seq 2's event reaches this node.
    let results = store
        .append(vec![message(&conv, "m1"), message(&conv, "m2")])
        .await
        .unwrap();
    let Appended::New(second) = results[1].clone() else {
        panic!()
    };
    let event = parley_actors::backplane::payload(ConvEvent::Message { message: second });
    backplane
        .publish(&conversation_topic(&conv), event)
        .await
        .unwrap();

    assert_eq!(
        next_seq(&mut rx).await,
        1,
        "the gap is filled from the store first"
    );
    assert_eq!(next_seq(&mut rx).await, 2);
}

#[actix::test]
async fn a_subscriber_resuming_from_an_old_seq_gets_the_history_then_live_messages() {
    let (engine, store, _backplane, conv) = setup(false).await;
    store
        .append((1..=3).map(|i| message(&conv, &format!("h{i}"))).collect())
        .await
        .unwrap();
    let addr = engine
        .hub
        .send(GetConversation { id: conv.clone() })
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    addr.send(Subscribe {
        session_id: 7,
        recipient: probe.recipient(),
        audience: Audience::Visitor {
            contact_id: "K".into(),
        },
        after_seq: Some(1),
    })
    .await
    .unwrap()
    .unwrap();
    addr.send(Post {
        message: message(&conv, "live"),
        origin: None,
    })
    .await
    .unwrap()
    .unwrap();
    let got = [
        next_seq(&mut rx).await,
        next_seq(&mut rx).await,
        next_seq(&mut rx).await,
    ];
    assert_eq!(got, [2, 3, 4]);
}

#[actix::test]
async fn a_crashed_actor_keeps_its_subscribers_and_catches_them_up() {
    let (engine, store, _backplane, conv) = setup(true).await;
    let addr = engine
        .hub
        .send(GetConversation { id: conv.clone() })
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    addr.send(Subscribe {
        session_id: 3,
        recipient: probe.recipient(),
        audience: Audience::Agent {
            user_id: "x".into(),
        },
        after_seq: None,
    })
    .await
    .unwrap()
    .unwrap();
    addr.do_send(InjectFault);
    // Written while the actor restarts (e.g. by another node).
    store.append(vec![message(&conv, "during")]).await.unwrap();
    // A post racing the restart may be refused; the client retries with the same
    // client_id, which can never make a second message.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match addr
            .send(Post {
                message: message(&conv, "after"),
                origin: None,
            })
            .await
        {
            Ok(Ok(_)) => break,
            Ok(Err(_)) | Err(_) => assert!(std::time::Instant::now() < deadline),
        }
    }
    assert_eq!(next_seq(&mut rx).await, 1);
    assert_eq!(next_seq(&mut rx).await, 2);
    assert_eq!(store.messages_after(&conv, 0, 10).await.unwrap().len(), 2);
}

#[actix::test]
async fn a_failing_store_answers_an_error_and_stores_nothing() {
    let (engine, store, _backplane, conv) = setup(false).await;
    let addr = engine
        .hub
        .send(GetConversation { id: conv.clone() })
        .await
        .unwrap();
    store
        .fail_appends
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = addr
        .send(Post {
            message: message(&conv, "x"),
            origin: None,
        })
        .await
        .unwrap();
    assert!(r.is_err());
    store
        .fail_appends
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // The retry with the same client_id stores it once.
    let r = addr
        .send(Post {
            message: message(&conv, "x"),
            origin: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.message().unwrap().seq, 1);
    assert_eq!(store.messages_after(&conv, 0, 10).await.unwrap().len(), 1);
}

#[actix::test]
async fn an_idle_conversation_actor_passivates_and_stays_stopped() {
    let store = Arc::new(MemoryStore::default());
    let shared: SharedStore = store.clone();
    let engine = Engine::start(
        shared,
        Arc::new(LocalBackplane::new()),
        EngineConfig {
            idle_passivate: Duration::ZERO,
            heartbeat: Duration::from_millis(20),
            ..EngineConfig::default()
        },
    );
    let conv = store
        .create_conversation(NewConversation {
            workspace_id: "W".into(),
            inbox_id: "I".into(),
            channel_id: "C".into(),
            channel: Channel::Chat,
            contact_id: "K".into(),
        })
        .await
        .unwrap();
    for round in 1..=2 {
        let addr = engine
            .hub
            .send(GetConversation {
                id: conv.id.clone(),
            })
            .await
            .unwrap();
        let weak = addr.downgrade();
        drop(addr);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while weak.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the actor never went away"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One rehydration per start: a passivated actor is not restarted behind our back.
        assert_eq!(
            store
                .conversation_reads
                .load(std::sync::atomic::Ordering::SeqCst),
            round
        );
    }
    assert_eq!(
        engine
            .hub
            .send(parley_actors::engine::hub::LiveCount)
            .await
            .unwrap(),
        0
    );
}
