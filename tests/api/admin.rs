//! The admin API: users, roles and deactivation, what agents may not do, teams, inboxes
//! and their routing, channels, and the audit log those changes leave.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, Session, TestApp, ids};
use crate::on_both_stores;

on_both_stores!(
    an_admin_creates_an_agent_and_a_taken_email_is_a_conflict,
    the_user_list_pages_two_at_a_time_without_repeats_and_ends_with_a_null_cursor,
    a_malformed_cursor_is_a_validation_failure,
    an_admin_edits_a_profile_and_null_clears_the_avatar,
    an_agent_edits_their_own_name_but_not_their_role_or_anyone_else,
    the_last_active_admin_can_neither_demote_nor_deactivate_themselves,
    with_a_second_admin_an_admin_can_step_down_or_deactivate_themselves,
    a_deactivated_user_is_locked_out_at_once_until_reactivated,
    an_admin_setting_a_password_ends_that_users_sessions,
    changing_ones_own_password_ends_ones_other_sessions,
    an_agent_cannot_create_users_teams_inboxes_or_channels,
    an_agent_sees_only_the_inboxes_they_are_a_member_of,
    an_agent_gets_404_for_the_channels_of_an_inbox_they_are_not_in,
    a_team_is_created_with_members_changed_renamed_and_deleted,
    a_duplicate_team_name_is_a_conflict,
    a_team_with_an_unknown_member_is_refused_and_not_created,
    an_inbox_keeps_its_routing_and_null_clears_the_capacity,
    an_inbox_refuses_a_zero_capacity_and_an_unknown_team,
    deleting_the_routing_team_falls_back_to_the_inbox_members,
    a_member_capacity_override_shows_in_members_and_a_member_can_be_removed,
    a_deleted_inbox_answers_404,
    a_chat_channel_carries_its_embed_snippet_and_an_email_channel_none,
    a_channel_with_an_unknown_type_or_non_object_settings_is_refused,
    channels_are_listed_renamed_and_deleted,
    the_audit_log_records_each_admin_change_newest_first,
    an_agent_cannot_read_the_audit_log,
    a_rejected_change_adds_no_audit_entry,
);

const ACME: &str = "Acme";
const ADA: &str = "ada@acme.test";

/// POST /users as `admin`; returns the created user.
async fn create_user(app: &TestApp, admin: &Session, email: &str, role: &str) -> Value {
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": email, "password": PASSWORD, "name": email, "role": role}),
    )
    .await
    .expect(201)
    .body
}

/// POST /inboxes as `admin`; returns the created inbox.
async fn create_inbox(app: &TestApp, admin: &Session, body: Value) -> Value {
    app.post("/api/v1/inboxes", &admin.token, body)
        .await
        .expect(201)
        .body
}

/// POST /inboxes/{id}/channels as `admin`; returns the created channel.
async fn create_channel(app: &TestApp, admin: &Session, inbox_id: &str, body: Value) -> Value {
    app.post(
        &format!("/api/v1/inboxes/{inbox_id}/channels"),
        &admin.token,
        body,
    )
    .await
    .expect(201)
    .body
}

/// A string field of a JSON object.
fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v:#}"))
        .to_owned()
}

/// The whole audit log (newest first), as admin.
async fn audit_log(app: &TestApp, admin: &Session) -> Vec<Value> {
    app.get("/api/v1/audit-log?limit=200", &admin.token)
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .expect("a list")
        .clone()
}

// ---- users ------------------------------------------------------------------------

async fn an_admin_creates_an_agent_and_a_taken_email_is_a_conflict(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;

    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({
                "email": "  Bob.Smith@ACME.test ",
                "password": PASSWORD,
                "name": "Bob Smith",
                "role": "agent",
                "meeting_link": "https://meet.acme.test/bob",
            }),
        )
        .await
        .expect(201);
    let dup = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"email": "bob.smith@acme.test", "password": PASSWORD,
                   "name": "Other Bob", "role": "admin"}),
        )
        .await;

    let u = &r.body;
    assert_eq!(u["email"], "bob.smith@acme.test");
    assert_eq!(u["name"], "Bob Smith");
    assert_eq!(u["role"], "agent");
    assert_eq!(u["active"], true);
    assert_eq!(u["avatar_url"], Value::Null);
    assert_eq!(u["meeting_link"], "https://meet.acme.test/bob");
    assert_eq!(u["workspace_id"], admin.user["workspace_id"]);
    assert!(u["id"].is_string() && u["created_at"].is_string(), "{u:#}");
    assert!(
        u.get("password").is_none() && u.get("password_hash").is_none(),
        "{u:#}"
    );
    dup.expect_problem(409, "conflict");
    let listed = app.get("/api/v1/users", &admin.token).await.expect(200);
    assert_eq!(ids(&listed).len(), 2, "the conflict created nobody");
    app.login("BOB.SMITH@acme.test", PASSWORD).await;
}

