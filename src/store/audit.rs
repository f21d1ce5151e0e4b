//! The audit log: one entry for every administrative change, written in the same
//! transaction as the change itself, so the log and the data never disagree.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row as _};

use super::conn::{Arg, Conn};
use super::{MAX_PAGE, Page, new_id, now_ms};

/// A stored audit entry.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Opaque id (time-ordered).
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Who made the change (`None` for the CLI or the system).
    pub actor_id: Option<String>,
    /// What was done, e.g. `user.created`.
    pub action: String,
    /// The kind of record changed, e.g. `user`.
    pub target_type: String,
    /// The record changed.
    pub target_id: String,
    /// JSON with what changed.
    pub details: serde_json::Value,
    /// Epoch ms.
    pub created_at: i64,
}

impl AuditRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        let details: String = r.try_get("details")?;
        Ok(AuditRow {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            actor_id: r.try_get("actor_id")?,
            action: r.try_get("action")?,
            target_type: r.try_get("target_type")?,
            target_id: r.try_get("target_id")?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            created_at: r.try_get("created_at")?,
        })
    }
}

/// One change to record.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Workspace.
    pub workspace_id: &'a str,
    /// Who (None = CLI/system).
    pub actor_id: Option<&'a str>,
    /// What, e.g. `inbox.updated`.
    pub action: &'a str,
    /// Kind of record.
    pub target_type: &'a str,
    /// Record id.
    pub target_id: &'a str,
    /// What changed.
    pub details: serde_json::Value,
}

/// Append an entry, in the caller's transaction.
pub async fn record(conn: &mut AnyConnection, e: Entry<'_>) -> Result<(), sqlx::Error> {
    record_on(&mut Conn::Sqlx(conn), e).await
}

/// [`record`] on a [`Conn`].
pub async fn record_on(conn: &mut Conn<'_>, e: Entry<'_>) -> Result<(), sqlx::Error> {
    let (id, details) = (new_id(), e.details.to_string());
    conn.execute(
        "INSERT INTO audit_log (id, workspace_id, actor_id, action, target_type, target_id, \
         details, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            Arg::Text(&id),
            Arg::Text(e.workspace_id),
            e.actor_id.into(),
            Arg::Text(e.action),
            Arg::Text(e.target_type),
            Arg::Text(e.target_id),
            Arg::Text(&details),
            Arg::Int(now_ms()),
        ],
    )
    .await?;
    Ok(())
}

/// List a workspace's entries, newest first, keyset-paginated by id.
pub async fn list<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    before_id: Option<&str>,
    limit: i64,
) -> Result<Page<AuditRow>, sqlx::Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = sqlx::query(
        "SELECT id, workspace_id, actor_id, action, target_type, target_id, details, created_at \
         FROM audit_log WHERE workspace_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(workspace_id)
    .bind(before_id.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(exec)
    .await?
    .iter()
    .map(AuditRow::from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(rows, limit, |a| &a.id))
}
