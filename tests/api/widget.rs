//! The website chat's API: chat channel settings, chatflows, the public widget
//! endpoints (config, sessions, contact, end), allowed origins (CORS and the visitor
//! socket's handshake) and HMAC visitor identity.

use chrono::Datelike as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Chat, Session, TestApp, TestEnv, Ws};
use crate::on_both_stores;

async fn setup(backend: Backend) -> (TestEnv, TestApp, Session, Chat) {
    let (env, app) = TestApp::spawn(backend).await;
    let admin = app.admin(&env, "Acme", "admin@acme.test").await;
    let chat = app.chat(&admin, &[]).await;
    (env, app, admin, chat)
}

/// A widget call from a page of `origin` (None: no Origin header).
async fn widget_call(
    app: &TestApp,
    method: Method,
    path: &str,
    origin: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .client
        .request(method, format!("{}/api/v1/widget{path}", app.address));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn config(app: &TestApp, channel: &str, page: &str) -> Value {
    let (status, _, body) = widget_call(
        app,
        Method::GET,
        &format!("/{channel}/config?page_url={}", urlencode(page)),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn chat_settings_are_validated_and_filled_with_defaults(backend: Backend) {
    let (_env, app, admin, chat) = setup(backend).await;
    let ch = app
        .get(
            &format!("/api/v1/channels/{}", chat.channel_id),
            &admin.token,
        )
        .await
        .expect(200);
    let s = &ch.body["settings"];
    assert_eq!(s["allowed_origins"], json!([]));
    assert_eq!(s["branding"]["accent_color"], "#2563eb");
    assert_eq!(s["availability"]["mode"], "always");
    assert_eq!(s["offline"]["collect_email"], true);
    assert!(
        ch.body["embed_snippet"]
            .as_str()
            .unwrap()
            .contains(&format!("data-parley-channel=\"{}\"", chat.channel_id))
    );
    let secret = ch.body["identity_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);

    // A partial document is completed with the defaults, and normalised.
    let r = app
        .patch(
            &format!("/api/v1/channels/{}", chat.channel_id),
            &admin.token,
            json!({"settings": {
                "allowed_origins": ["HTTPS://Shop.Example.com/"],
                "branding": {"accent_color": "#FF0000", "display_name": "Acme"},
                "availability": {"mode": "business_hours", "time_zone": "Europe/Paris",
                                 "hours": [{"day": "mon", "open": "09:00", "close": "17:30"}]}
            }}),
        )
        .await
        .expect(200);
    let s = &r.body["settings"];
    assert_eq!(s["allowed_origins"], json!(["https://shop.example.com"]));
    assert_eq!(s["branding"]["accent_color"], "#ff0000");
    assert_eq!(s["branding"]["greeting"], "Hi! How can we help?");
    assert_eq!(s["availability"]["hours"][0]["close"], "17:30");

    // Bad documents are refused, naming the field, and change nothing.
    for (settings, field) in [
        (json!({"allowed_origin": []}), "allowed_origin"),
        (
            json!({"allowed_origins": ["https://x.com/path"]}),
            "allowed_origins[0]",
        ),
        (
            json!({"branding": {"accent_color": "red"}}),
            "branding.accent_color",
        ),
        (json!({"branding": {"colour": "#fff"}}), "colour"),
        (
            json!({"availability": {"time_zone": "Nowhere/City"}}),
            "time_zone",
        ),
        (json!({"availability": {"mode": "sometimes"}}), "mode"),
        (
            json!({"availability": {"hours": [{"day": "mon", "open": "18:00", "close": "09:00"}]}}),
            "hours[0]",
        ),
        (
            json!({"offline": {"collect_email": "yes"}}),
            "collect_email",
        ),
        (json!([1, 2]), "settings"),
    ] {
        let r = app
            .patch(
                &format!("/api/v1/channels/{}", chat.channel_id),
                &admin.token,
                json!({"settings": settings}),
            )
            .await
            .expect_problem(400, "validation_failed");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{detail} should name {field}");
    }
    let after = app
        .get(
            &format!("/api/v1/channels/{}", chat.channel_id),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(after.body["settings"], r.body["settings"]);

    // Creating a chat channel validates too; other channel types keep free-form settings.
    app.post(
        &format!("/api/v1/inboxes/{}/channels", chat.inbox_id),
        &admin.token,
        json!({"type": "chat", "settings": {"branding": {"accent_color": 3}}}),
    )
    .await
    .expect_problem(400, "validation_failed");
    let email = app
        .post(
            &format!("/api/v1/inboxes/{}/channels", chat.inbox_id),
            &admin.token,
            json!({"type": "email", "settings": {"anything": true}}),
        )
        .await
        .expect(201);
    assert_eq!(email.body["settings"], json!({"anything": true}));
    assert!(email.body.get("identity_secret").is_none());

    // Rotating the identity secret: admins only.
    let agent = app.agent(&admin, "agent@acme.test").await;
    app.post(
        &format!("/api/v1/channels/{}/identity-secret", chat.channel_id),
        &agent.token,
        json!({}),
    )
    .await
    .expect_problem(403, "forbidden");
    let rotated = app
        .post(
            &format!("/api/v1/channels/{}/identity-secret", chat.channel_id),
            &admin.token,
            json!({}),
        )
        .await
        .expect(200);
    let new_secret = rotated.body["identity_secret"].as_str().unwrap();
    assert_eq!(new_secret.len(), 64);
    assert_ne!(new_secret, secret);
    app.post(
        &format!(
            "/api/v1/channels/{}/identity-secret",
            email.body["id"].as_str().unwrap()
        ),
        &admin.token,
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");
}

async fn chatflows_crud_and_bad_input(backend: Backend) {
    let (_env, app, admin, chat) = setup(backend).await;
    let base = format!("/api/v1/channels/{}/chatflows", chat.channel_id);
    // A new chat channel has the Default chatflow.
    let list = app.get(&base, &admin.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let default = &list.body["items"][0];
    assert_eq!(default["name"], "Default");
    assert_eq!(
        default["targeting"]["rules"],
        json!([{"kind": "all_pages"}])
    );
    assert_eq!(default["trigger"], json!({"kind": "on_load"}));
    assert_eq!(default["display"], "launcher");
    assert!(list.body["next_cursor"].is_null());

    let created = app
        .post(
            &base,
            &admin.token,
            json!({"name": "Pricing", "priority": 10,
                   "targeting": {"match": "all", "rules": [
                       {"kind": "url_starts_with", "value": "/pricing"},
                       {"kind": "query_param_equals", "param": "utm_source", "value": "ads"}]},
                   "trigger": {"kind": "after_seconds", "seconds": 5},
                   "welcome_message": "Questions about pricing?", "display": "popup"}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["channel_id"], chat.channel_id.as_str());
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["trigger"]["seconds"], 5);
    // Listed by priority.
    let list = app.get(&base, &admin.token).await.expect(200);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    assert_eq!(list.body["items"][1]["name"], "Default");

    let got = app
        .get(&format!("/api/v1/chatflows/{id}"), &admin.token)
        .await
        .expect(200);
    assert_eq!(got.body["welcome_message"], "Questions about pricing?");
    let patched = app
        .patch(
            &format!("/api/v1/chatflows/{id}"),
            &admin.token,
            json!({"enabled": false, "trigger": {"kind": "exit_intent"}, "name": "Pricing v2"}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["trigger"], json!({"kind": "exit_intent"}));
    assert_eq!(patched.body["priority"], 10, "absent fields stay");

    // Bad input: 400 naming the field, nothing changes.
    for body in [
        json!({"name": ""}),
        json!({"name": "x", "priority": -1}),
        json!({"name": "x", "priority": "high"}),
        json!({"name": "x", "trigger": {"kind": "after_seconds"}}),
        json!({"name": "x", "trigger": {"kind": "after_seconds", "seconds": 0}}),
        json!({"name": "x", "trigger": {"kind": "scroll_percent", "percent": 101}}),
        json!({"name": "x", "trigger": {"kind": "on_hover"}}),
        json!({"name": "x", "targeting": {"rules": []}}),
        json!({"name": "x", "targeting": {"rules": [{"kind": "url_regex", "value": ".*"}]}}),
        json!({"name": "x", "targeting": {"rules": [{"kind": "url_is"}]}}),
        json!({"name": "x", "targeting": {"match": "some", "rules": [{"kind": "all_pages"}]}}),
        json!({"name": "x", "display": "modal"}),
        json!({"name": "x", "welcome_message": "w".repeat(1001)}),
        json!({"name": "x", "colour": "red"}),
    ] {
        app.post(&base, &admin.token, body.clone())
            .await
            .expect_problem(400, "validation_failed");
    }
    app.patch(
        &format!("/api/v1/chatflows/{id}"),
        &admin.token,
        json!({"priority": 10001}),
    )
    .await
    .expect_problem(400, "validation_failed");
    let list = app.get(&base, &admin.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);

    // Agents read but do not write; other workspaces see nothing.
    let agent = app.agent(&admin, "agent@acme.test").await;
    app.post(&base, &agent.token, json!({"name": "x"}))
        .await
        .expect_problem(403, "forbidden");
    app.delete(&format!("/api/v1/chatflows/{id}"), &agent.token)
        .await
        .expect_problem(403, "forbidden");
    app.get("/api/v1/chatflows/nope", &admin.token)
        .await
        .expect_problem(404, "not_found");
    app.get("/api/v1/channels/nope/chatflows", &admin.token)
        .await
        .expect_problem(404, "not_found");

    app.delete(&format!("/api/v1/chatflows/{id}"), &admin.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/chatflows/{id}"), &admin.token)
        .await
        .expect_problem(404, "not_found");
}

async fn config_picks_the_chatflow_by_targeting_and_priority(backend: Backend) {
    let (_env, app, admin, chat) = setup(backend).await;
    let base = format!("/api/v1/channels/{}/chatflows", chat.channel_id);
    let list = app.get(&base, &admin.token).await.expect(200);
    let default_id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let pricing = app
        .post(
            &base,
            &admin.token,
            json!({"name": "Pricing", "priority": 10,
                   "targeting": {"rules": [{"kind": "url_glob", "value": "/pricing*"}]},
                   "trigger": {"kind": "scroll_percent", "percent": 50},
                   "welcome_message": "Pricing?", "display": "popup"}),
        )
        .await
        .expect(201);
    let pricing_id = pricing.body["id"].as_str().unwrap().to_owned();
    let ads = app
        .post(
            &base,
            &admin.token,
            json!({"name": "Ads", "priority": 5,
                   "targeting": {"rules": [{"kind": "query_param_equals", "param": "utm_source", "value": "ads"}]}}),
        )
        .await
        .expect(201);
    let ads_id = ads.body["id"].as_str().unwrap().to_owned();

    let c = config(&app, &chat.channel_id, "https://shop.example/pricing/pro").await;
    assert_eq!(c["chatflow"]["id"], pricing_id.as_str());
    assert_eq!(c["chatflow"]["welcome_message"], "Pricing?");
    assert_eq!(c["chatflow"]["display"], "popup");
    assert_eq!(
        c["chatflow"]["trigger"],
        json!({"kind": "scroll_percent", "percent": 50})
    );
    assert_eq!(c["available"], true);
    assert_eq!(c["branding"]["display_name"], "Support");
    // Both Pricing (10) and Ads (5) match: the lower priority wins.
    let c = config(
        &app,
        &chat.channel_id,
        "https://shop.example/pricing?utm_source=ads",
    )
    .await;
    assert_eq!(c["chatflow"]["id"], ads_id.as_str());
    // Elsewhere the Default one.
    let c = config(&app, &chat.channel_id, "https://shop.example/blog").await;
    assert_eq!(c["chatflow"]["id"], default_id.as_str());
    // With the Default disabled, no chatflow targets the blog: the widget stays hidden.
    app.patch(
        &format!("/api/v1/chatflows/{default_id}"),
        &admin.token,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    let c = config(&app, &chat.channel_id, "https://shop.example/blog").await;
    assert!(c["chatflow"].is_null(), "{c}");

    // Unknown channel, non-chat channel: 404.
    let (status, _, body) = widget_call(&app, Method::GET, "/nope/config", None, None, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
}

async fn availability_business_hours_and_agents_online(backend: Backend) {
    let (_env, app, admin, chat) = setup(backend).await;
    let agent = app.agent(&admin, "agent@acme.test").await;
    let ch = format!("/api/v1/channels/{}", chat.channel_id);
    // Hours only on a day that is not today (in UTC): closed now.
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = chrono::Utc::now().weekday().num_days_from_monday() as usize;
    let other = days[(today + 3) % 7];
    let this = days[today];
    app.patch(
        &ch,
        &admin.token,
        json!({"settings": {"availability": {"mode": "business_hours", "time_zone": "UTC",
            "hours": [{"day": other, "open": "00:00", "close": "24:00"}]},
            "offline": {"collect_email": true, "message": "Back on Monday."}}}),
    )
    .await
    .expect(200);
    let c = config(&app, &chat.channel_id, "https://shop.example/").await;
    assert_eq!(c["available"], false);
    assert_eq!(c["offline"]["message"], "Back on Monday.");
    // Open all day today: available.
    app.patch(
        &ch,
        &admin.token,
        json!({"settings": {"availability": {"mode": "business_hours", "time_zone": "UTC",
            "hours": [{"day": this, "open": "00:00", "close": "24:00"}]}}}),
    )
    .await
    .expect(200);
    let c = config(&app, &chat.channel_id, "https://shop.example/").await;
    assert_eq!(c["available"], true);

    // "When team members are online": the inbox's agents' presence.
    app.put(
        &format!("/api/v1/inboxes/{}/members/{}", chat.inbox_id, agent.id()),
        &admin.token,
        json!({}),
    )
    .await;
    app.patch(
        &ch,
        &admin.token,
        json!({"settings": {"availability": {"mode": "agents_online"}}}),
    )
    .await
    .expect(200);
    let c = config(&app, &chat.channel_id, "https://shop.example/").await;
    assert_eq!(c["available"], false, "nobody online");
    let mut ws = app.agent_ws(&agent).await;
    let c = config(&app, &chat.channel_id, "https://shop.example/").await;
    assert_eq!(c["available"], true, "the agent is online");
    ws.send(json!({"type": "presence", "status": "away"})).await;
    ws.recv_where("away", |f| f["type"] == "presence" && f["status"] == "away")
        .await;
    let c = config(&app, &chat.channel_id, "https://shop.example/").await;
    assert_eq!(c["available"], false, "away is not available");
}

async fn allowed_origins_are_enforced_on_http_and_the_socket(backend: Backend) {
    let (_env, app, admin, chat) = setup(backend).await;
    app.patch(
        &format!("/api/v1/channels/{}", chat.channel_id),
        &admin.token,
        json!({"settings": {"allowed_origins": ["https://shop.example.com"]}}),
    )
    .await
    .expect(200);
    let ch = &chat.channel_id;
    let good = Some("https://shop.example.com");
    let bad = Some("https://evil.example.net");

    // Preflight.
    let (status, headers, _) = widget_call(
        &app,
        Method::OPTIONS,
        &format!("/{ch}/sessions"),
        good,
        None,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Content-Type")
    );
    let (status, headers, body) = widget_call(
        &app,
        Method::OPTIONS,
        &format!("/{ch}/sessions"),
        bad,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "forbidden");
    assert!(headers.get("access-control-allow-origin").is_none());

    // Config and sessions: allowed origin echoed, other refused (and nothing made).
    let (status, headers, _) = widget_call(
        &app,
        Method::GET,
        &format!("/{ch}/config?page_url=x"),
        good,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(headers["vary"], "Origin");
    for path in [
        format!("/{ch}/config?page_url=x"),
        format!("/{ch}/sessions"),
    ] {
        let method = if path.ends_with("sessions") {
            Method::POST
        } else {
            Method::GET
        };
        let body = method.eq(&Method::POST).then(|| json!({"page_url": "x"}));
        let (status, headers, problem) = widget_call(&app, method, &path, bad, None, body).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(problem["code"], "forbidden");
        assert!(headers.get("access-control-allow-origin").is_none());
    }
    // An allowed origin's error answers carry the CORS headers, so the widget reads them.
    let (status, headers, problem) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/sessions"),
        good,
        None,
        Some(json!({"page_url": "x".repeat(3000)})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );

    let (status, _, s) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/sessions"),
        good,
        None,
        Some(json!({"page_url": "https://shop.example.com/"})),
    )
    .await;
    assert_eq!(status, 200);
    let token = s["visitor_token"].as_str().unwrap();

    // The socket's handshake checks Origin too.
    let url = format!("{}/ws/visitor?token={token}", app.ws_base());
    let refused = ws_with_origin(&url, "https://evil.example.net").await;
    assert_eq!(refused.err(), Some(403));
    let mut ok = ws_with_origin(&url, "https://shop.example.com")
        .await
        .expect("allowed origin connects");
    ok.send(json!({"type": "send", "client_id": "c1", "body": "hello"}))
        .await;
    ok.recv_type("ack").await;
}

async fn ws_with_origin(url: &str, origin: &str) -> Result<Ws, u16> {
    Ws::try_connect_from(url, origin).await
}

async fn identity_attaches_the_visitor_to_the_contact(backend: Backend) {
    let (env, app, admin, chat) = setup(backend).await;
    let ch = app
        .get(
            &format!("/api/v1/channels/{}", chat.channel_id),
            &admin.token,
        )
        .await
        .expect(200);
    let secret = ch.body["identity_secret"].as_str().unwrap().to_owned();
    let hash = parley::widget::identity::identity_hash(&secret, "ana@example.com");
    let session = |identity: Value, token: Option<String>| {
        let app = &app;
        let chat = &chat;
        async move {
            widget_call(
                app,
                Method::POST,
                &format!("/{}/sessions", chat.channel_id),
                None,
                None,
                Some(
                    json!({"page_url": "https://shop.example/", "visitor_token": token,
                            "identity": identity}),
                ),
            )
            .await
        }
    };
    // An anonymous visit first, then the same browser logs in.
    let anon = app.visitor_token(&chat.channel_id, None).await;
    let anon_token = anon["visitor_token"].as_str().unwrap().to_owned();
    let (status, _, a) = session(
        json!({"email": "Ana@Example.com", "name": "Ana", "hash": hash}),
        Some(anon_token.clone()),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_ne!(a["contact_id"], anon["contact_id"]);
    // Another browser with the same identity is the same contact.
    let (status, _, b) = session(
        json!({"email": "ana@example.com", "hash": hash.to_uppercase()}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["contact_id"], a["contact_id"]);
    // Its token keeps being that contact, with or without the identity.
    let again = app
        .visitor_token(&chat.channel_id, b["visitor_token"].as_str())
        .await;
    assert_eq!(again["contact_id"], a["contact_id"]);
    assert_eq!(again["new_visitor"], false);

    // The contact carries the email and name.
    let db = parley::store::Db::connect(&env.settings()).await.unwrap();
    let row: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT email, name FROM contacts WHERE id = $1")
            .bind(a["contact_id"].as_str().unwrap())
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(row, (Some("ana@example.com".into()), Some("Ana".into())));

    // A conversation started by the identified visitor belongs to that contact.
    let mut ws = app.visitor_ws(b["visitor_token"].as_str().unwrap()).await;
    ws.send(json!({"type": "send", "client_id": "k1", "body": "hi, it's Ana"}))
        .await;
    let ack = ws.recv_type("ack").await;
    let conv = app
        .get(
            &format!(
                "/api/v1/conversations/{}",
                ack["conversation_id"].as_str().unwrap()
            ),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(conv.body["contact_id"], a["contact_id"]);

    // Forged: wrong hash, another email's hash, an old secret's hash → 401, nothing changes.
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visitors")
        .fetch_one(db.pool())
        .await
        .unwrap();
    for identity in [
        json!({"email": "ana@example.com", "hash": "00".repeat(32)}),
        json!({"email": "bob@example.com", "hash": hash}),
        json!({"email": "ana@example.com", "hash": ""}),
    ] {
        let (status, _, p) = session(identity, Some(anon_token.clone())).await;
        assert_eq!(status, 401, "{p}");
        assert_eq!(p["code"], "invalid_identity");
    }
    app.post(
        &format!("/api/v1/channels/{}/identity-secret", chat.channel_id),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);
    let (status, _, p) = session(json!({"email": "ana@example.com", "hash": hash}), None).await;
    assert_eq!(status, 401, "{p}");
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visitors")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(before, after, "a refused identity makes no visitor");
    // Bad email shape: 400.
    let (status, _, p) = session(json!({"email": "not-an-email", "hash": hash}), None).await;
    assert_eq!(status, 400, "{p}");
}

async fn offline_contact_and_end_chat(backend: Backend) {
    let (env, app, admin, chat) = setup(backend).await;
    let mut v = app.visitor(&chat).await;
    let ch = &chat.channel_id;
    // Needs the visitor token.
    let (status, _, p) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/contact"),
        None,
        None,
        Some(json!({"email": "zoe@example.com"})),
    )
    .await;
    assert_eq!(status, 401, "{p}");
    let (status, _, p) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/contact"),
        None,
        Some(&v.token),
        Some(json!({"email": "nope"})),
    )
    .await;
    assert_eq!(status, 400, "{p}");
    let (status, _, r) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/contact"),
        None,
        Some(&v.token),
        Some(json!({"email": "Zoe@Example.com", "name": "Zoé"})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["updated"], true);
    let db = parley::store::Db::connect(&env.settings()).await.unwrap();
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM contacts WHERE id = $1")
        .bind(&v.contact_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(email.as_deref(), Some("zoe@example.com"));

    // The conversation lands in the inbox.
    v.ws.send(json!({"type": "send", "client_id": "o1", "body": "Please call me back"}))
        .await;
    let ack = v.ws.recv_type("ack").await;
    let conv_id = ack["conversation_id"].as_str().unwrap().to_owned();
    let list = app
        .get(
            &format!("/api/v1/conversations?inbox_id={}", chat.inbox_id),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(list.body["items"][0]["id"], conv_id.as_str());
    assert_eq!(list.body["items"][0]["contact_id"], v.contact_id.as_str());

    // Ending: only the visitor's own conversation; then it is closed for everyone.
    let other = app.visitor(&chat).await;
    let (status, _, _) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/conversations/{conv_id}/end"),
        None,
        Some(&other.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let mut agent_ws = app.agent_ws(&admin).await;
    let (status, _, ended) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/conversations/{conv_id}/end"),
        None,
        Some(&v.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["status"], "closed");
    let (status, _, again) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/conversations/{conv_id}/end"),
        None,
        Some(&v.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "ending twice is fine: {again}");
    let (status, _, _) = widget_call(
        &app,
        Method::POST,
        &format!("/{ch}/conversations/{conv_id}/end"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
    v.ws.recv_where("closed", |f| {
        f["type"] == "conversation" && f["event"] == "closed"
    })
    .await;
    agent_ws
        .recv_where("closed", |f| {
            f["type"] == "conversation"
                && f["event"] == "closed"
                && f["conversation"]["id"] == conv_id.as_str()
        })
        .await;
    // The session no longer lists it, and a new socket's first send starts a new one.
    let s = app.visitor_token(ch, Some(&v.token)).await;
    assert_eq!(s["conversation_ids"], json!([]));
    let mut ws2 = app.visitor_ws(&v.token).await;
    ws2.send(json!({"type": "send", "client_id": "o2", "body": "new chat"}))
        .await;
    let ack2 = ws2.recv_type("ack").await;
    assert_ne!(ack2["conversation_id"], conv_id.as_str());
    assert_eq!(ack2["seq"], 1);
    let s = app.visitor_token(ch, Some(&v.token)).await;
    assert_eq!(s["conversations"][0]["id"], ack2["conversation_id"]);
    assert_eq!(s["conversations"][0]["status"], "open");
}

on_both_stores!(
    chat_settings_are_validated_and_filled_with_defaults,
    chatflows_crud_and_bad_input,
    config_picks_the_chatflow_by_targeting_and_priority,
    availability_business_hours_and_agents_online,
    allowed_origins_are_enforced_on_http_and_the_socket,
    identity_attaches_the_visitor_to_the_contact,
    offline_contact_and_end_chat,
);

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde\0\0\0\x0cIDATx\x9cc\xf8\xcf\xc0\0\0\x03\x01\x01\0\xc9\xfe\x92\xef\0\0\0\0IEND\xaeB`\x82";

async fn upload(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (reqwest::StatusCode, Value) {
    let res = app
        .client
        .post(format!("{}/api/v1{path}", app.address))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn attachments_upload_send_and_download(backend: Backend) {
    let (_env, app, admin, chat) = setup(backend).await;
    let agent = app.agent(&admin, "agent@acme.test").await;
    let outsider = app.agent(&admin, "outsider@acme.test").await;
    app.put(
        &format!("/api/v1/inboxes/{}/members/{}", chat.inbox_id, agent.id()),
        &admin.token,
        json!({}),
    )
    .await;
    let mut v = app.visitor(&chat).await;
    let ch = &chat.channel_id;
    let up = format!("/widget/{ch}/uploads");

    // Bad uploads: no token, a type not accepted, SVG, a PNG that is not one, empty, too big.
    let (s, p) = upload(
        &app,
        &format!("{up}?name=a.png"),
        "plv_nope",
        "image/png",
        PNG.to_vec(),
    )
    .await;
    assert_eq!(s, 401, "{p}");
    for (ct, bytes, code) in [
        ("application/x-msdownload", b"MZ...".to_vec(), 400),
        ("image/svg+xml", b"<svg onload=alert(1)/>".to_vec(), 400),
        ("image/png", b"GIF89a not a png".to_vec(), 400),
        ("text/plain", Vec::new(), 400),
        ("application/zip", vec![0u8; 10 * 1024 * 1024 + 1], 413),
    ] {
        let (s, p) = upload(&app, &up, &v.token, ct, bytes).await;
        assert_eq!(s.as_u16(), code, "{ct}: {p}");
    }

    // A good one: the attachment object.
    let (s, a) = upload(
        &app,
        &format!("{up}?name=..%2F..%2Fscreen%22shot.png"),
        &v.token,
        "image/png",
        PNG.to_vec(),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["name"], "screenshot.png");
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(a["size"], PNG.len());
    assert_eq!(a["url"], format!("/api/v1/attachments/{id}"));

    // Before it is sent, only its uploader may fetch it.
    let other = app.visitor(&chat).await;
    let get = |token: String, path: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/api/v1{path}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let mine = format!("/widget/{ch}/attachments/{id}");
    assert_eq!(get(v.token.clone(), mine.clone()).await.status(), 200);
    assert_eq!(get(other.token.clone(), mine.clone()).await.status(), 404);
    assert_eq!(
        get(agent.token.clone(), format!("/attachments/{id}"))
            .await
            .status(),
        404
    );

    // Sent in a message (with an empty body): everyone in the conversation sees it.
    let mut agent_ws = app.agent_ws(&agent).await;
    v.ws.send(json!({"type": "send", "client_id": "f1", "body": "", "attachments": [id]}))
        .await;
    let ack = v.ws.recv_type("ack").await;
    let conv = ack["conversation_id"].as_str().unwrap().to_owned();
    let msgs = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(msgs.body["items"][0]["attachments"][0]["id"], id.as_str());
    assert_eq!(
        msgs.body["items"][0]["attachments"][0]["name"],
        "screenshot.png"
    );
    agent_ws
        .send(json!({"type": "resume", "conversation_id": conv, "after_seq": 0}))
        .await;
    let m = agent_ws.recv_type("message").await;
    assert_eq!(m["message"]["attachments"][0]["id"], id.as_str());
    // A retry of the same send is the same message.
    v.ws.send(json!({"type": "send", "client_id": "f1", "conversation_id": conv, "body": "", "attachments": [id]}))
        .await;
    let again = v.ws.recv_type("ack").await;
    assert_eq!(again["id"], ack["id"]);

    let res = get(agent.token.clone(), format!("/attachments/{id}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline; filename=\"screenshot.png\"")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(
        get(admin.token.clone(), format!("/attachments/{id}"))
            .await
            .status(),
        200
    );
    assert_eq!(get(v.token.clone(), mine.clone()).await.status(), 200);
    // Not for an agent outside the inbox, another visitor, or an unknown id.
    assert_eq!(
        get(outsider.token.clone(), format!("/attachments/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(get(other.token.clone(), mine.clone()).await.status(), 404);
    assert_eq!(
        get(v.token.clone(), format!("/widget/{ch}/attachments/nope"))
            .await
            .status(),
        404
    );

    // Another visitor cannot attach it, nor can the owner move it to another conversation.
    let mut o = other;
    o.ws.send(json!({"type": "send", "client_id": "x1", "body": "hi", "attachments": [id]}))
        .await;
    let e = o.ws.recv_type("error").await;
    assert_eq!(e["code"], "invalid_frame");
    assert_eq!(e["ref"], "x1");
    o.ws.send(json!({"type": "send", "client_id": "x2", "body": "", "attachments": []}))
        .await;
    assert_eq!(o.ws.recv_type("error").await["code"], "invalid_frame");
    let too_many: Vec<String> = (0..11).map(|i| format!("a{i}")).collect();
    o.ws.send(json!({"type": "send", "client_id": "x3", "body": "x", "attachments": too_many}))
        .await;
    assert_eq!(o.ws.recv_type("error").await["code"], "invalid_frame");

    // Agents upload too (a PDF: downloaded as an attachment, not inline).
    let (s, pdf) = upload(
        &app,
        "/uploads?name=invoice.pdf",
        &agent.token,
        "application/pdf",
        b"%PDF-1.4 test".to_vec(),
    )
    .await;
    assert_eq!(s, 201, "{pdf}");
    let pid = pdf["id"].as_str().unwrap().to_owned();
    agent_ws
        .send(json!({"type": "send", "client_id": "a1", "conversation_id": conv, "body": "your invoice", "attachments": [pid]}))
        .await;
    agent_ws.recv_type("ack").await;
    let m = v.ws.recv_where("invoice", |f| f["type"] == "message").await;
    assert_eq!(m["message"]["attachments"][0]["name"], "invoice.pdf");
    let res = get(v.token.clone(), format!("/widget/{ch}/attachments/{pid}")).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"invoice.pdf\"")
    );
    let (s, _) = upload(
        &app,
        "/uploads",
        "plt_nope",
        "application/pdf",
        b"%PDF-".to_vec(),
    )
    .await;
    assert_eq!(s, 401);

    // Over HTTP too: an agent posts a reply with an attachment; an id that is not
    // theirs (the visitor's upload) or unknown is a 400, and posts nothing.
    let (_, txt) = upload(
        &app,
        "/uploads?name=notes.txt",
        &agent.token,
        "text/plain",
        b"hello".to_vec(),
    )
    .await;
    let tid = txt["id"].as_str().unwrap().to_owned();
    for bad in [json!([id]), json!(["nope"])] {
        app.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
            json!({"body": "", "client_id": "h1", "attachments": bad}),
        )
        .await
        .expect_problem(400, "validation_failed");
    }
    let posted = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            &agent.token,
            json!({"body": "", "client_id": "h2", "attachments": [tid]}),
        )
        .await
        .expect(201);
    assert_eq!(
        posted.body["message"]["attachments"][0]["name"],
        "notes.txt"
    );
    let m =
        v.ws.recv_where("notes", |f| {
            f["type"] == "message" && f["message"]["attachments"][0]["name"] == "notes.txt"
        })
        .await;
    assert_eq!(m["message"]["attachments"][0]["content_type"], "text/plain");
    let msgs = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(
        msgs.body["items"].as_array().unwrap().len(),
        3,
        "f1, a1, h2"
    );
}

on_both_stores!(attachments_upload_send_and_download);

/// `gzip -9 | wc -c` of `bytes`.
fn gzip9(bytes: &[u8]) -> usize {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip on PATH");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

/// The numbers docs/performance.md records for a row of its "Widget size" table.
fn recorded(doc: &str, row: &str) -> (usize, usize) {
    let section = &doc[doc.find("## Widget size").expect("a Widget size section")..];
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("| {row} |")))
        .unwrap_or_else(|| panic!("no row {row} in the Widget size table"));
    let cells: Vec<usize> = line
        .split('|')
        .filter_map(|c| c.trim().replace(',', "").parse().ok())
        .collect();
    (cells[0], cells[1])
}

#[actix_web::test]
async fn widget_sizes_fit_the_budget_and_match_docs_performance() {
    let (_env, app) = TestApp::spawn(Backend::Sqlite).await;
    let fetch = |path: &'static str| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .contains("javascript")
            );
            res.bytes().await.unwrap().to_vec()
        }
    };
    let loader = fetch("/widget.js").await;
    let widget = fetch("/static/widget/widget.js").await;
    let (lz, wz) = (gzip9(&loader), gzip9(&widget));
    assert!(
        lz <= 5 * 1024,
        "the loader is {lz} bytes gzipped (budget 5 KiB)"
    );
    assert!(
        lz + wz <= 50 * 1024,
        "the widget is {} bytes gzipped (budget 50 KiB)",
        lz + wz
    );
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/performance.md"),
    )
    .unwrap();
    let fresh = [
        ("`/widget.js` (loader)", loader.len(), lz),
        ("`/static/widget/widget.js`", widget.len(), wz),
        ("Whole widget", loader.len() + widget.len(), lz + wz),
    ];
    for (row, raw, gz) in fresh {
        assert_eq!(
            recorded(&doc, row),
            (raw, gz),
            "docs/performance.md's Widget size row {row} is stale: it is now {raw} bytes, {gz} gzipped"
        );
    }
}