async fn the_user_list_pages_two_at_a_time_without_repeats_and_ends_with_a_null_cursor(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let mut made: HashSet<String> = HashSet::from([admin.id()]);
    for i in 0..4 {
        let u = create_user(&app, &admin, &format!("agent{i}@acme.test"), "agent").await;
        made.insert(s(&u, "id"));
    }

    let mut seen: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/api/v1/users?limit=2".to_owned();
    loop {
        let page = app.get(&path, &admin.token).await.expect(200);
        let page_ids = ids(&page);
        sizes.push(page_ids.len());
        seen.extend(page_ids);
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/users?limit=2&cursor={c}"),
            None => {
                assert_eq!(page.body["next_cursor"], Value::Null);
                break;
            }
        }
        assert!(sizes.len() < 10, "pagination does not end: {sizes:?}");
    }

    assert_eq!(sizes, vec![2, 2, 1]);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a user repeats across pages: {seen:?}"
    );
    assert_eq!(unique, made);
    let whole = app.get("/api/v1/users", &admin.token).await.expect(200);
    assert_eq!(ids(&whole), seen, "pages concatenate to the whole list");
    assert_eq!(whole.body["next_cursor"], Value::Null);
}

async fn a_malformed_cursor_is_a_validation_failure(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;

    let garbage = app
        .get("/api/v1/users?cursor=not-a-cursor", &admin.token)
        .await;
    let zero = app.get("/api/v1/users?limit=0", &admin.token).await;

    garbage.expect_problem(400, "validation_failed");
    zero.expect_problem(400, "validation_failed");
}

async fn an_admin_edits_a_profile_and_null_clears_the_avatar(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let path = format!("/api/v1/users/{}", agent.id());

    let edited = app
        .patch(
            &path,
            &admin.token,
            json!({
                "name": "Robert",
                "avatar_url": "https://cdn.acme.test/bob.png",
                "meeting_link": "https://meet.acme.test/robert",
                "role": "admin",
            }),
        )
        .await
        .expect(200)
        .body;
    let cleared = app
        .patch(&path, &admin.token, json!({"avatar_url": null}))
        .await
        .expect(200)
        .body;

    assert_eq!(edited["name"], "Robert");
    assert_eq!(edited["avatar_url"], "https://cdn.acme.test/bob.png");
    assert_eq!(edited["meeting_link"], "https://meet.acme.test/robert");
    assert_eq!(edited["role"], "admin");
    assert_eq!(cleared["avatar_url"], Value::Null);
    assert_eq!(cleared["name"], "Robert", "absent fields stay");
    assert_eq!(cleared["meeting_link"], "https://meet.acme.test/robert");
    assert_eq!(cleared["role"], "admin");
    let read = app.get(&path, &admin.token).await.expect(200).body;
    assert_eq!(read, cleared);
    // The new role applies to the user's existing session.
    app.get("/api/v1/audit-log", &agent.token).await.expect(200);
}

async fn an_agent_edits_their_own_name_but_not_their_role_or_anyone_else(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let other = app.agent(&admin, "cy@acme.test").await;
    let own = format!("/api/v1/users/{}", agent.id());

    let renamed = app
        .patch(&own, &agent.token, json!({"name": "Bobby"}))
        .await;
    let promote = app
        .patch(&own, &agent.token, json!({"role": "admin"}))
        .await;
    let deactivate = app
        .patch(&own, &agent.token, json!({"active": false}))
        .await;
    let someone_else = app
        .patch(
            &format!("/api/v1/users/{}", other.id()),
            &agent.token,
            json!({"name": "Hacked"}),
        )
        .await;

    assert_eq!(renamed.expect(200).body["name"], "Bobby");
    promote.expect_problem(403, "forbidden");
    deactivate.expect_problem(403, "forbidden");
    someone_else.expect_problem(403, "forbidden");
    let me = app.get(&own, &admin.token).await.expect(200).body;
    assert_eq!(
        (&me["role"], &me["active"]),
        (&json!("agent"), &json!(true))
    );
    let them = app
        .get(&format!("/api/v1/users/{}", other.id()), &admin.token)
        .await
        .expect(200)
        .body;
    assert_eq!(them["name"], "cy@acme.test");
}

