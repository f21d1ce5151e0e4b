//! What the agent console needs beyond the resources: first-run setup, the inbox views'
//! counts, read marks (unread), and contacts with their past conversations. The
//! conversation list itself (`GET /conversations`, with `q=` search, previews and
//! unread marks) is in `conversations.rs`.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::time;
use crate::auth::{self, Principal};
use crate::domain::{EmailAddress, Name, Password, Role};
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::console::{self as store, ListFilter, ListRow};
use crate::store::users::NewUser;
use crate::store::{audit, is_unique_violation, users, workspaces};

/// Register this module's routes. `counts` must come before `/conversations/{id}`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(setup_status)
        .service(setup)
        .service(counts)
        .service(mark_read)
        .service(get_contact);
}

/// Whether the install still needs its first-run setup.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStatus {
    /// `true` while no user exists: `POST /api/v1/setup` is open.
    pub needed: bool,
}

/// Does the install need setting up? (No login needed.)
#[utoipa::path(tag = "setup", responses((status = 200, body = SetupStatus)))]
#[get("/setup")]
pub async fn setup_status(state: web::Data<AppState>) -> ApiResult<web::Json<SetupStatus>> {
    Ok(web::Json(SetupStatus {
        needed: !store::is_set_up(state.db.reader()).await?,
    }))
}

/// The first workspace and its admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The workspace's name, 1–100 characters.
    #[schema(value_type = String)]
    pub workspace_name: Name,
    /// The admin's display name, 1–100 characters.
    #[schema(value_type = String)]
    pub name: Name,
    /// The admin's login email.
    #[schema(value_type = String, format = "email")]
    pub email: EmailAddress,
    /// 8–1,024 characters.
    #[schema(value_type = String, format = "password")]
    pub password: Password,
}

/// First-run setup: create the workspace and its admin, and log the admin in (the
/// answer is a login's). Works only while no user exists; afterwards, and for the loser
/// of two concurrent setups, `409 conflict`.
#[utoipa::path(tag = "setup", request_body = SetupRequest, responses(
    (status = 201, body = super::auth::LoginResponse, description = "Set up; logged in as the new admin"),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
     description = "Already set up"),
))]
#[post("/setup")]
#[tracing::instrument(skip_all)]
pub async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: crate::extract::Json<SetupRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let done = || ApiError::conflict("this install is already set up: log in instead");
    if store::is_set_up(state.db.pool()).await? {
        return Err(done());
    }
    let hash = auth::hash_password(b.password.expose().to_owned()).await?;
    let mut tx = state.db.pool().begin().await?;
    store::claim_setup(&mut *tx).await.map_err(|e| {
        if is_unique_violation(&e) {
            done()
        } else {
            e.into()
        }
    })?;
    // A user made another way (the CLI) also closes the setup.
    if store::is_set_up_by_users(&mut *tx).await? {
        return Err(done());
    }
    let ws = workspaces::insert(&mut *tx, b.workspace_name.as_str()).await?;
    let user = users::insert(
        &mut *tx,
        NewUser {
            workspace_id: &ws.id,
            email: b.email.as_str(),
            name: b.name.as_str(),
            role: Role::Admin,
            password_hash: &hash,
            avatar_url: None,
            meeting_link: None,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        audit::Entry {
            workspace_id: &ws.id,
            actor_id: Some(&user.id),
            action: "workspace.set_up",
            target_type: "workspace",
            target_id: &ws.id,
            details: json!({"name": ws.name, "admin_email": user.email}),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(workspace_id = %ws.id, user_id = %user.id, "First-run setup done");
    let ip = auth::client_ip(&req, state.settings.server.trust_proxy_headers);
    let mut res = super::auth::start_session(&req, &state, user, &ip).await?;
    *res.status_mut() = actix_web::http::StatusCode::CREATED;
    Ok(res)
}

/// Counts of one slice of conversations.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct ViewCounts {
    /// Open and assigned to the caller.
    pub mine: i64,
    /// Open and unassigned.
    pub unassigned: i64,
    /// Open.
    pub open: i64,
    /// Closed.
    pub closed: i64,
    /// Open ones the caller has not read to the end.
    pub unread: i64,
    /// Open, assigned to the caller and not read to the end.
    pub unread_mine: i64,
}

impl ViewCounts {
    fn add(&mut self, r: &store::CountRow) {
        if r.status == "closed" {
            self.closed += r.count;
            return;
        }
        self.open += r.count;
        self.unread += r.unread;
        match r.bucket.as_str() {
            "me" => {
                self.mine += r.count;
                self.unread_mine += r.unread;
            }
            "unassigned" => self.unassigned += r.count,
            _ => {}
        }
    }
}

/// The console's view counts: overall, per inbox, per channel and per channel kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    /// Every conversation the caller may see.
    pub all: ViewCounts,
    /// Per inbox id (inboxes with no conversation are absent).
    pub inboxes: BTreeMap<String, ViewCounts>,
    /// Per channel id.
    pub channels: BTreeMap<String, ViewCounts>,
    /// Per channel kind (`chat`, `email`, …).
    pub channel_kinds: BTreeMap<String, ViewCounts>,
}

