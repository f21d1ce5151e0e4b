//! Workspaces: the tenant every other record belongs to.

use sqlx::{Any, Executor, Row as _};

use super::{new_id, now_ms};

/// A stored workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceRow {
    /// Opaque id.
    pub id: String,
    /// Unique display name.
    pub name: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// Create a workspace.
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    name: &str,
) -> Result<WorkspaceRow, sqlx::Error> {
    let row = WorkspaceRow {
        id: new_id(),
        name: name.to_owned(),
        created_at: now_ms(),
    };
    sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.created_at)
        .execute(exec)
        .await?;
    Ok(row)
}

/// Read a workspace by its name.
pub async fn find_by_name<'c>(
    exec: impl Executor<'c, Database = Any>,
    name: &str,
) -> Result<Option<WorkspaceRow>, sqlx::Error> {
    sqlx::query("SELECT id, name, created_at FROM workspaces WHERE name = $1")
        .bind(name)
        .fetch_optional(exec)
        .await?
        .map(|r| {
            Ok(WorkspaceRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
}

/// Read a workspace by id.
pub async fn get<'c>(
    exec: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<WorkspaceRow>, sqlx::Error> {
    sqlx::query("SELECT id, name, created_at FROM workspaces WHERE id = $1")
        .bind(id)
        .fetch_optional(exec)
        .await?
        .map(|r| {
            Ok(WorkspaceRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
}
