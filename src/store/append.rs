//! The durable write path: one group commit of the engine's Writer, as one transaction.
//! PostgreSQL (and SQLite `:memory:`) run it as set-based statements whatever the batch
//! size (below); SQLite with a database file runs the same steps per row on the writer
//! thread's own connection ([`append_direct`]). Both share the planning ([`plan`],
//! [`number`], [`answer`]).
//!
//! 1. **Lock** the batch's conversations (PostgreSQL: `SELECT … ORDER BY id FOR UPDATE`,
//!    in id order so that two nodes locking overlapping sets cannot deadlock; SQLite:
//!    the group commit's `BEGIN IMMEDIATE` holds the database's write lock) and read
//!    their workspaces.
//! 2. **Deduplicate**: one `SELECT` of the messages already stored under the batch's
//!    `(conversation_id, client_id)` pairs. It runs after the lock, so a commit of the
//!    same `client_id` by another node (or lane) that finished first is seen. Repeats
//!    inside the batch answer the batch's first message with that key.
//! 3. **Reserve** `seq`s: one `UPDATE conversations SET last_seq = last_seq + n …
//!    RETURNING last_seq` for every conversation of the batch at once; conversation
//!    `c` with `n` new messages gets `last_seq - n + 1 ..= last_seq`.
//! 4. **Insert** every new message with one statement.
//! 5. **Commit**. The reservation and the inserts commit together or not at all, so
//!    `seq` stays gap-free per conversation whichever node writes; a failure anywhere
//!    rolls the whole batch back and every sender of the batch gets the error.
//!
//! On PostgreSQL each statement names its plan's shape: the lock and the reservation
//! find the batch's conversations through `id = ANY (ARRAY(…))` (an index scan on the
//! primary key) and the deduplication probes the `(conversation_id, client_id)` index
//! once per key (`CROSS JOIN LATERAL … LIMIT 1`). Written as plain joins, the planner
//! (which guesses 100 rows for any JSON function) chose hash joins over a sequential
//! scan of `conversations` and `messages` once they held a few thousand rows: in a
//! 10,000-visitor burst the deduplication alone took 13 ms a batch, and PostgreSQL's
//! CPU was what limited the burst. The statements are prepared once per connection,
//! and PostgreSQL settles on a generic plan after a statement's fifth execution and
//! keeps it: one made while `conversations` held a few rows (the start of a burst)
//! filtered every row of the table against the batch's ids, 3.1–3.3 ms a batch at
//! 10,000 conversations. So the append's transaction opens with `SET LOCAL
//! enable_seqscan = off` (in the same round trip as its `BEGIN`): whatever the table's
//! size when a plan is made, it is the index lookup the statement names.
//!
//! Rows go to the database as one JSON document per statement (`json_to_recordset` on
//! PostgreSQL, `jsonb_each` on SQLite) rather than one bind variable per value: the
//! statement text is the same for every batch size, so each connection prepares it once
//! and reuses it, and no batch can exceed a backend's bind-variable limit. `jsonb_each`
//! parses the document once and hands each row over as a JSONB blob, so the per-column
//! `json_extract` calls do not parse the row's text again, as they did under
//! `json_each` (a third of the writer's CPU in a burst).

use std::collections::HashMap;

use parley_actors::protocol::{Attachment, MessageObject, Participant, ParticipantKind};
use parley_actors::store::{Appended, NewMessage};
use serde::Serialize;
use sqlx::{AnyConnection, Row as _};

use super::conn::direct_error;
use super::engine::{enum_str, message_from_row, parse_enum};
use super::{Db, new_id, now_ms, to_time};
use crate::config::DatabaseKind;

/// The statements of one batch, in one backend's dialect.
struct AppendSql {
    lock: &'static str,
    dedup: &'static str,
    reserve: &'static str,
    insert: &'static str,
    /// What opens the transaction (PostgreSQL; see the module docs).
    begin: Option<&'static str>,
}

