//! What the agent console reads beyond the engine's records: the inbox list with its
//! previews, contacts and unread marks; the views' counts; read marks; contacts with
//! their past conversations; and the first-run setup guard.
//!
//! The list pages by id (newest first) through the indexes of the console migration:
//! `(workspace_id, status, id)`, `(workspace_id, inbox_id, status, id)` and
//! `(assignee_id, status, id)`. The preview is the message at `last_seq` (one lookup by
//! the `(conversation_id, seq)` unique index per row of the page).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row as _};

use parley_actors::store::ConversationRecord;

use super::engine::conversation_from_row;
use super::now_ms;

/// One row of the console's conversation list.
#[derive(Debug, Clone)]
pub struct ListRow {
    /// The conversation.
    pub record: ConversationRecord,
    /// The contact's name, when known.
    pub contact_name: Option<String>,
    /// The contact's email, when known.
    pub contact_email: Option<String>,
    /// The latest message (at `last_seq`), when there is one.
    pub last_message: Option<Preview>,
    /// How far the asking user has read (0 = nothing).
    pub read_seq: i64,
}

/// The start of a conversation's latest message.
#[derive(Debug, Clone)]
pub struct Preview {
    /// `message`, `comment` or `event`.
    pub kind: String,
    /// `visitor`, `agent`, `bot` or `system`.
    pub sender_type: String,
    /// The sender's display name.
    pub sender_name: String,
    /// The first [`PREVIEW_CHARS`] characters of the body.
    pub body: String,
}

/// How much of the latest message a list row carries.
pub const PREVIEW_CHARS: i64 = 140;

/// Which conversations the console lists; empty strings mean "any".
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Workspace (required).
    pub workspace_id: &'a str,
    /// The asking user (for their read marks).
    pub user_id: &'a str,
    /// Keyset cursor: only ids below this one.
    pub before_id: &'a str,
    /// `open` or `closed`.
    pub status: &'a str,
    /// One inbox.
    pub inbox_id: &'a str,
    /// One channel kind.
    pub channel: &'a str,
    /// One channel record.
    pub channel_id: &'a str,
    /// A user id, or `unassigned`.
    pub assignee: &'a str,
    /// Only inboxes this user is a member of (empty for admins).
    pub member_of: &'a str,
    /// Search text (already trimmed); matches contact name, email and message text.
    pub q: &'a str,
    /// Only this contact's conversations.
    pub contact_id: &'a str,
    /// Only this conversation.
    pub id: &'a str,
}

/// `%text%` for a case-insensitive `LIKE … ESCAPE '\'`, with `%`, `_` and `\` escaped.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

fn list_row(r: &AnyRow) -> Result<ListRow, sqlx::Error> {
    let last_kind: Option<String> = r.try_get("last_kind")?;
    Ok(ListRow {
        record: conversation_from_row(r)?,
        contact_name: r.try_get("contact_name")?,
        contact_email: r.try_get("contact_email")?,
        last_message: match last_kind {
            Some(kind) => Some(Preview {
                kind,
                sender_type: r.try_get("last_sender_type")?,
                sender_name: r.try_get("last_sender_name")?,
                body: r.try_get("last_body")?,
            }),
            None => None,
        },
        read_seq: r.try_get::<Option<i64>, _>("read_seq")?.unwrap_or(0),
    })
}

