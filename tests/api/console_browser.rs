//! The agent console in headless Chromium: first-run setup on an empty database, the
//! two-agents-and-a-visitor flow, inbox visibility, and user text shown as text.
//! `PARLEY_SCREENSHOTS=1` also refreshes `docs/screenshots/` (inbox, conversation,
//! settings).

use crate::browser::run_script;
use crate::helpers::{Backend, TestApp};

#[actix_web::test]
async fn first_run_setup_in_the_browser_then_logout_and_login() {
    let (_env, app) = TestApp::spawn(Backend::Sqlite).await;
    run_script("console_setup.mjs", &app, &[]).await;
}

#[actix_web::test]
async fn two_agents_and_a_visitor_work_a_conversation_live() {
    let (env, app) = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin(&env, "Acme", "admin@example.com").await;
    run_script(
        "console_flow.mjs",
        &app,
        &[("ADMIN_TOKEN", admin.token.clone())],
    )
    .await;
}
