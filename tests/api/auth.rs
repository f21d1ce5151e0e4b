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
