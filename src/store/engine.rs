//! The SQL implementation of the engine's [`Store`] port.
//!
//! `append` runs a batch in one transaction. Per message: take the conversation's row
//! lock (a no-op UPDATE, once per conversation per batch), look the `client_id` up
//! (after the lock, so a concurrent writer's commit is seen), then increment
//! `last_seq` and insert. The increment and the insert commit together or not at all,
//! so `seq` is gap-free per conversation whichever node writes.

use parley_actors::protocol::{
    AgentProfile, Attachment, ConversationStatus, MessageObject, Participant, ParticipantKind,
};
use parley_actors::store::{
    Appended, ConversationRecord, NewConversation, NewMessage, PoolMember, RoutingSnapshot, Store,
    StoreError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::LazyLock;

use sqlx::{Any, Executor, Row as _};

use super::conn::{Arg, Conn, Row};
use super::{DatabaseKind, Db, new_id, now_ms, to_time};

/// The engine's view of the SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    /// Wrap a connected, migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// A unit enum's wire spelling (`"chat"`, `"visitor"`, …).
pub fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Parse a unit enum from its wire spelling.
pub fn parse_enum<T: DeserializeOwned>(s: &str) -> Result<T, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| sqlx::Error::Decode(format!("unexpected value {s:?}: {e}").into()))
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

pub(crate) const CONVERSATION_COLUMNS: &str = "c.id AS id, c.workspace_id AS workspace_id, \
    c.inbox_id AS inbox_id, c.channel_id AS channel_id, ch.kind AS channel, \
    c.contact_id AS contact_id, c.status AS status, c.assignee_id AS assignee_id, \
    c.created_at AS created_at, c.last_message_at AS last_message_at, c.last_seq AS last_seq, \
    au.name AS assignee_name, au.avatar_url AS assignee_avatar_url, \
    au.meeting_link AS assignee_meeting_link";

/// The joins [`CONVERSATION_COLUMNS`] needs after `FROM conversations c`.
pub(crate) const CONVERSATION_JOINS: &str =
    "JOIN channels ch ON ch.id = c.channel_id LEFT JOIN users au ON au.id = c.assignee_id";

/// Decode a row of [`CONVERSATION_COLUMNS`].
pub fn conversation_from_row(r: &(impl Row + ?Sized)) -> Result<ConversationRecord, sqlx::Error> {
    let assignee_id = r.opt_text("assignee_id")?;
    Ok(ConversationRecord {
        id: r.text("id")?,
        workspace_id: r.text("workspace_id")?,
        inbox_id: r.text("inbox_id")?,
        channel_id: r.text("channel_id")?,
        channel: parse_enum(&r.text("channel")?)?,
        contact_id: r.text("contact_id")?,
        status: parse_enum(&r.text("status")?)?,
        created_at: to_time(r.int("created_at")?),
        last_message_at: to_time(r.int("last_message_at")?),
        last_seq: u64::try_from(r.int("last_seq")?).unwrap_or(0),
        assignee: match (&assignee_id, r.opt_text("assignee_name")?) {
            (Some(id), Some(name)) => Some(AgentProfile {
                id: id.clone(),
                name,
                avatar_url: r.opt_text("assignee_avatar_url")?,
                meeting_link: r.opt_text("assignee_meeting_link")?,
            }),
            _ => None,
        },
        assignee_id,
    })
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, kind, sender_type, sender_id, \
    sender_name, body, attachments, channel, created_at";

/// Decode a row of [`MESSAGE_COLUMNS`].
pub fn message_from_row(r: &(impl Row + ?Sized)) -> Result<MessageObject, sqlx::Error> {
    let attachments = r.text("attachments")?;
    Ok(MessageObject {
        id: r.text("id")?,
        conversation_id: r.text("conversation_id")?,
        seq: u64::try_from(r.int("seq")?).unwrap_or(0),
        kind: parse_enum(&r.text("kind")?)?,
        sender: Participant {
            kind: parse_enum::<ParticipantKind>(&r.text("sender_type")?)?,
            id: r.opt_text("sender_id")?.unwrap_or_default(),
            name: r.text("sender_name")?,
        },
        body: r.text("body")?,
        attachments: serde_json::from_str::<Vec<Attachment>>(&attachments)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        channel: parse_enum(&r.text("channel")?)?,
        created_at: to_time(r.int("created_at")?),
    })
}

/// One conversation by id: `$1`.
static CONVERSATION_BY_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c {CONVERSATION_JOINS} \
         WHERE c.id = $1"
    )
});

/// Read a conversation of any workspace (the engine checks the workspace itself).
pub async fn get_conversation<'c>(
    exec: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ConversationRecord>, sqlx::Error> {
    sqlx::query(CONVERSATION_BY_ID.as_str())
        .bind(id)
        .fetch_optional(exec)
        .await?
        .as_ref()
        .map(conversation_from_row)
        .transpose()
}

