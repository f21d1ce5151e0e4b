//! The in-memory reference [`Store`]: the behaviour the SQL store must match, used by
//! the engine's unit tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use super::{Appended, ConversationRecord, NewConversation, NewMessage, Store, StoreError};
use crate::protocol::{ConversationStatus, MessageObject};

#[derive(Default)]
struct Inner {
    conversations: HashMap<String, ConversationRecord>,
    messages: HashMap<String, Vec<MessageObject>>,
    client_ids: HashMap<(String, String), MessageObject>,
    next_id: u64,
}

/// A store in a `Mutex`.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// When true, `append` fails as a database outage would (fault tests).
    pub fail_appends: AtomicBool,
    /// How many times a conversation was read (rehydrations, in tests).
    pub conversation_reads: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl MemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError("memory store poisoned".into()))
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<ConversationRecord, StoreError> {
        let mut inner = self.lock()?;
        inner.next_id += 1;
        let now = Utc::now();
        let record = ConversationRecord {
            id: format!("conv-{}", inner.next_id),
            workspace_id: new.workspace_id,
            inbox_id: new.inbox_id,
            channel_id: new.channel_id,
            channel: new.channel,
            contact_id: new.contact_id,
            status: ConversationStatus::Open,
            assignee_id: None,
            created_at: now,
            last_message_at: now,
            last_seq: 0,
            assignee: None,
        };
        inner
            .conversations
            .insert(record.id.clone(), record.clone());
        Ok(record)
    }

    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        self.conversation_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.lock()?.conversations.get(id).cloned())
    }

    async fn append(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(StoreError("injected failure".into()));
        }
        let mut inner = self.lock()?;
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            // Another workspace's conversation does not exist for this sender.
            if inner
                .conversations
                .get(&m.conversation_id)
                .is_none_or(|c| c.workspace_id != m.workspace_id)
            {
                out.push(Appended::NoConversation);
                continue;
            }
            let key = m.client_id.clone().map(|c| (m.conversation_id.clone(), c));
            if let Some(prev) = key.as_ref().and_then(|k| inner.client_ids.get(k)) {
                out.push(Appended::Duplicate(prev.clone()));
                continue;
            }
            inner.next_id += 1;
            let id = format!("msg-{}", inner.next_id);
            let Some(conv) = inner.conversations.get_mut(&m.conversation_id) else {
                out.push(Appended::NoConversation);
                continue;
            };
            conv.last_seq += 1;
            let now = Utc::now();
            conv.last_message_at = now;
            let msg = MessageObject {
                id,
                conversation_id: m.conversation_id.clone(),
                seq: conv.last_seq,
                kind: m.kind,
                sender: m.sender,
                body: m.body,
                attachments: m.attachments,
                channel: m.channel,
                created_at: now,
            };
            if let Some(k) = key {
                inner.client_ids.insert(k, msg.clone());
            }
            inner
                .messages
                .entry(m.conversation_id)
                .or_default()
                .push(msg.clone());
            out.push(Appended::New(msg));
        }
        Ok(out)
    }

    async fn routing_snapshot(
        &self,
        _inbox_id: &str,
    ) -> Result<Option<super::RoutingSnapshot>, StoreError> {
        // The reference store keeps no inboxes: its conversations route by hand.
        Ok(None)
    }

    async fn return_conversations(
        &self,
        inbox_id: &str,
        agent_id: &str,
        _reason: &str,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut inner = self.lock()?;
        let mut out = Vec::new();
        for c in inner.conversations.values_mut() {
            if c.inbox_id == inbox_id
                && c.status == ConversationStatus::Open
                && c.assignee_id.as_deref() == Some(agent_id)
            {
                c.assignee_id = None;
                out.push(c.clone());
            }
        }
        Ok(out)
    }

    async fn round_robin_inboxes(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }

    async fn assign_if_unassigned(
        &self,
        conversation_id: &str,
        agent_id: &str,
        capacity: Option<u32>,
        _reason: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let mut inner = self.lock()?;
        let Some(inbox) = inner
            .conversations
            .get(conversation_id)
            .map(|c| c.inbox_id.clone())
        else {
            return Ok(None);
        };
        let load = inner
            .conversations
            .values()
            .filter(|c| {
                c.inbox_id == inbox
                    && c.status == ConversationStatus::Open
                    && c.assignee_id.as_deref() == Some(agent_id)
            })
            .count();
        if capacity.is_some_and(|cap| load >= cap as usize) {
            return Ok(None);
        }
        Ok(inner.conversations.get_mut(conversation_id).and_then(|c| {
            (c.status == ConversationStatus::Open && c.assignee_id.is_none()).then(|| {
                c.assignee_id = Some(agent_id.to_owned());
                c.clone()
            })
        }))
    }

    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<MessageObject>, StoreError> {
        Ok(self
            .lock()?
            .messages
            .get(conversation_id)
            .map(|ms| {
                ms.iter()
                    .filter(|m| m.seq > after_seq)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}