async fn the_last_active_admin_can_neither_demote_nor_deactivate_themselves(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    // An inactive admin does not count.
    let other = create_user(&app, &admin, "old@acme.test", "admin").await;
    app.patch(
        &format!("/api/v1/users/{}", s(&other, "id")),
        &admin.token,
        json!({"active": false}),
    )
    .await
    .expect(200);
    let own = format!("/api/v1/users/{}", admin.id());

    let demote = app
        .patch(&own, &admin.token, json!({"role": "agent"}))
        .await;
    let deactivate = app
        .patch(&own, &admin.token, json!({"active": false}))
        .await;

    demote.expect_problem(409, "conflict");
    deactivate.expect_problem(409, "conflict");
    let me = app.get(&own, &admin.token).await.expect(200).body;
    assert_eq!(
        (&me["role"], &me["active"]),
        (&json!("admin"), &json!(true))
    );
}

async fn with_a_second_admin_an_admin_can_step_down_or_deactivate_themselves(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let ada = app.admin(&env, ACME, ADA).await;
    create_user(&app, &ada, "grace@acme.test", "admin").await;
    let grace = app.login("grace@acme.test", PASSWORD).await;
    let ada_path = format!("/api/v1/users/{}", ada.id());
    let grace_path = format!("/api/v1/users/{}", grace.id());

    let stepped_down = app
        .patch(&ada_path, &ada.token, json!({"role": "agent"}))
        .await;
    let grace_now_last = app
        .patch(&grace_path, &grace.token, json!({"role": "agent"}))
        .await;
    app.patch(&ada_path, &grace.token, json!({"role": "admin"}))
        .await
        .expect(200);
    let deactivated = app
        .patch(&ada_path, &ada.token, json!({"active": false}))
        .await;

    assert_eq!(stepped_down.expect(200).body["role"], "agent");
    grace_now_last.expect_problem(409, "conflict");
    assert_eq!(deactivated.expect(200).body["active"], false);
    app.get("/api/v1/auth/me", &ada.token)
        .await
        .expect_problem(401, "unauthorized");
}

async fn a_deactivated_user_is_locked_out_at_once_until_reactivated(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let api_token = app
        .post("/api/v1/api-tokens", &agent.token, json!({"name": "bot"}))
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/users/{}", agent.id());
    app.get("/api/v1/auth/me", &agent.token).await.expect(200);

    let off = app
        .patch(&path, &admin.token, json!({"active": false}))
        .await
        .expect(200);
    let session_after = app.get("/api/v1/auth/me", &agent.token).await;
    let token_after = app.get("/api/v1/auth/me", &api_token).await;
    let login_after = app.try_login("bob@acme.test", PASSWORD).await;
    app.patch(&path, &admin.token, json!({"active": true}))
        .await
        .expect(200);
    let login_again = app.try_login("bob@acme.test", PASSWORD).await;

    assert_eq!(off.body["active"], false);
    session_after.expect_problem(401, "unauthorized");
    token_after.expect_problem(401, "unauthorized");
    login_after.expect_problem(401, "invalid_credentials");
    let fresh = login_again.expect(200).body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/api/v1/auth/me", &fresh).await.expect(200);
    app.get("/api/v1/auth/me", &agent.token)
        .await
        .expect_problem(401, "unauthorized");
}

