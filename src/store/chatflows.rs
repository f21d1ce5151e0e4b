//! Chatflows of a chat channel: targeting, trigger, welcome message and display. The
//! targeting and trigger documents are stored as JSON text.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row as _};

use super::{new_id, now_ms};

/// A stored chatflow.
#[derive(Debug, Clone)]
pub struct ChatflowRow {
    /// Opaque id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// The chat channel.
    pub channel_id: String,
    /// Label.
    pub name: String,
    /// Disabled chatflows never show.
    pub enabled: bool,
    /// Lower wins.
    pub priority: i64,
    /// Targeting document.
    pub targeting: serde_json::Value,
    /// Trigger document.
    pub trigger: serde_json::Value,
    /// First message shown.
    pub welcome_message: String,
    /// `popup` or `launcher`.
    pub display: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, workspace_id, channel_id, name, enabled, priority, targeting, \
    trigger_spec, welcome_message, display, created_at, updated_at";

fn json_col(r: &AnyRow, col: &str) -> Result<serde_json::Value, sqlx::Error> {
    let s: String = r.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn from_row(r: &AnyRow) -> Result<ChatflowRow, sqlx::Error> {
    Ok(ChatflowRow {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        channel_id: r.try_get("channel_id")?,
        name: r.try_get("name")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        priority: r.try_get("priority")?,
        targeting: json_col(r, "targeting")?,
        trigger: json_col(r, "trigger_spec")?,
        welcome_message: r.try_get("welcome_message")?,
        display: r.try_get("display")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A chatflow to create (id and times are set here).
#[derive(Debug, Clone)]
pub struct NewChatflow {
    /// Label.
    pub name: String,
    /// Shown at all.
    pub enabled: bool,
    /// Lower wins.
    pub priority: i64,
    /// Targeting document.
    pub targeting: serde_json::Value,
    /// Trigger document.
    pub trigger: serde_json::Value,
    /// First message.
    pub welcome_message: String,
    /// `popup` or `launcher`.
    pub display: String,
}

/// Create a chatflow on a channel.
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    channel_id: &str,
    new: NewChatflow,
) -> Result<ChatflowRow, sqlx::Error> {
    let now = now_ms();
    let row = ChatflowRow {
        id: new_id(),
        workspace_id: workspace_id.to_owned(),
        channel_id: channel_id.to_owned(),
        name: new.name,
        enabled: new.enabled,
        priority: new.priority,
        targeting: new.targeting,
        trigger: new.trigger,
        welcome_message: new.welcome_message,
        display: new.display,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO chatflows (id, workspace_id, channel_id, name, enabled, priority, \
         targeting, trigger_spec, welcome_message, display, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&row.id)
    .bind(&row.workspace_id)
    .bind(&row.channel_id)
    .bind(&row.name)
    .bind(i64::from(row.enabled))
    .bind(row.priority)
    .bind(row.targeting.to_string())
    .bind(row.trigger.to_string())
    .bind(&row.welcome_message)
    .bind(&row.display)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(row)
}

/// A channel's chatflows by priority (then oldest first).
pub async fn list_for_channel<'c>(
    exec: impl Executor<'c, Database = Any>,
    channel_id: &str,
) -> Result<Vec<ChatflowRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM chatflows WHERE channel_id = $1 \
         ORDER BY priority, created_at, id LIMIT 500"
    )))
    .bind(channel_id)
    .fetch_all(exec)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// How many chatflows a channel has.
pub async fn count_for_channel<'c>(
    exec: impl Executor<'c, Database = Any>,
    channel_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM chatflows WHERE channel_id = $1")
        .bind(channel_id)
        .fetch_one(exec)
        .await?
        .try_get("n")
}

/// One chatflow of a workspace.
pub async fn get<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ChatflowRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM chatflows WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Write every field of a chatflow.
pub async fn update<'c>(
    exec: impl Executor<'c, Database = Any>,
    row: &ChatflowRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE chatflows SET name = $1, enabled = $2, priority = $3, targeting = $4, \
         trigger_spec = $5, welcome_message = $6, display = $7, updated_at = $8 \
         WHERE workspace_id = $9 AND id = $10",
    )
    .bind(&row.name)
    .bind(i64::from(row.enabled))
    .bind(row.priority)
    .bind(row.targeting.to_string())
    .bind(row.trigger.to_string())
    .bind(&row.welcome_message)
    .bind(&row.display)
    .bind(now_ms())
    .bind(&row.workspace_id)
    .bind(&row.id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Delete a chatflow; false when none.
pub async fn delete<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM chatflows WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(exec)
            .await?
            .rows_affected()
            > 0,
    )
}
