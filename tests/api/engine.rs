//! The real-time engine over real sockets: delivery, order, resume, idempotency,
//! typing, viewers, presence, limits and bad frames, supervision.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Chat, Session, TestApp, TestEnv, Ws};
use crate::on_both_stores;

on_both_stores!(
    a_visitor_and_an_agent_exchange_messages_with_acks_and_seqs,
    comments_never_reach_the_visitor,
    a_reconnecting_visitor_resumes_exactly_what_it_missed,
    resumes_served_from_memory_and_from_the_store_are_the_same,
    the_same_client_id_three_times_makes_one_message,
    typing_reaches_the_other_side_and_expires_by_itself,
    viewers_appear_and_disappear,
    presence_follows_sockets_and_the_away_switch,
    bad_frames_get_error_frames_and_the_socket_stays_usable,
    a_visitor_over_the_message_rate_is_told_and_stays_connected,
    the_rest_api_posts_through_the_same_actor,
    agents_and_visitors_cannot_reach_conversations_they_may_not_see,
    a_crashed_conversation_actor_restarts_from_the_store_and_loses_nothing,
    a_burst_of_200_visitors_is_acked_and_stored_exactly_once,
    concurrent_writers_into_one_conversation_get_gap_free_seqs,
    sockets_without_valid_credentials_are_refused,
    frames_read_together_are_handled_in_order_and_open_one_conversation,
);

async fn setup(b: Backend, extra: &[(&str, &str)]) -> (TestEnv, TestApp, Session, Session, Chat) {
    let env = TestEnv::new(b, extra).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app.chat(&admin, &[&agent]).await;
    (env, app, admin, agent, chat)
}

/// A visitor's first message; returns (conversation_id, ack).
async fn first_message(ws: &mut Ws, body: &str) -> (String, Value) {
    ws.send(json!({"type": "send", "client_id": "v-1", "body": body}))
        .await;
    let ack = ws.recv_type("ack").await;
    (ack["conversation_id"].as_str().unwrap().to_owned(), ack)
}

async fn a_visitor_and_an_agent_exchange_messages_with_acks_and_seqs(b: Backend) {
    let (_env, app, _admin, agent, chat) = setup(b, &[]).await;
    let mut console = app.agent_ws(&agent).await;
    let mut visitor = app.visitor(&chat).await;

    let (conv, ack) = first_message(&mut visitor.ws, "Hello, is anyone there?").await;
    assert_eq!(ack["client_id"], "v-1");
    assert_eq!(ack["seq"], 1);

    let created = console.recv_type("conversation").await;
    assert_eq!(created["event"], "created");
    assert_eq!(created["conversation"]["id"], conv.as_str());
    assert_eq!(created["conversation"]["inbox_id"], chat.inbox_id.as_str());
    assert_eq!(created["conversation"]["status"], "open");
    assert!(created["conversation"]["assignee_id"].is_null());

    console
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    let first = console.recv_type("message").await;
    assert_eq!(first["message"]["seq"], 1);
    assert_eq!(first["message"]["body"], "Hello, is anyone there?");
    assert_eq!(first["message"]["sender"]["type"], "visitor");
    assert_eq!(first["message"]["kind"], "message");

    console
        .send(json!({"type": "send", "client_id": "a-1", "conversation_id": conv, "body": "Hi! How can I help?"}))
        .await;
    let ack = console.recv_type("ack").await;
    assert_eq!(ack["seq"], 2);

    let reply = visitor.ws.recv_type("message").await;
    assert_eq!(reply["message"]["seq"], 2);
    assert_eq!(reply["message"]["id"], ack["id"]);
    assert_eq!(reply["message"]["sender"]["type"], "agent");
    assert_eq!(reply["message"]["sender"]["name"], "bob@acme.test");

    visitor
        .ws
        .send(json!({"type": "send", "client_id": "v-2", "conversation_id": conv, "body": "Pricing?"}))
        .await;
    assert_eq!(visitor.ws.recv_type("ack").await["seq"], 3);
    let m = console.recv_type("message").await;
    assert_eq!(m["message"]["seq"], 3);

    // The same history over HTTP.
    let history = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
        )
        .await
        .expect(200);
    let seqs: Vec<u64> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