async fn an_admin_setting_a_password_ends_that_users_sessions(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;

    app.patch(
        &format!("/api/v1/users/{}", agent.id()),
        &admin.token,
        json!({"password": "a brand new secret"}),
    )
    .await
    .expect(200);

    app.get("/api/v1/auth/me", &agent.token)
        .await
        .expect_problem(401, "unauthorized");
    app.try_login("bob@acme.test", PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    app.login("bob@acme.test", "a brand new secret").await;
    app.get("/api/v1/auth/me", &admin.token).await.expect(200);
}

async fn changing_ones_own_password_ends_ones_other_sessions(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let laptop = app.agent(&admin, "bob@acme.test").await;
    let phone = app.login("bob@acme.test", PASSWORD).await;

    app.patch(
        &format!("/api/v1/users/{}", laptop.id()),
        &laptop.token,
        json!({"password": "a brand new secret"}),
    )
    .await
    .expect(200);

    app.get("/api/v1/auth/me", &laptop.token).await.expect(200);
    app.get("/api/v1/auth/me", &phone.token)
        .await
        .expect_problem(401, "unauthorized");
    app.login("bob@acme.test", "a brand new secret").await;
}

// ---- what agents may not do ---------------------------------------------------------

async fn an_agent_cannot_create_users_teams_inboxes_or_channels(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let inbox = create_inbox(
        &app,
        &admin,
        json!({"name": "Support", "member_ids": [agent.id()]}),
    )
    .await;
    let inbox_id = s(&inbox, "id");

    let user = app
        .post(
            "/api/v1/users",
            &agent.token,
            json!({"email": "eve@acme.test", "password": PASSWORD, "name": "Eve",
                   "role": "admin"}),
        )
        .await;
    let team = app
        .post("/api/v1/teams", &agent.token, json!({"name": "Mine"}))
        .await;
    let new_inbox = app
        .post("/api/v1/inboxes", &agent.token, json!({"name": "Mine"}))
        .await;
    let channel = app
        .post(
            &format!("/api/v1/inboxes/{inbox_id}/channels"),
            &agent.token,
            json!({"type": "chat"}),
        )
        .await;

    user.expect_problem(403, "forbidden");
    team.expect_problem(403, "forbidden");
    new_inbox.expect_problem(403, "forbidden");
    channel.expect_problem(403, "forbidden");
    assert_eq!(
        ids(&app.get("/api/v1/users", &admin.token).await.expect(200)).len(),
        2
    );
    assert!(
        ids(&app.get("/api/v1/teams", &admin.token).await.expect(200)).is_empty(),
        "no team was made"
    );
    assert_eq!(
        ids(&app.get("/api/v1/inboxes", &admin.token).await.expect(200)),
        vec![inbox_id.clone()]
    );
    let channels = app
        .get(
            &format!("/api/v1/inboxes/{inbox_id}/channels"),
            &admin.token,
        )
        .await
        .expect(200);
    assert!(ids(&channels).is_empty(), "no channel was made");
}

async fn an_agent_sees_only_the_inboxes_they_are_a_member_of(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let theirs = s(
        &create_inbox(
            &app,
            &admin,
            json!({"name": "Support", "member_ids": [agent.id()]}),
        )
        .await,
        "id",
    );
    let other = s(
        &create_inbox(&app, &admin, json!({"name": "Sales"})).await,
        "id",
    );

    let own = app
        .get(&format!("/api/v1/inboxes/{theirs}"), &agent.token)
        .await;
    let hidden = app
        .get(&format!("/api/v1/inboxes/{other}"), &agent.token)
        .await;
    let listed = app.get("/api/v1/inboxes", &agent.token).await.expect(200);
    let admin_listed = app.get("/api/v1/inboxes", &admin.token).await.expect(200);

    assert_eq!(own.expect(200).body["id"], theirs.as_str());
    hidden.expect_problem(404, "not_found");
    assert_eq!(ids(&listed), vec![theirs.clone()]);
    let mut all = ids(&admin_listed);
    all.sort();
    let mut expected = vec![theirs.clone(), other.clone()];
    expected.sort();
    assert_eq!(all, expected);

    app.put(
        &format!("/api/v1/inboxes/{other}/members/{}", agent.id()),
        &admin.token,
        json!({}),
    )
    .await
    .expect(200);

    app.get(&format!("/api/v1/inboxes/{other}"), &agent.token)
        .await
        .expect(200);
    let mut now_listed = ids(&app.get("/api/v1/inboxes", &agent.token).await.expect(200));
    now_listed.sort();
    assert_eq!(now_listed, expected);
}

async fn an_agent_gets_404_for_the_channels_of_an_inbox_they_are_not_in(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let theirs = s(
        &create_inbox(
            &app,
            &admin,
            json!({"name": "Support", "member_ids": [agent.id()]}),
        )
        .await,
        "id",
    );
    let other = s(
        &create_inbox(&app, &admin, json!({"name": "Sales"})).await,
        "id",
    );
    let visible = s(
        &create_channel(&app, &admin, &theirs, json!({"type": "chat"})).await,
        "id",
    );
    let hidden = s(
        &create_channel(&app, &admin, &other, json!({"type": "chat"})).await,
        "id",
    );

    let list_theirs = app
        .get(&format!("/api/v1/inboxes/{theirs}/channels"), &agent.token)
        .await;
    let list_other = app
        .get(&format!("/api/v1/inboxes/{other}/channels"), &agent.token)
        .await;
    let get_visible = app
        .get(&format!("/api/v1/channels/{visible}"), &agent.token)
        .await;
    let get_hidden = app
        .get(&format!("/api/v1/channels/{hidden}"), &agent.token)
        .await;

    assert_eq!(ids(&list_theirs.expect(200)), vec![visible.clone()]);
    list_other.expect_problem(404, "not_found");
    assert_eq!(get_visible.expect(200).body["id"], visible.as_str());
    let hidden_answer = get_hidden.expect_problem(404, "not_found");
    let missing = app
        .get(
            "/api/v1/channels/00000000-0000-7000-8000-000000000000",
            &agent.token,
        )
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        hidden_answer.body, missing.body,
        "a hidden channel looks exactly like a missing one"
    );
}

// ---- teams ----------------------------------------------------------------------------

