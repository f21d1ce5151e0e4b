//! Workspace isolation: an admin of one workspace can neither see nor change anything of
//! another through any endpoint that takes an id — every such id answers exactly like a
//! missing one — nor pull another workspace's users or teams into their own records.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Session, TestApp, TestEnv, ids};
use crate::on_both_stores;

on_both_stores!(
    another_workspaces_ids_answer_404_everywhere_and_nothing_changes,
    another_workspaces_users_and_teams_cannot_be_attached_to_ones_own_records,
    no_list_shows_another_workspaces_records,
);

/// Workspace A, fully furnished, and workspace B with only its admin (plus, once asked
/// for, a team and an inbox of its own).
struct TwoWorkspaces {
    _env: TestEnv,
    app: TestApp,
    a_admin: Session,
    a_agent: String,
    a_team: String,
    a_inbox: String,
    a_channel: String,
    a_token: String,
    b_admin: Session,
    b_api_token: String,
}

impl TwoWorkspaces {
    async fn new(b: Backend) -> Self {
        let (env, app) = TestApp::spawn(b).await;
        let a_admin = app.admin(&env, "Workspace A", "ada@a.test").await;
        let a_agent = app.agent(&a_admin, "bob@a.test").await.id();
        let a_team = id_of(
            app.post(
                "/api/v1/teams",
                &a_admin.token,
                json!({"name": "Tier 1", "member_ids": [a_agent]}),
            )
            .await
            .expect(201)
            .body,
        );
        let a_inbox = id_of(
            app.post(
                "/api/v1/inboxes",
                &a_admin.token,
                json!({"name": "Support", "member_ids": [a_agent],
                       "routing": {"team_id": a_team, "capacity": 4}}),
            )
            .await
            .expect(201)
            .body,
        );
        let a_channel = id_of(
            app.post(
                &format!("/api/v1/inboxes/{a_inbox}/channels"),
                &a_admin.token,
                json!({"type": "chat", "name": "Website",
                       "settings": {"branding": {"accent_color": "#ff0000"}}}),
            )
            .await
            .expect(201)
            .body,
        );
        let a_token = id_of(
            app.post("/api/v1/api-tokens", &a_admin.token, json!({"name": "CI"}))
                .await
                .expect(201)
                .body,
        );

        let b_admin = app.admin(&env, "Workspace B", "bea@b.test").await;
        let b_api_token = app
            .post(
                "/api/v1/api-tokens",
                &b_admin.token,
                json!({"name": "B bot"}),
            )
            .await
            .expect(201)
            .body["token"]
            .as_str()
            .expect("secret")
            .to_owned();
        TwoWorkspaces {
            _env: env,
            app,
            a_admin,
            a_agent,
            a_team,
            a_inbox,
            a_channel,
            a_token,
            b_admin,
            b_api_token,
        }
    }

    /// Every id of workspace A.
    fn a_ids(&self) -> Vec<String> {
        vec![
            self.a_admin.user["workspace_id"]
                .as_str()
                .expect("workspace id")
                .to_owned(),
            self.a_admin.id(),
            self.a_agent.clone(),
            self.a_team.clone(),
            self.a_inbox.clone(),
            self.a_channel.clone(),
            self.a_token.clone(),
        ]
    }

    /// What admin A reads of their workspace: every record and every list.
    async fn snapshot_of_a(&self) -> Vec<(String, Value)> {
        let paths = [
            format!("/api/v1/users/{}", self.a_admin.id()),
            format!("/api/v1/users/{}", self.a_agent),
            format!("/api/v1/teams/{}", self.a_team),
            format!("/api/v1/inboxes/{}", self.a_inbox),
            format!("/api/v1/inboxes/{}/channels", self.a_inbox),
            format!("/api/v1/channels/{}", self.a_channel),
            format!("/api/v1/channels/{}/chatflows", self.a_channel),
            "/api/v1/users".to_owned(),
            "/api/v1/teams".to_owned(),
            "/api/v1/inboxes".to_owned(),
            "/api/v1/api-tokens".to_owned(),
            "/api/v1/audit-log?limit=200".to_owned(),
        ];
        let mut out = Vec::new();
        for path in paths {
            let r = self.app.get(&path, &self.a_admin.token).await;
            assert_eq!(r.status.as_u16(), 200, "A reads {path}: {:#}", r.body);
            out.push((path, r.body));
        }
        out
    }

    /// B makes a team and an inbox of their own.
    async fn b_team_and_inbox(&self) -> (String, String) {
        let team = id_of(
            self.app
                .post(
                    "/api/v1/teams",
                    &self.b_admin.token,
                    json!({"name": "B team", "member_ids": [self.b_admin.id()]}),
                )
                .await
                .expect(201)
                .body,
        );
        let inbox = id_of(
            self.app
                .post(
                    "/api/v1/inboxes",
                    &self.b_admin.token,
                    json!({"name": "B inbox", "member_ids": [self.b_admin.id()]}),
                )
                .await
                .expect(201)
                .body,
        );
        (team, inbox)
    }
}

