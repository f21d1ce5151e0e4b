//! Console sessions: opaque random tokens, of which only the SHA-256 is stored. A
//! session is valid while it is unexpired, unrevoked, and its user is active.

use sqlx::{Any, Executor, Row as _};

use super::users::{JOINED_COLUMNS, UserRow};
use super::{new_id, now_ms};

/// A new session's fields.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// Workspace of the user.
    pub workspace_id: &'a str,
    /// Who logged in.
    pub user_id: &'a str,
    /// SHA-256 (hex) of the token.
    pub token_hash: &'a str,
    /// The CSRF token cookie-authenticated writes must echo.
    pub csrf_token: &'a str,
    /// Client's User-Agent, truncated.
    pub user_agent: &'a str,
    /// Client's address.
    pub ip: &'a str,
    /// Epoch ms after which the session is void.
    pub expires_at: i64,
}

/// Store a new session; returns its id.
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    s: NewSession<'_>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO sessions (id, workspace_id, user_id, token_hash, csrf_token, user_agent, ip, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(s.workspace_id)
    .bind(s.user_id)
    .bind(s.token_hash)
    .bind(s.csrf_token)
    .bind(s.user_agent)
    .bind(s.ip)
    .bind(now_ms())
    .bind(s.expires_at)
    .execute(exec)
    .await?;
    Ok(id)
}

/// A valid session with its user.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    /// Session id.
    pub session_id: String,
    /// The CSRF token for this session.
    pub csrf_token: String,
    /// The (active) user.
    pub user: UserRow,
}

/// Find the valid session whose token hashes to `token_hash`.
pub async fn authenticate<'c>(
    exec: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<SessionAuth>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.id AS session_id, s.csrf_token AS csrf_token, {JOINED_COLUMNS} \
         FROM sessions s JOIN users u ON u.id = s.user_id AND u.workspace_id = s.workspace_id \
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND u.active = $3"
    )))
    .bind(token_hash)
    .bind(now_ms())
    .bind(1_i64)
    .fetch_optional(exec)
    .await?
    .map(|r| {
        Ok(SessionAuth {
            session_id: r.try_get("session_id")?,
            csrf_token: r.try_get("csrf_token")?,
            user: UserRow::from_row(&r)?,
        })
    })
    .transpose()
}

/// Revoke one session (logout).
pub async fn revoke<'c>(
    exec: impl Executor<'c, Database = Any>,
    session_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(session_id)
        .execute(exec)
        .await?;
    Ok(())
}

/// Revoke every session of a user but `keep` (deactivation, password change).
pub async fn revoke_all_for_user<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    user_id: &str,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE workspace_id = $2 AND user_id = $3 AND revoked_at IS NULL AND id <> $4",
    )
    .bind(now_ms())
    .bind(workspace_id)
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .execute(exec)
    .await?
    .rows_affected())
}

/// Delete sessions that expired or were revoked more than `older_than_ms` ago.
pub async fn purge<'c>(
    exec: impl Executor<'c, Database = Any>,
    older_than_ms: i64,
) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - older_than_ms;
    Ok(sqlx::query(
        "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
    )
    .bind(cutoff)
    .execute(exec)
    .await?
    .rows_affected())
}
