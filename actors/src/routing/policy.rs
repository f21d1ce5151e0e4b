//! The routing policy of one inbox: which agent gets the next conversation, and when a
//! waiting conversation is assigned. Pure — no I/O, no clock — so that the `Router`
//! can apply it to shared state on any node, and it can be tested on its own.
//!
//! # Eligibility
//!
//! An agent is [`eligible`] when they are present (online, not away) and their load
//! (open conversations assigned to them in this inbox) is below their capacity. Nobody
//! else is ever assigned automatically, and a manual [`RoutingState::reassign`] is
//! refused when the target is not eligible either: nothing in this policy puts an
//! agent past their capacity. Lowering a capacity below the current load is allowed;
//! the agent keeps their conversations and gets no new one until they are under it.
//!
//! # Fairness: least recently assigned first
//!
//! The next conversation goes to the eligible agent with the smallest `last_assigned`
//! (the value of the inbox's assignment counter when they were last assigned; 0 =
//! never), ties broken by id ([`pick`]). Every assignment bumps the counter, so the
//! chosen agent moves to the back of the line. While the set of eligible agents stays
//! the same this is plain round-robin: over any run of assignments, counts differ by
//! at most one. Unlike a rotating index it needs no repair when agents come and go: an
//! agent who was away keeps their place (they are at the front when they return,
//! because they were assigned least recently, and take one turn, not a catch-up
//! burst), a new agent (0) goes first, and removing an agent shifts nobody.
//!
//! # The waiting queue, drained by events
//!
//! When nobody is eligible a conversation waits, FIFO by arrival. A waiting
//! conversation can only become assignable when some agent becomes eligible, and that
//! only happens through an event: a conversation of theirs closes or is unassigned,
//! they come online, their capacity rises, or they join. Each of those events
//! therefore drains the queue — oldest first, for as long as somebody is eligible —
//! before it returns. So there is no periodic sweep, no delay between an agent
//! freeing up and the oldest visitor being served, and one invariant holds after every
//! event: **the queue is empty whenever some agent is eligible**. A new arrival is
//! assigned at once only when the queue is empty, so it never jumps the queue.
//!
//! Events that fail ([`RoutingError`]) change nothing.

use std::collections::VecDeque;

/// One agent as routing sees them, within one inbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentState {
    /// The agent's user id.
    pub id: String,
    /// Online and not away. Absent agents are never assigned.
    pub present: bool,
    /// Open conversations assigned to this agent in this inbox.
    pub load: u32,
    /// Most open conversations this agent may be assigned; `None` = unlimited.
    pub capacity: Option<u32>,
    /// The inbox's assignment counter value when this agent was last assigned;
    /// 0 = never. Smallest goes next.
    pub last_assigned: u64,
}

impl AgentState {
    /// An agent who is absent, has no load, unlimited capacity and was never assigned.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            present: false,
            load: 0,
            capacity: None,
            last_assigned: 0,
        }
    }
}

/// Whether `agent` may be assigned a conversation now: present, and load below
/// capacity. (Unlimited capacity means "below `u32::MAX`", so the load cannot overflow.)
pub fn eligible(agent: &AgentState) -> bool {
    agent.present && agent.load < agent.capacity.unwrap_or(u32::MAX)
}

/// The agent who gets the next conversation: among the eligible agents, the one least
/// recently assigned (smallest `last_assigned`), ties broken by the smaller id. `None`
/// when nobody is eligible.
pub fn pick(state: &RoutingState) -> Option<&str> {
    state
        .agents
        .iter()
        .filter(|agent| eligible(agent))
        .min_by(|a, b| {
            a.last_assigned
                .cmp(&b.last_assigned)
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|agent| agent.id.as_str())
}

/// One conversation given to one agent by the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The conversation assigned.
    pub conversation_id: String,
    /// The agent it was assigned to.
    pub agent_id: String,
}

/// What became of an arriving conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was assigned at once.
    Assigned {
        /// The conversation that arrived.
        conversation_id: String,
        /// The agent it went to.
        agent_id: String,
    },
    /// Nobody was eligible (or others were already waiting): it waits in the queue.
    Queued {
        /// Its place in the queue, 1-based (1 = next to be assigned).
        position: usize,
    },
}

/// Why a routing event was refused. A refused event changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// No agent with this id routes in this inbox.
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    /// An agent with this id already routes in this inbox.
    #[error("agent {0} is already routed in this inbox")]
    DuplicateAgent(String),
    /// The agent has no open conversation to close, unassign or hand over.
    #[error("agent {0} has no open conversations")]
    NoOpenConversations(String),
    /// Manual assignment to an agent who is absent or at capacity.
    #[error("agent {0} is not present or is at capacity")]
    NotEligible(String),
    /// A reassignment from an agent to themselves.
    #[error("cannot reassign from agent {0} to themselves")]
    SameAgent(String),
}

/// The routing state of one inbox: its agents, the assignment counter and the waiting
/// queue. Every method is one event; apply them one at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutingState {
    /// The agents who route in this inbox (members, or one team's members).
    pub agents: Vec<AgentState>,
    /// Assignments made so far; each assignment increments it first and stamps the
    /// new value into the agent's `last_assigned`.
    pub counter: u64,
    /// Conversations waiting for an agent, oldest first.
    pub queue: VecDeque<String>,
}