async fn a_team_is_created_with_members_changed_renamed_and_deleted(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let bob = app.agent(&admin, "bob@acme.test").await;
    let cy = app.agent(&admin, "cy@acme.test").await;

    let team = app
        .post(
            "/api/v1/teams",
            &admin.token,
            json!({"name": "Tier 1", "description": "First line", "member_ids": [bob.id()]}),
        )
        .await
        .expect(201)
        .body;
    let path = format!("/api/v1/teams/{}", s(&team, "id"));
    let added = app
        .post(
            &format!("{path}/members"),
            &admin.token,
            json!({"user_id": cy.id()}),
        )
        .await
        .expect(200)
        .body;
    let removed = app
        .delete(&format!("{path}/members/{}", bob.id()), &admin.token)
        .await;
    let removed_again = app
        .delete(&format!("{path}/members/{}", bob.id()), &admin.token)
        .await;
    let renamed = app
        .patch(&path, &admin.token, json!({"name": "Tier One"}))
        .await
        .expect(200)
        .body;
    let deleted = app.delete(&path, &admin.token).await;
    let after = app.get(&path, &admin.token).await;

    assert_eq!(team["name"], "Tier 1");
    assert_eq!(team["description"], "First line");
    assert_eq!(team["member_ids"], json!([bob.id()]));
    assert_eq!(added["member_ids"], json!([bob.id(), cy.id()]));
    removed.expect(204);
    removed_again.expect_problem(404, "not_found");
    assert_eq!(renamed["name"], "Tier One");
    assert_eq!(renamed["description"], "First line");
    assert_eq!(renamed["member_ids"], json!([cy.id()]));
    deleted.expect(204);
    after.expect_problem(404, "not_found");
    assert!(ids(&app.get("/api/v1/teams", &admin.token).await.expect(200)).is_empty());
    app.delete(&path, &admin.token)
        .await
        .expect_problem(404, "not_found");
}

async fn a_duplicate_team_name_is_a_conflict(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    app.post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
        .await
        .expect(201);
    let second = app
        .post("/api/v1/teams", &admin.token, json!({"name": "Tier 2"}))
        .await
        .expect(201)
        .body;

    let dup = app
        .post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
        .await;
    let rename = app
        .patch(
            &format!("/api/v1/teams/{}", s(&second, "id")),
            &admin.token,
            json!({"name": "Tier 1"}),
        )
        .await;

    dup.expect_problem(409, "conflict");
    rename.expect_problem(409, "conflict");
    assert_eq!(
        ids(&app.get("/api/v1/teams", &admin.token).await.expect(200)).len(),
        2
    );
    let still = app
        .get(&format!("/api/v1/teams/{}", s(&second, "id")), &admin.token)
        .await
        .expect(200);
    assert_eq!(still.body["name"], "Tier 2");
}

async fn a_team_with_an_unknown_member_is_refused_and_not_created(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let bob = app.agent(&admin, "bob@acme.test").await;

    let r = app
        .post(
            "/api/v1/teams",
            &admin.token,
            json!({"name": "Tier 1", "member_ids": [bob.id(), "no-such-user"]}),
        )
        .await;

    let r = r.expect_problem(400, "validation_failed");
    assert!(
        r.body["detail"].as_str().unwrap().contains("no-such-user"),
        "{:#}",
        r.body
    );
    assert!(ids(&app.get("/api/v1/teams", &admin.token).await.expect(200)).is_empty());
    // The name is still free.
    app.post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
        .await
        .expect(201);
}

// ---- inboxes --------------------------------------------------------------------------

async fn an_inbox_keeps_its_routing_and_null_clears_the_capacity(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let bob = app.agent(&admin, "bob@acme.test").await;
    let team = app
        .post(
            "/api/v1/teams",
            &admin.token,
            json!({"name": "Tier 1", "member_ids": [bob.id()]}),
        )
        .await
        .expect(201)
        .body;

    let inbox = create_inbox(
        &app,
        &admin,
        json!({
            "name": "Support",
            "member_ids": [bob.id()],
            "routing": {
                "mode": "manual",
                "capacity": 3,
                "team_id": team["id"],
                "offline": {"action": "return", "grace_seconds": 60},
            },
        }),
    )
    .await;
    let path = format!("/api/v1/inboxes/{}", s(&inbox, "id"));
    let cleared = app
        .patch(&path, &admin.token, json!({"routing": {"capacity": null}}))
        .await
        .expect(200)
        .body;
    let read = app.get(&path, &admin.token).await.expect(200).body;

    assert_eq!(inbox["name"], "Support");
    assert_eq!(
        inbox["routing"],
        json!({"mode": "manual", "capacity": 3, "team_id": team["id"],
               "offline": {"action": "return", "grace_seconds": 60}})
    );
    assert_eq!(
        inbox["members"],
        json!([{"user_id": bob.id(), "capacity": null}])
    );
    assert_eq!(
        cleared["routing"],
        json!({"mode": "manual", "capacity": null, "team_id": team["id"],
               "offline": {"action": "return", "grace_seconds": 60}})
    );
    assert_eq!(read, cleared);
}