const POSTGRES: AppendSql = AppendSql {
    lock: "SELECT id, workspace_id FROM conversations \
           WHERE id = ANY (ARRAY(SELECT json_array_elements_text($1::text::json))) \
           ORDER BY id FOR UPDATE",
    dedup: "SELECT m.id AS id, m.conversation_id AS conversation_id, m.seq AS seq, \
            m.kind AS kind, m.sender_type AS sender_type, m.sender_id AS sender_id, \
            m.sender_name AS sender_name, m.body AS body, m.attachments AS attachments, \
            m.channel AS channel, m.created_at AS created_at, m.client_id AS client_id \
            FROM json_to_recordset($1::text::json) AS k(c text, k text) \
            CROSS JOIN LATERAL (SELECT * FROM messages \
            WHERE conversation_id = k.c AND client_id = k.k LIMIT 1) AS m",
    reserve: "UPDATE conversations SET last_seq = conversations.last_seq + x.n, \
              last_message_at = $2, updated_at = $2 \
              FROM json_to_recordset($1::text::json) AS x(id text, n bigint) \
              WHERE conversations.id = x.id \
              AND conversations.id = ANY (ARRAY(SELECT j.id \
              FROM json_to_recordset($1::text::json) AS j(id text))) \
              RETURNING conversations.id AS id, conversations.last_seq AS last_seq",
    insert: "INSERT INTO messages (id, workspace_id, conversation_id, seq, kind, sender_type, \
             sender_id, sender_name, body, attachments, channel, client_id, created_at) \
             SELECT id, workspace_id, conversation_id, seq, kind, sender_type, sender_id, \
             sender_name, body, attachments, channel, client_id, created_at \
             FROM json_to_recordset($1::text::json) AS x(id text, workspace_id text, \
             conversation_id text, seq bigint, kind text, sender_type text, sender_id text, \
             sender_name text, body text, attachments text, channel text, client_id text, \
             created_at bigint)",
    begin: Some("BEGIN; SET LOCAL enable_seqscan = off"),
};

const SQLITE: AppendSql = AppendSql {
    // CROSS JOIN makes SQLite loop over the batch's ids and probe the primary key for
    // each (`IN (SELECT … json_each)` was planned as a scan of every conversation).
    lock: "SELECT c.id AS id, c.workspace_id AS workspace_id \
           FROM jsonb_each($1) AS j CROSS JOIN conversations c ON c.id = j.value",
    dedup: "SELECT m.id AS id, m.conversation_id AS conversation_id, m.seq AS seq, \
            m.kind AS kind, m.sender_type AS sender_type, m.sender_id AS sender_id, \
            m.sender_name AS sender_name, m.body AS body, m.attachments AS attachments, \
            m.channel AS channel, m.created_at AS created_at, m.client_id AS client_id \
            FROM jsonb_each($1) AS k \
            JOIN messages m ON m.conversation_id = json_extract(k.value, '$.c') \
            AND m.client_id = json_extract(k.value, '$.k')",
    reserve: "UPDATE conversations SET last_seq = last_seq + x.n, \
              last_message_at = $2, updated_at = $2 \
              FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.n') AS n \
                    FROM jsonb_each($1)) AS x \
              WHERE conversations.id = x.id \
              AND conversations.id IN (SELECT json_extract(value, '$.id') FROM jsonb_each($1)) \
              RETURNING id, last_seq",
    insert: "INSERT INTO messages (id, workspace_id, conversation_id, seq, kind, sender_type, \
             sender_id, sender_name, body, attachments, channel, client_id, created_at) \
             SELECT json_extract(value, '$.id'), json_extract(value, '$.workspace_id'), \
             json_extract(value, '$.conversation_id'), json_extract(value, '$.seq'), \
             json_extract(value, '$.kind'), json_extract(value, '$.sender_type'), \
             json_extract(value, '$.sender_id'), json_extract(value, '$.sender_name'), \
             json_extract(value, '$.body'), json_extract(value, '$.attachments'), \
             json_extract(value, '$.channel'), json_extract(value, '$.client_id'), \
             json_extract(value, '$.created_at') FROM jsonb_each($1)",
    begin: None,
};

/// A `(conversation_id, client_id)` pair to look up.
#[derive(Serialize)]
struct Key<'a> {
    c: &'a str,
    k: &'a str,
}

/// How many `seq`s a conversation needs.
#[derive(Serialize)]
struct Reserve<'a> {
    id: &'a str,
    n: u64,
}

/// One row of `messages`.
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    workspace_id: &'a str,
    conversation_id: &'a str,
    seq: i64,
    kind: String,
    sender_type: String,
    sender_id: &'a str,
    sender_name: &'a str,
    body: &'a str,
    attachments: String,
    channel: String,
    client_id: Option<&'a str>,
    created_at: i64,
}

/// What becomes of one message of the batch.
enum Plan {
    NoConversation,
    /// Stored before this batch.
    Stored(MessageObject),
    /// A repeat of the batch's message at this index.
    RepeatOf(usize),
    /// New: its `seq` comes from the reservation.
    New,
}