async fn comments_never_reach_the_visitor(b: Backend) {
    let (_env, app, _admin, agent, chat) = setup(b, &[]).await;
    let mut console = app.agent_ws(&agent).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    console
        .send(json!({"type": "send", "client_id": "c-1", "conversation_id": conv, "body": "internal: VIP customer", "kind": "comment"}))
        .await;
    assert_eq!(console.recv_type("ack").await["seq"], 2);
    console
        .send(json!({"type": "send", "client_id": "r-1", "conversation_id": conv, "body": "Welcome!"}))
        .await;
    assert_eq!(console.recv_type("ack").await["seq"], 3);

    // The visitor's next message is the reply: the comment (seq 2) never arrives.
    let next = visitor.ws.recv_type("message").await;
    assert_eq!(next["message"]["seq"], 3);
    assert_eq!(next["message"]["body"], "Welcome!");

    // A visitor resuming from the start does not get it either.
    let mut again = app.visitor_ws(&visitor.token).await;
    again
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    let a = again.recv_type("message").await;
    let b2 = again.recv_type("message").await;
    assert_eq!(
        (a["message"]["seq"].clone(), b2["message"]["seq"].clone()),
        (json!(1), json!(3))
    );

    // Agents see it, marked as a comment.
    let history = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
        )
        .await
        .expect(200);
    assert_eq!(history.body["items"][1]["kind"], "comment");
}

async fn a_reconnecting_visitor_resumes_exactly_what_it_missed(b: Backend) {
    let (_env, app, _admin, agent, chat) = setup(b, &[]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    visitor.ws.close().await;

    for i in 0..3 {
        app.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
            json!({"body": format!("reply {i}"), "client_id": format!("rest-{i}")}),
        )
        .await
        .expect(201);
    }

    let same = app
        .visitor_token(&chat.channel_id, Some(&visitor.token))
        .await;
    assert_eq!(same["contact_id"], visitor.contact_id.as_str());
    assert_eq!(same["conversation_ids"], json!([conv]));
    let mut ws = app.visitor_ws(&visitor.token).await;
    ws.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 1}))
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = ws.recv_type("message").await;
        got.push((
            m["message"]["seq"].as_u64().unwrap(),
            m["message"]["body"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        got,
        vec![
            (2, "reply 0".into()),
            (3, "reply 1".into()),
            (4, "reply 2".into())
        ]
    );
    // Then live delivery continues, with nothing repeated.
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        &agent.token,
        json!({"body": "live", "client_id": "rest-live"}),
    )
    .await
    .expect(201);
    let live = ws.recv_type("message").await;
    assert_eq!(live["message"]["seq"], 5);
}

