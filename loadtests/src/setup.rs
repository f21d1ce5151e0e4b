//! Setting a run up on any target: agents, a place for visitors to talk (Parley: an inbox
//! with a chat channel and routing settings; the peer and the relay need none), and
//! visitor credentials (Parley: a widget session; the peer: `POST /sessions`, which
//! stores a visitor row; the relay: a made-up id).

use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use crate::api::Api;
use crate::node::{Cluster, Kind};

/// An agent a run connects.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Session token (Parley) or agent id (peer, relay).
    pub token: String,
    /// User id (Parley) or agent id.
    pub user_id: String,
}

/// What the run set up.
#[derive(Debug)]
pub struct Workspace {
    /// The server kind.
    pub kind: Kind,
    /// The run's short random id (names of agents, inboxes).
    pub run_id: String,
    /// Parley's REST API on the visitor node.
    api: Option<Api>,
    /// Parley's chat channel.
    channel_id: Option<String>,
    /// The visitor node's HTTP base.
    visitor_base: String,
    http: reqwest::Client,
    /// The agents.
    pub agents: Vec<Agent>,
    /// Capacity per agent, when routing is limited.
    pub capacity: Option<u32>,
}

impl Workspace {
    /// Create `agents` agents and a chat channel routed round-robin with `capacity` per
    /// agent (`None`: unlimited).
    pub async fn create(
        cluster: &Cluster,
        agents: usize,
        capacity: Option<u32>,
    ) -> anyhow::Result<Workspace> {
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .context("HTTP client")?;
        let visitor_base = cluster.visitor_node().address.clone();
        let mut ws = Workspace {
            kind: cluster.kind,
            run_id,
            api: None,
            channel_id: None,
            visitor_base,
            http,
            agents: Vec::with_capacity(agents),
            capacity,
        };
        match cluster.kind {
            Kind::Parley => {
                let api = Api::new(&cluster.visitor_node().address)?;
                let admin = api
                    .login(&cluster.admin_email, &cluster.admin_password)
                    .await
                    .context("logging in as the admin")?;
                for a in 0..agents {
                    let agent = api
                        .create_agent(&admin, &format!("agent{a}-{}@load.test", ws.run_id))
                        .await
                        .context("creating an agent")?;
                    ws.agents.push(Agent {
                        token: agent.token,
                        user_id: agent.user_id,
                    });
                }
                let members: Vec<String> = ws.agents.iter().map(|a| a.user_id.clone()).collect();
                let routing = match capacity {
                    Some(c) => json!({"mode": "round_robin", "capacity": c}),
                    None => json!({"mode": "round_robin"}),
                };
                ws.channel_id = Some(
                    api.create_chat_routed(
                        &admin,
                        &format!("Load {}", ws.run_id),
                        &members,
                        routing,
                    )
                    .await
                    .context("creating the inbox and chat channel")?,
                );
                ws.api = Some(api);
            }
            Kind::SocketIo | Kind::Relay => {
                for a in 0..agents {
                    let id = format!("agent{a}-{}", ws.run_id);
                    ws.agents.push(Agent {
                        token: id.clone(),
                        user_id: id,
                    });
                }
            }
        }
        Ok(ws)
    }

    /// A new visitor's credentials.
    pub async fn visitor_token(&self) -> anyhow::Result<String> {
        match self.kind {
            Kind::Parley => {
                let (Some(api), Some(channel)) = (&self.api, &self.channel_id) else {
                    anyhow::bail!("no chat channel");
                };
                api.widget_session(channel).await
            }
            Kind::SocketIo => {
                let res = self
                    .http
                    .post(format!("{}/sessions", self.visitor_base))
                    .send()
                    .await
                    .context("POST /sessions")?;
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                if !status.is_success() {
                    anyhow::bail!("POST /sessions: {status}: {text}");
                }
                let v: serde_json::Value = serde_json::from_str(&text)?;
                v["visitor_token"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no visitor_token")
            }
            Kind::Relay => Ok(uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    /// The HTTP client (for `/metrics`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}