/// Counts for the console's views ("Assigned to me", "Unassigned", "All open",
/// "Closed"), over the conversations the caller may see.
#[utoipa::path(tag = "conversations", responses((status = 200, body = Counts)),
    security(("bearer" = []), ("cookie" = [])))]
#[get("/conversations/counts")]
pub async fn counts(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<Counts>> {
    let member = if principal.is_admin() {
        ""
    } else {
        principal.user.id.as_str()
    };
    let rows = store::counts(
        state.db.reader(),
        principal.workspace_id(),
        &principal.user.id,
        member,
    )
    .await?;
    let mut out = Counts {
        all: ViewCounts::default(),
        inboxes: BTreeMap::new(),
        channels: BTreeMap::new(),
        channel_kinds: BTreeMap::new(),
    };
    for r in &rows {
        out.all.add(r);
        out.inboxes.entry(r.inbox_id.clone()).or_default().add(r);
        out.channels.entry(r.channel_id.clone()).or_default().add(r);
        out.channel_kinds
            .entry(r.channel.clone())
            .or_default()
            .add(r);
    }
    Ok(web::Json(out))
}

/// How far the caller has read.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// Read up to this `seq` (default: the conversation's latest). Marks never move
    /// back; a `seq` past the latest is refused.
    pub seq: Option<u64>,
}

/// The caller's read mark now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadState {
    /// The conversation.
    pub conversation_id: String,
    /// Read up to this `seq`.
    pub read_seq: i64,
    /// The conversation's latest `seq`.
    pub last_seq: u64,
}

/// Mark a conversation read (for the caller only): the console's unread marks and
/// counts use it.
#[utoipa::path(tag = "conversations", request_body = ReadRequest,
    params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 200, body = ReadState),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/conversations/{id}/read")]
pub async fn mark_read(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<ReadRequest>,
) -> ApiResult<web::Json<ReadState>> {
    let record = super::conversations::visible(&state, &principal, &id).await?;
    let seq = body.seq.unwrap_or(record.last_seq);
    if seq > record.last_seq {
        return Err(ApiError::Validation(format!(
            "seq: beyond the conversation's latest ({})",
            record.last_seq
        )));
    }
    let seq = i64::try_from(seq).map_err(|_| ApiError::Validation("seq: too large".into()))?;
    store::mark_read(state.db.pool(), &principal.user.id, &record.id, seq).await?;
    Ok(web::Json(ReadState {
        read_seq: store::read_seq(state.db.pool(), &principal.user.id, &record.id).await?,
        conversation_id: record.id,
        last_seq: record.last_seq,
    }))
}