impl RoutingState {
    /// An inbox with no agents, no assignments and nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// The agent with this id, if they route in this inbox.
    pub fn agent(&self, agent_id: &str) -> Option<&AgentState> {
        self.agents.iter().find(|agent| agent.id == agent_id)
    }

    /// Whether some agent could take a conversation now.
    pub fn anyone_eligible(&self) -> bool {
        self.agents.iter().any(eligible)
    }

    /// A conversation arrives. It is assigned at once when somebody is eligible and
    /// nobody is waiting; otherwise it joins the back of the queue. Arriving again
    /// while already waiting is a no-op that reports the current position (so a
    /// retried call is harmless). The caller must not send a conversation that is
    /// already assigned.
    pub fn arrive(&mut self, conversation_id: impl Into<String>) -> Outcome {
        let conversation_id = conversation_id.into();
        if let Some(position) = self.queue_position(&conversation_id) {
            return Outcome::Queued { position };
        }
        self.enter(conversation_id)
    }

    /// A conversation that is not waiting arrives: assigned at once when somebody is
    /// eligible and nobody waits, else to the back of the queue.
    fn enter(&mut self, conversation_id: String) -> Outcome {
        if self.queue.is_empty()
            && let Some(index) = self.pick_index()
        {
            let Assignment {
                conversation_id,
                agent_id,
            } = self.assign(index, conversation_id);
            return Outcome::Assigned {
                conversation_id,
                agent_id,
            };
        }
        self.queue.push_back(conversation_id);
        Outcome::Queued {
            position: self.queue.len(),
        }
    }