/// The conversation actor keeps its latest message frames and serves a resume from
/// them when they cover it; older cursors read the store. Either way a resume delivers
/// exactly the messages after the cursor, once, in order, comments only to agents, then
/// goes live with nothing repeated. Cursors on both sides of the boundary.
async fn resumes_served_from_memory_and_from_the_store_are_the_same(b: Backend) {
    let (_env, app, _admin, agent, chat) = setup(b, &[]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    let mut console = app.agent_ws(&agent).await;
    // Seqs 2..=40, every fifth an internal comment (seq 5, 10, …).
    for seq in 2..=40u64 {
        let mut frame = json!({"type": "send", "client_id": format!("a-{seq}"), "conversation_id": conv, "body": format!("m{seq}")});
        if seq.is_multiple_of(5) {
            frame["kind"] = json!("comment");
        }
        console.send(frame).await;
        assert_eq!(console.recv_type("ack").await["seq"], seq);
    }
    let mut top = 40u64;
    let is_comment = |seq: u64| seq <= 40 && seq.is_multiple_of(5);
    // The actor keeps the latest 16 frames (top-15..=top): cursors from top-16 up are
    // served from memory, older ones (top-17, top-20, 0) from the store.
    for back in [u64::MAX, 20, 17, 16, 15, 1, 0] {
        for agent_side in [true, false] {
            let after = top.saturating_sub(back);
            let mut ws = if agent_side {
                app.agent_ws(&agent).await
            } else {
                app.visitor_ws(&visitor.token).await
            };
            ws.send(json!({"type": "resume", "conversation_id": conv, "after_seq": after}))
                .await;
            let want: Vec<u64> = (after + 1..=top)
                .filter(|seq| agent_side || !is_comment(*seq))
                .collect();
            let mut got = Vec::new();
            for _ in 0..want.len() {
                let m = ws.recv_type("message").await;
                assert_eq!(m["message"]["conversation_id"], conv.as_str());
                got.push(m["message"]["seq"].as_u64().unwrap());
            }
            assert_eq!(
                got, want,
                "resume after {after} of {top} (agent: {agent_side})"
            );
            // Live from here: the next message this socket gets is the next one posted.
            let live = format!("live-{after}-{agent_side}");
            app.post(
                &format!("/api/v1/conversations/{conv}/messages"),
                &agent.token,
                json!({"body": live, "client_id": live}),
            )
            .await
            .expect(201);
            top += 1;
            let next = ws.recv_type("message").await;
            assert_eq!(next["message"]["seq"], top, "after {after}");
            assert_eq!(next["message"]["body"], live.as_str());
            ws.close().await;
        }
    }
}

async fn the_same_client_id_three_times_makes_one_message(b: Backend) {
    let (_env, app, _admin, agent, chat) = setup(b, &[]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, first) = first_message(&mut visitor.ws, "hello").await;
    for _ in 0..2 {
        visitor
            .ws
            .send(json!({"type": "send", "client_id": "v-1", "conversation_id": conv, "body": "hello"}))
            .await;
        let again = visitor.ws.recv_type("ack").await;
        assert_eq!(again, first);
    }
    // A retried first send (no conversation_id) also lands in the same conversation.
    visitor
        .ws
        .send(json!({"type": "send", "client_id": "v-1", "body": "hello"}))
        .await;
    assert_eq!(visitor.ws.recv_type("ack").await, first);

    let history = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
        )
        .await
        .expect(200);
    assert_eq!(history.body["items"].as_array().unwrap().len(), 1);
    let list = app
        .get("/api/v1/conversations", &agent.token)
        .await
        .expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

async fn typing_reaches_the_other_side_and_expires_by_itself(b: Backend) {
    let (_env, app, _admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__TYPING_TTL_SECS", "1")]).await;
    let mut console = app.agent_ws(&agent).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    console
        .send(json!({"type": "view", "conversation_id": conv}))
        .await;
    console.recv_type("viewers").await;

    console
        .send(json!({"type": "typing", "conversation_id": conv, "on": true}))
        .await;
    let t = visitor.ws.recv_type("typing").await;
    assert_eq!(t["on"], true);
    assert_eq!(t["who"]["type"], "agent");
    assert_eq!(t["conversation_id"], conv.as_str());
    console
        .send(json!({"type": "typing", "conversation_id": conv, "on": false}))
        .await;
    assert_eq!(visitor.ws.recv_type("typing").await["on"], false);

    // The visitor starts typing and their tab dies: the agent sees it stop by itself.
    visitor
        .ws
        .send(json!({"type": "typing", "conversation_id": conv, "on": true}))
        .await;
    let on = console.recv_type("typing").await;
    assert_eq!(
        (on["on"].clone(), on["who"]["type"].clone()),
        (json!(true), json!("visitor"))
    );
    let off = console.recv_type("typing").await;
    assert_eq!(off["on"], false, "typing expired without an explicit off");
}

async fn viewers_appear_and_disappear(b: Backend) {
    let (_env, app, admin, agent, chat) = setup(b, &[]).await;
    let mut bob = app.agent_ws(&agent).await;
    let mut ada = app.agent_ws(&admin).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;

    bob.send(json!({"type": "view", "conversation_id": conv}))
        .await;
    let v = bob
        .recv_where("bob viewing", |f| {
            f["type"] == "viewers" && f["users"].as_array().is_some_and(|u| u.len() == 1)
        })
        .await;
    assert_eq!(v["users"][0]["id"], agent.id().as_str());

    ada.send(json!({"type": "view", "conversation_id": conv}))
        .await;
    let both = bob
        .recv_where("two viewers", |f| {
            f["type"] == "viewers" && f["users"].as_array().is_some_and(|u| u.len() == 2)
        })
        .await;
    let ids: Vec<&str> = both["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&admin.id().as_str()) && ids.contains(&agent.id().as_str()));

    ada.close().await;
    let one = bob
        .recv_where("ada gone", |f| {
            f["type"] == "viewers" && f["users"].as_array().is_some_and(|u| u.len() == 1)
        })
        .await;
    assert_eq!(one["users"][0]["id"], agent.id().as_str());
    // Visitors never see viewers: their next frame is the next message.
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        &agent.token,
        json!({"body": "x", "client_id": "x"}),
    )
    .await
    .expect(201);
    assert_eq!(visitor.ws.recv().await["type"], "message");
}

async fn presence_follows_sockets_and_the_away_switch(b: Backend) {
    let (_env, app, admin, agent, _chat) = setup(
        b,
        &[
            ("PARLEY__ENGINE__PRESENCE_TTL_SECS", "2"),
            ("PARLEY__ENGINE__HEARTBEAT_SECS", "1"),
        ],
    )
    .await;
    let mut ada = app.agent_ws(&admin).await;
    let bob_id = agent.id();
    let mut bob = app.agent_ws(&agent).await;
    let is = |status: &'static str| {
        let bob_id = bob_id.clone();
        move |f: &Value| {
            f["type"] == "presence" && f["user_id"] == bob_id.as_str() && f["status"] == status
        }
    };
    ada.recv_where("bob online", is("online")).await;
    // A second tab, then away on one of them: still online (the other tab is online).
    let mut bob2 = app.agent_ws(&agent).await;
    bob2.send(json!({"type": "presence", "status": "away"}))
        .await;
    bob.send(json!({"type": "presence", "status": "away"}))
        .await;
    ada.recv_where("bob away", is("away")).await;
    bob.send(json!({"type": "presence", "status": "online"}))
        .await;
    ada.recv_where("bob back", is("online")).await;
    // A reload: the last tab closes and a new one opens within the presence TTL;
    // Bob never shows offline. Then he leaves, and goes offline after the TTL.
    bob.close().await;
    bob2.close().await;
    let bob3 = app.agent_ws(&agent).await;
    bob3.close().await;
    let next = ada
        .recv_where("bob's next status", |f| {
            f["type"] == "presence" && f["user_id"] == bob_id.as_str()
        })
        .await;
    assert_eq!(
        next["status"], "offline",
        "offline only once the TTL lapsed"
    );
}

async fn bad_frames_get_error_frames_and_the_socket_stays_usable(b: Backend) {
    let (_env, app, _admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__MAX_BODY_CHARS", "20")]).await;
    let mut other = app.visitor(&chat).await;
    let (other_conv, _) = first_message(&mut other.ws, "unaffected").await;
    let mut visitor = app.visitor(&chat).await;

    visitor.ws.send_text("{not json".into()).await;
    assert_eq!(visitor.ws.recv().await["code"], "invalid_json");
    visitor.ws.send(json!({"type": "dance"})).await;
    let e = visitor.ws.recv().await;
    assert_eq!(
        (e["type"].clone(), e["code"].clone()),
        (json!("error"), json!("unknown_frame"))
    );
    visitor
        .ws
        .send(json!({"type": "send", "client_id": "x"}))
        .await;
    assert_eq!(visitor.ws.recv().await["code"], "invalid_frame");
    visitor
        .ws
        .send(json!({"type": "send", "client_id": "long", "body": "x".repeat(21)}))
        .await;
    let e = visitor.ws.recv().await;
    assert_eq!(
        (e["code"].clone(), e["ref"].clone()),
        (json!("body_too_long"), json!("long"))
    );
    visitor
        .ws
        .send(json!({"type": "send", "client_id": "c", "body": "psst", "kind": "comment"}))
        .await;
    assert_eq!(visitor.ws.recv().await["code"], "forbidden");
    visitor
        .ws
        .send(json!({"type": "view", "conversation_id": other_conv}))
        .await;
    assert_eq!(visitor.ws.recv().await["code"], "forbidden");

    // Nothing was stored, and the socket still works.
    let (conv, ack) = first_message(&mut visitor.ws, "finally").await;
    assert_eq!(ack["seq"], 1);
    let history = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
        )
        .await
        .expect(200);
    assert_eq!(history.body["items"].as_array().unwrap().len(), 1);
    // The other visitor was not disturbed.
    other
        .ws
        .send(json!({"type": "send", "client_id": "v-2", "conversation_id": other_conv, "body": "still here"}))
        .await;
    assert_eq!(other.ws.recv_type("ack").await["seq"], 2);
}

async fn a_visitor_over_the_message_rate_is_told_and_stays_connected(b: Backend) {
    let (_env, app, _admin, _agent, chat) =
        setup(b, &[("PARLEY__ENGINE__VISITOR_MESSAGES_PER_SEC", "1")]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "one").await;
    let mut limited = None;
    for i in 0..5 {
        visitor
            .ws
            .send(json!({"type": "send", "client_id": format!("b-{i}"), "conversation_id": conv, "body": "spam"}))
            .await;
        let f = visitor.ws.recv().await;
        if f["type"] == "error" {
            limited = Some(f);
            break;
        }
    }
    let e = limited.expect("the rate limit answered with an error frame");
    assert_eq!(e["code"], "rate_limited");
    assert!(e["ref"].as_str().unwrap().starts_with("b-"));
    // Still connected: a resume is answered.
    visitor
        .ws
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(visitor.ws.recv_type("message").await["message"]["seq"], 1);
}

async fn the_rest_api_posts_through_the_same_actor(b: Backend) {
    let (_env, app, _admin, agent, chat) = setup(b, &[]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let r = app
        .post(
            &path,
            &agent.token,
            json!({"body": "From the API", "client_id": "api-1"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["message"]["seq"], 2);
    assert_eq!(r.body["duplicate"], false);
    let m = visitor.ws.recv_type("message").await;
    assert_eq!(m["message"]["id"], r.body["message"]["id"]);
    let again = app
        .post(
            &path,
            &agent.token,
            json!({"body": "From the API", "client_id": "api-1"}),
        )
        .await
        .expect(200);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["message"], r.body["message"]);
    // Bad input over HTTP changes nothing.
    app.post(
        &path,
        &agent.token,
        json!({"body": "", "client_id": "api-2"}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(
        &path,
        &agent.token,
        json!({"body": "x", "client_id": "api-3", "kind": "shout"}),
    )
    .await
    .expect_problem(400, "validation_failed");
    let conversation = app
        .get(&format!("/api/v1/conversations/{conv}"), &agent.token)
        .await
        .expect(200);
    assert_eq!(conversation.body["id"], conv.as_str());
    let history = app.get(&path, &agent.token).await.expect(200);
    assert_eq!(history.body["items"].as_array().unwrap().len(), 2);
}

async fn agents_and_visitors_cannot_reach_conversations_they_may_not_see(b: Backend) {
    let (env, app, admin, agent, chat) = setup(b, &[]).await;
    let outsider = app.agent(&admin, "eve@acme.test").await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "private").await;

    let mut eve = app.agent_ws(&outsider).await;
    eve.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(eve.recv_type("error").await["code"], "not_found");
    eve.send(json!({"type": "send", "client_id": "e", "conversation_id": conv, "body": "hi"}))
        .await;
    assert_eq!(eve.recv_type("error").await["code"], "not_found");
    app.get(&format!("/api/v1/conversations/{conv}"), &outsider.token)
        .await
        .expect_problem(404, "not_found");
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        &outsider.token,
        json!({"body": "x", "client_id": "x"}),
    )
    .await
    .expect_problem(404, "not_found");
    let list = app
        .get("/api/v1/conversations", &outsider.token)
        .await
        .expect(200);
    assert!(list.body["items"].as_array().unwrap().is_empty());

    let mut stranger = app.visitor(&chat).await;
    stranger
        .ws
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(stranger.ws.recv_type("error").await["code"], "not_found");

    // Another workspace's admin sees nothing either.
    let other = app.admin(&env, "Globex", "hank@globex.test").await;
    app.get(&format!("/api/v1/conversations/{conv}"), &other.token)
        .await
        .expect_problem(404, "not_found");
    let mut hank = app.agent_ws(&other).await;
    hank.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(hank.recv_type("error").await["code"], "not_found");
    let _ = agent;
}

async fn a_crashed_conversation_actor_restarts_from_the_store_and_loses_nothing(b: Backend) {
    let (_env, app, _admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__FAULT_INJECTION", "true")]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    for round in 0..3 {
        app.request(
            Method::POST,
            &format!("/api/v1/conversations/{conv}/fault"),
            Some(&agent.token),
            None,
        )
        .await
        .expect(204);
        for i in 0..5 {
            // A post racing the restart may be refused (503); the client retries with
            // the same client_id, which can never make a second message.
            let client_id = format!("r{round}-{i}");
            loop {
                let r = app
                    .post(
                        &path,
                        &agent.token,
                        json!({"body": client_id, "client_id": client_id}),
                    )
                    .await;
                if r.status.is_success() {
                    break;
                }
                assert_eq!(r.status, 503, "{:#}", r.body);
            }
        }
    }
    // The visitor got every message, in order, exactly once.
    for expected in 2..=16u64 {
        let m = visitor.ws.recv_type("message").await;
        assert_eq!(m["message"]["seq"], expected);
    }
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("parley_actor_restarts_total{actor=\"conversation\"}")),
        "restarts are counted"
    );
    let history = app
        .get(&format!("{path}?limit=500"), &agent.token)
        .await
        .expect(200);
    assert_eq!(history.body["items"].as_array().unwrap().len(), 16);
}

async fn a_burst_of_200_visitors_is_acked_and_stored_exactly_once(b: Backend) {
    let (_env, app, _admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "1000")]).await;
    let mut visitors = Vec::new();
    for _ in 0..200 {
        visitors.push(app.visitor(&chat).await);
    }
    // All send at once.
    for (i, v) in visitors.iter_mut().enumerate() {
        v.ws.send(json!({"type": "send", "client_id": format!("burst-{i}"), "body": format!("hello {i}")}))
            .await;
    }
    let mut conversations = std::collections::HashSet::new();
    for (i, v) in visitors.iter_mut().enumerate() {
        let ack = v.ws.recv_type("ack").await;
        assert_eq!(ack["client_id"], format!("burst-{i}"));
        assert_eq!(ack["seq"], 1);
        assert!(conversations.insert(ack["conversation_id"].as_str().unwrap().to_owned()));
    }
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=200&cursor={c}"),
            None => "/api/v1/conversations?limit=200".to_owned(),
        };
        let page = app.get(&path, &agent.token).await.expect(200);
        listed += page.body["items"].as_array().unwrap().len();
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, 200);
    for conv in conversations.iter().take(20) {
        let h = app
            .get(
                &format!("/api/v1/conversations/{conv}/messages"),
                &agent.token,
            )
            .await
            .expect(200);
        assert_eq!(h.body["items"].as_array().unwrap().len(), 1);
    }
}

