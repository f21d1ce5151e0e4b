//! The website chat end to end in headless Chromium: a customer's page on another origin
//! loads the tracking code, and a visitor chats with an agent who answers over the API.
//! The widget talks to Parley through a TCP proxy the test can cut, to drop the network
//! mid-conversation. See `tests/browser/widget*.mjs` for the browser side.

use serde_json::json;

use crate::browser::{HostSite, Proxy, run_script};
use crate::helpers::{Backend, Chat, Session, TestApp, TestEnv};

fn snippet(parley: &str, channel: &str, extra: &str) -> String {
    format!(
        "<script async src=\"{parley}/widget.js\" data-parley-channel=\"{channel}\"{extra}></script>"
    )
}

/// A customer's page: hostile CSS (which must not reach the widget), a record of the
/// globals before the tracking code, and enough text to scroll.
fn page(title: &str, head: &str, snippet: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title>\
         <script>window.__before = Object.getOwnPropertyNames(window);</script>\
         <style>* {{ font-family: serif !important; color: #0a0 !important; }} \
         button {{ display: none !important; }} div {{ border: 3px dashed red !important; }} \
         body {{ background: #fffbe6; }}</style>{head}</head>\
         <body><h1>{title}</h1><p>Welcome to our shop.</p>\
         <p style=\"height:3000px\">Lots of products…</p>{snippet}</body></html>"
    )
}

async fn allow(app: &TestApp, admin: &Session, chat: &Chat, origin: &str) {
    app.patch(
        &format!("/api/v1/channels/{}", chat.channel_id),
        &admin.token,
        json!({"settings": {"allowed_origins": [origin],
                            "branding": {"display_name": "Acme Support", "accent_color": "#7c3aed",
                                         "greeting": "Hi! How can we help?"}}}),
    )
    .await
    .expect(200);
}

#[actix_web::test]
async fn a_visitor_chats_with_an_agent_from_another_origin() {
    let (env, app) = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin(&env, "Acme", "admin@acme.test").await;
    let agent = app.agent(&admin, "ana@acme.test").await;
    app.patch(
        &format!("/api/v1/users/{}", agent.id()),
        &admin.token,
        json!({"name": "Ana", "meeting_link": "https://cal.example.com/ana"}),
    )
    .await;
    let proxy = Proxy::start(&app.address).await;
    let chat = app.chat(&admin, &[]).await;
    let host = HostSite::start(vec![(
        "/".into(),
        page("Acme shop", "", &snippet(&proxy.url, &chat.channel_id, "")),
    )]);
    // The host site's origin is the only one allowed.
    allow(&app, &admin, &chat, &host.url).await;
    app.put(
        &format!("/api/v1/inboxes/{}/members/{}", chat.inbox_id, agent.id()),
        &admin.token,
        json!({}),
    )
    .await;
    run_script(
        "widget.mjs",
        &app,
        &[
            ("HOST_URL", host.url.clone()),
            ("CONTROL_URL", proxy.control.clone()),
            ("ADMIN_TOKEN", admin.token.clone()),
            ("AGENT_TOKEN", agent.token.clone()),
            ("AGENT_ID", agent.id()),
            ("INBOX_ID", chat.inbox_id.clone()),
        ],
    )
    .await;
    // Server side: exactly one copy of the message sent while the network was down.
    let list = app
        .get(
            &format!(
                "/api/v1/conversations?inbox_id={}&status=closed",
                chat.inbox_id
            ),
            &admin.token,
        )
        .await
        .expect(200);
    let first = list.body["items"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let msgs = app
        .get(
            &format!("/api/v1/conversations/{first}/messages"),
            &admin.token,
        )
        .await
        .expect(200);
    let bodies: Vec<&str> = msgs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| **b == "sent while offline")
            .count(),
        1,
        "{bodies:?}"
    );
}

#[actix_web::test]
async fn targeting_offline_hours_and_security_in_chromium() {
    let env = TestEnv::new(Backend::Sqlite, &[]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "admin@acme.test").await;
    let chat = app.chat(&admin, &[]).await;
    let flows = format!("/api/v1/channels/{}/chatflows", chat.channel_id);
    let default_id = app.get(&flows, &admin.token).await.expect(200).body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/api/v1/chatflows/{default_id}"),
        &admin.token,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    app.post(
        &flows,
        &admin.token,
        json!({"name": "Pricing", "priority": 10, "display": "popup",
               "welcome_message": "Questions about pricing?",
               "targeting": {"rules": [{"kind": "url_glob", "value": "/pricing*"}]}}),
    )
    .await
    .expect(201);
    app.post(
        &flows,
        &admin.token,
        json!({"name": "Ads", "priority": 5, "display": "launcher",
               "welcome_message": "Welcome, ad visitor!",
               "targeting": {"rules": [{"kind": "query_param_equals", "param": "utm_source", "value": "ads"}]}}),
    )
    .await
    .expect(201);

    // A second chat channel, closed now (hours only on another day), all pages.
    let offline = app.chat(&admin, &[]).await;
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    use chrono::Datelike as _;
    let today = chrono::Utc::now().weekday().num_days_from_monday() as usize;
    let offline_settings = |origin: &str| {
        json!({"settings": {"allowed_origins": [origin],
            "availability": {"mode": "business_hours", "time_zone": "UTC",
                "hours": [{"day": days[(today + 3) % 7], "open": "00:00", "close": "24:00"}]},
            "offline": {"collect_email": true, "message": "We're away. We'll email you within a day."}}})
    };
    // A round-robin inbox whose only agent is offline: conversations wait in line.
    let agent = app.agent(&admin, "ana@acme.test").await;
    let queued = app
        .chat_with(&admin, &[&agent], json!({"mode": "round_robin"}))
        .await;
    let secret = app
        .get(
            &format!("/api/v1/channels/{}", chat.channel_id),
            &admin.token,
        )
        .await
        .expect(200)
        .body["identity_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let hash = parley::widget::identity::identity_hash(&secret, "lea@example.com");
    let a = &app.address;
    let ch = &chat.channel_id;
    let identity = format!(
        "<script>window.Parley = {{identity: {{email: 'lea@example.com', name: 'Léa', hash: '{hash}'}}}};</script>"
    );
    let pages = vec![
        ("/blog".to_owned(), page("Blog", "", &snippet(a, ch, ""))),
        (
            "/pricing".to_owned(),
            page("Pricing", "", &snippet(a, ch, "")),
        ),
        (
            "/pricing/me".to_owned(),
            page("Pricing", &identity, &snippet(a, ch, "")),
        ),
        (
            "/closed".to_owned(),
            page("Contact", "", &snippet(a, &offline.channel_id, "")),
        ),
        (
            "/down".to_owned(),
            page("Down", "", &snippet("http://127.0.0.1:9", ch, "")),
        ),
        (
            "/queue".to_owned(),
            page("Queue", "", &snippet(a, &queued.channel_id, "")),
        ),
    ];
    let host = HostSite::start(pages);
    allow(&app, &admin, &chat, &host.url).await;
    app.patch(
        &format!("/api/v1/channels/{}", offline.channel_id),
        &admin.token,
        offline_settings(&host.url),
    )
    .await
    .expect(200);
    run_script(
        "widget_rules.mjs",
        &app,
        &[
            ("HOST_URL", host.url.clone()),
            (
                "OTHER_ORIGIN_URL",
                host.url.replace("127.0.0.1", "localhost"),
            ),
            ("CHANNEL_ID", chat.channel_id.clone()),
            ("FORGED_HASH", "ab".repeat(32)),
        ],
    )
    .await;

    // The offline form's conversation reached the inbox, with the visitor's email.
    let db = parley::store::Db::connect(&env.settings()).await.unwrap();
    let (email, inbox): (Option<String>, String) = sqlx::query_as(
        "SELECT co.email, c.inbox_id FROM conversations c JOIN contacts co ON co.id = c.contact_id \
         WHERE c.channel_id = $1",
    )
    .bind(&offline.channel_id)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(email.as_deref(), Some("offline@example.com"));
    assert_eq!(inbox, offline.inbox_id);
    let body: String = sqlx::query_scalar(
        "SELECT m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE c.channel_id = $1 ORDER BY m.seq LIMIT 1",
    )
    .bind(&offline.channel_id)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(body, "Please call me back about my order");
    // The identified visitor's conversation belongs to the contact the site vouched for.
    let (email, verified): (Option<String>, i64) = sqlx::query_as(
        "SELECT co.email, co.email_verified FROM conversations c \
         JOIN contacts co ON co.id = c.contact_id WHERE c.channel_id = $1",
    )
    .bind(&chat.channel_id)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(email.as_deref(), Some("lea@example.com"));
    assert_eq!(verified, 1);
}