    /// Many conversations arrive, in this order: the same outcomes as calling
    /// [`RoutingState::arrive`] for each, in O(queue + arrivals) rather than
    /// O(queue × arrivals) (a routing step takes every arrival queued meanwhile, and a
    /// burst can leave thousands waiting).
    pub fn arrive_all<I, S>(&mut self, conversation_ids: I) -> Vec<Outcome>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut waiting: std::collections::HashMap<String, usize> = self
            .queue
            .iter()
            .enumerate()
            .map(|(index, id)| (id.clone(), index + 1))
            .collect();
        let mut outcomes = Vec::new();
        for conversation_id in conversation_ids {
            let conversation_id = conversation_id.into();
            if let Some(&position) = waiting.get(&conversation_id) {
                outcomes.push(Outcome::Queued { position });
                continue;
            }
            let outcome = self.enter(conversation_id.clone());
            if let Outcome::Queued { position } = outcome {
                waiting.insert(conversation_id, position);
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// A conversation assigned to `agent_id` closes: their load drops by one, then the
    /// queue drains. Returns the conversations assigned from the queue, oldest first.
    pub fn close(&mut self, agent_id: &str) -> Result<Vec<Assignment>, RoutingError> {
        self.release(agent_id)
    }

    /// A conversation is taken away from `agent_id` and left unassigned (a manual
    /// action): their load drops by one, then the queue drains. Returns the
    /// conversations assigned from the queue, oldest first.
    pub fn unassign(&mut self, agent_id: &str) -> Result<Vec<Assignment>, RoutingError> {
        self.release(agent_id)
    }

    /// `agent_id` comes online (`true`) or goes offline or away (`false`). Coming
    /// online drains the queue; going away assigns nothing and leaves their open
    /// conversations with them. Returns the conversations assigned from the queue.
    pub fn presence(
        &mut self,
        agent_id: &str,
        present: bool,
    ) -> Result<Vec<Assignment>, RoutingError> {
        let index = self.index_of(agent_id)?;
        self.agents[index].present = present;
        Ok(self.drain())
    }

    /// Sets `agent_id`'s capacity (`None` = unlimited). Raising it drains the queue;
    /// lowering it below their load keeps their conversations but stops new ones until
    /// they are under it. Returns the conversations assigned from the queue.
    pub fn set_capacity(
        &mut self,
        agent_id: &str,
        capacity: Option<u32>,
    ) -> Result<Vec<Assignment>, RoutingError> {
        let index = self.index_of(agent_id)?;
        self.agents[index].capacity = capacity;
        Ok(self.drain())
    }

    /// An agent joins the inbox's routing, with whatever state they have (a rebuilt
    /// load after a restart, say). If they are eligible the queue drains to them.
    /// Returns the conversations assigned from the queue.
    pub fn add_agent(&mut self, agent: AgentState) -> Result<Vec<Assignment>, RoutingError> {
        if self.agent(&agent.id).is_some() {
            return Err(RoutingError::DuplicateAgent(agent.id));
        }
        self.agents.push(agent);
        Ok(self.drain())
    }

    /// An agent leaves the inbox's routing and gets nothing more from it. Returns
    /// their last state; what becomes of their open conversations is the caller's
    /// decision (keep them, or unassign and route them again).
    pub fn remove_agent(&mut self, agent_id: &str) -> Result<AgentState, RoutingError> {
        let index = self.index_of(agent_id)?;
        Ok(self.agents.remove(index))
    }

    /// Manual reassignment of one open conversation from `from` to `to` (also "take
    /// over", with `to` = the acting agent). Allowed only within capacity: `to` must be
    /// eligible. It counts as an assignment for `to` (counter, `last_assigned`, load),
    /// so an agent handed a conversation by hand is not also next in the rotation.
    /// `from`'s load drops by one and the queue drains; returns the conversations
    /// assigned from the queue (none while the queue invariant holds, since a waiting
    /// queue means `to` could not have been eligible).
    pub fn reassign(&mut self, from: &str, to: &str) -> Result<Vec<Assignment>, RoutingError> {
        if from == to {
            return Err(RoutingError::SameAgent(from.to_owned()));
        }
        let from_index = self.index_of(from)?;
        let to_index = self.index_of(to)?;
        if self.agents[from_index].load == 0 {
            return Err(RoutingError::NoOpenConversations(from.to_owned()));
        }
        if !eligible(&self.agents[to_index]) {
            return Err(RoutingError::NotEligible(to.to_owned()));
        }
        self.agents[from_index].load -= 1;
        self.stamp(to_index);
        Ok(self.drain())
    }

    /// Where `conversation_id` waits, 1-based (1 = next); `None` if it is not waiting.
    pub fn queue_position(&self, conversation_id: &str) -> Option<usize> {
        self.queue
            .iter()
            .position(|waiting| waiting == conversation_id)
            .map(|index| index + 1)
    }

    /// The visitor left: `conversation_id` stops waiting, and everyone behind it moves
    /// up one place. Returns whether it was waiting.
    pub fn dequeue(&mut self, conversation_id: &str) -> bool {
        match self.queue_position(conversation_id) {
            Some(position) => {
                self.queue.remove(position - 1);
                true
            }
            None => false,
        }
    }

    /// Assigns waiting conversations, oldest first, for as long as somebody is
    /// eligible, and returns them in order. Every event that can make an agent
    /// eligible already calls this; call it yourself only after building a state by
    /// hand (say, when rebuilding it from the store on start).
    pub fn drain(&mut self) -> Vec<Assignment> {
        let mut assigned = Vec::new();
        while !self.queue.is_empty() {
            let Some(index) = self.pick_index() else {
                break;
            };
            let Some(conversation_id) = self.queue.pop_front() else {
                break;
            };
            assigned.push(self.assign(index, conversation_id));
        }
        assigned
    }

    /// Drops `agent_id`'s load by one, then drains.
    fn release(&mut self, agent_id: &str) -> Result<Vec<Assignment>, RoutingError> {
        let index = self.index_of(agent_id)?;
        let agent = &mut self.agents[index];
        if agent.load == 0 {
            return Err(RoutingError::NoOpenConversations(agent_id.to_owned()));
        }
        agent.load -= 1;
        Ok(self.drain())
    }

    /// The index of the agent [`pick`] chooses.
    fn pick_index(&self) -> Option<usize> {
        let id = pick(self)?;
        self.agents.iter().position(|agent| agent.id == id)
    }

    /// The index of `agent_id`, or [`RoutingError::UnknownAgent`].
    fn index_of(&self, agent_id: &str) -> Result<usize, RoutingError> {
        self.agents
            .iter()
            .position(|agent| agent.id == agent_id)
            .ok_or_else(|| RoutingError::UnknownAgent(agent_id.to_owned()))
    }

    /// Gives `conversation_id` to the agent at `index`.
    fn assign(&mut self, index: usize, conversation_id: String) -> Assignment {
        self.stamp(index);
        Assignment {
            conversation_id,
            agent_id: self.agents[index].id.clone(),
        }
    }

    /// Records one assignment to the agent at `index`: the counter moves on, the agent
    /// goes to the back of the rotation and carries one more conversation.
    fn stamp(&mut self, index: usize) {
        self.counter += 1;
        let agent = &mut self.agents[index];
        agent.last_assigned = self.counter;
        agent.load += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap, HashSet};

    fn agent(id: &str, present: bool, capacity: Option<u32>) -> AgentState {
        AgentState {
            present,
            capacity,
            ..AgentState::new(id)
        }
    }

    fn state(agents: Vec<AgentState>) -> RoutingState {
        RoutingState {
            agents,
            ..RoutingState::new()
        }
    }

    fn assigned_to(outcome: &Outcome) -> Option<&str> {
        match outcome {
            Outcome::Assigned { agent_id, .. } => Some(agent_id),
            Outcome::Queued { .. } => None,
        }
    }

    fn assignment(conversation_id: &str, agent_id: &str) -> Assignment {
        Assignment {
            conversation_id: conversation_id.into(),
            agent_id: agent_id.into(),
        }
    }

    fn queue_of(state: &RoutingState) -> Vec<&str> {
        state.queue.iter().map(String::as_str).collect()
    }

    // ---- eligibility -------------------------------------------------------------

    #[test]
    fn an_agent_is_eligible_only_when_present_and_under_capacity() {
        assert!(eligible(&agent("a", true, None)));
        assert!(eligible(&agent("a", true, Some(1))));
        assert!(!eligible(&agent("a", false, None)));
        assert!(!eligible(&agent("a", true, Some(0))));
        let full = AgentState {
            load: 2,
            ..agent("a", true, Some(2))
        };
        assert!(!eligible(&full));
        let unlimited_but_saturated = AgentState {
            load: u32::MAX,
            ..agent("a", true, None)
        };
        assert!(!eligible(&unlimited_but_saturated));
    }

    #[test]
    fn offline_agents_are_never_assigned() {
        let mut routing = state(vec![agent("offline", false, None), agent("on", true, None)]);

        let outcomes: Vec<Outcome> = (0..5).map(|i| routing.arrive(format!("c{i}"))).collect();

        assert!(outcomes.iter().all(|o| assigned_to(o) == Some("on")));
        assert_eq!(routing.agent("offline").unwrap().load, 0);
    }

    #[test]
    fn an_agent_who_goes_away_gets_nothing_more_and_keeps_what_they_have() {
        let mut routing = state(vec![agent("a", true, None), agent("b", true, None)]);
        routing.arrive("c1");
        routing.arrive("c2");

        assert_eq!(routing.presence("a", false).unwrap(), vec![]);
        let outcomes: Vec<Outcome> = (3..7).map(|i| routing.arrive(format!("c{i}"))).collect();

        assert!(outcomes.iter().all(|o| assigned_to(o) == Some("b")));
        assert_eq!(routing.agent("a").unwrap().load, 1);
    }

    #[test]
    fn with_every_agent_away_a_conversation_waits() {
        let mut routing = state(vec![agent("a", false, None), agent("b", false, Some(3))]);

        assert_eq!(routing.arrive("c1"), Outcome::Queued { position: 1 });
        assert_eq!(routing.arrive("c2"), Outcome::Queued { position: 2 });
        assert_eq!(routing.counter, 0);
    }

    #[test]
    fn an_agent_at_capacity_is_never_assigned() {
        let mut routing = state(vec![agent("a", true, Some(2)), agent("b", true, Some(1))]);

        let outcomes: Vec<Outcome> = (0..5).map(|i| routing.arrive(format!("c{i}"))).collect();

        let a = outcomes
            .iter()
            .filter(|o| assigned_to(o) == Some("a"))
            .count();
        let b = outcomes
            .iter()
            .filter(|o| assigned_to(o) == Some("b"))
            .count();
        assert_eq!((a, b), (2, 1));
        assert_eq!(outcomes[3], Outcome::Queued { position: 1 });
        assert_eq!(outcomes[4], Outcome::Queued { position: 2 });
        assert_eq!(routing.agent("a").unwrap().load, 2);
        assert_eq!(routing.agent("b").unwrap().load, 1);
    }

    // ---- fairness ----------------------------------------------------------------

    #[test]
    fn round_robin_starts_in_id_order_and_rotates() {
        let mut routing = state(vec![
            agent("c", true, None),
            agent("a", true, None),
            agent("b", true, None),
        ]);

        let order: Vec<String> = (0..6)
            .map(|i| {
                assigned_to(&routing.arrive(format!("c{i}")))
                    .unwrap()
                    .to_owned()
            })
            .collect();

        assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn every_assignment_bumps_the_counter_and_stamps_the_agent() {
        let mut routing = state(vec![agent("a", true, None), agent("b", true, None)]);

        routing.arrive("c1");
        routing.arrive("c2");
        routing.arrive("c3");

        assert_eq!(routing.counter, 3);
        let a = routing.agent("a").unwrap();
        let b = routing.agent("b").unwrap();
        assert_eq!((a.last_assigned, a.load), (3, 2));
        assert_eq!((b.last_assigned, b.load), (2, 1));
    }

    #[test]
    fn the_least_recently_assigned_agent_goes_next_even_after_being_away() {
        let mut routing = state(vec![
            agent("a", true, None),
            agent("b", true, None),
            agent("c", true, None),
        ]);
        routing.arrive("c1"); // a
        routing.presence("b", false).unwrap();
        routing.arrive("c2"); // c
        routing.arrive("c3"); // a
        routing.presence("b", true).unwrap();

        // b has waited longest: one turn for b, then the rotation goes on; no burst.
        let order: Vec<String> = (4..8)
            .map(|i| {
                assigned_to(&routing.arrive(format!("c{i}")))
                    .unwrap()
                    .to_owned()
            })
            .collect();

        assert_eq!(order, ["b", "c", "a", "b"]);
    }

    #[test]
    fn a_new_agent_goes_next_and_then_joins_the_rotation() {
        let mut routing = state(vec![agent("a", true, None), agent("b", true, None)]);
        routing.arrive("c1");
        routing.arrive("c2");

        routing.add_agent(agent("z", true, None)).unwrap();
        let order: Vec<String> = (3..7)
            .map(|i| {
                assigned_to(&routing.arrive(format!("c{i}")))
                    .unwrap()
                    .to_owned()
            })
            .collect();

        assert_eq!(order, ["z", "a", "b", "z"]);
    }

    #[test]
    fn pick_is_none_when_nobody_is_eligible() {
        let routing = state(vec![agent("a", false, None), agent("b", true, Some(0))]);

        assert_eq!(pick(&routing), None);
        assert!(!routing.anyone_eligible());
    }

    // ---- the waiting queue ---------------------------------------------------------

    #[test]
    fn a_close_assigns_the_oldest_waiting_conversation_to_the_freed_agent() {
        let mut routing = state(vec![agent("a", true, Some(1))]);
        routing.arrive("c1");
        routing.arrive("c2");
        routing.arrive("c3");

        let drained = routing.close("a").unwrap();

        assert_eq!(drained, vec![assignment("c2", "a")]);
        assert_eq!(queue_of(&routing), ["c3"]);
        assert_eq!(routing.agent("a").unwrap().load, 1);
    }

    #[test]
    fn an_arrival_never_jumps_the_queue() {
        // A state built by hand where someone is eligible although a conversation waits
        // (the events never leave it like this): the newcomer still goes to the back.
        let mut routing = state(vec![agent("a", true, None)]);
        routing.queue.push_back("old".into());

        assert_eq!(routing.arrive("new"), Outcome::Queued { position: 2 });
        assert_eq!(
            routing.drain(),
            vec![assignment("old", "a"), assignment("new", "a")]
        );
    }

    #[test]
    fn coming_online_drains_the_oldest_first_up_to_capacity() {
        let mut routing = state(vec![agent("a", false, Some(2))]);
        for i in 1..=4 {
            routing.arrive(format!("c{i}"));
        }

        let drained = routing.presence("a", true).unwrap();

        assert_eq!(drained, vec![assignment("c1", "a"), assignment("c2", "a")]);
        assert_eq!(queue_of(&routing), ["c3", "c4"]);
    }

    #[test]
    fn coming_online_drains_in_rotation_across_agents() {
        let mut routing = state(vec![agent("a", false, Some(1)), agent("b", true, Some(1))]);
        for i in 1..=4 {
            routing.arrive(format!("c{i}"));
        }
        assert_eq!(queue_of(&routing), ["c2", "c3", "c4"]);

        let drained = routing.presence("a", true).unwrap();
        assert_eq!(drained, vec![assignment("c2", "a")]);
        let drained = routing.close("b").unwrap();
        assert_eq!(drained, vec![assignment("c3", "b")]);
    }

    #[test]
    fn raising_capacity_drains_and_lowering_it_keeps_the_load() {
        let mut routing = state(vec![agent("a", true, Some(1))]);
        for i in 1..=4 {
            routing.arrive(format!("c{i}"));
        }

        let drained = routing.set_capacity("a", Some(3)).unwrap();
        assert_eq!(drained, vec![assignment("c2", "a"), assignment("c3", "a")]);

        assert_eq!(routing.set_capacity("a", Some(1)).unwrap(), vec![]);
        assert_eq!(routing.agent("a").unwrap().load, 3);
        assert_eq!(routing.close("a").unwrap(), vec![]);
        assert_eq!(routing.close("a").unwrap(), vec![]);
        assert_eq!(routing.close("a").unwrap(), vec![assignment("c4", "a")]);

        assert_eq!(routing.set_capacity("a", None).unwrap(), vec![]);
        assert!(routing.queue.is_empty());
    }

    #[test]
    fn queue_positions_move_up_as_the_queue_drains_and_visitors_leave() {
        let mut routing = state(vec![agent("a", true, Some(1))]);
        routing.arrive("busy");
        for i in 1..=4 {
            assert_eq!(
                routing.arrive(format!("c{i}")),
                Outcome::Queued { position: i }
            );
        }
        assert_eq!(routing.queue_position("c3"), Some(3));

        routing.close("a").unwrap(); // c1 assigned
        assert_eq!(routing.queue_position("c1"), None);
        assert_eq!(routing.queue_position("c3"), Some(2));

        assert!(routing.dequeue("c2"));
        assert_eq!(routing.queue_position("c3"), Some(1));
        assert_eq!(routing.queue_position("c4"), Some(2));
        assert!(!routing.dequeue("c2"));
        assert!(!routing.dequeue("never-here"));
    }

    #[test]
    fn arriving_again_while_waiting_keeps_the_place() {
        let mut routing = state(vec![agent("a", false, None)]);
        routing.arrive("c1");
        routing.arrive("c2");

        assert_eq!(routing.arrive("c1"), Outcome::Queued { position: 1 });
        assert_eq!(queue_of(&routing), ["c1", "c2"]);
    }

    #[test]
    fn a_visitor_who_left_is_not_assigned_later() {
        let mut routing = state(vec![agent("a", false, None)]);
        routing.arrive("c1");
        routing.arrive("c2");
        routing.dequeue("c1");

        assert_eq!(
            routing.presence("a", true).unwrap(),
            vec![assignment("c2", "a")]
        );
    }

    // ---- agents joining and leaving ------------------------------------------------

    #[test]
    fn adding_an_eligible_agent_drains_the_queue() {
        let mut routing = state(vec![]);
        routing.arrive("c1");
        routing.arrive("c2");

        let drained = routing.add_agent(agent("a", true, Some(1))).unwrap();

        assert_eq!(drained, vec![assignment("c1", "a")]);
        assert_eq!(queue_of(&routing), ["c2"]);
    }

    #[test]
    fn adding_an_agent_twice_is_refused() {
        let mut routing = state(vec![agent("a", true, None)]);
        let before = routing.clone();

        assert_eq!(
            routing.add_agent(agent("a", false, None)),
            Err(RoutingError::DuplicateAgent("a".into()))
        );
        assert_eq!(routing, before);
    }

    #[test]
    fn a_removed_agent_gets_nothing_and_the_rotation_goes_on() {
        let mut routing = state(vec![
            agent("a", true, None),
            agent("b", true, None),
            agent("c", true, None),
        ]);
        routing.arrive("c1"); // a

        let removed = routing.remove_agent("b").unwrap();
        assert_eq!(removed.id, "b");
        let order: Vec<String> = (2..5)
            .map(|i| {
                assigned_to(&routing.arrive(format!("c{i}")))
                    .unwrap()
                    .to_owned()
            })
            .collect();

        assert_eq!(order, ["c", "a", "c"]);
        assert_eq!(
            routing.remove_agent("b"),
            Err(RoutingError::UnknownAgent("b".into()))
        );
    }

    // ---- manual actions ------------------------------------------------------------

    #[test]
    fn unassign_frees_a_slot_and_drains() {
        let mut routing = state(vec![agent("a", true, Some(1))]);
        routing.arrive("c1");
        routing.arrive("c2");

        assert_eq!(routing.unassign("a").unwrap(), vec![assignment("c2", "a")]);
    }

    #[test]
    fn reassign_moves_load_and_counts_as_a_turn() {
        let mut routing = state(vec![agent("a", true, None), agent("b", true, None)]);
        routing.arrive("c1"); // a

        assert_eq!(routing.reassign("a", "b").unwrap(), vec![]);

        let a = routing.agent("a").unwrap();
        let b = routing.agent("b").unwrap();
        assert_eq!((a.load, b.load), (0, 1));
        assert_eq!(b.last_assigned, 2);
        assert_eq!(routing.counter, 2);
        assert_eq!(assigned_to(&routing.arrive("c2")), Some("a"));
    }

    #[test]
    fn reassign_to_an_agent_at_capacity_or_away_is_refused_and_changes_nothing() {
        let mut routing = state(vec![
            agent("a", true, None),
            agent("full", true, Some(1)),
            agent("away", false, None),
        ]);
        routing.arrive("c1"); // a
        routing.arrive("c2"); // away is skipped, full takes it
        routing.arrive("c3"); // a
        let before = routing.clone();

        assert_eq!(
            routing.reassign("a", "full"),
            Err(RoutingError::NotEligible("full".into()))
        );
        assert_eq!(
            routing.reassign("a", "away"),
            Err(RoutingError::NotEligible("away".into()))
        );
        assert_eq!(routing, before);
    }

    #[test]
    fn reassign_checks_both_agents() {
        let mut routing = state(vec![agent("a", true, None), agent("b", true, None)]);
        let before = routing.clone();

        assert_eq!(
            routing.reassign("a", "b"),
            Err(RoutingError::NoOpenConversations("a".into()))
        );
        assert_eq!(
            routing.reassign("a", "a"),
            Err(RoutingError::SameAgent("a".into()))
        );
        assert_eq!(
            routing.reassign("x", "b"),
            Err(RoutingError::UnknownAgent("x".into()))
        );
        assert_eq!(
            routing.reassign("a", "y"),
            Err(RoutingError::UnknownAgent("y".into()))
        );
        assert_eq!(routing, before);
    }

    #[test]
    fn closing_for_an_unknown_or_idle_agent_is_refused_and_changes_nothing() {
        let mut routing = state(vec![agent("a", true, None)]);
        let before = routing.clone();

        assert_eq!(
            routing.close("a"),
            Err(RoutingError::NoOpenConversations("a".into()))
        );
        assert_eq!(
            routing.unassign("x"),
            Err(RoutingError::UnknownAgent("x".into()))
        );
        assert_eq!(
            routing.presence("x", true),
            Err(RoutingError::UnknownAgent("x".into()))
        );
        assert_eq!(
            routing.set_capacity("x", None),
            Err(RoutingError::UnknownAgent("x".into()))
        );
        assert_eq!(routing, before);
    }

    // ---- properties ----------------------------------------------------------------

    /// One event of the generated sequences. Indices are reduced modulo whatever they
    /// choose from when the event is applied, so every generated value is usable.
    #[derive(Debug, Clone)]
    enum Event {
        Arrive,
        /// Close a conversation of one of the agents with load > 0.
        Close(usize),
        /// Toggle one agent's presence.
        TogglePresence(usize),
        /// Set one agent's capacity.
        Capacity(usize, Option<u32>),
        /// A waiting visitor leaves.
        Dequeue(usize),
        /// Unassign a conversation of one of the agents with load > 0.
        Unassign(usize),
        /// Reassign a conversation of an agent with load > 0 to any agent.
        Reassign(usize, usize),
    }

    fn arb_capacity() -> impl Strategy<Value = Option<u32>> {
        prop_oneof![Just(None), (0u32..5).prop_map(Some)]
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let index = any::<usize>();
        prop_oneof![
            4 => Just(Event::Arrive),
            3 => index.prop_map(Event::Close),
            2 => index.prop_map(Event::TogglePresence),
            2 => (index, arb_capacity()).prop_map(|(i, c)| Event::Capacity(i, c)),
            1 => index.prop_map(Event::Dequeue),
            1 => index.prop_map(Event::Unassign),
            1 => (index, index).prop_map(|(i, j)| Event::Reassign(i, j)),
        ]
    }

    fn arb_agents() -> impl Strategy<Value = Vec<AgentState>> {
        proptest::collection::vec((any::<bool>(), arb_capacity()), 1..=6).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (present, capacity))| agent(&format!("agent{i}"), present, capacity))
                .collect()
        })
    }

    /// What the test knows independently of the policy: who holds which conversation.
    #[derive(Default)]
    struct Model {
        next_conversation: u64,
        /// Open assigned conversations → agent.
        holder: HashMap<String, String>,
        /// Every conversation the policy ever assigned.
        ever_assigned: HashSet<String>,
        /// Assignments per agent in the current fairness window, if one is open.
        window: Option<(BTreeSet<String>, HashMap<String, u32>)>,
    }

    fn eligible_ids(routing: &RoutingState) -> BTreeSet<String> {
        routing
            .agents
            .iter()
            .filter(|a| eligible(a))
            .map(|a| a.id.clone())
            .collect()
    }

    fn loaded_agent(routing: &RoutingState, i: usize) -> Option<String> {
        let loaded: Vec<&AgentState> = routing.agents.iter().filter(|a| a.load > 0).collect();
        (!loaded.is_empty()).then(|| loaded[i % loaded.len()].id.clone())
    }

    fn agent_at(routing: &RoutingState, i: usize) -> String {
        routing.agents[i % routing.agents.len()].id.clone()
    }

    impl Model {
        fn conversation_of(&self, agent_id: &str) -> Option<String> {
            let mut held: Vec<&String> = self
                .holder
                .iter()
                .filter(|(_, holder)| holder.as_str() == agent_id)
                .map(|(conversation, _)| conversation)
                .collect();
            held.sort();
            held.first().map(|c| (*c).clone())
        }

        /// Records a new assignment; fails if the conversation was ever assigned before.
        fn record(&mut self, a: &Assignment) -> Result<(), TestCaseError> {
            prop_assert!(
                self.ever_assigned.insert(a.conversation_id.clone()),
                "{} assigned twice",
                a.conversation_id
            );
            self.holder
                .insert(a.conversation_id.clone(), a.agent_id.clone());
            Ok(())
        }

        /// Checks that `drained` is the front of `queue_before`, in order, and that
        /// exactly those left the queue.
        fn record_drain(
            &mut self,
            queue_before: &VecDeque<String>,
            routing: &RoutingState,
            drained: &[Assignment],
        ) -> Result<(), TestCaseError> {
            let front: Vec<&String> = queue_before.iter().take(drained.len()).collect();
            let got: Vec<&String> = drained.iter().map(|a| &a.conversation_id).collect();
            prop_assert_eq!(front, got, "the queue drains oldest first");
            let rest: Vec<&String> = queue_before.iter().skip(drained.len()).collect();
            let after: Vec<&String> = routing.queue.iter().collect();
            prop_assert_eq!(rest, after);
            for a in drained {
                self.record(a)?;
            }
            Ok(())
        }

        /// Applies `event`, checking what it reports against the model. A refused event
        /// must leave the state unchanged.
        fn apply(
            &mut self,
            routing: &mut RoutingState,
            event: &Event,
        ) -> Result<(), TestCaseError> {
            let before = routing.clone();
            let drained = match event {
                Event::Arrive => {
                    self.next_conversation += 1;
                    let id = format!("conv{}", self.next_conversation);
                    let eligible_before = eligible_ids(routing);
                    let outcome = routing.arrive(id.clone());
                    match outcome {
                        Outcome::Assigned {
                            conversation_id,
                            agent_id,
                        } => {
                            prop_assert!(before.queue.is_empty(), "jumped the queue");
                            prop_assert_eq!(&conversation_id, &id);
                            prop_assert_eq!(Some(agent_id.as_str()), pick(&before));
                            self.record(&assignment(&conversation_id, &agent_id))?;
                            self.count_in_window(eligible_before, &agent_id)?;
                        }
                        Outcome::Queued { position } => {
                            prop_assert!(pick(&before).is_none() || !before.queue.is_empty());
                            prop_assert_eq!(position, routing.queue.len());
                            prop_assert_eq!(routing.queue.back(), Some(&id));
                            self.window = None;
                        }
                    }
                    return Ok(());
                }
                Event::Close(i) => {
                    self.window = None;
                    let Some(agent_id) = loaded_agent(routing, *i) else {
                        return Ok(());
                    };
                    let conversation = self.conversation_of(&agent_id);
                    prop_assert!(conversation.is_some(), "load without a conversation");
                    if let Some(conversation) = conversation {
                        self.holder.remove(&conversation);
                    }
                    routing.close(&agent_id)
                }
                Event::Unassign(i) => {
                    self.window = None;
                    let Some(agent_id) = loaded_agent(routing, *i) else {
                        return Ok(());
                    };
                    if let Some(conversation) = self.conversation_of(&agent_id) {
                        self.holder.remove(&conversation);
                    }
                    routing.unassign(&agent_id)
                }
                Event::TogglePresence(i) => {
                    self.window = None;
                    let agent_id = agent_at(routing, *i);
                    let present = !routing.agent(&agent_id).map(|a| a.present).unwrap();
                    routing.presence(&agent_id, present)
                }
                Event::Capacity(i, capacity) => {
                    self.window = None;
                    let agent_id = agent_at(routing, *i);
                    routing.set_capacity(&agent_id, *capacity)
                }
                Event::Dequeue(i) => {
                    self.window = None;
                    if routing.queue.is_empty() {
                        prop_assert!(!routing.dequeue("nobody"));
                        return Ok(());
                    }
                    let id = routing.queue[i % routing.queue.len()].clone();
                    prop_assert!(routing.dequeue(&id));
                    prop_assert_eq!(routing.queue_position(&id), None);
                    prop_assert_eq!(routing.queue.len() + 1, before.queue.len());
                    return Ok(());
                }
                Event::Reassign(i, j) => {
                    self.window = None;
                    let Some(from) = loaded_agent(routing, *i) else {
                        return Ok(());
                    };
                    let to = agent_at(routing, *j);
                    let result = routing.reassign(&from, &to);
                    if result.is_ok()
                        && let Some(conversation) = self.conversation_of(&from)
                    {
                        self.holder.insert(conversation, to);
                    }
                    result
                }
            };
            match drained {
                Ok(drained) => self.record_drain(&before.queue, routing, &drained),
                Err(_) => {
                    prop_assert_eq!(&*routing, &before, "a refused event changed the state");
                    Ok(())
                }
            }
        }

        /// Fairness window: arrivals during which the eligible set did not change.
        fn count_in_window(
            &mut self,
            eligible_before: BTreeSet<String>,
            agent_id: &str,
        ) -> Result<(), TestCaseError> {
            let (set, counts) = match self.window.take() {
                Some((set, counts)) if set == eligible_before => (set, counts),
                _ => (eligible_before, HashMap::new()),
            };
            let mut counts = counts;
            prop_assert!(set.contains(agent_id), "assigned to an ineligible agent");
            *counts.entry(agent_id.to_owned()).or_default() += 1;
            let per_agent: Vec<u32> = set
                .iter()
                .map(|id| counts.get(id).copied().unwrap_or(0))
                .collect();
            let spread = per_agent.iter().max().unwrap() - per_agent.iter().min().unwrap();
            prop_assert!(
                spread <= 1,
                "round-robin counts {per_agent:?} in one window"
            );
            self.window = Some((set, counts));
            Ok(())
        }
    }

    /// The invariants that hold after every event.
    fn check_invariants(
        before: &RoutingState,
        routing: &RoutingState,
        model: &Model,
    ) -> Result<(), TestCaseError> {
        for agent in &routing.agents {
            let load_before = before.agent(&agent.id).map_or(0, |a| a.load);
            // (1) Nothing assigns past capacity. A capacity lowered below the load is the
            // admin's doing; then the load may only stay or fall.
            if agent.load > load_before {
                prop_assert!(
                    agent.load <= agent.capacity.unwrap_or(u32::MAX),
                    "{} over capacity: {} > {:?}",
                    agent.id,
                    agent.load,
                    agent.capacity
                );
            }
            let held = model.holder.values().filter(|h| **h == agent.id).count();
            prop_assert_eq!(agent.load as usize, held, "load of {} is off", &agent.id);
        }
        // (2) Nothing is both waiting and assigned, and nothing waits twice.
        let waiting: HashSet<&String> = routing.queue.iter().collect();
        prop_assert_eq!(
            waiting.len(),
            routing.queue.len(),
            "a duplicate in the queue"
        );
        for id in &routing.queue {
            prop_assert!(
                !model.ever_assigned.contains(id),
                "{id} waits and is assigned"
            );
        }
        // (3) Nobody eligible is left idle while someone waits.
        if routing.anyone_eligible() {
            prop_assert!(routing.queue.is_empty(), "queue not drained: {:?}", routing);
        }
        // Positions are 1-based and consistent with the queue.
        for (index, id) in routing.queue.iter().enumerate() {
            prop_assert_eq!(routing.queue_position(id), Some(index + 1));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Capacity, uniqueness, FIFO drain and windowed fairness under any sequence of
        /// arrivals, closes, presence toggles, capacity changes and manual actions.
        #[test]
        fn routing_invariants_hold_for_any_sequence_of_events(
            agents in arb_agents(),
            events in proptest::collection::vec(arb_event(), 0..200),
        ) {
            let mut routing = state(agents);
            let mut model = Model::default();
            for event in &events {
                let before = routing.clone();
                model.apply(&mut routing, event)?;
                check_invariants(&before, &routing, &model)?;
            }
        }

        /// With every agent present and unlimited, N arrivals and no closes spread
        /// evenly — whatever history came before.
        #[test]
        fn round_robin_counts_differ_by_at_most_one(
            agents in arb_agents(),
            history in proptest::collection::vec(arb_event(), 0..100),
            arrivals in 1usize..200,
        ) {
            let mut routing = state(agents);
            let mut model = Model::default();
            for event in &history {
                model.apply(&mut routing, event)?;
            }
            let ids: Vec<String> = routing.agents.iter().map(|a| a.id.clone()).collect();
            for id in &ids {
                routing.presence(id, true).unwrap();
                routing.set_capacity(id, None).unwrap();
            }
            prop_assert!(routing.queue.is_empty());

            let mut counts: HashMap<&str, usize> = ids.iter().map(|id| (id.as_str(), 0)).collect();
            for i in 0..arrivals {
                let outcome = routing.arrive(format!("phase{i}"));
                let agent_id = assigned_to(&outcome);
                prop_assert!(agent_id.is_some(), "nobody took an arrival: {:?}", outcome);
                *counts.get_mut(agent_id.unwrap()).unwrap() += 1;
            }

            let max = counts.values().max().unwrap();
            let min = counts.values().min().unwrap();
            prop_assert!(max - min <= 1, "counts {:?}", counts);
        }

        /// `arrive_all` is `arrive` called for each id in turn: same outcomes, same
        /// state — for any history, with ids already waiting and ids repeated.
        #[test]
        fn arrive_all_is_arrive_one_by_one(
            agents in arb_agents(),
            history in proptest::collection::vec(arb_event(), 0..100),
            picks in proptest::collection::vec(0usize..40, 0..60),
        ) {
            let mut routing = state(agents);
            let mut model = Model::default();
            for event in &history {
                model.apply(&mut routing, event)?;
            }
            // Ids already waiting (if any), new ids, and repeats of both.
            let mut pool: Vec<String> = routing.queue.iter().cloned().collect();
            pool.extend((0..20).map(|i| format!("batch{i}")));
            let ids: Vec<String> = picks.iter().map(|i| pool[i % pool.len()].clone()).collect();
            let mut one_by_one = routing.clone();
            let expected: Vec<Outcome> = ids.iter().map(|id| one_by_one.arrive(id.clone())).collect();
            let outcomes = routing.arrive_all(ids);
            prop_assert_eq!(outcomes, expected);
            prop_assert_eq!(routing, one_by_one);
        }
    }
}
