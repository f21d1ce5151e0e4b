//! Users: admins and agents of a workspace. Emails are unique across the install
//! (login takes only an email). Deactivated users keep their history but cannot log in,
//! and every session and token of theirs stops working at once (the auth query joins
//! on `active`).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row as _};

use super::{MAX_PAGE, Page, new_id, now_ms};
use crate::domain::Role;

/// A stored user (without the password hash).
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Opaque id.
    pub id: String,
    /// Owning workspace.
    pub workspace_id: String,
    /// Normalised email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Admin or agent.
    pub role: Role,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// A booking/meeting link shown to visitors.
    pub meeting_link: Option<String>,
    /// False once deactivated.
    pub active: bool,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, workspace_id, email, name, role, avatar_url, meeting_link, active, \
                       created_at, updated_at";

/// The user columns of a join whose users table is aliased `u`.
pub(crate) const JOINED_COLUMNS: &str = "u.id AS id, u.workspace_id AS workspace_id, u.email AS email, u.name AS name, \
     u.role AS role, u.avatar_url AS avatar_url, u.meeting_link AS meeting_link, \
     u.active AS active, u.created_at AS created_at, u.updated_at AS updated_at";

impl UserRow {
    /// Decode the columns of [`COLUMNS`] or [`JOINED_COLUMNS`].
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        let role: String = r.try_get("role")?;
        Ok(UserRow {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            role: Role::from_db(&role)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown role {role:?}").into()))?,
            avatar_url: r.try_get("avatar_url")?,
            meeting_link: r.try_get("meeting_link")?,
            active: r.try_get::<i64, _>("active")? != 0,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// What a new user is made of.
#[derive(Debug)]
pub struct NewUser<'a> {
    /// Owning workspace.
    pub workspace_id: &'a str,
    /// Normalised email.
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// argon2 PHC string.
    pub password_hash: &'a str,
    /// Avatar URL.
    pub avatar_url: Option<&'a str>,
    /// Meeting link.
    pub meeting_link: Option<&'a str>,
}

/// Create a user. A taken email is a unique violation (see [`super::is_unique_violation`]).
pub async fn insert<'c>(
    exec: impl Executor<'c, Database = Any>,
    new: NewUser<'_>,
) -> Result<UserRow, sqlx::Error> {
    let now = now_ms();
    let row = UserRow {
        id: new_id(),
        workspace_id: new.workspace_id.to_owned(),
        email: new.email.to_owned(),
        name: new.name.to_owned(),
        role: new.role,
        avatar_url: new.avatar_url.map(str::to_owned),
        meeting_link: new.meeting_link.map(str::to_owned),
        active: true,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO users (id, workspace_id, email, name, role, password_hash, avatar_url, \
         meeting_link, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&row.id)
    .bind(&row.workspace_id)
    .bind(&row.email)
    .bind(&row.name)
    .bind(row.role.as_str())
    .bind(new.password_hash)
    .bind(&row.avatar_url)
    .bind(&row.meeting_link)
    .bind(1_i64)
    .bind(now)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(row)
}

/// Read one user of a workspace.
pub async fn get<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(UserRow::from_row)
    .transpose()
}

/// Read a user and their password hash by email, for login (any workspace).
pub async fn find_for_login<'c>(
    exec: impl Executor<'c, Database = Any>,
    email: &str,
) -> Result<Option<(UserRow, String)>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE email = $1"
    )))
    .bind(email)
    .fetch_optional(exec)
    .await?
    .map(|r| Ok((UserRow::from_row(&r)?, r.try_get("password_hash")?)))
    .transpose()
}

/// List a workspace's users, oldest first, keyset-paginated by id.
pub async fn list<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Page<UserRow>, sqlx::Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(after_id.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(exec)
    .await?
    .iter()
    .map(UserRow::from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(rows, limit, |u| &u.id))
}

/// Which of `ids` are users of this workspace (for validating member lists).
pub async fn existing_ids<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT id FROM users WHERE workspace_id = $1 AND id IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(workspace_id);
    for id in ids {
        q = q.bind(id);
    }
    q.fetch_all(exec)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}

/// Write a user's changed profile, role and active flag (the caller merged the patch).
pub async fn update<'c>(
    exec: impl Executor<'c, Database = Any>,
    user: &UserRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET name = $1, role = $2, avatar_url = $3, meeting_link = $4, \
         active = $5, updated_at = $6 WHERE workspace_id = $7 AND id = $8",
    )
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(&user.avatar_url)
    .bind(&user.meeting_link)
    .bind(i64::from(user.active))
    .bind(user.updated_at)
    .bind(&user.workspace_id)
    .bind(&user.id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Replace a user's password hash.
pub async fn set_password<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE workspace_id = $3 AND id = $4",
    )
    .bind(password_hash)
    .bind(now_ms())
    .bind(workspace_id)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(())
}

/// How many active admins a workspace has (it must keep at least one).
pub async fn count_active_admins<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM users WHERE workspace_id = $1 AND role = 'admin' AND active = $2",
    )
    .bind(workspace_id)
    .bind(1_i64)
    .fetch_one(exec)
    .await?
    .try_get("n")
}

/// Whether any user exists at all (a fresh install has none).
pub async fn any_exist<'c>(exec: impl Executor<'c, Database = Any>) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(exec)
        .await?
        .try_get("n")?;
    Ok(n > 0)
}
