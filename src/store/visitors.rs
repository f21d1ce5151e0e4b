//! Visitors of chat channels: a visitor token (stored hashed) maps a browser to a
//! contact, so the same person keeps their conversation across page loads.

use std::sync::LazyLock;

use sqlx::{Any, AnyConnection, Executor, Row as _};

use super::channels::ChannelRow;
use super::conn::{Arg, Conn, Row};
use super::{Db, new_id, now_ms};

/// A visitor with what the engine needs to route their messages.
#[derive(Debug, Clone)]
pub struct VisitorRow {
    /// Visitor id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// The chat channel.
    pub channel_id: String,
    /// The channel's kind (`chat`).
    pub channel_kind: String,
    /// The inbox the channel delivers to.
    pub inbox_id: String,
    /// The contact this visitor is.
    pub contact_id: String,
    /// The contact's name, if known.
    pub contact_name: Option<String>,
    /// The channel's settings document (JSON), for the socket's origin check.
    pub channel_settings: String,
}

/// The visitor whose token hashes to `$1`.
static FIND: LazyLock<String> = LazyLock::new(|| {
    "SELECT v.id AS id, v.workspace_id AS workspace_id, v.channel_id AS channel_id, \
     ch.kind AS channel_kind, ch.inbox_id AS inbox_id, ch.settings AS channel_settings, \
     v.contact_id AS contact_id, co.name AS contact_name FROM visitors v JOIN channels ch ON ch.id = v.channel_id \
     JOIN contacts co ON co.id = v.contact_id WHERE v.token_hash = $1"
        .to_owned()
});

fn from_row(r: &dyn Row) -> Result<VisitorRow, sqlx::Error> {
    Ok(VisitorRow {
        id: r.text("id")?,
        workspace_id: r.text("workspace_id")?,
        channel_id: r.text("channel_id")?,
        channel_kind: r.text("channel_kind")?,
        inbox_id: r.text("inbox_id")?,
        contact_id: r.text("contact_id")?,
        contact_name: r.opt_text("contact_name")?,
        channel_settings: r.text("channel_settings")?,
    })
}

/// Create a contact and a visitor for it on a channel. The visitor's row is built from
/// what was written (no read back: on PostgreSQL that was a round trip per visitor).
pub async fn create(
    conn: &mut Conn<'_>,
    channel: &ChannelRow,
    token_hash: &str,
    page_url: &str,
    user_agent: &str,
) -> Result<VisitorRow, sqlx::Error> {
    let (workspace_id, channel_id) = (channel.workspace_id.as_str(), channel.id.as_str());
    let now = now_ms();
    let contact_id = new_id();
    let attributes =
        serde_json::json!({"page_url": page_url, "user_agent": user_agent}).to_string();
    conn.execute(
        "INSERT INTO contacts (id, workspace_id, name, email, phone, attributes, created_at, \
         updated_at) VALUES ($1, $2, NULL, NULL, NULL, $3, $4, $4)",
        &[
            Arg::Text(&contact_id),
            Arg::Text(workspace_id),
            Arg::Text(&attributes),
            Arg::Int(now),
        ],
    )
    .await?;
    let id = new_id();
    conn.execute(
        "INSERT INTO visitors (id, workspace_id, channel_id, contact_id, token_hash, page_url, \
         user_agent, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        &[
            Arg::Text(&id),
            Arg::Text(workspace_id),
            Arg::Text(channel_id),
            Arg::Text(&contact_id),
            Arg::Text(token_hash),
            Arg::Text(page_url),
            Arg::Text(user_agent),
            Arg::Int(now),
        ],
    )
    .await?;
    Ok(VisitorRow {
        id,
        workspace_id: workspace_id.to_owned(),
        channel_id: channel_id.to_owned(),
        channel_kind: channel.kind.clone(),
        inbox_id: channel.inbox_id.clone(),
        contact_id,
        contact_name: None,
        channel_settings: channel.settings.to_string(),
    })
}

/// The visitor whose token hashes to `token_hash`.
pub async fn find(db: &Db, token_hash: &str) -> Result<Option<VisitorRow>, sqlx::Error> {
    db.read_optional(FIND.as_str(), &[Arg::Text(token_hash)], from_row)
        .await
}

/// [`find`] inside a transaction.
async fn find_in(conn: &mut Conn<'_>, token_hash: &str) -> Result<Option<VisitorRow>, sqlx::Error> {
    conn.fetch_optional(FIND.as_str(), &[Arg::Text(token_hash)], from_row)
        .await
}

/// Record a visit (page and time).
pub async fn touch<'c>(
    exec: impl Executor<'c, Database = Any>,
    id: &str,
    page_url: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE visitors SET last_seen_at = $1, page_url = $2 WHERE id = $3")
        .bind(now_ms())
        .bind(page_url)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(())
}

/// The ids of a contact's open conversations on a channel, newest first.
pub async fn open_conversations(
    db: &Db,
    contact_id: &str,
    channel_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    db.read_all(
        "SELECT id FROM conversations WHERE contact_id = $1 AND channel_id = $2 \
         AND status = 'open' ORDER BY id DESC LIMIT 20",
        &[Arg::Text(contact_id), Arg::Text(channel_id)],
        |r| r.text("id"),
    )
    .await
}

/// The contact of a workspace whose email a website vouched for (identity HMAC).
pub async fn find_verified_contact<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    email: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND email = $2 AND email_verified = 1 \
         ORDER BY created_at, id LIMIT 1",
    )
    .bind(workspace_id)
    .bind(email)
    .fetch_optional(exec)
    .await?
    .map(|r| r.try_get("id"))
    .transpose()
}

/// Create a contact with a vouched-for email.
pub async fn create_verified_contact<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    email: &str,
    name: Option<&str>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO contacts (id, workspace_id, name, email, phone, attributes, created_at, \
         updated_at, email_verified) VALUES ($1, $2, $3, $4, NULL, '{}', $5, $5, 1)",
    )
    .bind(&id)
    .bind(workspace_id)
    .bind(name)
    .bind(email)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(id)
}

/// Set a contact's name (when given).
pub async fn set_contact_name<'c>(
    exec: impl Executor<'c, Database = Any>,
    contact_id: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE contacts SET name = $1, updated_at = $2 WHERE id = $3")
        .bind(name)
        .bind(now_ms())
        .bind(contact_id)
        .execute(exec)
        .await?;
    Ok(())
}

/// A visitor's own, unverified contact takes the email (and name) they typed (the
/// offline form). A contact whose email was vouched for keeps it; false then.
pub async fn set_unverified_email<'c>(
    exec: impl Executor<'c, Database = Any>,
    contact_id: &str,
    email: &str,
    name: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE contacts SET email = $1, name = COALESCE($2, name), updated_at = $3 \
         WHERE id = $4 AND email_verified = 0",
    )
    .bind(email)
    .bind(name)
    .bind(now_ms())
    .bind(contact_id)
    .execute(exec)
    .await?
    .rows_affected()
        > 0)
}

/// A new visitor (and token) for an existing contact on a channel.
pub async fn create_for_contact(
    conn: &mut AnyConnection,
    workspace_id: &str,
    channel_id: &str,
    contact_id: &str,
    token_hash: &str,
    page_url: &str,
    user_agent: &str,
) -> Result<VisitorRow, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO visitors (id, workspace_id, channel_id, contact_id, token_hash, page_url, \
         user_agent, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(new_id())
    .bind(workspace_id)
    .bind(channel_id)
    .bind(contact_id)
    .bind(token_hash)
    .bind(page_url)
    .bind(user_agent)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    find_in(&mut Conn::Sqlx(conn), token_hash)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}
