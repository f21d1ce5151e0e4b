//! Several nodes on one PostgreSQL and one Redis: what one node's clients do reaches
//! the other's, `seq` stays gap-free whichever node writes, and neither a killed node nor
//! a Redis restart loses a message. These run only on the PostgreSQL+Redis variant.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, Node, RedisServer, TestApp, TestEnv, Ws, postgres_enabled};

const FAST_PRESENCE: [(&str, &str); 2] = [
    ("PARLEY__ENGINE__PRESENCE_TTL_SECS", "3"),
    ("PARLEY__ENGINE__HEARTBEAT_SECS", "1"),
];

async fn first_message(ws: &mut Ws, body: &str) -> String {
    ws.send(json!({"type": "send", "client_id": "v-1", "body": body}))
        .await;
    ws.recv_type("ack").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn messages_typing_viewers_and_presence_cross_nodes() {
    if !postgres_enabled() {
        return;
    }
    let env = TestEnv::new(Backend::Postgres, &FAST_PRESENCE).await;
    let a = env.start().await;
    let b = env.start().await;
    let admin = a.admin(&env, "Acme", "ada@acme.test").await;
    let agent = a.agent(&admin, "bob@acme.test").await;
    let chat = a.chat(&admin, &[&agent]).await;

    let mut bob = b.agent_ws(&agent).await; // agent on B
    let mut ada = a.agent_ws(&admin).await; // admin on A
    let bob_id = agent.id();
    ada.recv_where("bob online (from B)", |f| {
        f["type"] == "presence" && f["user_id"] == bob_id.as_str() && f["status"] == "online"
    })
    .await;

    let mut visitor = a.visitor(&chat).await; // visitor on A
    let conv = first_message(&mut visitor.ws, "hello from A").await;
    let created = bob.recv_type("conversation").await;
    assert_eq!(created["conversation"]["id"], conv.as_str());

    bob.send(json!({"type": "view", "conversation_id": conv}))
        .await;
    bob.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(bob.recv_type("message").await["message"]["seq"], 1);

    bob.send(json!({"type": "send", "client_id": "b-1", "conversation_id": conv, "body": "hello from B"}))
        .await;
    assert_eq!(bob.recv_type("ack").await["seq"], 2);
    let m = visitor.ws.recv_type("message").await;
    assert_eq!(
        (m["message"]["seq"].clone(), m["message"]["body"].clone()),
        (json!(2), json!("hello from B"))
    );

    bob.send(json!({"type": "typing", "conversation_id": conv, "on": true}))
        .await;
    assert_eq!(visitor.ws.recv_type("typing").await["on"], true);
    visitor
        .ws
        .send(json!({"type": "typing", "conversation_id": conv, "on": true}))
        .await;
    let t = bob
        .recv_where("visitor typing", |f| {
            f["type"] == "typing" && f["who"]["type"] == "visitor"
        })
        .await;
    assert_eq!(t["on"], true);

    ada.send(json!({"type": "view", "conversation_id": conv}))
        .await;
    bob.recv_where("two viewers across nodes", |f| {
        f["type"] == "viewers" && f["users"].as_array().is_some_and(|u| u.len() == 2)
    })
    .await;

    bob.close().await;
    ada.recv_where("bob offline", |f| {
        f["type"] == "presence" && f["user_id"] == bob_id.as_str() && f["status"] == "offline"
    })
    .await;
}

#[actix_web::test]
async fn writers_on_two_nodes_keep_seq_gap_free() {
    if !postgres_enabled() {
        return;
    }
    let env = TestEnv::new(Backend::Postgres, &[]).await;
    let a = env.start().await;
    let b = env.start().await;
    let admin = a.admin(&env, "Acme", "ada@acme.test").await;
    let chat = a.chat(&admin, &[]).await;
    let mut visitor = a.visitor(&chat).await;
    let conv = first_message(&mut visitor.ws, "start").await;

    let mut tasks = Vec::new();
    for i in 0..60 {
        let node = if i % 2 == 0 { &a } else { &b };
        let url = format!("{}/api/v1/conversations/{conv}/messages", node.address);
        let client = node.client.clone();
        let token = admin.token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"body": format!("m{i}"), "client_id": format!("w-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    for expected in 2..=61u64 {
        let m = visitor.ws.recv_type("message").await;
        assert_eq!(m["message"]["seq"], expected, "in order, no gap, no repeat");
    }
    let h = b
        .get(
            &format!("/api/v1/conversations/{conv}/messages?limit=500"),
            &admin.token,
        )
        .await
        .expect(200);
    let seqs: Vec<u64> = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=61).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_killed_node_loses_nothing_and_leaves_no_ghost() {
    if !postgres_enabled() {
        return;
    }
    let env = TestEnv::new(Backend::Postgres, &FAST_PRESENCE).await;
    let mut node_a = Node::spawn(&env, &[]);
    let node_b = Node::spawn(&env, &[]);
    let (a, b) = (node_a.app(), node_b.app());
    let admin = b.admin(&env, "Acme", "ada@acme.test").await;
    let agent = b.agent(&admin, "bob@acme.test").await;
    let chat = b.chat(&admin, &[&agent]).await;

    let mut watcher = b.agent_ws(&admin).await; // on B
    let _bob_on_a = a.agent_ws(&agent).await; // on A, dies with it
    let bob_id = agent.id();
    watcher
        .recv_where("bob online", |f| {
            f["type"] == "presence" && f["user_id"] == bob_id.as_str() && f["status"] == "online"
        })
        .await;

    let mut visitor = a.visitor(&chat).await;
    let conv = first_message(&mut visitor.ws, "one").await;
    for i in 2..=3 {
        visitor
            .ws
            .send(json!({"type": "send", "client_id": format!("v-{i}"), "conversation_id": conv, "body": format!("msg {i}")}))
            .await;
        assert_eq!(visitor.ws.recv_type("ack").await["seq"], i);
    }

    node_a.kill(); // kill -9

    // Meanwhile an agent answers on B.
    for i in 0..2 {
        b.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
            json!({"body": format!("answer {i}"), "client_id": format!("ans-{i}")}),
        )
        .await
        .expect(201);
    }
    // The visitor reconnects to B and resumes from the last seq it saw.
    let mut ws = b.visitor_ws(&visitor.token).await;
    ws.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 3}))
        .await;
    for expected in 4..=5u64 {
        assert_eq!(ws.recv_type("message").await["message"]["seq"], expected);
    }
    ws.send(json!({"type": "send", "client_id": "v-4", "conversation_id": conv, "body": "thanks"}))
        .await;
    assert_eq!(ws.recv_type("ack").await["seq"], 6);

    // Bob's presence on the dead node expires: B announces him offline.
    watcher
        .recv_where("bob offline after the node died", |f| {
            f["type"] == "presence" && f["user_id"] == bob_id.as_str() && f["status"] == "offline"
        })
        .await;

    let h = b
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
        )
        .await
        .expect(200);
    let seqs: Vec<u64> = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
}

