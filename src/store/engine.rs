//! The SQL implementation of the engine's [`Store`] port.
//!
//! `append` runs a batch in one transaction. Per message: take the conversation's row
//! lock (a no-op UPDATE, once per conversation per batch), look the `client_id` up
//! (after the lock, so a concurrent writer's commit is seen), then increment
//! `last_seq` and insert. The increment and the insert commit together or not at all,
//! so `seq` is gap-free per conversation whichever node writes.

use std::collections::HashSet;

use parley_actors::protocol::{
    AgentProfile, Attachment, ConversationStatus, MessageObject, Participant, ParticipantKind,
};
use parley_actors::store::{
    Appended, ConversationRecord, NewConversation, NewMessage, PoolMember, RoutingSnapshot, Store,
    StoreError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row as _};

use super::{Db, new_id, now_ms, to_time};

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
pub fn conversation_from_row(r: &AnyRow) -> Result<ConversationRecord, sqlx::Error> {
    Ok(ConversationRecord {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        inbox_id: r.try_get("inbox_id")?,
        channel_id: r.try_get("channel_id")?,
        channel: parse_enum(&r.try_get::<String, _>("channel")?)?,
        contact_id: r.try_get("contact_id")?,
        status: parse_enum(&r.try_get::<String, _>("status")?)?,
        assignee_id: r.try_get("assignee_id")?,
        created_at: to_time(r.try_get("created_at")?),
        last_message_at: to_time(r.try_get("last_message_at")?),
        last_seq: u64::try_from(r.try_get::<i64, _>("last_seq")?).unwrap_or(0),
        assignee: match (
            r.try_get::<Option<String>, _>("assignee_id")?,
            r.try_get::<Option<String>, _>("assignee_name")?,
        ) {
            (Some(id), Some(name)) => Some(AgentProfile {
                id,
                name,
                avatar_url: r.try_get("assignee_avatar_url")?,
                meeting_link: r.try_get("assignee_meeting_link")?,
            }),
            _ => None,
        },
    })
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, kind, sender_type, sender_id, \
    sender_name, body, attachments, channel, created_at";

/// Decode a row of [`MESSAGE_COLUMNS`].
pub fn message_from_row(r: &AnyRow) -> Result<MessageObject, sqlx::Error> {
    let attachments: String = r.try_get("attachments")?;
    Ok(MessageObject {
        id: r.try_get("id")?,
        conversation_id: r.try_get("conversation_id")?,
        seq: u64::try_from(r.try_get::<i64, _>("seq")?).unwrap_or(0),
        kind: parse_enum(&r.try_get::<String, _>("kind")?)?,
        sender: Participant {
            kind: parse_enum::<ParticipantKind>(&r.try_get::<String, _>("sender_type")?)?,
            id: r
                .try_get::<Option<String>, _>("sender_id")?
                .unwrap_or_default(),
            name: r.try_get("sender_name")?,
        },
        body: r.try_get("body")?,
        attachments: serde_json::from_str::<Vec<Attachment>>(&attachments)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        channel: parse_enum(&r.try_get::<String, _>("channel")?)?,
        created_at: to_time(r.try_get("created_at")?),
    })
}

/// Read a conversation of any workspace (the engine checks the workspace itself).
pub async fn get_conversation<'c>(
    exec: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ConversationRecord>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c {CONVERSATION_JOINS} \
         WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(conversation_from_row)
    .transpose()
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

/// Messages after `after_seq`, oldest first.
pub async fn messages_after<'c>(
    exec: impl Executor<'c, Database = Any>,
    conversation_id: &str,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<MessageObject>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3"
    )))
    .bind(conversation_id)
    .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(exec)
    .await?
    .iter()
    .map(message_from_row)
    .collect()
}

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<ConversationRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO conversations (id, workspace_id, inbox_id, channel_id, contact_id, \
             status, assignee_id, last_seq, created_at, updated_at, last_message_at) \
             VALUES ($1, $2, $3, $4, $5, 'open', NULL, 0, $6, $6, $6)",
        )
        .bind(&id)
        .bind(&new.workspace_id)
        .bind(&new.inbox_id)
        .bind(&new.channel_id)
        .bind(&new.contact_id)
        .bind(now)
        .execute(self.db.pool())
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
        get_conversation(self.db.pool(), id).await.map_err(err)
    }

    async fn append(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.db.pool().begin().await.map_err(err)?;
        let mut locked: HashSet<String> = HashSet::new();
        let mut missing: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            if missing.contains(&m.conversation_id) {
                out.push(Appended::NoConversation);
                continue;
            }
            if !locked.contains(&m.conversation_id) {
                let n = sqlx::query(
                    "UPDATE conversations SET updated_at = updated_at \
                     WHERE id = $1 AND workspace_id = $2",
                )
                .bind(&m.conversation_id)
                .bind(&m.workspace_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
                if n == 0 {
                    missing.insert(m.conversation_id.clone());
                    out.push(Appended::NoConversation);
                    continue;
                }
                locked.insert(m.conversation_id.clone());
            }
            if let Some(client_id) = &m.client_id {
                let prev = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE conversation_id = $1 AND client_id = $2"
                )))
                .bind(&m.conversation_id)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
                if let Some(row) = prev {
                    out.push(Appended::Duplicate(message_from_row(&row).map_err(err)?));
                    continue;
                }
            }
            let now = now_ms();
            let seq: i64 = sqlx::query(
                "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $1, \
                 updated_at = $1 WHERE id = $2 RETURNING last_seq",
            )
            .bind(now)
            .bind(&m.conversation_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?
            .try_get("last_seq")
            .map_err(err)?;
            let id = new_id();
            sqlx::query(
                "INSERT INTO messages (id, workspace_id, conversation_id, seq, kind, sender_type, \
                 sender_id, sender_name, body, attachments, channel, client_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&id)
            .bind(&m.workspace_id)
            .bind(&m.conversation_id)
            .bind(seq)
            .bind(enum_str(&m.kind))
            .bind(enum_str(&m.sender.kind))
            .bind(&m.sender.id)
            .bind(&m.sender.name)
            .bind(&m.body)
            .bind(serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into()))
            .bind(enum_str(&m.channel))
            .bind(&m.client_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            out.push(Appended::New(MessageObject {
                id,
                conversation_id: m.conversation_id,
                seq: u64::try_from(seq).unwrap_or(0),
                kind: m.kind,
                sender: m.sender,
                body: m.body,
                attachments: m.attachments,
                channel: m.channel,
                created_at: to_time(now),
            }));
        }
        tx.commit().await.map_err(err)?;
        Ok(out)
    }

    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<MessageObject>, StoreError> {
        messages_after(self.db.pool(), conversation_id, after_seq, limit)
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
        super::uploads::claim(self.db.pool(), ids, kind, &uploader.id, conversation_id)
            .await
            .map_err(err)
    }

    async fn routing_snapshot(
        &self,
        inbox_id: &str,
    ) -> Result<Option<RoutingSnapshot>, StoreError> {
        routing_snapshot(self.db.pool(), inbox_id)
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
            let record = get_conversation(&mut *tx, &id)
                .await
                .map_err(err)?
                .ok_or_else(|| StoreError("conversation vanished".into()))?;
            super::audit::record(
                &mut *tx,
                super::audit::Entry {
                    workspace_id: &record.workspace_id,
                    actor_id: None,
                    action: "conversation.assigned",
                    target_type: "conversation",
                    target_id: &id,
                    details: serde_json::json!({"from": agent_id, "to": null, "reason": reason}),
                },
            )
            .await
            .map_err(err)?;
            out.push(record);
        }
        tx.commit().await.map_err(err)?;
        Ok(out)
    }

    async fn round_robin_inboxes(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query("SELECT workspace_id, id FROM inboxes WHERE routing_mode = 'round_robin'")
            .fetch_all(self.db.pool())
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
        let mut tx = self.db.pool().begin().await.map_err(err)?;
        // Serialise assignments to one agent (a no-op UPDATE takes the row lock on
        // PostgreSQL; SQLite has one writer anyway), then count under that lock.
        sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
            .bind(agent_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if let Some(cap) = capacity {
            let load: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM conversations WHERE assignee_id = $1 \
                 AND status = 'open' AND inbox_id = \
                 (SELECT inbox_id FROM conversations WHERE id = $2)",
            )
            .bind(agent_id)
            .bind(conversation_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)?;
            if load >= i64::from(cap) {
                return Ok(None);
            }
        }
        let changed = sqlx::query(
            "UPDATE conversations SET assignee_id = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'open' AND assignee_id IS NULL",
        )
        .bind(agent_id)
        .bind(now_ms())
        .bind(conversation_id)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let record = get_conversation(&mut *tx, conversation_id)
            .await
            .map_err(err)?
            .ok_or_else(|| StoreError("conversation vanished".into()))?;
        super::audit::record(
            &mut *tx,
            super::audit::Entry {
                workspace_id: &record.workspace_id,
                actor_id: None,
                action: "conversation.assigned",
                target_type: "conversation",
                target_id: conversation_id,
                details: serde_json::json!({"from": null, "to": agent_id, "reason": reason}),
            },
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Some(record))
    }
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
    //! assign the same gap-free `seq`s and treat the same `client_id`s as duplicates.

    use parley_actors::protocol::{Channel, MessageKind};
    use parley_actors::store::memory::MemoryStore;
    use proptest::prelude::*;

    use super::*;
    use crate::config::Settings;
    use crate::store::{channels, inboxes, visitors, workspaces};

    /// One append: which conversation (0..3) and which client id (None = no key).
    type Op = (usize, Option<u8>);

    fn new_message(ws: &str, conv: &str, client: Option<u8>) -> NewMessage {
        NewMessage {
            workspace_id: ws.to_owned(),
            conversation_id: conv.to_owned(),
            kind: MessageKind::Message,
            sender: Participant {
                kind: ParticipantKind::Visitor,
                id: "v".into(),
                name: "Visitor".into(),
            },
            body: format!("{client:?}"),
            attachments: Vec::new(),
            channel: Channel::Chat,
            client_id: client.map(|c| format!("c{c}")),
        }
    }

    /// (seq, duplicate?) per op, and the stored seqs per conversation.
    type Run = (Vec<(u64, bool)>, Vec<Vec<u64>>);

    async fn run(store: &dyn Store, ws: &str, convs: &[String], batches: &[Vec<Op>]) -> Run {
        let mut results = Vec::new();
        for batch in batches {
            let msgs = batch
                .iter()
                .map(|(c, k)| new_message(ws, &convs[*c], *k))
                .collect();
            for r in store.append(msgs).await.unwrap() {
                results.push(match r {
                    Appended::New(m) => (m.seq, false),
                    Appended::Duplicate(m) => (m.seq, true),
                    Appended::NoConversation => panic!("conversation exists"),
                });
            }
        }
        let mut stored = Vec::new();
        for c in convs {
            let ms = store.messages_after(c, 0, 10_000).await.unwrap();
            stored.push(ms.iter().map(|m| m.seq).collect());
        }
        (results, stored)
    }

    async fn sqlite_store(dir: &std::path::Path) -> (SqlStore, String, Vec<String>) {
        let settings = Settings::load_with_env(
            None,
            [(
                "PARLEY__STORAGE__DATA_DIR".to_owned(),
                dir.display().to_string(),
            )],
        )
        .unwrap();
        let db = Db::connect(&settings).await.unwrap();
        db.migrate().await.unwrap();
        let ws = workspaces::insert(db.pool(), "W").await.unwrap();
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
        let visitor = visitors::create(&mut conn, &ws.id, &channel.id, "h", "", "")
            .await
            .unwrap();
        drop(conn);
        let store = SqlStore::new(db);
        let mut convs = Vec::new();
        for _ in 0..3 {
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
        (store, ws.id, convs)
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
        (store, convs)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn sql_store_matches_the_reference_and_keeps_seq_gap_free(
            batches in prop::collection::vec(
                prop::collection::vec((0usize..3, prop::option::of(0u8..12)), 1..12),
                1..8,
            )
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let (sql, mem) = rt.block_on(async {
                let (sql_store, ws, convs) = sqlite_store(dir.path()).await;
                let sql = run(&sql_store, &ws, &convs, &batches).await;
                let (mem_store, mconvs) = memory_store().await;
                let mem = run(&mem_store, "W", &mconvs, &batches).await;
                (sql, mem)
            });
            prop_assert_eq!(&sql, &mem);
            for seqs in &sql.1 {
                let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
                prop_assert_eq!(seqs, &expected);
            }
            // Each distinct (conversation, client id) made exactly one message.
            let mut keys = std::collections::HashSet::new();
            let mut unkeyed = 0;
            for (c, k) in batches.iter().flatten() {
                match k {
                    Some(k) => { keys.insert((*c, *k)); }
                    None => unkeyed += 1,
                }
            }
            let stored: usize = sql.1.iter().map(Vec::len).sum();
            prop_assert_eq!(stored, keys.len() + unkeyed);
        }
    }
}