/// Conversations matching `f`, newest first, with previews, contacts and read marks.
///
/// Only the filters that are set go into the SQL (each as a fixed fragment with a bound
/// value), so the planner sees plain equalities and walks the matching
/// `(…, status, id)` index backwards from the cursor: no sort, no scan of the other
/// conversations.
pub async fn list<'c>(
    exec: impl Executor<'c, Database = Any>,
    f: &ListFilter<'_>,
    limit: i64,
) -> Result<Vec<ListRow>, sqlx::Error> {
    let mut binds: Vec<String> = vec![f.user_id.to_owned(), f.workspace_id.to_owned()];
    let mut conds: Vec<String> = vec!["c.workspace_id = $2".to_owned()];
    fn add(conds: &mut Vec<String>, binds: &mut Vec<String>, cond: &str, value: &str) {
        binds.push(value.to_owned());
        conds.push(cond.replace('?', &format!("${}", binds.len())));
    }
    if !f.before_id.is_empty() {
        add(&mut conds, &mut binds, "c.id < ?", f.before_id);
    }
    if !f.status.is_empty() {
        add(&mut conds, &mut binds, "c.status = ?", f.status);
    }
    if !f.inbox_id.is_empty() {
        add(&mut conds, &mut binds, "c.inbox_id = ?", f.inbox_id);
    }
    if !f.channel.is_empty() {
        add(&mut conds, &mut binds, "ch.kind = ?", f.channel);
    }
    if !f.channel_id.is_empty() {
        add(&mut conds, &mut binds, "c.channel_id = ?", f.channel_id);
    }
    match f.assignee {
        "" => {}
        "unassigned" => conds.push("c.assignee_id IS NULL".to_owned()),
        user => add(&mut conds, &mut binds, "c.assignee_id = ?", user),
    }
    if !f.member_of.is_empty() {
        add(
            &mut conds,
            &mut binds,
            "c.inbox_id IN (SELECT inbox_id FROM inbox_members WHERE user_id = ?)",
            f.member_of,
        );
    }
    if !f.contact_id.is_empty() {
        add(&mut conds, &mut binds, "c.contact_id = ?", f.contact_id);
    }
    if !f.id.is_empty() {
        add(&mut conds, &mut binds, "c.id = ?", f.id);
    }
    if !f.q.is_empty() {
        binds.push(like_pattern(f.q));
        let n = binds.len();
        conds.push(format!(
            "(LOWER(COALESCE(co.name, '')) LIKE ${n} ESCAPE '\\' \
             OR LOWER(COALESCE(co.email, '')) LIKE ${n} ESCAPE '\\' \
             OR EXISTS (SELECT 1 FROM messages sm WHERE sm.conversation_id = c.id \
                        AND LOWER(sm.body) LIKE ${n} ESCAPE '\\'))"
        ));
    }
    let sql = format!(
        "SELECT {columns}, co.name AS contact_name, co.email AS contact_email, \
         lm.kind AS last_kind, lm.sender_type AS last_sender_type, \
         lm.sender_name AS last_sender_name, SUBSTR(lm.body, 1, {PREVIEW_CHARS}) AS last_body, \
         rd.last_read_seq AS read_seq \
         FROM conversations c {joins} \
         JOIN contacts co ON co.id = c.contact_id \
         LEFT JOIN messages lm ON lm.conversation_id = c.id AND lm.seq = c.last_seq \
         LEFT JOIN conversation_reads rd ON rd.conversation_id = c.id AND rd.user_id = $1 \
         WHERE {conds} ORDER BY c.id DESC LIMIT ${limit_param}",
        columns = super::engine::CONVERSATION_COLUMNS,
        joins = super::engine::CONVERSATION_JOINS,
        conds = conds.join(" AND "),
        limit_param = binds.len() + 1,
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = query.bind(b);
    }
    query
        .bind(limit)
        .fetch_all(exec)
        .await?
        .iter()
        .map(list_row)
        .collect()
}

/// One group of the counts: conversations of one inbox and channel, by status and
/// assignee bucket.
#[derive(Debug, Clone)]
pub struct CountRow {
    /// Inbox.
    pub inbox_id: String,
    /// Channel record.
    pub channel_id: String,
    /// Channel kind.
    pub channel: String,
    /// `open` or `closed`.
    pub status: String,
    /// `me`, `unassigned` or `other`.
    pub bucket: String,
    /// How many.
    pub count: i64,
    /// How many of them the user has not read to the end.
    pub unread: i64,
}

/// Counts of the conversations a user may see, grouped for the console's views.
pub async fn counts<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    user_id: &str,
    member_of: &str,
) -> Result<Vec<CountRow>, sqlx::Error> {
    sqlx::query(
        "SELECT c.inbox_id AS inbox_id, c.channel_id AS channel_id, ch.kind AS channel, \
         c.status AS status, \
         CASE WHEN c.assignee_id IS NULL THEN 'unassigned' \
              WHEN c.assignee_id = $1 THEN 'me' ELSE 'other' END AS bucket, \
         COUNT(*) AS n, \
         SUM(CASE WHEN c.last_seq > COALESCE(rd.last_read_seq, 0) THEN 1 ELSE 0 END) AS unread \
         FROM conversations c JOIN channels ch ON ch.id = c.channel_id \
         LEFT JOIN conversation_reads rd ON rd.conversation_id = c.id AND rd.user_id = $1 \
         WHERE c.workspace_id = $2 \
         AND ($3 = '' OR c.inbox_id IN (SELECT inbox_id FROM inbox_members WHERE user_id = $3)) \
         GROUP BY c.inbox_id, c.channel_id, ch.kind, c.status, \
         CASE WHEN c.assignee_id IS NULL THEN 'unassigned' \
              WHEN c.assignee_id = $1 THEN 'me' ELSE 'other' END",
    )
    .bind(user_id)
    .bind(workspace_id)
    .bind(member_of)
    .fetch_all(exec)
    .await?
    .iter()
    .map(|r| {
        Ok(CountRow {
            inbox_id: r.try_get("inbox_id")?,
            channel_id: r.try_get("channel_id")?,
            channel: r.try_get("channel")?,
            status: r.try_get("status")?,
            bucket: r.try_get("bucket")?,
            count: r.try_get("n")?,
            unread: r.try_get::<Option<i64>, _>("unread")?.unwrap_or(0),
        })
    })
    .collect()
}

