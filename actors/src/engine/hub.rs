//! The Hub: the node's registry of live conversation actors. It starts each one under
//! an actix `Supervisor` (a crash restarts it in place), hands out its address, and
//! forgets it when it passivates. Started once per process.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::EngineConfig;
use super::conversation::ConversationActor;
use super::writer::Writer;
use crate::backplane::SharedBackplane;
use crate::store::{ConversationRecord, SharedStore};

/// The address of a conversation's actor on this node, started if needed.
#[derive(Debug, Message)]
#[rtype(result = "Addr<ConversationActor>")]
pub struct GetConversation {
    /// Conversation id.
    pub id: String,
}

/// Start a conversation's actor (if it is not live) from a record just committed, so
/// that it need not read it back: a visitor's first message creates the conversation,
/// and a burst of arrivals otherwise made one store read per new conversation (at
/// 19,000 arrivals they queued past the reader pool's timeout). A live actor is kept.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StartWith {
    /// The conversation, as committed.
    pub record: ConversationRecord,
}

/// A conversation actor stopped for idleness (sent by the actor itself).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Passivated {
    /// Conversation id.
    pub id: String,
    /// The actor that stopped (a newer one may have replaced it).
    pub addr: Addr<ConversationActor>,
}

/// How many conversation actors are live on this node.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct LiveCount;

/// The node's conversation registry.
pub struct Hub {
    store: SharedStore,
    backplane: SharedBackplane,
    config: Arc<EngineConfig>,
    writer: Addr<Writer>,
    conversations: HashMap<String, Addr<ConversationActor>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("conversations", &self.conversations.len())
            .finish()
    }
}

impl Hub {
    /// Start the hub (supervised).
    pub fn start(
        store: SharedStore,
        backplane: SharedBackplane,
        config: Arc<EngineConfig>,
        writer: Addr<Writer>,
    ) -> Addr<Self> {
        Supervisor::start(move |_| Hub {
            store,
            backplane,
            config,
            writer,
            conversations: HashMap::new(),
        })
    }
}

impl Actor for Hub {
    type Context = Context<Self>;
}

impl Supervised for Hub {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("Hub restarting");
        metrics::counter!("parley_actor_restarts_total", "actor" => "hub").increment(1);
    }
}

impl Hub {
    /// The live actor of conversation `id`, or a new one (seeded with `known` if given).
    fn get_or_start(
        &mut self,
        id: String,
        known: Option<ConversationRecord>,
        ctx: &mut Context<Self>,
    ) -> Addr<ConversationActor> {
        if let Some(addr) = self.conversations.get(&id)
            && addr.connected()
        {
            return addr.clone();
        }
        let (store, backplane, config, writer) = (
            self.store.clone(),
            self.backplane.clone(),
            self.config.clone(),
            self.writer.clone(),
        );
        let hub = ctx.address();
        let key = id.clone();
        let addr = Supervisor::start(move |_| {
            ConversationActor::new(id, store, backplane, config, writer, hub).seeded(known)
        });
        self.conversations.insert(key, addr.clone());
        addr
    }
}

impl Handler<GetConversation> for Hub {
    type Result = MessageResult<GetConversation>;

    fn handle(&mut self, msg: GetConversation, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.get_or_start(msg.id, None, ctx))
    }
}

impl Handler<StartWith> for Hub {
    type Result = ();

    fn handle(&mut self, msg: StartWith, ctx: &mut Context<Self>) {
        self.get_or_start(msg.record.id.clone(), Some(msg.record), ctx);
    }
}

impl Handler<Passivated> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Passivated, _ctx: &mut Context<Self>) {
        if self.conversations.get(&msg.id) == Some(&msg.addr) {
            self.conversations.remove(&msg.id);
        }
    }
}

impl Handler<LiveCount> for Hub {
    type Result = usize;

    fn handle(&mut self, _: LiveCount, _ctx: &mut Context<Self>) -> usize {
        self.conversations.len()
    }
}
