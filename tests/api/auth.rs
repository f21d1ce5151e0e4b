//! Login, sessions, CSRF, API tokens, rate limits.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, TestEnv, client};
use crate::on_both_stores;

on_both_stores!(
    login_with_the_right_password_returns_a_token_and_an_http_only_cookie,
    a_wrong_password_and_an_unknown_email_get_the_same_401,
);

async fn login_with_the_right_password_returns_a_token_and_an_http_only_cookie(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;

    let r = app.try_login("Ada@Acme.test", PASSWORD).await.expect(200);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("parley_session=pls_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert_eq!(r.body["csrf_header"], "X-CSRF-Token");
    assert_eq!(r.body["user"]["email"], "ada@acme.test");

    let me = app.get("/api/v1/auth/me", &admin.token).await.expect(200);
    assert_eq!(me.body["id"], admin.user["id"]);
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_401(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    app.admin(&env, "Acme", "ada@acme.test").await;

    let wrong = app.try_login("ada@acme.test", "not the password").await;
    let unknown = app.try_login("nobody@acme.test", PASSWORD).await;
    let wrong = wrong.expect_problem(401, "invalid_credentials");
    let unknown = unknown.expect_problem(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.headers.get("set-cookie").is_none());
}

on_both_stores!(
    a_deactivated_user_cannot_log_in,
    login_is_rate_limited_per_account_with_retry_after,
    login_is_rate_limited_per_ip_across_accounts,
    logout_revokes_the_session_and_clears_the_cookie,
    cookie_authenticated_writes_need_the_csrf_header,
    api_tokens_authenticate_until_revoked,
    requests_without_credentials_get_401,
);

async fn a_deactivated_user_cannot_log_in(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let agent = app.agent(&admin, "bob@acme.test").await;

    app.patch(
        &format!("/api/v1/users/{}", agent.id()),
        &admin.token,
        json!({"active": false}),
    )
    .await
    .expect(200);

    app.try_login("bob@acme.test", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    app.get("/api/v1/auth/me", &agent.token)
        .await
        .expect_problem(401, "unauthorized");
}

async fn login_is_rate_limited_per_account_with_retry_after(b: Backend) {
    let env = TestEnv::new(b, &[("PARLEY__AUTH__LOGIN_PER_ACCOUNT_PER_MINUTE", "3")]).await;
    let app = env.start().await;
    app.admin(&env, "Acme", "ada@acme.test").await; // one attempt used

    for _ in 0..2 {
        app.try_login("ada@acme.test", "wrong password")
            .await
            .expect_problem(401, "invalid_credentials");
    }
    // The right password does not get past the limit either.
    let r = app
        .try_login("ada@acme.test", PASSWORD)
        .await
        .expect_problem(429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another account from the same address is not affected.
    app.try_login("other@acme.test", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
}

async fn login_is_rate_limited_per_ip_across_accounts(b: Backend) {
    let env = TestEnv::new(b, &[("PARLEY__AUTH__LOGIN_PER_IP_PER_MINUTE", "4")]).await;
    let app = env.start().await;
    for i in 0..4 {
        app.try_login(&format!("user{i}@acme.test"), PASSWORD)
            .await
            .expect_problem(401, "invalid_credentials");
    }
    let r = app
        .try_login("user9@acme.test", PASSWORD)
        .await
        .expect_problem(429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
}

async fn logout_revokes_the_session_and_clears_the_cookie(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let other = app.login("ada@acme.test", PASSWORD).await;

    let r = app
        .request(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&admin.token),
            None,
        )
        .await
        .expect(204);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("parley_session=;"), "{cookie}");

    app.get("/api/v1/auth/me", &admin.token)
        .await
        .expect_problem(401, "unauthorized");
    // Only that session ends.
    app.get("/api/v1/auth/me", &other.token).await.expect(200);
}

async fn cookie_authenticated_writes_need_the_csrf_header(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let browser = client();
    let login = browser
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({"email": "ada@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Reads need no CSRF header.
    let me = browser
        .get(format!("{}/api/v1/auth/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let body = json!({"name": "Sales"});
    let without = browser
        .post(format!("{}/api/v1/teams", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let problem: serde_json::Value = without.json().await.unwrap();
    assert_eq!(problem["code"], "csrf_failed");

    let wrong = browser
        .post(format!("{}/api/v1/teams", app.address))
        .header("X-CSRF-Token", "0".repeat(32))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    let right = browser
        .post(format!("{}/api/v1/teams", app.address))
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 201);

    // Nothing was created by the refused attempts.
    let teams = app.get("/api/v1/teams", &admin.token).await.expect(200);
    assert_eq!(teams.body["items"].as_array().unwrap().len(), 1);
}

async fn api_tokens_authenticate_until_revoked(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;

    let created = app
        .post(
            "/api/v1/api-tokens",
            &admin.token,
            json!({"name": "CRM sync"}),
        )
        .await
        .expect(201);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("plt_"));

    let me = app.get("/api/v1/auth/me", &secret).await.expect(200);
    assert_eq!(me.body["id"], admin.user["id"]);

    let list = app
        .get("/api/v1/api-tokens", &admin.token)
        .await
        .expect(200);
    let listed = &list.body["items"][0];
    assert_eq!(listed["id"], id.as_str());
    assert!(listed.get("token").is_none(), "the secret is never listed");
    assert!(!list.body.to_string().contains(&secret));

    // An API token cannot be used as a cookie, and logout does not apply to it.
    app.request(Method::POST, "/api/v1/auth/logout", Some(&secret), None)
        .await
        .expect_problem(400, "validation_failed");

    app.delete(&format!("/api/v1/api-tokens/{id}"), &admin.token)
        .await
        .expect(204);
    app.get("/api/v1/auth/me", &secret)
        .await
        .expect_problem(401, "unauthorized");
    app.delete(&format!("/api/v1/api-tokens/{id}"), &admin.token)
        .await
        .expect_problem(404, "not_found");
}

async fn requests_without_credentials_get_401(b: Backend) {
    let (_env, app) = TestApp::spawn(b).await;
    for (method, path) in [
        (Method::GET, "/api/v1/users"),
        (Method::POST, "/api/v1/inboxes"),
        (Method::GET, "/api/v1/audit-log"),
        (Method::GET, "/api/v1/auth/me"),
    ] {
        app.request(method, path, None, Some(json!({})))
            .await
            .expect_problem(401, "unauthorized");
    }
    app.get("/api/v1/auth/me", "pls_forged")
        .await
        .expect_problem(401, "unauthorized");
    app.get("/api/v1/auth/me", "something-else")
        .await
        .expect_problem(401, "unauthorized");
}
