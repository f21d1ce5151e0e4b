//! Uploaded files (message attachments). The bytes live under
//! `storage.data_dir/uploads/<id>`; this table records who uploaded each file and,
//! once a message carries it, the conversation it belongs to (which decides who may
//! download it).

use parley_actors::protocol::Attachment;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row as _};

use super::now_ms;

/// A stored upload.
#[derive(Debug, Clone)]
pub struct UploadRow {
    /// Opaque id (also the file name on disk).
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// The chat channel of a visitor's upload.
    pub channel_id: Option<String>,
    /// `visitor` or `agent`.
    pub uploader_type: String,
    /// Contact id (visitors) or user id (agents).
    pub uploader_id: String,
    /// Set once a message carries it.
    pub conversation_id: Option<String>,
    /// File name as given.
    pub name: String,
    /// Media type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Hex SHA-256 of the bytes (the download's ETag).
    pub sha256: String,
}

const COLUMNS: &str = "id, workspace_id, channel_id, uploader_type, uploader_id, \
    conversation_id, name, content_type, size, sha256";

fn from_row(r: &AnyRow) -> Result<UploadRow, sqlx::Error> {
    Ok(UploadRow {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        channel_id: r.try_get("channel_id")?,
        uploader_type: r.try_get("uploader_type")?,
        uploader_id: r.try_get("uploader_id")?,
        conversation_id: r.try_get("conversation_id")?,
        name: r.try_get("name")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
    })
}

impl UploadRow {
    /// The attachment object messages carry.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: u64::try_from(self.size).unwrap_or(0),
            url: format!("/api/v1/attachments/{}", self.id),
        }
    }
}

/// Record an upload whose bytes are already on disk.
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    row: &UploadRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO uploads (id, workspace_id, channel_id, uploader_type, uploader_id, \
         conversation_id, name, content_type, size, sha256, created_at) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10)",
    )
    .bind(&row.id)
    .bind(&row.workspace_id)
    .bind(&row.channel_id)
    .bind(&row.uploader_type)
    .bind(&row.uploader_id)
    .bind(&row.name)
    .bind(&row.content_type)
    .bind(row.size)
    .bind(&row.sha256)
    .bind(now_ms())
    .execute(exec)
    .await?;
    Ok(())
}

/// One upload by id.
pub async fn get<'c>(
    exec: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<UploadRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM uploads WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Bind `ids` (all uploaded by `uploader_type`/`uploader_id`) to `conversation_id`,
/// which must be the uploader's (a visitor's own; in an agent's workspace). `None`
/// (and nothing changed) when any is unknown, someone else's, or bound elsewhere.
pub async fn claim(
    pool: &sqlx::AnyPool,
    ids: &[String],
    uploader_type: &str,
    uploader_id: &str,
    conversation_id: &str,
) -> Result<Option<Vec<Attachment>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let conv = sqlx::query("SELECT workspace_id, contact_id FROM conversations WHERE id = $1")
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(conv) = conv else {
        return Ok(None);
    };
    let conv_ws: String = conv.try_get("workspace_id")?;
    let conv_contact: String = conv.try_get("contact_id")?;
    if uploader_type == "visitor" && conv_contact != uploader_id {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(row) = get(&mut *tx, id).await? else {
            return Ok(None);
        };
        let mine = row.uploader_type == uploader_type
            && row.uploader_id == uploader_id
            && row.workspace_id == conv_ws;
        let free = row
            .conversation_id
            .as_deref()
            .is_none_or(|c| c == conversation_id);
        if !mine || !free {
            return Ok(None);
        }
        if row.conversation_id.is_none() {
            sqlx::query(
                "UPDATE uploads SET conversation_id = $1 WHERE id = $2 AND conversation_id IS NULL",
            )
            .bind(conversation_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        out.push(row.attachment());
    }
    tx.commit().await?;
    Ok(Some(out))
}
