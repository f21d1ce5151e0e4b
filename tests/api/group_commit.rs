//! The durable write path under concurrency: many conversations, many sends in flight,
//! the same `client_id` retried on two sockets within one group commit and in later
//! ones, and a store failure halfway through a batch.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestEnv, Ws};
use crate::on_both_stores;

on_both_stores!(
    retried_sends_across_many_conversations_are_stored_once_and_gap_free,
    a_store_failure_halfway_through_a_batch_fails_those_sends_and_stores_nothing,
);

const LIMITS: &[(&str, &str)] = &[
    ("PARLEY__ENGINE__VISITOR_MESSAGES_PER_SEC", "100000"),
    ("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "100000"),
];

/// A visitor with two sockets on one conversation (a client retrying on a new socket
/// while the old one is still open).
struct Visitor {
    conversation_id: String,
    a: Ws,
    b: Ws,
}

async fn visitors(app: &TestApp, channel_id: &str, n: usize) -> Vec<Visitor> {
    let chat = crate::helpers::Chat {
        inbox_id: String::new(),
        channel_id: channel_id.to_owned(),
    };
    let mut out = Vec::new();
    for i in 0..n {
        let mut v = app.visitor(&chat).await;
        v.ws.send(json!({"type": "send", "client_id": "open", "body": format!("hello {i}")}))
            .await;
        let ack = v.ws.recv_type("ack").await;
        assert_eq!(ack["seq"], 1);
        let b = app.visitor_ws(&v.token).await;
        out.push(Visitor {
            conversation_id: ack["conversation_id"].as_str().unwrap().to_owned(),
            a: v.ws,
            b,
        });
    }
    out
}

/// The next `ack` or `error` frame.
async fn answer(ws: &mut Ws) -> Value {
    ws.recv_where("ack or error", |f| {
        f["type"] == "ack" || f["type"] == "error"
    })
    .await
}

async fn history(app: &TestApp, token: &str, conversation_id: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/conversations/{conversation_id}/messages?limit=200"),
        token,
    )
    .await
    .expect(200)
    .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn retried_sends_across_many_conversations_are_stored_once_and_gap_free(b: Backend) {
    let env = TestEnv::new(b, LIMITS).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app.chat(&admin, &[&agent]).await;
    const VISITORS: usize = 12;
    const SENDS: usize = 20;
    let mut vs = visitors(&app, &chat.channel_id, VISITORS).await;
    let mut console = app.agent_ws(&agent).await;
    for v in &vs {
        console
            .send(json!({"type": "resume", "conversation_id": v.conversation_id, "after_seq": 1}))
            .await;
    }
    // Every message is sent three times: twice back to back on socket A (the repeat
    // usually lands in the same group commit) and once on socket B (concurrently,
    // from another session). All visitors send at once, so commits carry many
    // conversations.
    for k in 0..SENDS {
        for v in vs.iter_mut() {
            let frame = json!({"type": "send", "client_id": format!("c-{k}"),
                "conversation_id": v.conversation_id, "body": format!("m{k}")});
            v.a.send(frame.clone()).await;
            v.a.send(frame.clone()).await;
            v.b.send(frame).await;
        }
    }
    for v in vs.iter_mut() {
        let mut by_client: HashMap<String, (Value, u64)> = HashMap::new();
        for (ws, n) in [(&mut v.a, 2 * SENDS), (&mut v.b, SENDS)] {
            for _ in 0..n {
                let f = answer(ws).await;
                assert_eq!(f["type"], "ack", "{f}");
                assert_eq!(f["conversation_id"], v.conversation_id.as_str());
                let client = f["client_id"].as_str().unwrap().to_owned();
                let seen = (f["id"].clone(), f["seq"].as_u64().unwrap());
                let first = by_client.entry(client).or_insert_with(|| seen.clone());
                assert_eq!(*first, seen, "one client_id, one message");
            }
        }
        let mut seqs: Vec<u64> = by_client.values().map(|(_, s)| *s).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (2..=SENDS as u64 + 1).collect::<Vec<_>>());
    }
    // A retry in a later batch still answers the first message.
    for v in vs.iter_mut() {
        v.b.send(json!({"type": "send", "client_id": "c-3",
            "conversation_id": v.conversation_id, "body": "m3"}))
            .await;
    }
    for v in vs.iter_mut() {
        let f = answer(&mut v.b).await;
        assert_eq!(f["type"], "ack", "{f}");
        let stored = history(&app, &agent.token, &v.conversation_id).await;
        let m3 = stored.iter().find(|m| m["body"] == "m3").unwrap();
        assert_eq!(f["seq"], m3["seq"]);
        assert_eq!(f["id"], m3["id"]);
        let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=SENDS as u64 + 1).collect::<Vec<_>>());
        let mut bodies: Vec<&str> = stored.iter().map(|m| m["body"].as_str().unwrap()).collect();
        bodies.sort_unstable();
        bodies.dedup();
        assert_eq!(bodies.len(), SENDS + 1, "no body stored twice");
    }
    // The console got every message once, in order per conversation: after 2..=21,
    // the next message frame of each conversation is a fresh one, seq 22.
    let mut next: BTreeMap<String, u64> =
        vs.iter().map(|v| (v.conversation_id.clone(), 2)).collect();
    for _ in 0..VISITORS * SENDS {
        let m = console.recv_type("message").await;
        let conv = m["message"]["conversation_id"].as_str().unwrap().to_owned();
        let expected = next.get_mut(&conv).unwrap();
        assert_eq!(m["message"]["seq"], *expected, "{m}");
        *expected += 1;
    }
    for v in vs.iter_mut() {
        v.a.send(json!({"type": "send", "client_id": "last",
            "conversation_id": v.conversation_id, "body": "last"}))
            .await;
    }
    for _ in 0..VISITORS {
        let m = console.recv_type("message").await;
        assert_eq!(m["message"]["body"], "last", "{m}");
        assert_eq!(m["message"]["seq"], SENDS as u64 + 2);
    }
}

