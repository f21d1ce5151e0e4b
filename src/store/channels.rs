//! Channels: how conversations reach an inbox (website chat, email, forms, Messenger).
//! Each channel's type-specific settings are one JSON document.

use std::sync::LazyLock;

use sqlx::{Any, Executor};

use super::conn::{Arg, Row};
use super::{Db, new_id, now_ms};

/// A stored channel.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    /// Opaque id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// The inbox it delivers to.
    pub inbox_id: String,
    /// `chat`, `email`, `form` or `messenger`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Type-specific settings.
    pub settings: serde_json::Value,
    /// Chat channels: the key of visitor identity HMACs.
    pub identity_secret: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, workspace_id, inbox_id, kind, name, settings, identity_secret, created_at, updated_at";

fn from_row(r: &(impl Row + ?Sized)) -> Result<ChannelRow, sqlx::Error> {
    let settings = r.text("settings")?;
    Ok(ChannelRow {
        id: r.text("id")?,
        workspace_id: r.text("workspace_id")?,
        inbox_id: r.text("inbox_id")?,
        kind: r.text("kind")?,
        name: r.text("name")?,
        settings: serde_json::from_str(&settings).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        identity_secret: r.opt_text("identity_secret")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// Create a channel (a chat channel gets a new identity secret).
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    inbox_id: &str,
    kind: &str,
    name: &str,
    settings: &serde_json::Value,
) -> Result<ChannelRow, sqlx::Error> {
    let identity_secret = (kind == "chat").then(new_identity_secret);
    let now = now_ms();
    let row = ChannelRow {
        id: new_id(),
        workspace_id: workspace_id.to_owned(),
        inbox_id: inbox_id.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        settings: settings.clone(),
        identity_secret,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO channels (id, workspace_id, inbox_id, kind, name, settings, created_at, \
         updated_at, identity_secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.workspace_id)
    .bind(&row.inbox_id)
    .bind(&row.kind)
    .bind(&row.name)
    .bind(row.settings.to_string())
    .bind(now)
    .bind(now)
    .bind(&row.identity_secret)
    .execute(exec)
    .await?;
    Ok(row)
}

/// Read one channel of a workspace.
pub async fn get<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ChannelRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM channels WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// An inbox's channels, oldest first.
pub async fn list_for_inbox<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    inbox_id: &str,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM channels WHERE workspace_id = $1 AND inbox_id = $2 ORDER BY id"
    )))
    .bind(workspace_id)
    .bind(inbox_id)
    .fetch_all(exec)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Write a channel's name and settings.
pub async fn update<'c>(
    exec: impl Executor<'c, Database = Any>,
    channel: &ChannelRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE channels SET name = $1, settings = $2, updated_at = $3 \
         WHERE workspace_id = $4 AND id = $5",
    )
    .bind(&channel.name)
    .bind(channel.settings.to_string())
    .bind(now_ms())
    .bind(&channel.workspace_id)
    .bind(&channel.id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Delete a channel; false when none.
pub async fn delete<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM channels WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(exec)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Read a channel by id alone (public widget endpoints, which know no workspace).
pub async fn get_any(db: &Db, id: &str) -> Result<Option<ChannelRow>, sqlx::Error> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM channels WHERE id = $1"));
    db.read_optional(SQL.as_str(), &[Arg::Text(id)], |r| from_row(r))
        .await
}

/// A fresh identity secret: 32 random bytes, hex.
pub fn new_identity_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Replace a chat channel's identity secret.
pub async fn set_identity_secret<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
    secret: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE channels SET identity_secret = $1, updated_at = $2 \
         WHERE workspace_id = $3 AND id = $4",
    )
    .bind(secret)
    .bind(now_ms())
    .bind(workspace_id)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(())
}
