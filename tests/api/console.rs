//! The agent console's API: first-run setup, the conversation list (previews, contacts,
//! unread marks, search, cursor pages over 10,000 conversations), view counts, read
//! marks, contacts with past conversations, and @mention notifications.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, TestEnv, ids};
use crate::on_both_stores;

on_both_stores!(
    setup_creates_the_first_admin_once_and_logs_them_in,
    concurrent_setups_make_exactly_one_workspace,
    setup_is_closed_when_a_user_already_exists,
    list_items_carry_contact_preview_and_unread_marks,
    search_matches_contact_and_message_text,
    counts_follow_assignment_and_status,
    contacts_show_the_visit_and_past_conversations,
    a_comment_mention_notifies_the_mentioned_agent_only,
    ten_thousand_conversations_page_through_in_order,
);

async fn setup_status(app: &TestApp) -> bool {
    app.request(Method::GET, "/api/v1/setup", None, None)
        .await
        .expect(200)
        .body["needed"]
        .as_bool()
        .expect("needed")
}

async fn post_setup(app: &TestApp, body: Value) -> crate::helpers::Reply {
    app.request(Method::POST, "/api/v1/setup", None, Some(body))
        .await
}

fn setup_body(email: &str) -> Value {
    json!({"workspace_name": "Acme", "name": "Ada Admin", "email": email, "password": PASSWORD})
}

async fn setup_creates_the_first_admin_once_and_logs_them_in(backend: Backend) {
    let (_env, app) = TestApp::spawn(backend).await;
    assert!(setup_status(&app).await);

    // Bad input changes nothing.
    for (body, field) in [
        (
            json!({"workspace_name": "Acme", "name": "A", "email": "a@x.io", "password": "short"}),
            "password",
        ),
        (
            json!({"workspace_name": "", "name": "A", "email": "a@x.io", "password": PASSWORD}),
            "workspace_name",
        ),
        (
            json!({"workspace_name": "Acme", "name": "A", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"workspace_name": "Acme", "name": "A", "email": "a@x.io", "password": PASSWORD, "role": "agent"}),
            "role",
        ),
    ] {
        let r = post_setup(&app, body)
            .await
            .expect_problem(400, "validation_failed");
        assert!(
            r.body["detail"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.body
        );
    }
    let r = app
        .client
        .post(format!("{}/api/v1/setup", app.address))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(setup_status(&app).await, "bad input set nothing up");

    let r = post_setup(&app, setup_body("Ada@Example.com"))
        .await
        .expect(201);
    assert!(
        r.headers
            .get("set-cookie")
            .is_some_and(|c| c.to_str().unwrap().starts_with("parley_session="))
    );
    assert_eq!(r.body["user"]["role"], "admin");
    assert_eq!(r.body["user"]["email"], "ada@example.com");
    assert_eq!(r.body["csrf_header"], "X-CSRF-Token");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let me = app.get("/api/v1/auth/me", &token).await.expect(200);
    assert_eq!(me.body["name"], "Ada Admin");
    assert!(!setup_status(&app).await);

    // Once set up: 409, and nothing more is created.
    post_setup(&app, setup_body("eve@example.com"))
        .await
        .expect_problem(409, "conflict");
    app.try_login("eve@example.com", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    let users = app.get("/api/v1/users", &token).await.expect(200);
    assert_eq!(ids(&users).len(), 1);
    // The admin can log in with the password given.
    app.login("ada@example.com", PASSWORD).await;
    let audit = app.get("/api/v1/audit-log", &token).await.expect(200);
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "workspace.set_up")
    );
}