/// Record that `user_id` has read `conversation_id` up to `seq` (never moves back).
pub async fn mark_read<'c>(
    exec: impl Executor<'c, Database = Any>,
    user_id: &str,
    conversation_id: &str,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation_reads (user_id, conversation_id, last_read_seq, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, conversation_id) DO UPDATE SET \
         last_read_seq = CASE WHEN excluded.last_read_seq > conversation_reads.last_read_seq \
         THEN excluded.last_read_seq ELSE conversation_reads.last_read_seq END, \
         updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(conversation_id)
    .bind(seq)
    .bind(now_ms())
    .execute(exec)
    .await?;
    Ok(())
}

/// How far `user_id` has read `conversation_id` (0 = nothing).
pub async fn read_seq<'c>(
    exec: impl Executor<'c, Database = Any>,
    user_id: &str,
    conversation_id: &str,
) -> Result<i64, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT last_read_seq FROM conversation_reads WHERE user_id = $1 AND conversation_id = $2",
    )
    .bind(user_id)
    .bind(conversation_id)
    .fetch_optional(exec)
    .await?
    .map(|r| r.try_get::<i64, _>("last_read_seq"))
    .transpose()?
    .unwrap_or(0))
}

/// A contact as the console's sidebar shows it.
#[derive(Debug, Clone)]
pub struct ContactRow {
    /// Id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Name, when known.
    pub name: Option<String>,
    /// Email, when known.
    pub email: Option<String>,
    /// Phone, when known.
    pub phone: Option<String>,
    /// Free-form attributes (JSON text).
    pub attributes: String,
    /// Epoch ms.
    pub created_at: i64,
    /// The page the contact's latest visit was on (chat visitors).
    pub page_url: Option<String>,
    /// The browser's User-Agent of that visit.
    pub user_agent: Option<String>,
    /// When that visit was last seen.
    pub last_seen_at: Option<i64>,
}

/// Read a contact of the workspace, with its most recently seen visitor's details.
pub async fn contact<'c>(
    exec: impl Executor<'c, Database = Any>,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ContactRow>, sqlx::Error> {
    sqlx::query(
        "SELECT co.id AS id, co.workspace_id AS workspace_id, co.name AS name, \
         co.email AS email, co.phone AS phone, co.attributes AS attributes, \
         co.created_at AS created_at, v.page_url AS page_url, v.user_agent AS user_agent, \
         v.last_seen_at AS last_seen_at \
         FROM contacts co \
         LEFT JOIN visitors v ON v.id = (SELECT v2.id FROM visitors v2 \
             WHERE v2.contact_id = co.id ORDER BY v2.last_seen_at DESC, v2.id DESC LIMIT 1) \
         WHERE co.workspace_id = $1 AND co.id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(exec)
    .await?
    .map(|r| {
        Ok(ContactRow {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            name: r.try_get("name")?,
            email: r.try_get("email")?,
            phone: r.try_get("phone")?,
            attributes: r.try_get("attributes")?,
            created_at: r.try_get("created_at")?,
            page_url: r.try_get("page_url")?,
            user_agent: r.try_get("user_agent")?,
            last_seen_at: r.try_get("last_seen_at")?,
        })
    })
    .transpose()
}

/// Whether the install has been set up (a user exists or setup ran).
pub async fn is_set_up<'c>(exec: impl Executor<'c, Database = Any>) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM setup_state) + (SELECT COUNT(*) FROM users) AS n",
    )
    .fetch_one(exec)
    .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Claim the one-time setup; a unique violation means another setup won the race.
pub async fn claim_setup<'c>(exec: impl Executor<'c, Database = Any>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO setup_state (id, completed_at) VALUES (1, $1)")
        .bind(now_ms())
        .execute(exec)
        .await?;
    Ok(())
}

/// Whether any user exists.
pub async fn is_set_up_by_users<'c>(
    exec: impl Executor<'c, Database = Any>,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(exec)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}