async fn an_inbox_refuses_a_zero_capacity_and_an_unknown_team(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let inbox = create_inbox(&app, &admin, json!({"name": "Support"})).await;
    let path = format!("/api/v1/inboxes/{}", s(&inbox, "id"));

    let zero_create = app
        .post(
            "/api/v1/inboxes",
            &admin.token,
            json!({"name": "Sales", "routing": {"capacity": 0}}),
        )
        .await;
    let zero_patch = app
        .patch(&path, &admin.token, json!({"routing": {"capacity": 0}}))
        .await;
    let team_create = app
        .post(
            "/api/v1/inboxes",
            &admin.token,
            json!({"name": "Sales", "routing": {"team_id": "no-such-team"}}),
        )
        .await;
    let team_patch = app
        .patch(
            &path,
            &admin.token,
            json!({"routing": {"team_id": "no-such-team"}}),
        )
        .await;

    zero_create.expect_problem(400, "validation_failed");
    zero_patch.expect_problem(400, "validation_failed");
    team_create.expect_problem(400, "validation_failed");
    team_patch.expect_problem(400, "validation_failed");
    assert_eq!(
        ids(&app.get("/api/v1/inboxes", &admin.token).await.expect(200)),
        vec![s(&inbox, "id")]
    );
    let read = app.get(&path, &admin.token).await.expect(200).body;
    assert_eq!(read, inbox, "the refused changes changed nothing");
}

async fn deleting_the_routing_team_falls_back_to_the_inbox_members(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let team = app
        .post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
        .await
        .expect(201)
        .body;
    let inbox = create_inbox(
        &app,
        &admin,
        json!({"name": "Support", "routing": {"team_id": team["id"]}}),
    )
    .await;

    app.delete(&format!("/api/v1/teams/{}", s(&team, "id")), &admin.token)
        .await
        .expect(204);

    let read = app
        .get(
            &format!("/api/v1/inboxes/{}", s(&inbox, "id")),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(read.body["routing"]["team_id"], Value::Null);
}

async fn a_member_capacity_override_shows_in_members_and_a_member_can_be_removed(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let bob = app.agent(&admin, "bob@acme.test").await;
    let cy = app.agent(&admin, "cy@acme.test").await;
    let inbox = create_inbox(
        &app,
        &admin,
        json!({"name": "Support", "member_ids": [bob.id()], "routing": {"capacity": 3}}),
    )
    .await;
    let path = format!("/api/v1/inboxes/{}", s(&inbox, "id"));

    let overridden = app
        .put(
            &format!("{path}/members/{}", bob.id()),
            &admin.token,
            json!({"capacity": 7}),
        )
        .await
        .expect(200)
        .body;
    let added = app
        .put(
            &format!("{path}/members/{}", cy.id()),
            &admin.token,
            json!({}),
        )
        .await
        .expect(200)
        .body;
    let bad = app
        .put(
            &format!("{path}/members/{}", cy.id()),
            &admin.token,
            json!({"capacity": 0}),
        )
        .await;
    let removed = app
        .delete(&format!("{path}/members/{}", bob.id()), &admin.token)
        .await;
    let removed_again = app
        .delete(&format!("{path}/members/{}", bob.id()), &admin.token)
        .await;
    let read = app.get(&path, &admin.token).await.expect(200).body;

    assert_eq!(
        overridden["members"],
        json!([{"user_id": bob.id(), "capacity": 7}])
    );
    assert_eq!(overridden["routing"]["capacity"], 3);
    assert_eq!(
        added["members"],
        json!([{"user_id": bob.id(), "capacity": 7}, {"user_id": cy.id(), "capacity": null}])
    );
    bad.expect_problem(400, "validation_failed");
    removed.expect(204);
    removed_again.expect_problem(404, "not_found");
    assert_eq!(
        read["members"],
        json!([{"user_id": cy.id(), "capacity": null}])
    );
    app.get(&path, &bob.token)
        .await
        .expect_problem(404, "not_found");
}

async fn a_deleted_inbox_answers_404(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let inbox = create_inbox(&app, &admin, json!({"name": "Support"})).await;
    let path = format!("/api/v1/inboxes/{}", s(&inbox, "id"));
    let channel = create_channel(&app, &admin, &s(&inbox, "id"), json!({"type": "chat"})).await;

    let deleted = app.delete(&path, &admin.token).await;

    deleted.expect(204);
    app.get(&path, &admin.token)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("{path}/channels"), &admin.token)
        .await
        .expect_problem(404, "not_found");
    app.get(
        &format!("/api/v1/channels/{}", s(&channel, "id")),
        &admin.token,
    )
    .await
    .expect_problem(404, "not_found");
    app.delete(&path, &admin.token)
        .await
        .expect_problem(404, "not_found");
    assert!(ids(&app.get("/api/v1/inboxes", &admin.token).await.expect(200)).is_empty());
}

