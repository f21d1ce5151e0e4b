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
use crate::store::SharedStore;

/// The address of a conversation's actor on this node, started if needed.
#[derive(Debug, Message)]
#[rtype(result = "Addr<ConversationActor>")]
pub struct GetConversation {
    /// Conversation id.
    pub id: String,
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

impl Handler<GetConversation> for Hub {
    type Result = MessageResult<GetConversation>;

    fn handle(&mut self, msg: GetConversation, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(addr) = self.conversations.get(&msg.id)
            && addr.connected()
        {
            return MessageResult(addr.clone());
        }
        let (store, backplane, config, writer) = (
            self.store.clone(),
            self.backplane.clone(),
            self.config.clone(),
            self.writer.clone(),
        );
        let hub = ctx.address();
        let id = msg.id.clone();
        let addr = Supervisor::start(move |_| {
            ConversationActor::new(id, store, backplane, config, writer, hub)
        });
        self.conversations.insert(msg.id, addr.clone());
        MessageResult(addr)
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