fn to_json<T: Serialize>(v: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Append a batch in one transaction; results are in the batch's order. On SQLite the
/// transaction joins the group commit of every write ([`Db::write`]); with a database
/// file it runs on the writer's own connection ([`Db::write_direct`], [`append_direct`]).
pub async fn append_batch(db: &Db, batch: Vec<NewMessage>) -> Result<Vec<Appended>, sqlx::Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match db.kind() {
        DatabaseKind::Postgres => &POSTGRES,
        DatabaseKind::Sqlite if db.has_direct_writer() => {
            return db
                .write_direct(move |conn| append_direct(conn, batch).map_err(direct_error))
                .await;
        }
        DatabaseKind::Sqlite => &SQLITE,
    };
    db.write_begun_by(sql.begin, move |conn| Box::pin(append_on(conn, sql, batch)))
        .await
}

/// Steps 1–4 on `tx`, inside the caller's transaction.
async fn append_on(
    tx: &mut AnyConnection,
    sql: &'static AppendSql,
    batch: Vec<NewMessage>,
) -> Result<Vec<Appended>, sqlx::Error> {
    // 1. Lock the conversations and learn their workspaces.
    let mut ids: Vec<&str> = batch.iter().map(|m| m.conversation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let workspaces: HashMap<String, String> = sqlx::query(sql.lock)
        .bind(to_json(&ids)?)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("workspace_id")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let exists = |m: &NewMessage| {
        workspaces
            .get(&m.conversation_id)
            .is_some_and(|ws| *ws == m.workspace_id)
    };

    // 2. The keys stored before.
    let keys: Vec<Key<'_>> = keys_to_look_up(&batch, exists)
        .into_iter()
        .map(|(c, k)| Key { c, k })
        .collect();
    let mut stored: HashMap<(String, String), MessageObject> = HashMap::new();
    if !keys.is_empty() {
        for r in sqlx::query(sql.dedup)
            .bind(to_json(&keys)?)
            .fetch_all(&mut *tx)
            .await?
        {
            let client_id: String = r.try_get("client_id")?;
            let m = message_from_row(&r)?;
            stored.insert((m.conversation_id.clone(), client_id), m);
        }
    }

    // 3. Plan every message and count what each conversation needs.
    let (plans, needed) = plan(&batch, exists, stored);

    // 4. Reserve the seqs.
    let now = now_ms();
    let mut next_seq: HashMap<String, i64> = HashMap::with_capacity(needed.len());
    if !needed.is_empty() {
        let reserve: Vec<Reserve<'_>> =
            needed.iter().map(|(id, n)| Reserve { id, n: *n }).collect();
        for r in sqlx::query(sql.reserve)
            .bind(to_json(&reserve)?)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?
        {
            let id: String = r.try_get("id")?;
            let last: i64 = r.try_get("last_seq")?;
            let n = needed.get(id.as_str()).copied().unwrap_or(0);
            next_seq.insert(id, first_of_reservation(last, n));
        }
        if next_seq.len() != needed.len() {
            return Err(sqlx::Error::Protocol(
                "a locked conversation was not updated".into(),
            ));
        }
    }

    // 5. Insert the new messages.
    let (mut ids, seqs) = number(&batch, &plans, &mut next_seq)?;
    let rows: Vec<Row<'_>> = batch
        .iter()
        .zip(&plans)
        .enumerate()
        .filter(|(_, (_, plan))| matches!(plan, Plan::New))
        .map(|(i, (m, _))| Row {
            id: &ids[i],
            workspace_id: &m.workspace_id,
            conversation_id: &m.conversation_id,
            seq: seqs[i],
            kind: enum_str(&m.kind),
            sender_type: enum_str(&m.sender.kind),
            sender_id: &m.sender.id,
            sender_name: &m.sender.name,
            body: &m.body,
            attachments: attachments_json(m),
            channel: enum_str(&m.channel),
            client_id: m.client_id.as_deref(),
            created_at: now,
        })
        .collect();
    if !rows.is_empty() {
        let inserted = sqlx::query(sql.insert)
            .bind(to_json(&rows)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted != rows.len() as u64 {
            return Err(sqlx::Error::Protocol(format!(
                "inserted {inserted} of {} messages",
                rows.len()
            )));
        }
    }
    drop(rows);

    // 6. Answer (the caller commits, and only then passes the answers on).
    Ok(answer(batch, plans, &mut ids, &seqs, now))
}

/// The same steps on SQLite's writer connection, one prepared statement per row: the
/// statements are prepared once per connection and bound column by column, so nothing
/// is encoded as JSON or parsed back, and the whole batch runs on the writer's thread
/// without a hand-off per statement (see `write.rs`). SQLite needs no lock step: the
/// group commit's `BEGIN IMMEDIATE` holds the database's write lock.
pub(super) fn append_direct(
    conn: &rusqlite::Connection,
    batch: Vec<NewMessage>,
) -> rusqlite::Result<Vec<Appended>> {
    use rusqlite::OptionalExtension as _;

    // 1. The workspace of each conversation.
    let mut workspaces: HashMap<&str, String> = HashMap::new();
    {
        let mut select = conn.prepare_cached(DIRECT_WORKSPACE)?;
        for m in &batch {
            let id = m.conversation_id.as_str();
            if workspaces.contains_key(id) {
                continue;
            }
            if let Some(ws) = select.query_row([id], |r| r.get(0)).optional()? {
                workspaces.insert(id, ws);
            }
        }
    }
    let exists = |m: &NewMessage| {
        workspaces
            .get(m.conversation_id.as_str())
            .is_some_and(|ws| *ws == m.workspace_id)
    };

    // 2. The keys stored before.
    let mut stored: HashMap<(String, String), MessageObject> = HashMap::new();
    {
        let mut select = conn.prepare_cached(DIRECT_DEDUP)?;
        for (c, k) in keys_to_look_up(&batch, exists) {
            if let Some(m) = select.query_row([c, k], message_from_direct).optional()? {
                stored.insert((c.to_owned(), k.to_owned()), m);
            }
        }
    }

    // 3. Plan.
    let (plans, needed) = plan(&batch, exists, stored);

    // 4. Reserve.
    let now = now_ms();
    let mut next_seq: HashMap<String, i64> = HashMap::with_capacity(needed.len());
    {
        let mut reserve = conn.prepare_cached(DIRECT_RESERVE)?;
        for (id, n) in &needed {
            let n_sql = i64::try_from(*n).unwrap_or(i64::MAX);
            let last: i64 = reserve.query_row(rusqlite::params![n_sql, now, id], |r| r.get(0))?;
            next_seq.insert((*id).to_owned(), first_of_reservation(last, *n));
        }
    }

    // 5. Insert.
    let (mut ids, seqs) = number(&batch, &plans, &mut next_seq)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    {
        let mut insert = conn.prepare_cached(DIRECT_INSERT)?;
        for (i, (m, plan)) in batch.iter().zip(&plans).enumerate() {
            if !matches!(plan, Plan::New) {
                continue;
            }
            insert.execute(rusqlite::params![
                ids[i],
                m.workspace_id,
                m.conversation_id,
                seqs[i],
                enum_str(&m.kind),
                enum_str(&m.sender.kind),
                m.sender.id,
                m.sender.name,
                m.body,
                attachments_json(m),
                enum_str(&m.channel),
                m.client_id,
                now,
            ])?;
        }
    }

    // 6. Answer.
    Ok(answer(batch, plans, &mut ids, &seqs, now))
}

const DIRECT_WORKSPACE: &str = "SELECT workspace_id FROM conversations WHERE id = ?1";
const DIRECT_DEDUP: &str = "SELECT id, conversation_id, seq, kind, sender_type, sender_id, \
     sender_name, body, attachments, channel, created_at FROM messages \
     WHERE conversation_id = ?1 AND client_id = ?2";
const DIRECT_RESERVE: &str = "UPDATE conversations SET last_seq = last_seq + ?1, \
     last_message_at = ?2, updated_at = ?2 WHERE id = ?3 RETURNING last_seq";
const DIRECT_INSERT: &str = "INSERT INTO messages (id, workspace_id, conversation_id, seq, \
     kind, sender_type, sender_id, sender_name, body, attachments, channel, client_id, \
     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Decode a row of [`DIRECT_DEDUP`].
fn message_from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageObject> {
    fn decoded<T>(column: usize, v: Result<T, sqlx::Error>) -> rusqlite::Result<T> {
        v.map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                e.to_string().into(),
            )
        })
    }
    let attachments: String = r.get(8)?;
    Ok(MessageObject {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        kind: decoded(3, parse_enum(&r.get::<_, String>(3)?))?,
        sender: Participant {
            kind: decoded(4, parse_enum::<ParticipantKind>(&r.get::<_, String>(4)?))?,
            id: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
            name: r.get(6)?,
        },
        body: r.get(7)?,
        attachments: decoded(
            8,
            serde_json::from_str::<Vec<Attachment>>(&attachments)
                .map_err(|e| sqlx::Error::Decode(Box::new(e))),
        )?,
        channel: decoded(9, parse_enum(&r.get::<_, String>(9)?))?,
        created_at: to_time(r.get(10)?),
    })
}