// ---- channels -------------------------------------------------------------------------

async fn a_chat_channel_carries_its_embed_snippet_and_an_email_channel_none(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let inbox = s(
        &create_inbox(&app, &admin, json!({"name": "Support"})).await,
        "id",
    );

    let chat = create_channel(
        &app,
        &admin,
        &inbox,
        json!({"type": "chat", "name": "Website",
               "settings": {"branding": {"accent_color": "#336699"}}}),
    )
    .await;
    let email = create_channel(
        &app,
        &admin,
        &inbox,
        json!({"type": "email", "settings": {"address": "help@acme.test"}}),
    )
    .await;

    let snippet = chat["embed_snippet"].as_str().expect("chat has a snippet");
    assert!(snippet.contains("<script async"), "{snippet}");
    assert!(snippet.contains("/widget.js"), "{snippet}");
    assert!(snippet.contains(&s(&chat, "id")), "{snippet}");
    assert_eq!(chat["type"], "chat");
    assert_eq!(chat["name"], "Website");
    assert_eq!(chat["inbox_id"], inbox.as_str());
    assert_eq!(chat["settings"]["branding"]["accent_color"], "#336699");
    assert_eq!(
        chat["settings"]["allowed_origins"],
        json!([]),
        "a chat channel's settings are completed with the defaults"
    );
    assert_eq!(email["type"], "email");
    assert_eq!(
        email["name"], "Email",
        "the default name is the type's label"
    );
    assert!(email.get("embed_snippet").is_none(), "{email:#}");
    let read = app
        .get(
            &format!("/api/v1/channels/{}", s(&chat, "id")),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(read.body["embed_snippet"], snippet);
}

async fn a_channel_with_an_unknown_type_or_non_object_settings_is_refused(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let inbox = s(
        &create_inbox(&app, &admin, json!({"name": "Support"})).await,
        "id",
    );
    let chat = s(
        &create_channel(&app, &admin, &inbox, json!({"type": "chat"})).await,
        "id",
    );
    let path = format!("/api/v1/inboxes/{inbox}/channels");

    let unknown = app
        .post(&path, &admin.token, json!({"type": "carrier_pigeon"}))
        .await;
    let array = app
        .post(
            &path,
            &admin.token,
            json!({"type": "chat", "settings": [1, 2]}),
        )
        .await;
    let string = app
        .post(
            &path,
            &admin.token,
            json!({"type": "email", "settings": "x"}),
        )
        .await;
    let patch = app
        .patch(
            &format!("/api/v1/channels/{chat}"),
            &admin.token,
            json!({"settings": 42}),
        )
        .await;

    unknown.expect_problem(400, "validation_failed");
    array.expect_problem(400, "validation_failed");
    string.expect_problem(400, "validation_failed");
    patch.expect_problem(400, "validation_failed");
    let listed = app.get(&path, &admin.token).await.expect(200);
    assert_eq!(ids(&listed), vec![chat]);
}

async fn channels_are_listed_renamed_and_deleted(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let inbox = s(
        &create_inbox(&app, &admin, json!({"name": "Support"})).await,
        "id",
    );
    let other_inbox = s(
        &create_inbox(&app, &admin, json!({"name": "Sales"})).await,
        "id",
    );
    let chat = s(
        &create_channel(&app, &admin, &inbox, json!({"type": "chat"})).await,
        "id",
    );
    let form = s(
        &create_channel(&app, &admin, &inbox, json!({"type": "form"})).await,
        "id",
    );
    create_channel(&app, &admin, &other_inbox, json!({"type": "email"})).await;
    let path = format!("/api/v1/channels/{chat}");

    let listed = app
        .get(&format!("/api/v1/inboxes/{inbox}/channels"), &admin.token)
        .await
        .expect(200);
    let patched = app
        .patch(
            &path,
            &admin.token,
            json!({"name": "Homepage chat", "settings": {"branding": {"greeting": "Hi"}}}),
        )
        .await
        .expect(200)
        .body;
    let renamed_only = app
        .patch(&path, &admin.token, json!({"name": "Chat"}))
        .await
        .expect(200)
        .body;
    let deleted = app.delete(&path, &admin.token).await;

    let mut got = ids(&listed);
    got.sort();
    let mut expected = vec![chat.clone(), form.clone()];
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(listed.body["next_cursor"], Value::Null);
    assert_eq!(patched["name"], "Homepage chat");
    assert_eq!(patched["settings"]["branding"]["greeting"], "Hi");
    assert_eq!(renamed_only["name"], "Chat");
    assert_eq!(
        renamed_only["settings"], patched["settings"],
        "a rename keeps the settings"
    );
    deleted.expect(204);
    app.get(&path, &admin.token)
        .await
        .expect_problem(404, "not_found");
    app.delete(&path, &admin.token)
        .await
        .expect_problem(404, "not_found");
    let after = app
        .get(&format!("/api/v1/inboxes/{inbox}/channels"), &admin.token)
        .await
        .expect(200);
    assert_eq!(ids(&after), vec![form]);
}

// ---- audit log ------------------------------------------------------------------------

async fn the_audit_log_records_each_admin_change_newest_first(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;

    let user = s(
        &create_user(&app, &admin, "bob@acme.test", "agent").await,
        "id",
    );
    app.patch(
        &format!("/api/v1/users/{user}"),
        &admin.token,
        json!({"name": "Bob"}),
    )
    .await
    .expect(200);
    let team = s(
        &app.post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
            .await
            .expect(201)
            .body,
        "id",
    );
    let inbox = s(
        &create_inbox(&app, &admin, json!({"name": "Support"})).await,
        "id",
    );
    let channel = s(
        &create_channel(&app, &admin, &inbox, json!({"type": "chat"})).await,
        "id",
    );
    let token = s(
        &app.post("/api/v1/api-tokens", &admin.token, json!({"name": "CI"}))
            .await
            .expect(201)
            .body,
        "id",
    );
    app.delete(&format!("/api/v1/api-tokens/{token}"), &admin.token)
        .await
        .expect(204);

    let log = audit_log(&app, &admin).await;
    let mine: Vec<(String, String, String)> = log
        .iter()
        .filter(|e| e["actor_id"] == admin.user["id"])
        .map(|e| (s(e, "action"), s(e, "target_type"), s(e, "target_id")))
        .collect();
    let t = |a: &str, ty: &str, id: &str| (a.to_owned(), ty.to_owned(), id.to_owned());
    assert_eq!(
        mine,
        vec![
            t("api_token.revoked", "api_token", &token),
            t("api_token.created", "api_token", &token),
            t("channel.created", "channel", &channel),
            t("inbox.created", "inbox", &inbox),
            t("team.created", "team", &team),
            t("user.updated", "user", &user),
            t("user.created", "user", &user),
        ],
        "the admin's changes, newest first: {log:#?}"
    );
    let updated = log
        .iter()
        .find(|e| e["action"] == "user.updated")
        .expect("user.updated");
    assert_eq!(updated["details"]["name"], json!(["bob@acme.test", "Bob"]));
    // As instants: RFC 3339 strings with varying fraction digits do not sort as text.
    let times: Vec<chrono::DateTime<chrono::Utc>> = log
        .iter()
        .map(|e| s(e, "created_at").parse().expect("RFC 3339 created_at"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
}

async fn an_agent_cannot_read_the_audit_log(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let agent = app.agent(&admin, "bob@acme.test").await;

    let r = app.get("/api/v1/audit-log", &agent.token).await;

    r.expect_problem(403, "forbidden");
}

async fn a_rejected_change_adds_no_audit_entry(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, ACME, ADA).await;
    let bob = create_user(&app, &admin, "bob@acme.test", "agent").await;
    app.post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
        .await
        .expect(201);
    let inbox = s(
        &create_inbox(&app, &admin, json!({"name": "Support"})).await,
        "id",
    );
    let before = audit_log(&app, &admin).await;

    app.post(
        "/api/v1/inboxes",
        &admin.token,
        json!({"name": "Sales", "routing": {"capacity": 0}}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(
        "/api/v1/teams",
        &admin.token,
        json!({"name": "Tier 2", "member_ids": ["no-such-user"]}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(
        &format!("/api/v1/inboxes/{inbox}/channels"),
        &admin.token,
        json!({"type": "chat", "settings": []}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(
        "/api/v1/users",
        &admin.token,
        json!({"email": "bob@acme.test", "password": PASSWORD, "name": "Bob", "role": "agent"}),
    )
    .await
    .expect_problem(409, "conflict");
    app.post("/api/v1/teams", &admin.token, json!({"name": "Tier 1"}))
        .await
        .expect_problem(409, "conflict");
    app.patch(
        &format!("/api/v1/users/{}", admin.id()),
        &admin.token,
        json!({"role": "agent"}),
    )
    .await
    .expect_problem(409, "conflict");
    app.patch(
        &format!("/api/v1/users/{}", s(&bob, "id")),
        &admin.token,
        json!({"name": ""}),
    )
    .await
    .expect_problem(400, "validation_failed");

    let after = audit_log(&app, &admin).await;
    assert_eq!(after, before, "rejected changes left no audit entry");
}
