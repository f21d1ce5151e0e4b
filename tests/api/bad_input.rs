//! Bad input gets a clear problem+json answer and changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Session, TestApp, TestEnv};
use crate::on_both_stores;

on_both_stores!(
    malformed_or_mistyped_bodies_are_rejected_and_change_nothing,
    an_oversize_body_gets_413_and_changes_nothing,
    bad_query_strings_and_unknown_routes_get_problems,
);

/// Everything a refused request could have changed.
async fn snapshot(app: &TestApp, admin: &Session) -> (Value, Value, Value, Value) {
    (
        app.get("/api/v1/users", &admin.token)
            .await
            .expect(200)
            .body,
        app.get("/api/v1/teams", &admin.token)
            .await
            .expect(200)
            .body,
        app.get("/api/v1/inboxes", &admin.token)
            .await
            .expect(200)
            .body,
        app.get("/api/v1/audit-log", &admin.token)
            .await
            .expect(200)
            .body,
    )
}

async fn malformed_or_mistyped_bodies_are_rejected_and_change_nothing(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let before = snapshot(&app, &admin).await;

    let raw = |body: &'static str| {
        app.client
            .post(format!("{}/api/v1/users", app.address))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{\"email\": \"x@y.z\", ").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_json");
    assert_eq!(p["status"], 400);
    assert!(p["type"].as_str().unwrap().ends_with("invalid_json"));
    assert!(!p["title"].as_str().unwrap().is_empty());
    assert!(!p["detail"].as_str().unwrap().is_empty());

    let good = json!({"email": "bob@acme.test", "password": "long enough pw", "name": "Bob", "role": "agent"});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong type",
            json!({"email": 5, "password": "long enough pw", "name": "Bob", "role": "agent"}),
            "email",
        ),
        (
            "unknown role",
            json!({"email": "bob@acme.test", "password": "long enough pw", "name": "Bob", "role": "owner"}),
            "owner",
        ),
        (
            "missing field",
            json!({"email": "bob@acme.test", "password": "long enough pw", "role": "agent"}),
            "name",
        ),
        (
            "unknown field",
            {
                let mut g = good.clone();
                g["is_root"] = json!(true);
                g
            },
            "is_root",
        ),
        (
            "bad email",
            {
                let mut g = good.clone();
                g["email"] = json!("not-an-email");
                g
            },
            "email",
        ),
        (
            "short password",
            {
                let mut g = good.clone();
                g["password"] = json!("short");
                g
            },
            "password",
        ),
        (
            "blank name",
            {
                let mut g = good.clone();
                g["name"] = json!("   ");
                g
            },
            "empty",
        ),
        (
            "long name",
            {
                let mut g = good.clone();
                g["name"] = json!("x".repeat(101));
                g
            },
            "100",
        ),
        (
            "bad avatar",
            {
                let mut g = good.clone();
                g["avatar_url"] = json!("javascript:alert(1)");
                g
            },
            "http",
        ),
        ("array body", json!([good.clone()]), ""),
    ];
    for (what, body, mention) in cases {
        let r = app.post("/api/v1/users", &admin.token, body).await;
        assert_eq!(r.status, 400, "{what}: {:#}", r.body);
        assert_eq!(r.code(), "validation_failed", "{what}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(mention),
            "{what}: detail {detail:?} should mention {mention:?}"
        );
    }

    let r = app
        .client
        .post(format!("{}/api/v1/teams", app.address))
        .bearer_auth(&admin.token)
        .header("content-type", "text/plain")
        .body("{\"name\": \"Sales\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let inbox_cases = [
        json!({"name": "Support", "routing": {"mode": "random"}}),
        json!({"name": "Support", "routing": {"capacity": "ten"}}),
        json!({"name": "Support", "routing": {"capacity": -1}}),
        json!({"name": "Support", "member_ids": ["no-such-user"]}),
        json!({"name": 42}),
    ];
    for body in inbox_cases {
        app.post("/api/v1/inboxes", &admin.token, body.clone())
            .await
            .expect_problem(400, "validation_failed");
    }

    assert_eq!(
        snapshot(&app, &admin).await,
        before,
        "a refused request changed something"
    );
}

async fn an_oversize_body_gets_413_and_changes_nothing(b: Backend) {
    let env = TestEnv::new(b, &[("PARLEY__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let before = snapshot(&app, &admin).await;

    let big = json!({"name": "Sales", "description": "x".repeat(10_000)});
    app.post("/api/v1/teams", &admin.token, big)
        .await
        .expect_problem(413, "payload_too_large");

    assert_eq!(snapshot(&app, &admin).await, before);
}

async fn bad_query_strings_and_unknown_routes_get_problems(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    for path in [
        "/api/v1/users?limit=0",
        "/api/v1/users?limit=1000",
        "/api/v1/users?limit=ten",
        "/api/v1/users?cursor=not-a-cursor",
        "/api/v1/audit-log?cursor=%00",
    ] {
        let r = app.get(path, &admin.token).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.code(), "validation_failed", "{path}");
    }
    app.request(
        Method::GET,
        "/api/v1/nothing-here",
        Some(&admin.token),
        None,
    )
    .await
    .expect_problem(404, "not_found");
    app.request(
        Method::PUT,
        "/api/v1/users",
        Some(&admin.token),
        Some(json!({})),
    )
    .await
    .expect_problem(404, "not_found");
}
