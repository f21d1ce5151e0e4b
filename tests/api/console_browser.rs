//! The agent console in headless Chromium: first-run setup on an empty database, the
//! two-agents-and-a-visitor flow (the visitor on a customer's page through the real
//! chat widget), inbox visibility, attachments, user text shown as text, and a silent
//! reconnect and resume when the agent's network drops (through a cuttable proxy).
//! `PARLEY_SCREENSHOTS=1` also refreshes `docs/screenshots/` (inbox, conversation,
//! settings).

use serde_json::json;

use crate::browser::{HostSite, Proxy, run_script};
use crate::helpers::{Backend, PASSWORD, Session, TestApp};

/// Agents (email, name) with the test password, an inbox "Support" with them as members
/// routed by `mode`, and a chat channel "Website" in it.
struct Support {
    agent_ids: Vec<String>,
    inbox_id: String,
    channel_id: String,
    snippet: String,
}

async fn support(app: &TestApp, admin: &Session, agents: &[(&str, &str)], mode: &str) -> Support {
    let mut agent_ids = Vec::new();
    for (email, name) in agents {
        let u = app
            .post(
                "/api/v1/users",
                &admin.token,
                json!({"email": email, "password": PASSWORD, "name": name, "role": "agent"}),
            )
            .await
            .expect(201);
        agent_ids.push(u.body["id"].as_str().unwrap().to_owned());
    }
    let inbox = app
        .post(
            "/api/v1/inboxes",
            &admin.token,
            json!({"name": "Support", "member_ids": agent_ids, "routing": {"mode": mode}}),
        )
        .await
        .expect(201);
    let inbox_id = inbox.body["id"].as_str().unwrap().to_owned();
    let channel = app
        .post(
            &format!("/api/v1/inboxes/{inbox_id}/channels"),
            &admin.token,
            json!({"type": "chat", "name": "Website"}),
        )
        .await
        .expect(201);
    Support {
        agent_ids,
        inbox_id,
        channel_id: channel.body["id"].as_str().unwrap().to_owned(),
        snippet: channel.body["embed_snippet"].as_str().unwrap().to_owned(),
    }
}

#[actix_web::test]
async fn first_run_setup_in_the_browser_then_logout_and_login() {
    let (_env, app) = TestApp::spawn(Backend::Sqlite).await;
    run_script("console_setup.mjs", &app, &[]).await;
}

#[actix_web::test]
async fn two_agents_and_a_visitor_work_a_conversation_live() {
    let (env, app) = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin(&env, "Acme", "admin@example.com").await;
    let Support {
        agent_ids: ids,
        inbox_id,
        channel_id,
        snippet,
    } = support(
        &app,
        &admin,
        &[
            ("ana@example.com", "Ana Agent"),
            ("bob@example.com", "Bob Builder"),
        ],
        "round_robin",
    )
    .await;
    // The customer's site (another origin) with the snippet pasted in, as the README says.
    let host = HostSite::start(vec![(
        "/pricing".into(),
        format!(
            "<!doctype html><html><head><meta charset=utf-8><title>Acme pricing</title></head>\
             <body><h1>Pricing</h1>{snippet}</body></html>"
        ),
    )]);
    run_script(
        "console_flow.mjs",
        &app,
        &[
            ("ADMIN_TOKEN", admin.token.clone()),
            ("ANA_ID", ids[0].clone()),
            ("BOB_ID", ids[1].clone()),
            ("INBOX_ID", inbox_id),
            ("CHANNEL_ID", channel_id),
            ("HOST_URL", host.url.clone()),
        ],
    )
    .await;
}

#[actix_web::test]
async fn the_console_reconnects_and_resumes_silently_after_the_network_drops() {
    let (env, app) = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin(&env, "Acme", "admin@example.com").await;
    let Support { channel_id, .. } =
        support(&app, &admin, &[("ana@example.com", "Ana Agent")], "manual").await;
    let proxy = Proxy::start(&app.address).await;
    run_script(
        "console_reconnect.mjs",
        &app,
        &[
            ("CHANNEL_ID", channel_id),
            ("CONSOLE_URL", proxy.url.clone()),
            ("CONTROL_URL", proxy.control.clone()),
        ],
    )
    .await;
}