fn id_of(v: Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// Assert a 404 `not_found` problem, naming the request in the message.
fn assert_not_found(what: &str, r: &crate::helpers::Reply) {
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        (r.status.as_u16(), ct, r.body["code"].as_str()),
        (404, "application/problem+json", Some("not_found")),
        "{what}: {:#}",
        r.body
    );
}

/// Assert a 400 `validation_failed` problem whose detail mentions `needle`.
fn assert_refused(what: &str, r: &crate::helpers::Reply, needle: &str) {
    assert_eq!(
        (r.status.as_u16(), r.body["code"].as_str()),
        (400, Some("validation_failed")),
        "{what}: {:#}",
        r.body
    );
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "{what}: {detail:?} lacks {needle:?}"
    );
}

async fn another_workspaces_ids_answer_404_everywhere_and_nothing_changes(b: Backend) {
    let w = TwoWorkspaces::new(b).await;
    let (user, admin, team, inbox, channel, token) = (
        &w.a_agent,
        &w.a_admin.id(),
        &w.a_team,
        &w.a_inbox,
        &w.a_channel,
        &w.a_token,
    );
    let b_user = w.b_admin.id();
    let missing = "00000000-0000-7000-8000-000000000000";
    let before = w.snapshot_of_a().await;
    let flows = w
        .app
        .get(
            &format!("/api/v1/channels/{channel}/chatflows"),
            &w.a_admin.token,
        )
        .await
        .expect(200);
    let chatflow = flows.body["items"][0]["id"]
        .as_str()
        .expect("a chat channel has its default chatflow")
        .to_owned();
    let table: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/users/{user}"), None),
        (Method::GET, format!("/api/v1/users/{admin}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{user}"),
            Some(json!({"name": "Hijacked"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{user}"),
            Some(json!({"password": "taken over by B"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{admin}"),
            Some(json!({"role": "agent"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{admin}"),
            Some(json!({"active": false})),
        ),
        (Method::GET, format!("/api/v1/teams/{team}"), None),
        (
            Method::PATCH,
            format!("/api/v1/teams/{team}"),
            Some(json!({"name": "Hijacked"})),
        ),
        (Method::DELETE, format!("/api/v1/teams/{team}"), None),
        (
            Method::POST,
            format!("/api/v1/teams/{team}/members"),
            Some(json!({"user_id": b_user})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/teams/{team}/members/{user}"),
            None,
        ),
        (Method::GET, format!("/api/v1/inboxes/{inbox}"), None),
        (
            Method::PATCH,
            format!("/api/v1/inboxes/{inbox}"),
            Some(json!({"name": "Hijacked"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/inboxes/{inbox}"),
            Some(json!({"routing": {"capacity": null, "team_id": null}})),
        ),
        (Method::DELETE, format!("/api/v1/inboxes/{inbox}"), None),
        (
            Method::PUT,
            format!("/api/v1/inboxes/{inbox}/members/{b_user}"),
            Some(json!({"capacity": 9})),
        ),
        (
            Method::PUT,
            format!("/api/v1/inboxes/{inbox}/members/{user}"),
            Some(json!({"capacity": 9})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/inboxes/{inbox}/members/{user}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/inboxes/{inbox}/channels"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/inboxes/{inbox}/channels"),
            Some(json!({"type": "chat"})),
        ),
        (Method::GET, format!("/api/v1/channels/{channel}"), None),
        (
            Method::PATCH,
            format!("/api/v1/channels/{channel}"),
            Some(json!({"name": "Hijacked", "settings": {}})),
        ),
        (
            Method::POST,
            format!("/api/v1/channels/{channel}/identity-secret"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/channels/{channel}/chatflows"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/channels/{channel}/chatflows"),
            Some(json!({"name": "Poached", "targeting": {"match": "any",
                "rules": [{"kind": "all_pages"}]}, "trigger": {"kind": "on_load"},
                "welcome_message": "Hi", "display": "popup"})),
        ),
        (Method::GET, format!("/api/v1/chatflows/{chatflow}"), None),
        (
            Method::PATCH,
            format!("/api/v1/chatflows/{chatflow}"),
            Some(json!({"name": "Hijacked"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/chatflows/{chatflow}"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/channels/{channel}"), None),
        (Method::DELETE, format!("/api/v1/api-tokens/{token}"), None),
    ];
    let reference = w
        .app
        .get(&format!("/api/v1/users/{missing}"), &w.b_admin.token)
        .await;
    assert_not_found("a missing user", &reference);

    for (credential, secret) in [("session", &w.b_admin.token), ("API token", &w.b_api_token)] {
        for (method, path, body) in &table {
            let r = w
                .app
                .request(method.clone(), path, Some(secret), body.clone())
                .await;
            assert_not_found(&format!("B ({credential}): {method} {path}"), &r);
        }
    }

    let after = w.snapshot_of_a().await;
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "A's {path} changed");
    }
    w.app
        .get("/api/v1/auth/me", &w.a_admin.token)
        .await
        .expect(200);
    w.app.login("bob@a.test", crate::helpers::PASSWORD).await;
}

async fn another_workspaces_users_and_teams_cannot_be_attached_to_ones_own_records(b: Backend) {
    let w = TwoWorkspaces::new(b).await;
    let (b_team, b_inbox) = w.b_team_and_inbox().await;
    let a_before = w.snapshot_of_a().await;
    let b_team_path = format!("/api/v1/teams/{b_team}");
    let b_inbox_path = format!("/api/v1/inboxes/{b_inbox}");
    let b_team_before = w.app.get(&b_team_path, &w.b_admin.token).await.expect(200);
    let b_inbox_before = w.app.get(&b_inbox_path, &w.b_admin.token).await.expect(200);
    let (agent, team) = (&w.a_agent, &w.a_team);
    let table: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            format!("{b_team_path}/members"),
            json!({"user_id": agent}),
            "no user",
        ),
        (
            Method::POST,
            "/api/v1/teams".to_owned(),
            json!({"name": "Poached", "member_ids": [agent]}),
            "no user",
        ),
        (
            Method::PUT,
            format!("{b_inbox_path}/members/{agent}"),
            json!({}),
            "no user",
        ),
        (
            Method::POST,
            "/api/v1/inboxes".to_owned(),
            json!({"name": "Poached", "member_ids": [agent]}),
            "no user",
        ),
        (
            Method::PATCH,
            b_inbox_path.clone(),
            json!({"routing": {"team_id": team}}),
            "no team",
        ),
        (
            Method::POST,
            "/api/v1/inboxes".to_owned(),
            json!({"name": "Poached", "routing": {"team_id": team}}),
            "no team",
        ),
    ];

    for (method, path, body, needle) in &table {
        let r = w
            .app
            .request(
                method.clone(),
                path,
                Some(&w.b_admin.token),
                Some(body.clone()),
            )
            .await;
        assert_refused(&format!("B: {method} {path} {body}"), &r, needle);
    }

    let b_team_after = w.app.get(&b_team_path, &w.b_admin.token).await.expect(200);
    let b_inbox_after = w.app.get(&b_inbox_path, &w.b_admin.token).await.expect(200);
    assert_eq!(b_team_after.body, b_team_before.body, "B's team changed");
    assert_eq!(b_inbox_after.body, b_inbox_before.body, "B's inbox changed");
    assert_eq!(
        ids(&w
            .app
            .get("/api/v1/teams", &w.b_admin.token)
            .await
            .expect(200)),
        vec![b_team.clone()],
        "no team was made"
    );
    assert_eq!(
        ids(&w
            .app
            .get("/api/v1/inboxes", &w.b_admin.token)
            .await
            .expect(200)),
        vec![b_inbox.clone()],
        "no inbox was made"
    );
    let a_after = w.snapshot_of_a().await;
    for ((path, was), (_, is)) in a_before.iter().zip(&a_after) {
        assert_eq!(was, is, "A's {path} changed");
    }
}

async fn no_list_shows_another_workspaces_records(b: Backend) {
    let w = TwoWorkspaces::new(b).await;
    let (b_team, b_inbox) = w.b_team_and_inbox().await;
    let a_ids = w.a_ids();

    let lists = [
        ("/api/v1/users", vec![w.b_admin.id()]),
        ("/api/v1/teams", vec![b_team]),
        ("/api/v1/inboxes", vec![b_inbox]),
        ("/api/v1/api-tokens", vec![]),
        ("/api/v1/audit-log?limit=200", vec![]),
    ];

    for (path, expected) in lists {
        let r = w.app.get(path, &w.b_admin.token).await;
        assert_eq!(r.status.as_u16(), 200, "B lists {path}: {:#}", r.body);
        let text = r.body.to_string();
        for id in &a_ids {
            assert!(
                !text.contains(id.as_str()),
                "B's {path} shows A's {id}: {text}"
            );
        }
        for id in expected {
            assert!(ids(&r).contains(&id), "B's {path} lacks B's own {id}");
        }
        if path == "/api/v1/api-tokens" {
            assert_eq!(ids(&r).len(), 1, "only B's own token: {text}");
        }
    }
    let a_users = ids(&w
        .app
        .get("/api/v1/users", &w.a_admin.token)
        .await
        .expect(200));
    assert!(!a_users.contains(&w.b_admin.id()), "and A sees none of B's");
}
