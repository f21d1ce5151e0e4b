//! Round-robin routing: presence, capacity, the FIFO waiting queue, fairness.

use serde_json::{Value, json};

use crate::helpers::{Backend, Chat, Session, TestApp, TestEnv, Ws};
use crate::on_both_stores;

on_both_stores!(
    only_present_agents_are_assigned_and_round_robin_is_fair,
    the_queue_drains_in_fifo_order_the_moment_capacity_frees,
    an_agent_coming_online_takes_the_waiting_conversations,
    manual_inboxes_are_never_assigned_automatically,
);

async fn start(b: Backend) -> (TestEnv, TestApp, Session) {
    let env = TestEnv::new(
        b,
        &[("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "10000")],
    )
    .await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    (env, app, admin)
}

/// A visitor's first message; returns (socket, conversation id).
async fn visit(app: &TestApp, chat: &Chat, n: usize) -> (Ws, String) {
    let mut v = app.visitor(chat).await;
    v.ws.send(
        json!({"type": "send", "client_id": format!("first-{n}"), "body": format!("visitor {n}")}),
    )
    .await;
    let ack = v.ws.recv_type("ack").await;
    (v.ws, ack["conversation_id"].as_str().unwrap().to_owned())
}

/// Wait for the `assigned` event of `conv` on a console; returns the assignee.
async fn assigned(console: &mut Ws, conv: &str) -> String {
    let f = console
        .recv_where(&format!("{conv} assigned"), |f| {
            f["type"] == "conversation"
                && f["event"] == "assigned"
                && f["conversation"]["id"] == conv
        })
        .await;
    f["conversation"]["assignee_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn only_present_agents_are_assigned_and_round_robin_is_fair(b: Backend) {
    let (_env, app, admin) = start(b).await;
    let online1 = app.agent(&admin, "one@acme.test").await;
    let online2 = app.agent(&admin, "two@acme.test").await;
    let away = app.agent(&admin, "away@acme.test").await;
    let offline = app.agent(&admin, "off@acme.test").await;
    let chat = app
        .chat_with(
            &admin,
            &[&online1, &online2, &away, &offline],
            json!({"mode": "round_robin"}),
        )
        .await;
    let mut watcher = app.agent_ws(&admin).await;
    let _c1 = app.agent_ws(&online1).await;
    let _c2 = app.agent_ws(&online2).await;
    let mut c3 = app.agent_ws(&away).await;
    c3.send(json!({"type": "presence", "status": "away"})).await;
    let away_id = away.id();
    watcher
        .recv_where("away is away", |f| {
            f["type"] == "presence" && f["user_id"] == away_id.as_str() && f["status"] == "away"
        })
        .await;

    let mut counts = std::collections::HashMap::<String, usize>::new();
    let mut sockets = Vec::new();
    for n in 0..6 {
        let (ws, conv) = visit(&app, &chat, n).await;
        sockets.push(ws);
        *counts
            .entry(assigned(&mut watcher, &conv).await)
            .or_default() += 1;
    }
    assert_eq!(counts.get(&online1.id()), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&online2.id()), Some(&3), "{counts:?}");
    assert!(!counts.contains_key(&away.id()) && !counts.contains_key(&offline.id()));

    // The visitor sees who answers: the assigned event reaches them too, with the
    // agent's public profile.
    let e = sockets[0].recv_type("conversation").await;
    assert_eq!(e["event"], "assigned");
    let profile = &e["conversation"]["assignee"];
    assert_eq!(profile["id"], e["conversation"]["assignee_id"]);
    assert!(profile["name"].as_str().unwrap().ends_with("@acme.test"));
}

async fn the_queue_drains_in_fifo_order_the_moment_capacity_frees(b: Backend) {
    let (_env, app, admin) = start(b).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app
        .chat_with(
            &admin,
            &[&agent],
            json!({"mode": "round_robin", "capacity": 1}),
        )
        .await;
    let mut console = app.agent_ws(&agent).await;

    let (_v1, c1) = visit(&app, &chat, 1).await;
    assert_eq!(assigned(&mut console, &c1).await, agent.id());
    let (mut v2, c2) = visit(&app, &chat, 2).await;
    let (mut v3, c3) = visit(&app, &chat, 3).await;
    let q2 = v2.recv_type("queue").await;
    assert_eq!(
        (q2["conversation_id"].clone(), q2["position"].clone()),
        (json!(c2), json!(1))
    );
    let q3 = v3.recv_type("queue").await;
    assert_eq!(q3["position"], 2);

    // Never over capacity: both wait. Closing the first frees the agent at once.
    let waiting = app
        .get(
            "/api/v1/conversations?assignee=unassigned&status=open",
            &agent.token,
        )
        .await
        .expect(200);
    assert_eq!(waiting.body["items"].as_array().unwrap().len(), 2);
    app.post(
        &format!("/api/v1/conversations/{c1}/close"),
        &agent.token,
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(assigned(&mut console, &c2).await, agent.id());
    let assigned_event = v2.recv_type("conversation").await;
    assert_eq!(
        assigned_event["conversation"]["assignee_id"],
        agent.id().as_str()
    );
    assert_eq!(v3.recv_type("queue").await["position"], 1);

    // Unassigning by hand frees the load; the customer who has waited longest (c2,
    // by arrival) is routed again first, and c3 keeps waiting.
    app.post(
        &format!("/api/v1/conversations/{c2}/assign"),
        &admin.token,
        json!({"user_id": null}),
    )
    .await
    .expect(200);
    let next = console
        .recv_where("an automatic assignment", |f| {
            f["type"] == "conversation"
                && f["event"] == "assigned"
                && f["conversation"]["assignee_id"] == agent.id().as_str()
        })
        .await;
    assert_eq!(next["conversation"]["id"], c2.as_str());
    // Closing c2 lets c3 in at last.
    app.post(
        &format!("/api/v1/conversations/{c2}/close"),
        &agent.token,
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(assigned(&mut console, &c3).await, agent.id());
    // Waits have been observed now: a newcomer's position comes with an estimate.
    let (mut v4, _c4) = visit(&app, &chat, 4).await;
    let q4 = v4.recv_type("queue").await;
    assert_eq!(q4["position"], 1);
    assert!(q4["estimate_seconds"].is_u64(), "{q4}");
    let audit = app.get("/api/v1/audit-log", &admin.token).await.expect(200);
    let reasons: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["details"]["reason"])
        .collect();
    assert!(reasons.contains(&&json!("round_robin")));
}

async fn an_agent_coming_online_takes_the_waiting_conversations(b: Backend) {
    let (_env, app, admin) = start(b).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app
        .chat_with(
            &admin,
            &[&agent],
            json!({"mode": "round_robin", "capacity": 5}),
        )
        .await;
    let mut watcher = app.agent_ws(&admin).await;
    let (mut v1, c1) = visit(&app, &chat, 1).await;
    let (_v2, c2) = visit(&app, &chat, 2).await;
    assert_eq!(v1.recv_type("queue").await["position"], 1);

    let _console = app.agent_ws(&agent).await;
    assert_eq!(assigned(&mut watcher, &c1).await, agent.id());
    assert_eq!(assigned(&mut watcher, &c2).await, agent.id());
}

async fn manual_inboxes_are_never_assigned_automatically(b: Backend) {
    let (_env, app, admin) = start(b).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app.chat(&admin, &[&agent]).await;
    let mut console = app.agent_ws(&agent).await;
    let (_v, conv) = visit(&app, &chat, 1).await;
    console.recv_type("conversation").await; // created
    // Switching the inbox to round-robin routes what waits.
    app.patch(
        &format!("/api/v1/inboxes/{}", chat.inbox_id),
        &admin.token,
        json!({"routing": {"mode": "round_robin"}}),
    )
    .await
    .expect(200);
    assert_eq!(assigned(&mut console, &conv).await, agent.id());
}

on_both_stores!(conversations_waiting_across_a_restart_are_routed_when_an_agent_comes_online);

async fn conversations_waiting_across_a_restart_are_routed_when_an_agent_comes_online(b: Backend) {
    let env = TestEnv::new(b, &[]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let chat = app
        .chat_with(&admin, &[&agent], json!({"mode": "round_robin"}))
        .await;
    let (mut v, conv) = visit(&app, &chat, 1).await;
    assert_eq!(v.recv_type("queue").await["position"], 1);
    drop(v);
    app.stop().await;

    let app = env.start().await;
    let mut watcher = app.agent_ws(&admin).await;
    let _console = app.agent_ws(&agent).await;
    assert_eq!(assigned(&mut watcher, &conv).await, agent.id());
}

on_both_stores!(a_routing_team_routes_among_its_members_in_the_inbox_and_follows_changes);

async fn a_routing_team_routes_among_its_members_in_the_inbox_and_follows_changes(b: Backend) {
    let (_env, app, admin) = start(b).await;
    let in_both = app.agent(&admin, "both@acme.test").await;
    let inbox_only = app.agent(&admin, "inbox@acme.test").await;
    let team_only = app.agent(&admin, "team@acme.test").await;
    let team = app
        .post(
            "/api/v1/teams",
            &admin.token,
            json!({"name": "Tier 1", "member_ids": [in_both.id(), team_only.id()]}),
        )
        .await
        .expect(201);
    let team_id = team.body["id"].as_str().unwrap().to_owned();
    let chat = app
        .chat_with(
            &admin,
            &[&in_both, &inbox_only],
            json!({"mode": "round_robin", "team_id": team_id}),
        )
        .await;
    let mut watcher = app.agent_ws(&admin).await;
    let _c1 = app.agent_ws(&in_both).await;
    let _c2 = app.agent_ws(&inbox_only).await;
    let _c3 = app.agent_ws(&team_only).await;

    // Only the team member who is in the inbox is routed to.
    let mut keep = Vec::new();
    for n in 0..2 {
        let (ws, conv) = visit(&app, &chat, n).await;
        keep.push(ws);
        assert_eq!(assigned(&mut watcher, &conv).await, in_both.id());
    }
    // Joining the team makes the inbox member eligible at once (never assigned yet, so
    // next in the rotation).
    app.post(
        &format!("/api/v1/teams/{team_id}/members"),
        &admin.token,
        json!({"user_id": inbox_only.id()}),
    )
    .await
    .expect(200);
    let (_ws, conv) = visit(&app, &chat, 9).await;
    assert_eq!(assigned(&mut watcher, &conv).await, inbox_only.id());
    drop(keep);
}

on_both_stores!(an_offline_agents_conversations_return_to_the_queue_when_the_inbox_says_so);

async fn an_offline_agents_conversations_return_to_the_queue_when_the_inbox_says_so(b: Backend) {
    let env = TestEnv::new(
        b,
        &[
            ("PARLEY__ENGINE__PRESENCE_TTL_SECS", "2"),
            ("PARLEY__ENGINE__HEARTBEAT_SECS", "1"),
        ],
    )
    .await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let leaving = app.agent(&admin, "leaving@acme.test").await;
    let staying = app.agent(&admin, "staying@acme.test").await;
    let chat = app
        .chat_with(
            &admin,
            &[&leaving, &staying],
            json!({"mode": "round_robin", "offline": {"action": "return", "grace_seconds": 0}}),
        )
        .await;
    let mut watcher = app.agent_ws(&admin).await;
    let console = app.agent_ws(&leaving).await;
    let (_v, conv) = visit(&app, &chat, 1).await;
    assert_eq!(assigned(&mut watcher, &conv).await, leaving.id());

    let _other = app.agent_ws(&staying).await;
    console.close().await;
    // Once the presence TTL lapses the conversation is returned, then routed again.
    let returned = watcher
        .recv_where("returned", |f| {
            f["type"] == "conversation"
                && f["event"] == "assigned"
                && f["conversation"]["id"] == conv.as_str()
                && f["conversation"]["assignee_id"].is_null()
        })
        .await;
    assert!(returned["conversation"].get("assignee").is_none());
    assert_eq!(assigned(&mut watcher, &conv).await, staying.id());
    let audit = app.get("/api/v1/audit-log", &admin.token).await.expect(200);
    assert!(audit.body["items"].as_array().unwrap().iter().any(|e| {
        e["details"]["reason"] == "returned: agent offline" && e["target_id"] == conv.as_str()
    }));
}

on_both_stores!(new_inboxes_take_the_routing_defaults_from_the_configuration);

async fn new_inboxes_take_the_routing_defaults_from_the_configuration(b: Backend) {
    let env = TestEnv::new(
        b,
        &[
            ("PARLEY__ROUTING__DEFAULT_MODE", "manual"),
            ("PARLEY__ROUTING__DEFAULT_CAPACITY", "3"),
            ("PARLEY__ROUTING__DEFAULT_OFFLINE_ACTION", "return"),
            ("PARLEY__ROUTING__DEFAULT_OFFLINE_GRACE_SECS", "60"),
        ],
    )
    .await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let inbox = app
        .post("/api/v1/inboxes", &admin.token, json!({"name": "Sales"}))
        .await
        .expect(201);
    assert_eq!(
        inbox.body["routing"],
        json!({"mode": "manual", "capacity": 3, "team_id": null,
               "offline": {"action": "return", "grace_seconds": 60}})
    );
    // A request's own settings win over the defaults.
    let inbox = app
        .post(
            "/api/v1/inboxes",
            &admin.token,
            json!({"name": "Support", "routing": {"mode": "round_robin", "capacity": null}}),
        )
        .await
        .expect(201);
    assert_eq!(inbox.body["routing"]["mode"], "round_robin");
    assert!(inbox.body["routing"]["capacity"].is_null());
}
