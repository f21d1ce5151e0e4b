//! Teams: named groups of users of a workspace (routing can target one).

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row as _};

use super::{MAX_PAGE, Page, new_id, now_ms};

/// A stored team with its members.
#[derive(Debug, Clone)]
pub struct TeamRow {
    /// Opaque id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Unique name within the workspace.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Member user ids, in order of joining.
    pub member_ids: Vec<String>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, workspace_id, name, description, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<TeamRow, sqlx::Error> {
    Ok(TeamRow {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        member_ids: Vec::new(),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn load_members(conn: &mut AnyConnection, team: &mut TeamRow) -> Result<(), sqlx::Error> {
    team.member_ids = sqlx::query(
        "SELECT user_id FROM team_members WHERE workspace_id = $1 AND team_id = $2 \
         ORDER BY created_at, user_id",
    )
    .bind(&team.workspace_id)
    .bind(&team.id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("user_id"))
    .collect::<Result<_, _>>()?;
    Ok(())
}

/// Create a team with its members (ids already checked to belong to the workspace).
pub async fn insert(
    conn: &mut AnyConnection,
    workspace_id: &str,
    name: &str,
    description: &str,
    member_ids: &[String],
) -> Result<TeamRow, sqlx::Error> {
    let now = now_ms();
    let id = new_id();
    sqlx::query(
        "INSERT INTO teams (id, workspace_id, name, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(workspace_id)
    .bind(name)
    .bind(description)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for user_id in member_ids {
        add_member(&mut *conn, workspace_id, &id, user_id).await?;
    }
    get(conn, workspace_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Read one team with its members.
pub async fn get(
    conn: &mut AnyConnection,
    workspace_id: &str,
    id: &str,
) -> Result<Option<TeamRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM teams WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let mut team = from_row(&r)?;
            load_members(conn, &mut team).await?;
            Ok(Some(team))
        }
    }
}

/// List teams, oldest first, with members.
pub async fn list(
    conn: &mut AnyConnection,
    workspace_id: &str,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Page<TeamRow>, sqlx::Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM teams WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(after_id.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(from_row)
    .collect::<Result<Vec<_>, _>>()?;
    let mut page = Page::from_rows(rows, limit, |t| &t.id);
    for team in &mut page.items {
        load_members(conn, team).await?;
    }
    Ok(page)
}

/// Write a team's name and description.
pub async fn update<'c>(
    exec: impl Executor<'c, Database = Any>,
    team: &TeamRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE teams SET name = $1, description = $2, updated_at = $3 \
         WHERE workspace_id = $4 AND id = $5",
    )
    .bind(&team.name)
    .bind(&team.description)
    .bind(now_ms())
    .bind(&team.workspace_id)
    .bind(&team.id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Delete a team; false when there was none.
pub async fn delete<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM teams WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(exec)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Add a member (no-op when already one).
pub async fn add_member<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    team_id: &str,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, workspace_id, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(workspace_id)
    .bind(now_ms())
    .execute(exec)
    .await?;
    Ok(())
}

/// Remove a member; false when they were not one.
pub async fn remove_member<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    team_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM team_members WHERE workspace_id = $1 AND team_id = $2 AND user_id = $3",
    )
    .bind(workspace_id)
    .bind(team_id)
    .bind(user_id)
    .execute(exec)
    .await?
    .rows_affected()
        > 0)
}