/// [`get_conversation`] on a reader (see [`Db::read_optional`]): the last committed
/// state.
pub async fn read_conversation(
    db: &Db,
    id: &str,
) -> Result<Option<ConversationRecord>, sqlx::Error> {
    db.read_optional(CONVERSATION_BY_ID.as_str(), &[Arg::Text(id)], |r| {
        conversation_from_row(r)
    })
    .await
}

/// [`get_conversation`] on a [`Conn`].
async fn conversation_on(
    conn: &mut Conn<'_>,
    id: &str,
) -> Result<Option<ConversationRecord>, sqlx::Error> {
    conn.fetch_optional(CONVERSATION_BY_ID.as_str(), &[Arg::Text(id)], |r| {
        conversation_from_row(r)
    })
    .await
}

/// Which conversations to list; empty strings mean "any".
#[derive(Debug)]
pub struct ConversationFilter<'a> {
    /// Workspace (required).
    pub workspace_id: &'a str,
    /// Keyset cursor: only ids below this one.
    pub before_id: &'a str,
    /// `open` or `closed`.
    pub status: &'a str,
    /// One inbox.
    pub inbox_id: &'a str,
    /// One channel kind.
    pub channel: &'a str,
    /// A user id, or `unassigned`.
    pub assignee: &'a str,
    /// Only inboxes this user is a member of.
    pub member_of: &'a str,
}

/// Conversations matching `f`, newest first.
pub async fn list_conversations<'c>(
    exec: impl Executor<'c, Database = Any>,
    f: &ConversationFilter<'_>,
    limit: i64,
) -> Result<Vec<ConversationRecord>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c {CONVERSATION_JOINS} \
         WHERE c.workspace_id = $1 \
         AND ($2 = '' OR c.id < $2) \
         AND ($3 = '' OR c.status = $3) \
         AND ($4 = '' OR c.inbox_id = $4) \
         AND ($5 = '' OR ch.kind = $5) \
         AND ($6 = '' OR ($6 = 'unassigned' AND c.assignee_id IS NULL) OR c.assignee_id = $6) \
         AND ($7 = '' OR c.inbox_id IN (SELECT inbox_id FROM inbox_members WHERE user_id = $7)) \
         ORDER BY c.id DESC LIMIT $8"
    )))
    .bind(f.workspace_id)
    .bind(f.before_id)
    .bind(f.status)
    .bind(f.inbox_id)
    .bind(f.channel)
    .bind(f.assignee)
    .bind(f.member_of)
    .bind(limit)
    .fetch_all(exec)
    .await?
    .iter()
    .map(conversation_from_row)
    .collect()
}

static MESSAGES_AFTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3"
    )
});

