//! The HTTP calls that set a run up, through Parley's public REST API (`/api/v1`), as an
//! operator and a website would make them.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// The password of every agent a run creates.
pub const AGENT_PASSWORD: &str = "load-test-agent-password";

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Login {
    /// Bearer token.
    pub token: String,
    /// User id.
    pub user_id: String,
}

/// A client of one node's REST API.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client for `http://HOST:PORT`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()
                .context("HTTP client")?,
        })
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Login> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await?;
        Ok(Login {
            token: str_field(&v, "token")?,
            user_id: str_field(&v["user"], "id")?,
        })
    }

    /// As an admin, create an agent (password [`AGENT_PASSWORD`]) and log them in.
    pub async fn create_agent(&self, admin: &Login, email: &str) -> anyhow::Result<Login> {
        self.call(
            reqwest::Method::POST,
            "/users",
            Some(&admin.token),
            json!({"email": email, "password": AGENT_PASSWORD, "name": email, "role": "agent"}),
        )
        .await?;
        self.login(email, AGENT_PASSWORD).await
    }

    /// As an admin, an inbox with `members` and a chat channel on it; returns the
    /// channel id.
    pub async fn create_chat(
        &self,
        admin: &Login,
        name: &str,
        members: &[String],
    ) -> anyhow::Result<String> {
        self.create_chat_routed(admin, name, members, json!({"mode": "round_robin"}))
            .await
    }

    /// [`Api::create_chat`] with the inbox's `routing` settings.
    pub async fn create_chat_routed(
        &self,
        admin: &Login,
        name: &str,
        members: &[String],
        routing: Value,
    ) -> anyhow::Result<String> {
        let inbox = self
            .call(
                reqwest::Method::POST,
                "/inboxes",
                Some(&admin.token),
                json!({"name": name, "member_ids": members, "routing": routing}),
            )
            .await?;
        let inbox_id = str_field(&inbox, "id")?;
        let channel = self
            .call(
                reqwest::Method::POST,
                &format!("/inboxes/{inbox_id}/channels"),
                Some(&admin.token),
                json!({"type": "chat"}),
            )
            .await?;
        str_field(&channel, "id")
    }

    /// `POST /widget/{channel}/sessions` for a new visitor; returns the visitor token.
    pub async fn widget_session(&self, channel_id: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/widget/{channel_id}/sessions"),
                None,
                json!({"page_url": "https://shop.example/load"}),
            )
            .await?;
        str_field(&v, "visitor_token")
    }
}

fn str_field(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("answer has no {key:?}: {v}"))
}