async fn a_store_failure_halfway_through_a_batch_fails_those_sends_and_stores_nothing(b: Backend) {
    let env = TestEnv::new(b, LIMITS).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app.chat(&admin, &[&agent]).await;
    // The database refuses any message whose body is "poison": the insert of a batch
    // fails after its seqs were reserved.
    let db = parley::store::Db::connect(&env.settings()).await.unwrap();
    let ddl: &[&str] = match b {
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.body = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
        Backend::Sqlite => &["CREATE TRIGGER refuse_poison BEFORE INSERT ON messages \
             WHEN NEW.body = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"],
    };
    for sql in ddl {
        sqlx::query(*sql).execute(db.pool()).await.unwrap();
    }
    db.close().await;
    let mut vs = visitors(&app, &chat.channel_id, 10).await;
    // Everyone sends at once; visitor 0 sends the poison.
    for round in 0..3 {
        for (i, v) in vs.iter_mut().enumerate() {
            let body = if i == 0 && round == 1 {
                "poison".to_owned()
            } else {
                format!("r{round}")
            };
            v.a.send(json!({"type": "send", "client_id": format!("k{round}"),
                "conversation_id": v.conversation_id, "body": body}))
                .await;
        }
    }
    let mut failed = 0;
    for (i, v) in vs.iter_mut().enumerate() {
        for round in 0..3 {
            let client = format!("k{round}");
            let mut f = answer(&mut v.a).await;
            assert_eq!(
                f["client_id"].as_str().or(f["ref"].as_str()),
                Some(&*client)
            );
            if i == 0 && round == 1 {
                assert_eq!(f["type"], "error", "the poison is never acked: {f}");
                assert_eq!(f["code"], "internal");
                continue;
            }
            // A send that shared the failed commit fails too; its retry succeeds.
            while f["type"] == "error" {
                assert_eq!(f["code"], "internal", "{f}");
                failed += 1;
                v.b.send(json!({"type": "send", "client_id": client,
                    "conversation_id": v.conversation_id, "body": format!("r{round}")}))
                    .await;
                f = answer(&mut v.b).await;
            }
            assert_eq!(f["type"], "ack", "{f}");
        }
    }
    eprintln!("sends that shared the poisoned commit and were retried: {failed}");
    for (i, v) in vs.iter_mut().enumerate() {
        let stored = history(&app, &agent.token, &v.conversation_id).await;
        let bodies: Vec<&str> = stored.iter().map(|m| m["body"].as_str().unwrap()).collect();
        let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=bodies.len() as u64).collect::<Vec<_>>(),
            "gap-free"
        );
        let mut expected = vec!["r0", "r1", "r2"];
        if i == 0 {
            expected.retain(|b| *b != "r1");
        }
        let mut got: Vec<&str> = bodies[1..].to_vec();
        got.sort_unstable();
        assert_eq!(
            got, expected,
            "each acked send stored once, the poison never"
        );
    }
    // The failed commit reserved no seq: the next message follows on.
    let v = &mut vs[0];
    v.a.send(json!({"type": "send", "client_id": "after",
        "conversation_id": v.conversation_id, "body": "after"}))
        .await;
    let f = answer(&mut v.a).await;
    assert_eq!(f["type"], "ack", "{f}");
    assert_eq!(f["seq"], 4);
}
