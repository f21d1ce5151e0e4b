//! Inboxes: where conversations land, with their members (agents who see and answer
//! them) and routing settings.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row as _};

use super::{MAX_PAGE, Page, new_id, now_ms};

/// How an inbox's conversations get an assignee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// `round_robin` or `manual`.
    pub mode: String,
    /// Default max open conversations per agent (None = unlimited).
    pub capacity: Option<i64>,
    /// Route only among this team's members (None = the inbox's members).
    pub team_id: Option<String>,
    /// `keep` or `return` an offline agent's open conversations.
    pub offline_action: String,
    /// Seconds offline before `return` applies.
    pub offline_grace_secs: i64,
}

/// One member of an inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: String,
    /// Per-agent capacity override (None = the inbox default).
    pub capacity: Option<i64>,
}

/// A stored inbox with members.
#[derive(Debug, Clone)]
pub struct InboxRow {
    /// Opaque id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Display name.
    pub name: String,
    /// Routing settings.
    pub routing: Routing,
    /// Members.
    pub members: Vec<Member>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, workspace_id, name, routing_mode, routing_capacity, routing_team_id, \
                       offline_action, offline_grace_secs, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<InboxRow, sqlx::Error> {
    Ok(InboxRow {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        name: r.try_get("name")?,
        routing: Routing {
            mode: r.try_get("routing_mode")?,
            capacity: r.try_get("routing_capacity")?,
            team_id: r.try_get("routing_team_id")?,
            offline_action: r.try_get("offline_action")?,
            offline_grace_secs: r.try_get("offline_grace_secs")?,
        },
        members: Vec::new(),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn load_members(conn: &mut AnyConnection, inbox: &mut InboxRow) -> Result<(), sqlx::Error> {
    inbox.members = sqlx::query(
        "SELECT user_id, capacity FROM inbox_members WHERE workspace_id = $1 AND inbox_id = $2 \
         ORDER BY created_at, user_id",
    )
    .bind(&inbox.workspace_id)
    .bind(&inbox.id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(Member {
            user_id: r.try_get("user_id")?,
            capacity: r.try_get("capacity")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    Ok(())
}

/// Create an inbox with members (ids already checked).
pub async fn insert(
    conn: &mut AnyConnection,
    workspace_id: &str,
    name: &str,
    routing: &Routing,
    members: &[Member],
) -> Result<InboxRow, sqlx::Error> {
    let now = now_ms();
    let id = new_id();
    sqlx::query(
        "INSERT INTO inboxes (id, workspace_id, name, routing_mode, routing_capacity, \
         routing_team_id, offline_action, offline_grace_secs, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(workspace_id)
    .bind(name)
    .bind(&routing.mode)
    .bind(routing.capacity)
    .bind(&routing.team_id)
    .bind(&routing.offline_action)
    .bind(routing.offline_grace_secs)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for m in members {
        upsert_member(&mut *conn, workspace_id, &id, m).await?;
    }
    get(conn, workspace_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Read one inbox with members.
pub async fn get(
    conn: &mut AnyConnection,
    workspace_id: &str,
    id: &str,
) -> Result<Option<InboxRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inboxes WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let mut inbox = from_row(&r)?;
            load_members(conn, &mut inbox).await?;
            Ok(Some(inbox))
        }
    }
}

/// List inboxes, oldest first; with `member` only those that user is a member of.
pub async fn list(
    conn: &mut AnyConnection,
    workspace_id: &str,
    member: Option<&str>,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Page<InboxRow>, sqlx::Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inboxes WHERE workspace_id = $1 AND id > $2 \
         AND ($3 = '' OR id IN (SELECT inbox_id FROM inbox_members WHERE user_id = $3)) \
         ORDER BY id LIMIT $4"
    )))
    .bind(workspace_id)
    .bind(after_id.unwrap_or(""))
    .bind(member.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(from_row)
    .collect::<Result<Vec<_>, _>>()?;
    let mut page = Page::from_rows(rows, limit, |i| &i.id);
    for inbox in &mut page.items {
        load_members(conn, inbox).await?;
    }
    Ok(page)
}

/// Is `user_id` a member of the inbox?
pub async fn is_member<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    inbox_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM inbox_members WHERE workspace_id = $1 AND inbox_id = $2 \
         AND user_id = $3",
    )
    .bind(workspace_id)
    .bind(inbox_id)
    .bind(user_id)
    .fetch_optional(exec)
    .await?
    .is_some())
}

/// Write an inbox's name and routing.
pub async fn update<'c>(
    exec: impl Executor<'c, Database = Any>,
    inbox: &InboxRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE inboxes SET name = $1, routing_mode = $2, routing_capacity = $3, \
         routing_team_id = $4, offline_action = $5, offline_grace_secs = $6, updated_at = $7 \
         WHERE workspace_id = $8 AND id = $9",
    )
    .bind(&inbox.name)
    .bind(&inbox.routing.mode)
    .bind(inbox.routing.capacity)
    .bind(&inbox.routing.team_id)
    .bind(&inbox.routing.offline_action)
    .bind(inbox.routing.offline_grace_secs)
    .bind(now_ms())
    .bind(&inbox.workspace_id)
    .bind(&inbox.id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Delete an inbox (its channels and conversations go with it); false when none.
pub async fn delete<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM inboxes WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(exec)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Add a member or change their capacity.
pub async fn upsert_member<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    inbox_id: &str,
    member: &Member,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO inbox_members (inbox_id, user_id, workspace_id, capacity, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (inbox_id, user_id) DO UPDATE SET capacity = excluded.capacity",
    )
    .bind(inbox_id)
    .bind(&member.user_id)
    .bind(workspace_id)
    .bind(member.capacity)
    .bind(now_ms())
    .execute(exec)
    .await?;
    Ok(())
}

/// Remove a member; false when they were not one.
pub async fn remove_member<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    inbox_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM inbox_members WHERE workspace_id = $1 AND inbox_id = $2 AND user_id = $3",
    )
    .bind(workspace_id)
    .bind(inbox_id)
    .bind(user_id)
    .execute(exec)
    .await?
    .rows_affected()
        > 0)
}

/// The inboxes a user is a member of.
pub async fn member_inbox_ids<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    user_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("SELECT inbox_id FROM inbox_members WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .fetch_all(exec)
        .await?
        .iter()
        .map(|r| r.try_get("inbox_id"))
        .collect()
}

/// The inboxes that route among a team's members.
pub async fn routing_to_team<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    team_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("SELECT id FROM inboxes WHERE workspace_id = $1 AND routing_team_id = $2")
        .bind(workspace_id)
        .bind(team_id)
        .fetch_all(exec)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}