async fn concurrent_writers_into_one_conversation_get_gap_free_seqs(b: Backend) {
    let (_env, app, admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__VISITOR_MESSAGES_PER_SEC", "100")]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "start").await;
    let mut console = app.agent_ws(&agent).await;
    console
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 1}))
        .await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        let token = if i % 2 == 0 {
            agent.token.clone()
        } else {
            admin.token.clone()
        };
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
    for _ in 0..20 {
        visitor
            .ws
            .send(json!({"type": "send", "client_id": uuid::Uuid::new_v4().to_string(), "conversation_id": conv, "body": "v"}))
            .await;
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let mut acks = 0;
    while acks < 20 {
        let f = visitor.ws.recv().await;
        assert_ne!(f["type"], "error", "{f}");
        if f["type"] == "ack" {
            acks += 1;
        }
    }
    // The agent's socket delivers 2..=61 in order, no gap, no repeat.
    for expected in 2..=61u64 {
        let m = console
            .recv_where(&format!("message {expected}"), |f| f["type"] == "message")
            .await;
        assert_eq!(m["message"]["seq"], expected);
    }
    let h = app
        .get(&format!("{path}?limit=500"), &agent.token)
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

async fn sockets_without_valid_credentials_are_refused(b: Backend) {
    let (_env, app, _admin, _agent, chat) = setup(b, &[]).await;
    let base = app.ws_base();
    assert_eq!(
        Ws::try_connect(&format!("{base}/ws/agent")).await.err(),
        Some(401)
    );
    assert_eq!(
        Ws::try_connect(&format!("{base}/ws/agent?token=pls_nope"))
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        Ws::try_connect(&format!("{base}/ws/visitor")).await.err(),
        Some(401)
    );
    assert_eq!(
        Ws::try_connect(&format!("{base}/ws/visitor?token=plv_nope"))
            .await
            .err(),
        Some(401)
    );
    // A widget session on a channel that is not a chat channel, or does not exist.
    app.request(
        Method::POST,
        "/api/v1/widget/00000000-0000-7000-8000-000000000000/sessions",
        None,
        Some(json!({"page_url": "https://x.example"})),
    )
    .await
    .expect_problem(404, "not_found");
    let _ = chat;
}

on_both_stores!(assigning_closing_and_reopening_reach_consoles_and_the_visitor);

async fn assigning_closing_and_reopening_reach_consoles_and_the_visitor(b: Backend) {
    let (_env, app, admin, agent, chat) = setup(b, &[]).await;
    let outsider = app.agent(&admin, "eve@acme.test").await;
    let mut console = app.agent_ws(&agent).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    console.recv_type("conversation").await; // created

    let path = format!("/api/v1/conversations/{conv}");
    // Only active members of the inbox can be assignees.
    app.post(
        &format!("{path}/assign"),
        &admin.token,
        json!({"user_id": outsider.id()}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(
        &format!("{path}/assign"),
        &admin.token,
        json!({"user_id": "nobody"}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(
        &format!("{path}/assign"),
        &outsider.token,
        json!({"user_id": agent.id()}),
    )
    .await
    .expect_problem(404, "not_found");

    let r = app
        .post(
            &format!("{path}/assign"),
            &admin.token,
            json!({"user_id": agent.id()}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["assignee_id"], agent.id().as_str());
    let e = console.recv_type("conversation").await;
    assert_eq!(
        (e["event"].clone(), e["conversation"]["assignee_id"].clone()),
        (json!("assigned"), json!(agent.id()))
    );
    let v = visitor.ws.recv_type("conversation").await;
    assert_eq!(v["event"], "assigned");
    assert_eq!(v["conversation"]["assignee"]["name"], "bob@acme.test");

    app.post(&format!("{path}/close"), &agent.token, json!({}))
        .await
        .expect(200);
    assert_eq!(console.recv_type("conversation").await["event"], "closed");
    let closed = visitor.ws.recv_type("conversation").await;
    assert_eq!(
        (
            closed["event"].clone(),
            closed["conversation"]["status"].clone()
        ),
        (json!("closed"), json!("closed"))
    );
    let listed = app
        .get("/api/v1/conversations?status=closed", &agent.token)
        .await
        .expect(200);
    assert_eq!(listed.body["items"][0]["id"], conv.as_str());

    app.post(&format!("{path}/reopen"), &agent.token, json!({}))
        .await
        .expect(200);
    assert_eq!(console.recv_type("conversation").await["event"], "reopened");
    app.post(
        &format!("{path}/assign"),
        &agent.token,
        json!({"user_id": null}),
    )
    .await
    .expect(200);
    let unassigned = app
        .get("/api/v1/conversations?assignee=unassigned", &agent.token)
        .await
        .expect(200);
    assert_eq!(unassigned.body["items"][0]["id"], conv.as_str());

    let audit = app.get("/api/v1/audit-log", &admin.token).await.expect(200);
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..4],
        [
            "conversation.assigned",
            "conversation.reopened",
            "conversation.closed",
            "conversation.assigned"
        ]
    );
    assert!(
        audit.body["items"][3]["details"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("manual by ")
    );
}

on_both_stores!(
    an_oversize_frame_gets_an_error_and_close_1009_without_disturbing_others,
    too_many_connections_from_one_address_get_429,
    a_client_that_cannot_keep_up_is_closed_with_4008,
);

async fn an_oversize_frame_gets_an_error_and_close_1009_without_disturbing_others(b: Backend) {
    let (_env, app, _admin, _agent, chat) = setup(b, &[]).await;
    let mut other = app.visitor(&chat).await;
    let mut visitor = app.visitor(&chat).await;
    visitor
        .ws
        .send_text(format!(
            "{{\"type\":\"send\",\"client_id\":\"big\",\"body\":\"{}\"}}",
            "x".repeat(70_000)
        ))
        .await;
    let e = visitor.ws.recv_type("error").await;
    assert_eq!(e["code"], "frame_too_large");
    assert_eq!(visitor.ws.closed().await, Some(1009));
    let (_, ack) = first_message(&mut other.ws, "still fine").await;
    assert_eq!(ack["seq"], 1);
}

async fn too_many_connections_from_one_address_get_429(b: Backend) {
    let (_env, app, _admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "3")]).await;
    let s = app.visitor_token(&chat.channel_id, None).await; // 1
    let token = s["visitor_token"].as_str().unwrap().to_owned();
    let _a = app.visitor_ws(&token).await; // 2
    let _c = app.agent_ws(&agent).await; // 3
    let url = format!("{}/ws/visitor?token={token}", app.ws_base());
    assert_eq!(Ws::try_connect(&url).await.err(), Some(429));
    let r = app
        .request(
            Method::POST,
            &format!("/api/v1/widget/{}/sessions", chat.channel_id),
            None,
            Some(json!({"page_url": ""})),
        )
        .await
        .expect_problem(429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
}

async fn a_client_that_cannot_keep_up_is_closed_with_4008(b: Backend) {
    let (_env, app, _admin, agent, chat) =
        setup(b, &[("PARLEY__ENGINE__AGENT_OUTBOUND_QUEUE", "2")]).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    // The agent's console subscribes and then stops reading.
    let mut slow = app.agent_ws(&agent).await;
    slow.send(json!({"type": "resume", "conversation_id": conv, "after_seq": 1}))
        .await;
    let body = "y".repeat(9_000);
    let path = format!("{}/api/v1/conversations/{conv}/messages", app.address);
    // Enough data to fill the socket buffers and then the queue of 2.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (client, path, token, body) = (
            app.client.clone(),
            path.clone(),
            agent.token.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                let r = client
                    .post(&path)
                    .bearer_auth(&token)
                    .json(&json!({"body": body, "client_id": format!("{t}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(slow.closed().await, Some(4008));
    // Nothing was lost: the whole history is there to resume from.
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(
                &format!("/api/v1/conversations/{conv}/messages?after_seq={after}&limit=500"),
                &agent.token,
            )
            .await
            .expect(200);
        seqs.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_u64().unwrap()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => after = c.parse().unwrap(),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=1001).collect::<Vec<_>>());
}

on_both_stores!(an_agent_removed_from_an_inbox_loses_its_conversations_at_once);

async fn an_agent_removed_from_an_inbox_loses_its_conversations_at_once(b: Backend) {
    let (_env, app, admin, agent, chat) = setup(b, &[]).await;
    let mut console = app.agent_ws(&agent).await;
    let mut visitor = app.visitor(&chat).await;
    let (conv, _) = first_message(&mut visitor.ws, "hi").await;
    console
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(console.recv_type("message").await["message"]["seq"], 1);

    app.delete(
        &format!("/api/v1/inboxes/{}/members/{}", chat.inbox_id, agent.id()),
        &admin.token,
    )
    .await
    .expect(204);
    // The same socket, without reconnecting, is refused now.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        console
            .send(json!({"type": "send", "client_id": uuid::Uuid::new_v4().to_string(), "conversation_id": conv, "body": "still here?"}))
            .await;
        let f = console
            .recv_where("ack or error", |f| {
                f["type"] == "ack" || f["type"] == "error"
            })
            .await;
        if f["type"] == "error" {
            assert_eq!(f["code"], "not_found");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "membership change not applied"
        );
    }
    // And added back, it may again.
    app.put(
        &format!("/api/v1/inboxes/{}/members/{}", chat.inbox_id, agent.id()),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        console
            .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
            .await;
        let f = console
            .recv_where("message or error", |f| {
                f["type"] == "message" || f["type"] == "error"
            })
            .await;
        if f["type"] == "message" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "membership change not applied"
        );
    }
}

/// 100 first messages written at once reach the session in batches; the first opens the
/// conversation (the session waits for it) and the rest must wait their turn behind it
/// and behind the 32-post commit window, so all land in that one conversation, in order.
async fn frames_read_together_are_handled_in_order_and_open_one_conversation(b: Backend) {
    let (_env, app, _admin, _agent, chat) =
        setup(b, &[("PARLEY__ENGINE__VISITOR_MESSAGES_PER_SEC", "100000")]).await;
    let mut visitor = app.visitor(&chat).await;

    visitor
        .ws
        .send_together((0..100).map(
            |i| json!({"type": "send", "client_id": format!("b-{i}"), "body": format!("m{i}")}),
        ))
        .await;

    let mut conversation: Option<String> = None;
    for i in 0..100u64 {
        let ack = visitor.ws.recv_type("ack").await;
        assert_eq!(ack["client_id"], format!("b-{i}"), "acks in the order sent");
        assert_eq!(ack["seq"], i + 1, "stored in the order sent");
        let conv = ack["conversation_id"].as_str().unwrap().to_owned();
        assert_eq!(
            conversation.get_or_insert_with(|| conv.clone()),
            &conv,
            "every frame went to the conversation the first one opened"
        );
    }
}