async fn concurrent_setups_make_exactly_one_workspace(backend: Backend) {
    let (_env, app) = TestApp::spawn(backend).await;
    let bodies: Vec<Value> = (0..4)
        .map(|i| setup_body(&format!("admin{i}@example.com")))
        .collect();
    let replies =
        futures_util::future::join_all(bodies.into_iter().map(|b| post_setup(&app, b))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let refused = replies
        .iter()
        .filter(|r| r.status == 409 && r.code() == "conflict")
        .count();
    assert_eq!((created, refused), (1, 3), "{replies:?}");
    let winner = replies.iter().find(|r| r.status == 201).unwrap();
    let token = winner.body["token"].as_str().unwrap();
    assert_eq!(
        ids(&app.get("/api/v1/users", token).await.expect(200)).len(),
        1
    );
}

async fn setup_is_closed_when_a_user_already_exists(backend: Backend) {
    let (env, app) = TestApp::spawn(backend).await;
    app.admin(&env, "W", "cli@example.com").await;
    assert!(!setup_status(&app).await);
    post_setup(&app, setup_body("late@example.com"))
        .await
        .expect_problem(409, "conflict");
}

/// An admin, an inbox with a chat channel, and a visitor who said `first`.
async fn chat_with_message(
    env: &TestEnv,
    app: &TestApp,
    first: &str,
) -> (
    crate::helpers::Session,
    crate::helpers::Chat,
    String,
    String,
) {
    let admin = app.admin(env, "W", "admin@example.com").await;
    let chat = app.chat(&admin, &[&admin]).await;
    let mut visitor = app.visitor(&chat).await;
    visitor
        .ws
        .send(json!({"type": "send", "client_id": "v1", "body": first}))
        .await;
    let ack = visitor.ws.recv_type("ack").await;
    (
        admin,
        chat,
        ack["conversation_id"].as_str().unwrap().to_owned(),
        visitor.contact_id,
    )
}

async fn list_items_carry_contact_preview_and_unread_marks(backend: Backend) {
    let env = TestEnv::new(backend, &[]).await;
    let app = env.start().await;
    let xss = "<img src=x onerror=alert(1)> hello";
    let (admin, _chat, conv, contact) = chat_with_message(&env, &app, xss).await;

    let list = app
        .get("/api/v1/conversations?status=open", &admin.token)
        .await
        .expect(200);
    let item = &list.body["items"][0];
    assert_eq!(item["id"], conv.as_str());
    assert_eq!(item["contact"]["id"], contact.as_str());
    assert_eq!(item["last_seq"], 1);
    assert_eq!(item["last_message"]["body"], xss);
    assert_eq!(item["last_message"]["sender"]["type"], "visitor");
    assert_eq!(item["unread"], true);
    assert_eq!(item["read_seq"], 0);
    // The conversation object's fields are all there (the contract's shape).
    for k in [
        "inbox_id",
        "channel",
        "status",
        "assignee_id",
        "contact_id",
        "created_at",
        "last_message_at",
    ] {
        assert!(item.get(k).is_some(), "{k} missing");
    }
    let one = app
        .get(&format!("/api/v1/conversations/{conv}"), &admin.token)
        .await
        .expect(200);
    assert_eq!(one.body["last_message"]["body"], xss);

    // A long message is previewed by its start.
    let long = "x".repeat(500);
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        &admin.token,
        json!({"body": long, "client_id": "a1"}),
    )
    .await
    .expect(201);
    let item = app
        .get(&format!("/api/v1/conversations/{conv}"), &admin.token)
        .await
        .expect(200)
        .body;
    assert_eq!(item["last_message"]["body"].as_str().unwrap().len(), 140);
    assert_eq!(item["last_message"]["sender"]["type"], "agent");

    // Read marks: bad input first, then up to a seq, then to the end; never back.
    let read = format!("/api/v1/conversations/{conv}/read");
    app.post(&read, &admin.token, json!({"seq": 99}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&read, &admin.token, json!({"seq": -1}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&read, &admin.token, json!({"upto": 1}))
        .await
        .expect_problem(400, "validation_failed");
    app.post("/api/v1/conversations/nope/read", &admin.token, json!({}))
        .await
        .expect_problem(404, "not_found");
    let r = app
        .post(&read, &admin.token, json!({"seq": 1}))
        .await
        .expect(200);
    assert_eq!(
        (r.body["read_seq"].as_i64(), r.body["last_seq"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{conv}"), &admin.token)
            .await
            .body["unread"],
        true
    );
    app.post(&read, &admin.token, json!({})).await.expect(200);
    let r = app
        .post(&read, &admin.token, json!({"seq": 1}))
        .await
        .expect(200);
    assert_eq!(r.body["read_seq"], 2, "a read mark never moves back");
    let list = app
        .get("/api/v1/conversations", &admin.token)
        .await
        .expect(200);
    assert_eq!(list.body["items"][0]["unread"], false);

    // Read marks are per user: another admin still sees it unread.
    let other = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"email": "b@example.com", "password": PASSWORD, "name": "B", "role": "admin"}),
        )
        .await
        .expect(201);
    assert!(other.body["id"].is_string());
    let b = app.login("b@example.com", PASSWORD).await;
    let list = app.get("/api/v1/conversations", &b.token).await.expect(200);
    assert_eq!(list.body["items"][0]["unread"], true);
}

async fn search_matches_contact_and_message_text(backend: Backend) {
    let env = TestEnv::new(backend, &[]).await;
    let app = env.start().await;
    let (admin, chat, conv, _contact) =
        chat_with_message(&env, &app, "My Invoice is WRONG (100%_off)").await;
    // A second conversation with other words.
    let mut v2 = app.visitor(&chat).await;
    v2.ws
        .send(json!({"type": "send", "client_id": "v2", "body": "shipping question"}))
        .await;
    let other = v2.ws.recv_type("ack").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = |q: &str| {
        let q = q.to_owned();
        let app = &app;
        let token = admin.token.clone();
        async move {
            let url = format!("/api/v1/conversations?q={}", url_escape(&q));
            ids(&app.get(&url, &token).await.expect(200))
        }
    };
    assert_eq!(search("invoice").await, vec![conv.clone()]);
    assert_eq!(search("  INVOICE is wrong ").await, vec![conv.clone()]);
    assert_eq!(search("SHIPPING").await, vec![other.clone()]);
    assert_eq!(search("100%_").await, vec![conv.clone()]);
    assert!(search("50%").await.is_empty(), "% is matched literally");
    assert!(
        search("_hipping").await.is_empty(),
        "_ is matched literally"
    );
    assert_eq!(search("").await.len(), 2);
    // Comments are searchable too (agents see them).
    app.post(
        &format!("/api/v1/conversations/{other}/messages"),
        &admin.token,
        json!({"body": "VIP customer, be nice", "kind": "comment", "client_id": "c1"}),
    )
    .await
    .expect(201);
    assert_eq!(search("vip").await, vec![other.clone()]);
    // Search combines with the other filters.
    let url = "/api/v1/conversations?q=vip&status=closed";
    assert!(ids(&app.get(url, &admin.token).await.expect(200)).is_empty());
    let too_long = "q".repeat(201);
    app.get(&format!("/api/v1/conversations?q={too_long}"), &admin.token)
        .await
        .expect_problem(400, "validation_failed");
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn counts_follow_assignment_and_status(backend: Backend) {
    let env = TestEnv::new(backend, &[]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "W", "admin@example.com").await;
    let agent = app.agent(&admin, "agent@example.com").await;
    let chat = app.chat(&admin, &[&admin, &agent]).await;
    let other_inbox = app.chat(&admin, &[&admin]).await;
    let mut convs = Vec::new();
    for (i, c) in [&chat, &chat, &chat, &other_inbox].iter().enumerate() {
        let mut v = app.visitor(c).await;
        v.ws.send(json!({"type": "send", "client_id": format!("c{i}"), "body": "hi"}))
            .await;
        convs.push(
            v.ws.recv_type("ack").await["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.post(
        &format!("/api/v1/conversations/{}/assign", convs[0]),
        &admin.token,
        json!({"user_id": agent.id()}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/conversations/{}/close", convs[1]),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/conversations/{}/read", convs[2]),
        &agent.token,
        json!({}),
    )
    .await
    .expect(200);

    let counts = app
        .get("/api/v1/conversations/counts", &agent.token)
        .await
        .expect(200)
        .body;
    // The agent sees only their inbox: 3 conversations, one of them closed.
    assert_eq!(counts["all"]["open"], 2);
    assert_eq!(counts["all"]["closed"], 1);
    assert_eq!(counts["all"]["mine"], 1);
    assert_eq!(counts["all"]["unassigned"], 1);
    assert_eq!(counts["all"]["unread"], 1, "one open one was read");
    assert_eq!(counts["all"]["unread_mine"], 1);
    assert!(counts["inboxes"].get(&other_inbox.inbox_id).is_none());
    assert_eq!(counts["inboxes"][&chat.inbox_id]["open"], 2);
    assert_eq!(counts["channels"][&chat.channel_id]["closed"], 1);
    assert_eq!(counts["channel_kinds"]["chat"]["open"], 2);
    // The list agrees with the counts for each view.
    for (query, n) in [
        ("status=open&assignee=me", 1),
        ("status=open&assignee=unassigned", 1),
        ("status=open", 2),
        ("status=closed", 1),
    ] {
        let got = ids(&app
            .get(&format!("/api/v1/conversations?{query}"), &agent.token)
            .await
            .expect(200));
        assert_eq!(got.len(), n, "{query}");
    }
    let by_channel = ids(&app
        .get(
            &format!(
                "/api/v1/conversations?channel_id={}",
                other_inbox.channel_id
            ),
            &admin.token,
        )
        .await
        .expect(200));
    assert_eq!(by_channel, vec![convs[3].clone()]);

    let admin_counts = app
        .get("/api/v1/conversations/counts", &admin.token)
        .await
        .expect(200)
        .body;
    assert_eq!(admin_counts["all"]["open"], 3);
    assert_eq!(admin_counts["all"]["mine"], 0);
    assert_eq!(admin_counts["inboxes"][&other_inbox.inbox_id]["open"], 1);
    let anonymous = crate::helpers::client()
        .get(format!("{}/api/v1/conversations/counts", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn contacts_show_the_visit_and_past_conversations(backend: Backend) {
    let env = TestEnv::new(backend, &[]).await;
    let app = env.start().await;
    let (admin, chat, first, contact) = chat_with_message(&env, &app, "first").await;
    let outsider = app.agent(&admin, "outsider@example.com").await;
    app.post(
        &format!("/api/v1/conversations/{first}/close"),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);
    let list = app
        .get("/api/v1/conversations", &admin.token)
        .await
        .expect(200);
    assert_eq!(ids(&list).len(), 1);
    let c = app
        .get(&format!("/api/v1/contacts/{contact}"), &admin.token)
        .await
        .expect(200)
        .body;
    assert_eq!(c["id"], contact.as_str());
    assert_eq!(c["page_url"], "https://shop.example/pricing");
    assert!(c["last_seen_at"].is_string());
    assert_eq!(c["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(c["conversations"][0]["id"], first.as_str());
    assert_eq!(c["conversations"][0]["status"], "closed");

    // An agent outside the inbox does not see the contact; nor does anyone for an
    // unknown id.
    app.get(&format!("/api/v1/contacts/{contact}"), &outsider.token)
        .await
        .expect_problem(404, "not_found");
    app.get("/api/v1/contacts/does-not-exist", &admin.token)
        .await
        .expect_problem(404, "not_found");
    // Once in the inbox, they do.
    app.put(
        &format!(
            "/api/v1/inboxes/{}/members/{}",
            chat.inbox_id,
            outsider.id()
        ),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);
    app.get(&format!("/api/v1/contacts/{contact}"), &outsider.token)
        .await
        .expect(200);
}

async fn a_comment_mention_notifies_the_mentioned_agent_only(backend: Backend) {
    let env = TestEnv::new(backend, &[]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "W", "admin@example.com").await;
    let ana = app.agent(&admin, "ana@example.com").await;
    let bob = app.agent(&admin, "bob@example.com").await;
    let cy = app.agent(&admin, "cy@example.com").await;
    let chat = app.chat(&admin, &[&ana, &bob, &cy]).await;
    let mut visitor = app.visitor(&chat).await;
    visitor
        .ws
        .send(json!({"type": "send", "client_id": "v1", "body": "help"}))
        .await;
    let conv = visitor.ws.recv_type("ack").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ana_ws = app.agent_ws(&ana).await;
    let mut cy_ws = app.agent_ws(&cy).await;
    let mut bob_ws = app.agent_ws(&bob).await;

    // Bob's note mentions Ana (and someone of no inbox: ignored).
    let body = format!("<@{}> can you take this? cc <@nobody>", ana.id());
    bob_ws
        .send(json!({"type": "send", "client_id": "n1", "conversation_id": conv, "body": body, "kind": "comment"}))
        .await;
    bob_ws.recv_type("ack").await;
    let m = ana_ws.recv_type("mention").await;
    assert_eq!(m["conversation_id"], conv.as_str());
    assert_eq!(m["message"]["kind"], "comment");
    assert_eq!(m["message"]["sender"]["id"], bob.id().as_str());
    assert_eq!(m["message"]["body"], body.as_str());

    // A reply mentioning Cy is not a note: no mention frame. Then a note mentioning Cy
    // is the first mention Cy gets.
    bob_ws
        .send(json!({"type": "send", "client_id": "r1", "conversation_id": conv, "body": format!("<@{}>", cy.id())}))
        .await;
    bob_ws.recv_type("ack").await;
    bob_ws
        .send(json!({"type": "send", "client_id": "n2", "conversation_id": conv, "body": format!("over to <@{}>", cy.id()), "kind": "comment"}))
        .await;
    bob_ws.recv_type("ack").await;
    let m = cy_ws.recv_type("mention").await;
    assert_eq!(m["message"]["body"], format!("over to <@{}>", cy.id()));

    // The visitor never sees the notes: the next message they get is the reply.
    let next = visitor.ws.recv_type("message").await;
    assert_eq!(next["message"]["kind"], "message");
    assert_eq!(next["message"]["body"], format!("<@{}>", cy.id()));

    // A mention posted over HTTP notifies too.
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        &admin.token,
        json!({"body": format!("<@{}> see above", ana.id()), "kind": "comment", "client_id": "h1"}),
    )
    .await
    .expect(201);
    let m = ana_ws.recv_type("mention").await;
    assert_eq!(m["message"]["sender"]["id"], admin.id().as_str());
}

async fn ten_thousand_conversations_page_through_in_order(backend: Backend) {
    let env = TestEnv::new(backend, &[]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "W", "admin@example.com").await;
    let agent = app.agent(&admin, "agent@example.com").await;
    let chat = app.chat(&admin, &[&admin, &agent]).await;
    let seeded = seed_conversations(&env, &chat, &agent.id(), 10_000).await;

    let mut seen = Vec::with_capacity(10_000);
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=200&cursor={c}"),
            None => "/api/v1/conversations?limit=200".to_owned(),
        };
        let page = app.get(&url, &admin.token).await.expect(200);
        pages += 1;
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 50);
    assert_eq!(seen.len(), 10_000);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        10_000,
        "no repeats"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    let mut expected = seeded.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);

    // The views over the same data: every third is assigned to the agent, every
    // fifth is closed.
    let mine = app
        .get("/api/v1/conversations/counts", &agent.token)
        .await
        .expect(200)
        .body;
    let open_mine = (0..10_000).filter(|i| i % 3 == 0 && i % 5 != 0).count();
    assert_eq!(mine["all"]["mine"].as_u64(), Some(open_mine as u64));
    assert_eq!(mine["all"]["closed"].as_u64(), Some(2_000));
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = format!(
            "/api/v1/conversations?status=open&assignee=me&limit=200{}",
            cursor
                .as_deref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default()
        );
        let page = app.get(&url, &agent.token).await.expect(200);
        count += ids(&page).len();
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(count, open_mine);
}

/// Insert `n` conversations straight into the store (one contact each; every third
/// assigned to `agent_id`, every fifth closed, each with one message). Returns the ids.
pub async fn seed_conversations(
    env: &TestEnv,
    chat: &crate::helpers::Chat,
    agent_id: &str,
    n: usize,
) -> Vec<String> {
    let db = parley::store::Db::connect(&env.settings()).await.unwrap();
    let ws: String = {
        use sqlx::Row as _;
        sqlx::query("SELECT workspace_id FROM inboxes WHERE id = $1")
            .bind(&chat.inbox_id)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("workspace_id")
    };
    let mut ids = Vec::with_capacity(n);
    let mut tx = db.pool().begin().await.unwrap();
    let now = parley::store::now_ms();
    for i in 0..n {
        let id = parley::store::new_id();
        let contact = parley::store::new_id();
        sqlx::query(
            "INSERT INTO contacts (id, workspace_id, name, email, phone, attributes, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, NULL, '{}', $5, $5)",
        )
        .bind(&contact)
        .bind(&ws)
        .bind(format!("Customer {i}"))
        .bind(format!("c{i}@example.com"))
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
        let assignee = (i % 3 == 0).then_some(agent_id);
        let status = if i % 5 == 0 { "closed" } else { "open" };
        sqlx::query(
            "INSERT INTO conversations (id, workspace_id, inbox_id, channel_id, contact_id, \
             status, assignee_id, last_seq, created_at, updated_at, last_message_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $8)",
        )
        .bind(&id)
        .bind(&ws)
        .bind(&chat.inbox_id)
        .bind(&chat.channel_id)
        .bind(&contact)
        .bind(status)
        .bind(assignee)
        .bind(now + i as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO messages (id, workspace_id, conversation_id, seq, kind, sender_type, \
             sender_id, sender_name, body, attachments, channel, client_id, created_at) \
             VALUES ($1, $2, $3, 1, 'message', 'visitor', $4, 'Visitor', $5, '[]', 'chat', NULL, $6)",
        )
        .bind(parley::store::new_id())
        .bind(&ws)
        .bind(&id)
        .bind(&contact)
        .bind(format!("message number {i}"))
        .bind(now + i as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    db.close().await;
    ids
}

/// Benchmark, not a test (run it on purpose): list latency over 10,000 conversations,
/// per view, first page and a deep page. Prints p50/p95/max in milliseconds.
///
/// `cargo test --release --test api console::list_latency -- --ignored --nocapture`
#[actix_web::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn list_latency_benchmark() {
    let mut backends = vec![Backend::Sqlite];
    if crate::helpers::postgres_enabled() {
        backends.push(Backend::Postgres);
    }
    for backend in backends {
        let env = TestEnv::new(backend, &[]).await;
        let app = env.start().await;
        let admin = app.admin(&env, "W", "admin@example.com").await;
        let agent = app.agent(&admin, "agent@example.com").await;
        let chat = app.chat(&admin, &[&admin, &agent]).await;
        let seeded = seed_conversations(&env, &chat, &agent.id(), 10_000).await;
        let deep = parley::store::encode_cursor(&{
            let mut s = seeded.clone();
            s.sort();
            s[5_000].clone()
        });
        let cases = [
            ("all open, first page", "status=open".to_owned(), &admin),
            (
                "mine, first page",
                "status=open&assignee=me".to_owned(),
                &agent,
            ),
            (
                "unassigned, first page",
                "status=open&assignee=unassigned".to_owned(),
                &agent,
            ),
            ("closed, first page", "status=closed".to_owned(), &admin),
            (
                "all open, page at 5,000",
                format!("status=open&cursor={deep}"),
                &admin,
            ),
            ("search 'number 4242'", "q=number%204242".to_owned(), &admin),
        ];
        for (name, query, who) in cases {
            let mut ms = Vec::new();
            for _ in 0..50 {
                let t = std::time::Instant::now();
                app.get(
                    &format!("/api/v1/conversations?limit=50&{query}"),
                    &who.token,
                )
                .await
                .expect(200);
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{backend:?}\t{name}\tp50 {:.1} ms\tp95 {:.1} ms\tmax {:.1} ms",
                ms[25], ms[47], ms[49]
            );
        }
        let mut ms = Vec::new();
        for _ in 0..50 {
            let t = std::time::Instant::now();
            app.get("/api/v1/conversations/counts", &agent.token)
                .await
                .expect(200);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{backend:?}\tcounts\tp50 {:.1} ms\tp95 {:.1} ms\tmax {:.1} ms",
            ms[25], ms[47], ms[49]
        );
    }
}
