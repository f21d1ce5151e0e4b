//! API tokens for integrations: long-lived bearer tokens that act as the user who made
//! them. Only the SHA-256 is stored, plus a short prefix to recognise a token in lists.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row as _};

use super::users::{JOINED_COLUMNS, UserRow};
use super::{MAX_PAGE, Page, new_id, now_ms};

/// A stored API token (never the secret).
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    /// Opaque id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// The user the token acts as.
    pub user_id: String,
    /// Label chosen at creation.
    pub name: String,
    /// First characters of the token, for recognition.
    pub token_prefix: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms of last use (updated at most once a minute).
    pub last_used_at: Option<i64>,
    /// Epoch ms of revocation.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str =
    "id, workspace_id, user_id, name, token_prefix, created_at, last_used_at, revoked_at";

impl ApiTokenRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ApiTokenRow {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            user_id: r.try_get("user_id")?,
            name: r.try_get("name")?,
            token_prefix: r.try_get("token_prefix")?,
            created_at: r.try_get("created_at")?,
            last_used_at: r.try_get("last_used_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }
}

/// Store a new token.
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    user_id: &str,
    name: &str,
    token_hash: &str,
    token_prefix: &str,
) -> Result<ApiTokenRow, sqlx::Error> {
    let row = ApiTokenRow {
        id: new_id(),
        workspace_id: workspace_id.to_owned(),
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        token_prefix: token_prefix.to_owned(),
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, workspace_id, user_id, name, token_hash, token_prefix, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.id)
    .bind(&row.workspace_id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(token_hash)
    .bind(&row.token_prefix)
    .bind(row.created_at)
    .execute(exec)
    .await?;
    Ok(row)
}

/// Read one token of a workspace.
pub async fn get<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ApiTokenRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(ApiTokenRow::from_row)
    .transpose()
}

/// List a workspace's tokens (optionally only one user's), oldest first.
pub async fn list<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    user_id: Option<&str>,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Page<ApiTokenRow>, sqlx::Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE workspace_id = $1 AND ($2 = '' OR user_id = $2) \
         AND id > $3 ORDER BY id LIMIT $4"
    )))
    .bind(workspace_id)
    .bind(user_id.unwrap_or(""))
    .bind(after_id.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(exec)
    .await?
    .iter()
    .map(ApiTokenRow::from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(rows, limit, |t| &t.id))
}

/// Revoke a token; false when it was already revoked.
pub async fn revoke<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 \
         AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(workspace_id)
    .bind(id)
    .execute(exec)
    .await?
    .rows_affected()
        > 0)
}

/// The valid token whose secret hashes to `token_hash`, with its (active) user.
pub async fn authenticate<'c>(
    exec: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<(String, Option<i64>, UserRow)>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT t.id AS token_id, t.last_used_at AS last_used_at, {JOINED_COLUMNS} \
         FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.workspace_id = t.workspace_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.active = $2"
    )))
    .bind(token_hash)
    .bind(1_i64)
    .fetch_optional(exec)
    .await?
    .map(|r| {
        Ok((
            r.try_get("token_id")?,
            r.try_get("last_used_at")?,
            UserRow::from_row(&r)?,
        ))
    })
    .transpose()
}

/// Record that a token was used now.
pub async fn touch<'c>(
    exec: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(exec)
        .await?;
    Ok(())
}
