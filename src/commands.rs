//! The CLI's subcommands other than `serve`: `migrate` and `create-admin`.

use serde::Serialize;
use serde_json::json;

use crate::auth;
use crate::config::Settings;
use crate::domain::{EmailAddress, Name, Password, Role};
use crate::store::users::NewUser;
use crate::store::{Db, audit, is_unique_violation, users, workspaces};

/// Apply pending migrations and exit.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect(settings).await?;
    db.migrate().await?;
    db.close().await;
    Ok(())
}

/// What `create-admin` prints.
#[derive(Debug, Serialize)]
pub struct CreatedAdmin {
    /// The workspace (new or existing).
    pub workspace_id: String,
    /// The new admin.
    pub user_id: String,
}

/// Create an admin, and the workspace `workspace` if it does not exist yet.
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    password: &str,
    workspace: &str,
    name: Option<&str>,
) -> anyhow::Result<CreatedAdmin> {
    let email =
        EmailAddress::parse(email.to_owned()).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let password =
        Password::parse(password.to_owned()).map_err(|e| anyhow::anyhow!("--password: {e}"))?;
    let workspace =
        Name::parse(workspace.to_owned()).map_err(|e| anyhow::anyhow!("--workspace: {e}"))?;
    let default_name = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or("Admin")
        .to_owned();
    let name = Name::parse(name.map(str::to_owned).unwrap_or(default_name))
        .map_err(|e| anyhow::anyhow!("--name: {e}"))?;

    let db = Db::connect(settings).await?;
    db.migrate().await?;
    let hash = auth::hash_password(password.expose().to_owned()).await?;
    let mut tx = db.pool().begin().await?;
    let ws = match workspaces::find_by_name(&mut *tx, workspace.as_str()).await? {
        Some(ws) => ws,
        None => workspaces::insert(&mut *tx, workspace.as_str()).await?,
    };
    let user = users::insert(
        &mut *tx,
        NewUser {
            workspace_id: &ws.id,
            email: email.as_str(),
            name: name.as_str(),
            role: Role::Admin,
            password_hash: &hash,
            avatar_url: None,
            meeting_link: None,
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            anyhow::anyhow!("--email: a user with email {email} already exists")
        } else {
            anyhow::Error::new(e)
        }
    })?;
    audit::record(
        &mut tx,
        audit::Entry {
            workspace_id: &ws.id,
            actor_id: None,
            action: "user.created",
            target_type: "user",
            target_id: &user.id,
            details: json!({"email": user.email, "role": "admin", "via": "cli"}),
        },
    )
    .await?;
    tx.commit().await?;
    db.close().await;
    Ok(CreatedAdmin {
        workspace_id: ws.id,
        user_id: user.id,
    })
}