/// The distinct `(conversation_id, client_id)` keys of the batch's messages to existing
/// conversations, sorted.
fn keys_to_look_up(
    batch: &[NewMessage],
    exists: impl Fn(&NewMessage) -> bool,
) -> Vec<(&str, &str)> {
    let mut keys: Vec<(&str, &str)> = batch
        .iter()
        .filter(|m| exists(m))
        .filter_map(|m| {
            m.client_id
                .as_deref()
                .map(|k| (m.conversation_id.as_str(), k))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What becomes of each message, given which conversations exist and what is stored
/// under the batch's keys; and how many `seq`s each conversation needs.
fn plan(
    batch: &[NewMessage],
    exists: impl Fn(&NewMessage) -> bool,
    mut stored: HashMap<(String, String), MessageObject>,
) -> (Vec<Plan>, HashMap<&str, u64>) {
    let mut plans = Vec::with_capacity(batch.len());
    let mut first_of_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut needed: HashMap<&str, u64> = HashMap::new();
    for (i, m) in batch.iter().enumerate() {
        if !exists(m) {
            plans.push(Plan::NoConversation);
            continue;
        }
        if let Some(k) = m.client_id.as_deref() {
            if let Some(prev) = stored.remove(&(m.conversation_id.clone(), k.to_owned())) {
                // Later repeats in this batch find it through `first_of_key`.
                first_of_key.insert((&m.conversation_id, k), i);
                plans.push(Plan::Stored(prev));
                continue;
            }
            if let Some(&first) = first_of_key.get(&(m.conversation_id.as_str(), k)) {
                plans.push(Plan::RepeatOf(first));
                continue;
            }
            first_of_key.insert((&m.conversation_id, k), i);
        }
        *needed.entry(&m.conversation_id).or_default() += 1;
        plans.push(Plan::New);
    }
    (plans, needed)
}

/// The first `seq` of a reservation of `n` that ended at `last`.
fn first_of_reservation(last: i64, n: u64) -> i64 {
    last - i64::try_from(n).unwrap_or(i64::MAX) + 1
}

/// A new id and the next reserved `seq` for every new message (empty and 0 for the
/// others), in the batch's order.
fn number(
    batch: &[NewMessage],
    plans: &[Plan],
    next_seq: &mut HashMap<String, i64>,
) -> Result<(Vec<String>, Vec<i64>), sqlx::Error> {
    let mut ids: Vec<String> = Vec::with_capacity(batch.len());
    let mut seqs: Vec<i64> = Vec::with_capacity(batch.len());
    for (m, plan) in batch.iter().zip(plans) {
        if matches!(plan, Plan::New) {
            let next = next_seq.get_mut(&m.conversation_id).ok_or_else(|| {
                sqlx::Error::Protocol("no seq reserved for a conversation".into())
            })?;
            seqs.push(*next);
            *next += 1;
            ids.push(new_id());
        } else {
            seqs.push(0);
            ids.push(String::new());
        }
    }
    Ok((ids, seqs))
}

fn attachments_json(m: &NewMessage) -> String {
    serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into())
}

/// Each message's result, in the batch's order.
fn answer(
    batch: Vec<NewMessage>,
    plans: Vec<Plan>,
    ids: &mut [String],
    seqs: &[i64],
    now: i64,
) -> Vec<Appended> {
    let mut out: Vec<Appended> = Vec::with_capacity(batch.len());
    for (i, (m, plan)) in batch.into_iter().zip(plans).enumerate() {
        let result = match plan {
            Plan::NoConversation => Appended::NoConversation,
            Plan::Stored(prev) => Appended::Duplicate(prev),
            Plan::RepeatOf(first) => match out.get(first).and_then(Appended::message) {
                Some(msg) => Appended::Duplicate(msg.clone()),
                None => Appended::NoConversation,
            },
            Plan::New => Appended::New(MessageObject {
                id: std::mem::take(&mut ids[i]),
                conversation_id: m.conversation_id,
                seq: u64::try_from(seqs[i]).unwrap_or(0),
                kind: m.kind,
                sender: m.sender,
                body: m.body,
                attachments: m.attachments,
                channel: m.channel,
                created_at: to_time(now),
            }),
        };
        out.push(result);
    }
    out
}