#[actix_web::test]
async fn restarting_redis_during_traffic_loses_nothing() {
    if !postgres_enabled() {
        return;
    }
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let env = TestEnv::new(Backend::Postgres, &[("PARLEY__REDIS__URL", url.as_str())]).await;
    let a = env.start().await;
    let b = env.start().await;
    let admin = a.admin(&env, "Acme", "ada@acme.test").await;
    let chat = a.chat(&admin, &[]).await;
    let mut visitor = a.visitor(&chat).await;
    let conv = first_message(&mut visitor.ws, "start").await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let post = |app: &TestApp, i: usize| {
        let url = format!("{}{path}", app.address);
        let client = app.client.clone();
        let token = admin.token.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"body": format!("m{i}"), "client_id": format!("m-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    let mut sent = 0;
    for _ in 0..5 {
        assert_eq!(post(&b, sent).await, 201);
        sent += 1;
    }
    redis.stop();
    // Posting keeps working: the store is the source of truth.
    for _ in 0..5 {
        assert_eq!(post(&b, sent).await, 201);
        sent += 1;
    }
    redis.restart().await;
    // Keep posting until node A's subscription is back; then everything has arrived.
    let mut seen: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < sent {
        assert!(
            Instant::now() < deadline,
            "messages lost: saw {seen:?} of {sent}"
        );
        assert_eq!(post(&b, sent).await, 201);
        sent += 1;
        while let Some(f) = try_recv(&mut visitor.ws, Duration::from_millis(300)).await {
            if f["type"] == "message" {
                seen.push(f["message"]["seq"].as_u64().unwrap());
            }
        }
    }
    let expected: Vec<u64> = (2..=(seen.len() as u64 + 1)).collect();
    assert_eq!(seen, expected, "every message once, in order");
}

/// The next frame if one comes within `wait` (used only to drain while polling).
async fn try_recv(ws: &mut Ws, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, ws.recv()).await.ok()
}

/// All ids of a paginated conversation list.
async fn all_conversations(app: &TestApp, token: &str, filter: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=200&{filter}&cursor={c}"),
            None => format!("/api/v1/conversations?limit=200&{filter}"),
        };
        let page = app.get(&path, token).await.expect(200);
        out.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[actix_web::test]
async fn two_nodes_route_500_conversations_without_exceeding_capacity_or_double_assigning() {
    if !postgres_enabled() {
        return;
    }
    let env = TestEnv::new(
        Backend::Postgres,
        &[("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "100000")],
    )
    .await;
    let a = env.start().await;
    let b = env.start().await;
    let admin = a.admin(&env, "Acme", "ada@acme.test").await;
    let mut agents = Vec::new();
    for i in 0..5 {
        agents.push(a.agent(&admin, &format!("agent{i}@acme.test")).await);
    }
    let refs: Vec<&crate::helpers::Session> = agents.iter().collect();
    let chat = a
        .chat_with(
            &admin,
            &refs,
            json!({"mode": "round_robin", "capacity": 100}),
        )
        .await;
    let mut consoles = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        consoles.push(node.agent_ws(agent).await);
    }

    // 500 visitors, half on each node, all send their first message at once.
    let mut visitors = Vec::new();
    for i in 0..500 {
        let node = if i % 2 == 0 { &a } else { &b };
        visitors.push(node.visitor(&chat).await);
    }
    for (i, v) in visitors.iter_mut().enumerate() {
        v.ws.send(json!({"type": "send", "client_id": format!("v{i}"), "body": "hello"}))
            .await;
    }
    for v in &mut visitors {
        assert_eq!(v.ws.recv_type("ack").await["seq"], 1);
    }
    // Every visitor learns their assignee.
    for v in &mut visitors {
        let e =
            v.ws.recv_where("assigned", |f| {
                f["type"] == "conversation" && f["event"] == "assigned"
            })
            .await;
        assert!(e["conversation"]["assignee_id"].is_string());
    }
    for agent in &agents {
        let mine = all_conversations(&a, &admin.token, &format!("assignee={}", agent.id())).await;
        assert_eq!(mine.len(), 100, "each agent gets exactly its capacity");
    }
    let assigned = all_conversations(&b, &admin.token, "status=open").await;
    assert_eq!(assigned.len(), 500);
    assert!(assigned.iter().all(|c| c["assignee_id"].is_string()));

    // Ten more wait, in order, and drain as agents close conversations.
    let mut waiting = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let mut v = node.visitor(&chat).await;
        v.ws.send(json!({"type": "send", "client_id": format!("w{i}"), "body": "anyone?"}))
            .await;
        let conv = v.ws.recv_type("ack").await["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let q = v.ws.recv_type("queue").await;
        assert_eq!(q["position"], i + 1, "FIFO positions");
        waiting.push((v, conv));
    }
    let unassigned = all_conversations(&a, &admin.token, "assignee=unassigned").await;
    assert_eq!(unassigned.len(), 10);
    for (i, agent) in agents.iter().enumerate() {
        let mine = all_conversations(&a, &admin.token, &format!("assignee={}", agent.id())).await;
        for c in mine.iter().take(2) {
            let node = if i % 2 == 0 { &a } else { &b };
            node.post(
                &format!("/api/v1/conversations/{}/close", c["id"].as_str().unwrap()),
                &agent.token,
                json!({}),
            )
            .await
            .expect(200);
        }
    }
    for (v, conv) in &mut waiting {
        let e =
            v.ws.recv_where("assigned", |f| {
                f["type"] == "conversation" && f["event"] == "assigned"
            })
            .await;
        assert_eq!(e["conversation"]["id"], conv.as_str());
    }
    for agent in &agents {
        let mine = all_conversations(
            &a,
            &admin.token,
            &format!("assignee={}&status=open", agent.id()),
        )
        .await;
        assert_eq!(mine.len(), 100, "back to capacity, never over");
    }
    drop(consoles);
}