/// Messages after `after_seq`, oldest first, on a reader (see [`Db::read_all`]).
pub async fn messages_after(
    db: &Db,
    conversation_id: &str,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<MessageObject>, sqlx::Error> {
    db.read_all(
        MESSAGES_AFTER.as_str(),
        &[
            Arg::Text(conversation_id),
            Arg::Int(i64::try_from(after_seq).unwrap_or(i64::MAX)),
            Arg::Int(i64::from(limit)),
        ],
        |r| message_from_row(r),
    )
    .await
}

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<ConversationRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        self.db
            .write_one(
                "INSERT INTO conversations (id, workspace_id, inbox_id, channel_id, \
                 contact_id, status, assignee_id, last_seq, created_at, updated_at, \
                 last_message_at) VALUES ($1, $2, $3, $4, $5, 'open', NULL, 0, $6, $6, $6)",
                &[
                    Arg::Text(&id),
                    Arg::Text(&new.workspace_id),
                    Arg::Text(&new.inbox_id),
                    Arg::Text(&new.channel_id),
                    Arg::Text(&new.contact_id),
                    Arg::Int(now),
                ],
            )
            .await
            .map_err(err)?;
        Ok(ConversationRecord {
            id,
            workspace_id: new.workspace_id,
            inbox_id: new.inbox_id,
            channel_id: new.channel_id,
            channel: new.channel,
            contact_id: new.contact_id,
            status: ConversationStatus::Open,
            assignee_id: None,
            created_at: to_time(now),
            last_message_at: to_time(now),
            last_seq: 0,
            assignee: None,
        })
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        read_conversation(&self.db, id).await.map_err(err)
    }

    async fn append(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        super::append::append_batch(&self.db, batch)
            .await
            .map_err(err)
    }

    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<MessageObject>, StoreError> {
        messages_after(&self.db, conversation_id, after_seq, limit)
            .await
            .map_err(err)
    }

    async fn claim_attachments(
        &self,
        ids: &[String],
        uploader: &Participant,
        conversation_id: &str,
    ) -> Result<Option<Vec<Attachment>>, StoreError> {
        let kind = match uploader.kind {
            ParticipantKind::Visitor => "visitor",
            ParticipantKind::Agent => "agent",
            _ => return Ok(None),
        };
        let (pool, ids, uploader, conversation_id) = (
            self.db.pool().clone(),
            ids.to_vec(),
            uploader.id.clone(),
            conversation_id.to_owned(),
        );
        self.db
            .run(async move {
                super::uploads::claim(&pool, &ids, kind, &uploader, &conversation_id).await
            })
            .await
            .map_err(err)
    }

    async fn routing_snapshot(
        &self,
        inbox_id: &str,
    ) -> Result<Option<RoutingSnapshot>, StoreError> {
        let (reader, inbox_id) = (self.db.reader().clone(), inbox_id.to_owned());
        self.db
            .run(async move { routing_snapshot(&reader, &inbox_id).await })
            .await
            .map_err(err)
    }

    async fn return_conversations(
        &self,
        inbox_id: &str,
        agent_id: &str,
        reason: &str,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut tx = self.db.pool().begin().await.map_err(err)?;
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM conversations WHERE inbox_id = $1 AND assignee_id = $2 \
             AND status = 'open'",
        )
        .bind(inbox_id)
        .bind(agent_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()
        .map_err(err)?;
        let mut out = Vec::new();
        for id in ids {
            let changed = sqlx::query(
                "UPDATE conversations SET assignee_id = NULL, updated_at = $1 \
                 WHERE id = $2 AND assignee_id = $3 AND status = 'open'",
            )
            .bind(now_ms())
            .bind(&id)
            .bind(agent_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if changed == 0 {
                continue;
            }
            out.push(
                assignee_changed(&mut Conn::Sqlx(&mut tx), &id, Some(agent_id), None, reason)
                    .await
                    .map_err(err)?,
            );
        }
        tx.commit().await.map_err(err)?;
        Ok(out)
    }

    async fn round_robin_inboxes(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query("SELECT workspace_id, id FROM inboxes WHERE routing_mode = 'round_robin'")
            .fetch_all(self.db.reader())
            .await
            .map_err(err)?
            .iter()
            .map(|r| Ok((r.try_get("workspace_id")?, r.try_get("id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)
    }

    async fn assign_if_unassigned(
        &self,
        conversation_id: &str,
        agent_id: &str,
        capacity: Option<u32>,
        reason: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let (conversation_id, agent_id, reason) = (
            conversation_id.to_owned(),
            agent_id.to_owned(),
            reason.to_owned(),
        );
        let postgres = self.db.kind() == DatabaseKind::Postgres;
        self.db
            .write_conn(move |mut conn| {
                Box::pin(async move {
                    assign_on(
                        &mut conn,
                        postgres,
                        &conversation_id,
                        &agent_id,
                        capacity,
                        &reason,
                    )
                    .await
                })
            })
            .await
            .map_err(err)
    }
}

/// `assign_if_unassigned` inside the caller's transaction.
async fn assign_on(
    conn: &mut Conn<'_>,
    postgres: bool,
    conversation_id: &str,
    agent_id: &str,
    capacity: Option<u32>,
    reason: &str,
) -> Result<Option<ConversationRecord>, sqlx::Error> {
    // On PostgreSQL, serialise assignments to one agent (a no-op UPDATE takes the row
    // lock), then count under that lock. SQLite has one writer, so the count is already
    // alone; there the UPDATE only rewrote the agent's row into the WAL at every
    // assignment.
    if postgres {
        conn.execute(
            "UPDATE users SET updated_at = updated_at WHERE id = $1",
            &[Arg::Text(agent_id)],
        )
        .await?;
    }
    if let Some(cap) = capacity {
        let load = conn
            .fetch_optional(
                "SELECT COUNT(*) AS n FROM conversations WHERE assignee_id = $1 \
                 AND status = 'open' AND inbox_id = \
                 (SELECT inbox_id FROM conversations WHERE id = $2)",
                &[Arg::Text(agent_id), Arg::Text(conversation_id)],
                |r| r.int("n"),
            )
            .await?
            .unwrap_or(0);
        if load >= i64::from(cap) {
            return Ok(None);
        }
    }
    let changed = conn
        .execute(
            "UPDATE conversations SET assignee_id = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'open' AND assignee_id IS NULL",
            &[
                Arg::Text(agent_id),
                Arg::Int(now_ms()),
                Arg::Text(conversation_id),
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    assignee_changed(conn, conversation_id, None, Some(agent_id), reason)
        .await
        .map(Some)
}

/// The router changed a conversation's assignee (`from` → `to`) in `tx`: its record now,
/// after writing the `conversation.assigned` audit entry.
async fn assignee_changed(
    conn: &mut Conn<'_>,
    conversation_id: &str,
    from: Option<&str>,
    to: Option<&str>,
    reason: &str,
) -> Result<ConversationRecord, sqlx::Error> {
    let record = conversation_on(conn, conversation_id)
        .await?
        .ok_or_else(|| sqlx::Error::Protocol("conversation vanished".into()))?;
    super::audit::record_on(
        conn,
        super::audit::Entry {
            workspace_id: &record.workspace_id,
            actor_id: None,
            action: "conversation.assigned",
            target_type: "conversation",
            target_id: conversation_id,
            details: serde_json::json!({"from": from, "to": to, "reason": reason}),
        },
    )
    .await?;
    Ok(record)
}

/// Read an inbox's routing pool (its members, or those of its routing team who are also
/// members, so that an assignee can always open the conversation; active users only;
/// each with their capacity override or the inbox default), per-agent open load, and
/// the waiting and assigned open conversations.
pub async fn routing_snapshot(
    pool: &sqlx::AnyPool,
    inbox_id: &str,
) -> Result<Option<RoutingSnapshot>, sqlx::Error> {
    let Some(inbox) = sqlx::query(
        "SELECT workspace_id, routing_mode, routing_capacity, routing_team_id, \
         offline_action, offline_grace_secs FROM inboxes WHERE id = $1",
    )
    .bind(inbox_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let workspace_id: String = inbox.try_get("workspace_id")?;
    let mode: String = inbox.try_get("routing_mode")?;
    let default_capacity: Option<i64> = inbox.try_get("routing_capacity")?;
    let team_id: Option<String> = inbox.try_get("routing_team_id")?;
    let return_after = (inbox.try_get::<String, _>("offline_action")? == "return").then(|| {
        std::time::Duration::from_secs(
            u64::try_from(inbox.try_get::<i64, _>("offline_grace_secs").unwrap_or(0)).unwrap_or(0),
        )
    });
    let members = match &team_id {
        Some(team) => {
            sqlx::query(
                "SELECT u.id AS user_id, im.capacity AS capacity FROM team_members tm \
                 JOIN users u ON u.id = tm.user_id AND u.active = 1 \
                 JOIN inbox_members im ON im.user_id = u.id AND im.inbox_id = $1 \
                 WHERE tm.team_id = $2 ORDER BY u.id",
            )
            .bind(inbox_id)
            .bind(team)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT u.id AS user_id, im.capacity AS capacity FROM inbox_members im \
                 JOIN users u ON u.id = im.user_id AND u.active = 1 \
                 WHERE im.inbox_id = $1 ORDER BY u.id",
            )
            .bind(inbox_id)
            .fetch_all(pool)
            .await?
        }
    };
    let loads: std::collections::HashMap<String, i64> = sqlx::query(
        "SELECT assignee_id, COUNT(*) AS n FROM conversations \
         WHERE inbox_id = $1 AND status = 'open' AND assignee_id IS NOT NULL \
         GROUP BY assignee_id",
    )
    .bind(inbox_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("assignee_id")?, r.try_get("n")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let to_u32 = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    let pool_members = members
        .iter()
        .map(|r| {
            let user_id: String = r.try_get("user_id")?;
            let capacity: Option<i64> = r.try_get("capacity")?;
            Ok(PoolMember {
                load: to_u32(loads.get(&user_id).copied().unwrap_or(0)),
                capacity: capacity.or(default_capacity).map(to_u32),
                user_id,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let waiting = sqlx::query(
        "SELECT id FROM conversations WHERE inbox_id = $1 AND status = 'open' \
         AND assignee_id IS NULL ORDER BY created_at, id LIMIT 10000",
    )
    .bind(inbox_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<Vec<String>, _>>()?;
    let assigned = sqlx::query(
        "SELECT id FROM conversations WHERE inbox_id = $1 AND status = 'open' \
         AND assignee_id IS NOT NULL",
    )
    .bind(inbox_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(RoutingSnapshot {
        workspace_id,
        round_robin: mode == "round_robin",
        pool: pool_members,
        waiting,
        assigned,
        return_after,
    }))
}

/// Set (or clear) a conversation's assignee; `None` when there is no such conversation.
pub async fn set_assignee<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
    assignee_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE conversations SET assignee_id = $1, updated_at = $2 \
         WHERE workspace_id = $3 AND id = $4",
    )
    .bind(assignee_id)
    .bind(now_ms())
    .bind(workspace_id)
    .bind(id)
    .execute(exec)
    .await?
    .rows_affected()
        > 0)
}

/// Open or close a conversation; false when there is no such conversation.
pub async fn set_status<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
    status: ConversationStatus,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE conversations SET status = $1, updated_at = $2 WHERE workspace_id = $3 AND id = $4",
    )
    .bind(enum_str(&status))
    .bind(now_ms())
    .bind(workspace_id)
    .bind(id)
    .execute(exec)
    .await?
    .rows_affected()
        > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The SQL store against the in-memory reference: for any sequence of batches, both
    //! assign the same gap-free `seq`s and treat the same `client_id`s as duplicates;
    //! concurrent writers (two pools on one database, as two nodes) keep `seq` gap-free
    //! and never store a `client_id` twice; a batch that fails halfway leaves nothing.
    //! Each runs on SQLite, and on PostgreSQL too when `PARLEY_TEST_POSTGRES_URL` is set.

    use std::sync::Arc;

    use parley_actors::protocol::{Channel, MessageKind};
    use parley_actors::store::memory::MemoryStore;
    use proptest::prelude::*;

    use super::*;
    use crate::config::Settings;
    use crate::store::{channels, inboxes, visitors, workspaces};

    /// One append: which conversation (0..3 exist, 3 does not, 4 is another
    /// workspace's) and which client id (None = no key).
    type Op = (usize, Option<u8>);

    fn new_message(ws: &str, conv: &str, client: Option<u8>, body: &str) -> NewMessage {
        NewMessage {
            workspace_id: ws.to_owned(),
            conversation_id: conv.to_owned(),
            kind: MessageKind::Message,
            sender: Participant {
                kind: ParticipantKind::Visitor,
                id: "v".into(),
                name: "Visitor".into(),
            },
            body: body.to_owned(),
            attachments: Vec::new(),
            channel: Channel::Chat,
            client_id: client.map(|c| format!("c{c}")),
        }
    }

    /// Per op: `None` (no conversation) or (seq, duplicate?); and the stored seqs of
    /// the three conversations.
    type Run = (Vec<Option<(u64, bool)>>, Vec<Vec<u64>>);

    async fn run(store: &dyn Store, ws: &str, convs: &[String], batches: &[Vec<Op>]) -> Run {
        let mut results = Vec::new();
        for batch in batches {
            let msgs = batch
                .iter()
                .map(|(c, k)| new_message(ws, &convs[*c], *k, &format!("{k:?}")))
                .collect();
            for r in store.append(msgs).await.unwrap() {
                results.push(match r {
                    Appended::New(m) => Some((m.seq, false)),
                    Appended::Duplicate(m) => Some((m.seq, true)),
                    Appended::NoConversation => None,
                });
            }
        }
        let mut stored = Vec::new();
        for c in &convs[..3] {
            let ms = store.messages_after(c, 0, 10_000).await.unwrap();
            stored.push(ms.iter().map(|m| m.seq).collect());
        }
        (results, stored)
    }

    /// A migrated database of either kind; the guard drops a PostgreSQL database.
    struct TestDb {
        db: Db,
        _dir: tempfile::TempDir,
        pg: Option<(String, String)>,
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some((admin, name)) = self.pg.take() {
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        use sqlx::Connection as _;
                        if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            )))
                            .execute(&mut c)
                            .await;
                        }
                    });
                })
                .join();
            }
        }
    }

    fn postgres_url() -> Option<String> {
        std::env::var("PARLEY_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
    }

    async fn test_db(postgres: bool) -> TestDb {
        use sqlx::Connection as _;
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![(
            "PARLEY__STORAGE__DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        )];
        let mut pg = None;
        if postgres {
            let admin = postgres_url().unwrap();
            let name = format!("parley_test_{}", uuid::Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut c)
                .await
                .unwrap();
            let base = admin.split('?').next().unwrap_or_default();
            let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
            env.push(("PARLEY__DATABASE__URL".into(), format!("{root}/{name}")));
            pg = Some((admin, name));
        }
        let settings = Settings::load_with_env(None, env).unwrap();
        let db = Db::connect(&settings).await.unwrap();
        db.migrate().await.unwrap();
        TestDb { db, _dir: dir, pg }
    }

    /// A second pool on the same database: another node.
    async fn other_node(t: &TestDb) -> Db {
        let mut env = vec![(
            "PARLEY__STORAGE__DATA_DIR".to_owned(),
            t._dir.path().display().to_string(),
        )];
        if let Some((admin, name)) = &t.pg {
            let base = admin.split('?').next().unwrap_or_default();
            let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
            env.push(("PARLEY__DATABASE__URL".into(), format!("{root}/{name}")));
        }
        Db::connect(&Settings::load_with_env(None, env).unwrap())
            .await
            .unwrap()
    }

    /// A workspace with `n` conversations.
    async fn conversations(db: &Db, n: usize) -> (String, Vec<String>) {
        let name = format!("W{}", uuid::Uuid::new_v4().simple());
        let ws = workspaces::insert(db.pool(), &name).await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        let routing = inboxes::Routing {
            mode: "manual".into(),
            capacity: None,
            team_id: None,
            offline_action: "keep".into(),
            offline_grace_secs: 0,
        };
        let inbox = inboxes::insert(&mut conn, &ws.id, "I", &routing, &[])
            .await
            .unwrap();
        let channel = channels::insert(
            &mut *conn,
            &ws.id,
            &inbox.id,
            "chat",
            "C",
            &serde_json::json!({}),
        )
        .await
        .unwrap();
        let visitor = visitors::create(&mut Conn::Sqlx(&mut conn), &channel, &name, "", "")
            .await
            .unwrap();
        drop(conn);
        let store = SqlStore::new(db.clone());
        let mut convs = Vec::new();
        for _ in 0..n {
            let c = store
                .create_conversation(NewConversation {
                    workspace_id: ws.id.clone(),
                    inbox_id: inbox.id.clone(),
                    channel_id: channel.id.clone(),
                    channel: Channel::Chat,
                    contact_id: visitor.contact_id.clone(),
                })
                .await
                .unwrap();
            convs.push(c.id);
        }
        (ws.id, convs)
    }

    async fn memory_store() -> (MemoryStore, Vec<String>) {
        let store = MemoryStore::default();
        let mut convs = Vec::new();
        for _ in 0..3 {
            let c = store
                .create_conversation(NewConversation {
                    workspace_id: "W".into(),
                    inbox_id: "I".into(),
                    channel_id: "C".into(),
                    channel: Channel::Chat,
                    contact_id: "K".into(),
                })
                .await
                .unwrap();
            convs.push(c.id);
        }
        // A conversation of another workspace.
        let other = store
            .create_conversation(NewConversation {
                workspace_id: "other".into(),
                inbox_id: "I".into(),
                channel_id: "C".into(),
                channel: Channel::Chat,
                contact_id: "K".into(),
            })
            .await
            .unwrap();
        convs.push("no-such-conversation".into());
        convs.push(other.id);
        (store, convs)
    }

    fn batches() -> impl Strategy<Value = Vec<Vec<Op>>> {
        prop::collection::vec(
            prop::collection::vec(
                (
                    prop_oneof![8 => 0usize..3, 1 => 3usize..5],
                    prop::option::of(0u8..12),
                ),
                1..40,
            ),
            1..8,
        )
    }

    fn check(batches: &[Vec<Op>], sql: &Run, mem: &Run) -> Result<(), TestCaseError> {
        prop_assert_eq!(sql, mem);
        for seqs in &sql.1 {
            let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
            prop_assert_eq!(seqs, &expected);
        }
        // Each distinct (conversation, client id) made exactly one message.
        let mut keys = std::collections::HashSet::new();
        let mut unkeyed = 0;
        for (c, k) in batches.iter().flatten().filter(|(c, _)| *c < 3) {
            match k {
                Some(k) => {
                    keys.insert((*c, *k));
                }
                None => unkeyed += 1,
            }
        }
        let stored: usize = sql.1.iter().map(Vec::len).sum();
        prop_assert_eq!(stored, keys.len() + unkeyed);
        Ok(())
    }

    /// Run `batches` on a fresh set of conversations of `db` and on a fresh reference.
    async fn compare(db: &Db, batches: &[Vec<Op>]) -> (Run, Run) {
        let (ws, mut convs) = conversations(db, 3).await;
        let (_, other) = conversations(db, 1).await;
        convs.push("no-such-conversation".into());
        convs.extend(other);
        let sql = run(&SqlStore::new(db.clone()), &ws, &convs, batches).await;
        let (mem_store, mconvs) = memory_store().await;
        let mem = run(&mem_store, "W", &mconvs, batches).await;
        (sql, mem)
    }

    /// A migrated in-memory SQLite database: no database file, so appends take the
    /// set-based statements (`append::SQLITE`) instead of the writer's direct connection.
    async fn in_memory_db() -> Db {
        let db = Db::in_memory_for_tests().await;
        db.migrate().await.unwrap();
        db
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn sql_store_matches_the_reference_and_keeps_seq_gap_free(batches in batches()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (sql, mem) = rt.block_on(async {
                let t = test_db(false).await;
                assert!(t.db.has_direct_writer(), "a database file has a direct writer");
                compare(&t.db, &batches).await
            });
            check(&batches, &sql, &mem)?;
        }

        #[test]
        fn set_based_sqlite_appends_match_the_reference_too(batches in batches()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (sql, mem) = rt.block_on(async {
                let db = in_memory_db().await;
                assert!(!db.has_direct_writer());
                compare(&db, &batches).await
            });
            check(&batches, &sql, &mem)?;
        }
    }

    #[test]
    fn postgres_store_matches_the_reference_and_keeps_seq_gap_free() {
        if postgres_url().is_none() {
            eprintln!("skipped: set PARLEY_TEST_POSTGRES_URL");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = rt.block_on(test_db(true));
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 24,
            ..ProptestConfig::default()
        });
        runner
            .run(&batches(), |batches| {
                let (sql, mem) = rt.block_on(compare(&t.db, &batches));
                check(&batches, &sql, &mem)
            })
            .unwrap();
        drop(t);
    }

    /// Two nodes (pools) × several tasks append into overlapping conversations with
    /// clients retrying the same `client_id`s concurrently, within and across batches.
    async fn concurrent_writers(postgres: bool) {
        let t = test_db(postgres).await;
        let (ws, convs) = conversations(&t.db, 6).await;
        let nodes: Vec<Arc<SqlStore>> = vec![
            Arc::new(SqlStore::new(t.db.clone())),
            Arc::new(SqlStore::new(other_node(&t).await)),
        ];
        let mut tasks = Vec::new();
        for task in 0..8usize {
            let store = nodes[task % 2].clone();
            let ws = ws.clone();
            let convs = convs.clone();
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for round in 0..15usize {
                    // Keys 0..40 per conversation: every key is sent by several tasks
                    // (retries of one client, possibly both nodes at once), sometimes
                    // twice in one batch.
                    let batch: Vec<NewMessage> = (0..12usize)
                        .map(|i| {
                            let c = (task + round + i) % convs.len();
                            let k = ((round * 7 + i * 3 + task) % 40) as u8;
                            new_message(&ws, &convs[c], Some(k), &format!("{c}/{k}"))
                        })
                        .collect();
                    let keys: Vec<(String, Option<String>)> = batch
                        .iter()
                        .map(|m| (m.conversation_id.clone(), m.client_id.clone()))
                        .collect();
                    let results = store.append(batch).await.unwrap();
                    for ((c, k), r) in keys.into_iter().zip(results) {
                        let m = r.message().unwrap().clone();
                        assert_eq!(m.conversation_id, c);
                        seen.push((c, k.unwrap(), m.id, m.seq));
                    }
                }
                seen
            }));
        }
        let mut by_key: std::collections::HashMap<(String, String), (String, u64)> =
            std::collections::HashMap::new();
        for t in tasks {
            for (c, k, id, seq) in t.await.unwrap() {
                let prev = by_key.entry((c, k)).or_insert((id.clone(), seq));
                assert_eq!(*prev, (id, seq), "one client_id answered two messages");
            }
        }
        let store = SqlStore::new(t.db.clone());
        let mut total = 0;
        for c in &convs {
            let ms = store.messages_after(c, 0, 10_000).await.unwrap();
            let seqs: Vec<u64> = ms.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=ms.len() as u64).collect::<Vec<_>>(), "gap-free");
            let record = store.conversation(c).await.unwrap().unwrap();
            assert_eq!(record.last_seq, ms.len() as u64);
            total += ms.len();
        }
        assert_eq!(total, by_key.len(), "one message per distinct client_id");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_on_sqlite_keep_seq_gap_free_and_keys_unique() {
        concurrent_writers(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_on_postgres_keep_seq_gap_free_and_keys_unique() {
        if postgres_url().is_none() {
            eprintln!("skipped: set PARLEY_TEST_POSTGRES_URL");
            return;
        }
        concurrent_writers(true).await;
    }

    /// A batch whose last insert fails (a trigger refuses the body `poison`) stores
    /// nothing and reserves no `seq`; the same messages without it then commit from 1.
    async fn a_failing_batch(postgres: bool) {
        let t = test_db(postgres).await;
        let poison = if postgres {
            vec![
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.body = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages \
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
            ]
        } else {
            vec![
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages \
                 WHEN NEW.body = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            ]
        };
        for sql in poison {
            sqlx::query(sql).execute(t.db.pool()).await.unwrap();
        }
        let (ws, convs) = conversations(&t.db, 2).await;
        let store = SqlStore::new(t.db.clone());
        let ok = store
            .append(vec![new_message(&ws, &convs[0], Some(1), "first")])
            .await
            .unwrap();
        assert_eq!(ok[0].message().unwrap().seq, 1);
        let batch = vec![
            new_message(&ws, &convs[0], Some(2), "a"),
            new_message(&ws, &convs[1], Some(2), "b"),
            new_message(&ws, &convs[0], Some(1), "repeat of first"),
            new_message(&ws, &convs[1], Some(3), "poison"),
        ];
        assert!(store.append(batch).await.is_err());
        for (c, last) in [(&convs[0], 1), (&convs[1], 0)] {
            let record = store.conversation(c).await.unwrap().unwrap();
            assert_eq!(record.last_seq, last, "the reservation was rolled back");
            assert_eq!(
                store.messages_after(c, 0, 100).await.unwrap().len() as u64,
                last
            );
        }
        // The senders retry (same client ids) without the poison.
        let retried = store
            .append(vec![
                new_message(&ws, &convs[0], Some(2), "a"),
                new_message(&ws, &convs[1], Some(2), "b"),
                new_message(&ws, &convs[0], Some(1), "repeat of first"),
            ])
            .await
            .unwrap();
        let got: Vec<(u64, bool)> = retried
            .iter()
            .map(|r| {
                (
                    r.message().unwrap().seq,
                    matches!(r, Appended::Duplicate(_)),
                )
            })
            .collect();
        assert_eq!(got, vec![(2, false), (1, false), (1, true)]);
    }

    #[tokio::test]
    async fn a_batch_failing_halfway_on_sqlite_stores_nothing() {
        a_failing_batch(false).await;
    }

    /// PostgreSQL's connections belong to the database's own runtime (`store::io`), not
    /// to the runtime that connected: the caller's runtime can end and the store still
    /// works from another one, and the statements run on the database's threads.
    #[test]
    fn postgres_statements_run_on_the_database_runtime() {
        if postgres_url().is_none() {
            eprintln!("skipped: set PARLEY_TEST_POSTGRES_URL");
            return;
        }
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let t = first.block_on(test_db(true));
        let (ws, convs) = first.block_on(conversations(&t.db, 1));
        drop(first);
        runtime().block_on(async {
            let thread =
                t.db.run(async {
                    Ok::<_, sqlx::Error>(std::thread::current().name().map(str::to_owned))
                })
                .await
                .unwrap();
            assert_eq!(thread.as_deref(), Some("parley-db"));
            let store = SqlStore::new(t.db.clone());
            let out = store
                .append(vec![new_message(&ws, &convs[0], Some(1), "after")])
                .await
                .unwrap();
            assert!(
                matches!(&out[..], [Appended::New(m)] if m.seq == 1),
                "{out:?}"
            );
            let n =
                t.db.read_optional("SELECT COUNT(*) AS n FROM messages", &[], |r| r.int("n"))
                    .await
                    .unwrap();
            assert_eq!(n, Some(1));
        });
    }

    /// On PostgreSQL no append scans `conversations`, even with plans made while the
    /// table held two rows and its statistics said so (see `store::append`: PostgreSQL
    /// keeps a prepared statement's generic plan, and a sequential scan is the cheapest
    /// plan for a tiny table).
    #[tokio::test]
    async fn postgres_appends_never_scan_the_conversations_table() {
        if postgres_url().is_none() {
            eprintln!("skipped: set PARLEY_TEST_POSTGRES_URL");
            return;
        }
        let t = test_db(true).await;
        let (ws, convs) = conversations(&t.db, 2).await;
        let store = SqlStore::new(t.db.clone());
        let append_all = |round: u8| {
            let msgs = convs
                .iter()
                .map(|c| new_message(&ws, c, Some(round), "x"))
                .collect();
            let store = &store;
            async move { store.append(msgs).await.unwrap() }
        };
        // Statistics of the tiny table, as autovacuum takes them early in a burst (a
        // sequential scan is then the cheapest plan), and more executions than
        // PostgreSQL needs before it settles on a generic plan (on every connection
        // they land on).
        sqlx::query("ANALYZE conversations")
            .execute(t.db.pool())
            .await
            .unwrap();
        for round in 0..64 {
            append_all(round).await;
        }
        sqlx::query(
            "INSERT INTO conversations (id, workspace_id, inbox_id, channel_id, contact_id, \
             status, assignee_id, last_seq, created_at, updated_at, last_message_at) \
             SELECT gen_random_uuid()::text, workspace_id, inbox_id, channel_id, contact_id, \
             status, NULL, 0, created_at, updated_at, last_message_at \
             FROM conversations, generate_series(1, 5000) WHERE id = $1",
        )
        .bind(&convs[0])
        .execute(t.db.pool())
        .await
        .unwrap();
        // The table's counters, once every backend has reported what it did: they
        // reach PostgreSQL's statistics when a backend goes idle (within a second or so).
        let db = &t.db;
        let counters = |updated_at_least: i64| async move {
            tokio::time::timeout(std::time::Duration::from_secs(30), async {
                loop {
                    let r = sqlx::query(
                        "SELECT seq_scan, n_tup_upd, n_tup_ins FROM pg_stat_user_tables \
                         WHERE relname = 'conversations'",
                    )
                    .fetch_one(db.reader())
                    .await
                    .unwrap();
                    let (scans, updated, inserted): (i64, i64, i64) =
                        (r.get("seq_scan"), r.get("n_tup_upd"), r.get("n_tup_ins"));
                    if updated >= updated_at_least && inserted >= 5_002 {
                        return (scans, updated);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
            .await
            .expect("the statistics were not reported within 30 s")
        };
        // Each round's reservation updates both conversations.
        let (scans_before, updated) = counters(128).await;
        for round in 64..96 {
            append_all(round).await;
        }
        let (scans_after, _) = counters(updated + 64).await;
        assert_eq!(
            scans_after,
            scans_before,
            "appends scanned `conversations` {} times",
            scans_after - scans_before
        );
    }

    #[tokio::test]
    async fn a_batch_failing_halfway_on_postgres_stores_nothing() {
        if postgres_url().is_none() {
            eprintln!("skipped: set PARLEY_TEST_POSTGRES_URL");
            return;
        }
        a_failing_batch(true).await;
    }
}