/// A contact (the customer) as the console's sidebar shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Id.
    pub id: String,
    /// Name, when known.
    pub name: Option<String>,
    /// Email, when known.
    pub email: Option<String>,
    /// Phone, when known.
    pub phone: Option<String>,
    /// Free-form attributes.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// The page of the latest chat visit, when known.
    pub page_url: Option<String>,
    /// The browser's User-Agent of the latest chat visit, when known.
    pub user_agent: Option<String>,
    /// When the latest chat visit was last seen.
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    /// First seen.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The contact's conversations the caller may see, newest first (at most 20), as
    /// list items.
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<ListItem>,
}

/// A contact and their conversations. Admins may read any contact of the workspace;
/// agents those with a conversation in one of their inboxes.
#[utoipa::path(tag = "contacts", params(("id" = String, Path, description = "Contact id")), responses(
    (status = 200, body = ContactView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/contacts/{id}")]
pub async fn get_contact(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ContactView>> {
    let contact = store::contact(state.db.reader(), principal.workspace_id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    let member = if principal.is_admin() {
        ""
    } else {
        principal.user.id.as_str()
    };
    let rows = store::list(
        state.db.reader(),
        &ListFilter {
            workspace_id: principal.workspace_id(),
            user_id: &principal.user.id,
            member_of: member,
            contact_id: &contact.id,
            ..ListFilter::default()
        },
        20,
    )
    .await?;
    if !principal.is_admin() && rows.is_empty() {
        return Err(ApiError::not_found("contact"));
    }
    Ok(web::Json(ContactView {
        attributes: serde_json::from_str(&contact.attributes).unwrap_or_else(|_| json!({})),
        id: contact.id,
        name: contact.name,
        email: contact.email,
        phone: contact.phone,
        page_url: contact.page_url.filter(|u| !u.is_empty()),
        user_agent: contact.user_agent.filter(|u| !u.is_empty()),
        last_seen_at: contact.last_seen_at.map(time),
        created_at: time(contact.created_at),
        conversations: rows.into_iter().map(ListItem::from).collect(),
    }))
}

/// Who a list item is with.
#[derive(Debug, Clone, Serialize)]
pub struct ContactSummary {
    /// Contact id.
    pub id: String,
    /// Name, when known.
    pub name: Option<String>,
    /// Email, when known.
    pub email: Option<String>,
}

/// The start of the latest message.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewView {
    /// `message`, `comment` or `event`.
    pub kind: String,
    /// `{type, name}` of who posted it.
    pub sender: serde_json::Value,
    /// The first 140 characters of the body.
    pub body: String,
}

/// A conversation object as the list shows it: every field of the conversation object,
/// plus what the console's list needs.
#[derive(Debug, Clone, Serialize)]
pub struct ListItem {
    /// The conversation object's fields.
    #[serde(flatten)]
    pub conversation: parley_actors::protocol::ConversationObject,
    /// The latest message's `seq` (0 when none).
    pub last_seq: u64,
    /// The contact.
    pub contact: ContactSummary,
    /// The latest message, or `null`.
    pub last_message: Option<PreviewView>,
    /// How far the caller has read.
    pub read_seq: i64,
    /// Whether there is something the caller has not read.
    pub unread: bool,
}

impl From<ListRow> for ListItem {
    fn from(r: ListRow) -> Self {
        let last_seq = r.record.last_seq;
        ListItem {
            contact: ContactSummary {
                id: r.record.contact_id.clone(),
                name: r.contact_name,
                email: r.contact_email,
            },
            last_message: r.last_message.map(|p| PreviewView {
                kind: p.kind,
                sender: json!({"type": p.sender_type, "name": p.sender_name}),
                body: p.body,
            }),
            unread: i64::try_from(last_seq).unwrap_or(i64::MAX) > r.read_seq,
            read_seq: r.read_seq,
            last_seq,
            conversation: r.record.to_object(),
        }
    }
}
