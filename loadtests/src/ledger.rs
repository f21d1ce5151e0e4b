//! Per-conversation seq checks for one participant. Everything a participant learns of a
//! conversation's seqs — the acks of its own messages and the `message` frames of
//! everyone else's — goes into its ledger; at the end each seq from 1 to the
//! conversation's highest must have been seen exactly once, and received messages must
//! have come in increasing seq order. The counts feed [`Checks`].

use crate::report::Checks;

/// One participant's view of one conversation.
///
/// Acks and received messages are counted apart: a participant may legitimately learn
/// a seq both ways — its own message, acked, and also replayed to it by a `resume` that
/// reads the store (docs/protocol.md: a socket may get again what it had), in either
/// order. What must never happen is the same seq acked twice, or delivered twice as a
/// live message.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Index = seq: how many acks carried it.
    acks: Vec<u32>,
    /// Index = seq: how many `message` frames carried it (after any de-duplication).
    receipts: Vec<u32>,
    /// The highest seq received as a message so far.
    last_received: u64,
    /// Messages received after a higher seq.
    reordered: u64,
    /// Every seq up to this one has been seen.
    prefix: u64,
}

/// Seqs far out of range (a broken server) are ignored, not allocated.
const MAX_SEQ: usize = 50_000_000;

fn bump(counts: &mut Vec<u32>, seq: u64) -> bool {
    let at = usize::try_from(seq).unwrap_or(usize::MAX);
    if at > MAX_SEQ {
        return false;
    }
    if at >= counts.len() {
        counts.resize(at + 1, 0);
    }
    if let Some(n) = counts.get_mut(at) {
        *n += 1;
    }
    true
}

impl Ledger {
    fn seen(&self, seq: u64) -> bool {
        let at = seq as usize;
        self.acks.get(at).is_some_and(|n| *n > 0) || self.receipts.get(at).is_some_and(|n| *n > 0)
    }

    fn advance(&mut self) {
        while self.seen(self.prefix + 1) {
            self.prefix += 1;
        }
    }

    /// Every seq from 1 to this one has been seen.
    pub fn prefix(&self) -> u64 {
        self.prefix
    }

    /// The ack of one of this participant's own messages.
    pub fn acked(&mut self, seq: u64) {
        if bump(&mut self.acks, seq) {
            self.advance();
        }
    }

    /// A `message` frame.
    pub fn received(&mut self, seq: u64) {
        if seq < self.last_received {
            self.reordered += 1;
        }
        self.last_received = self.last_received.max(seq);
        if bump(&mut self.receipts, seq) {
            self.advance();
        }
    }

    /// A `message` frame after a `resume`, de-duplicated by seq as the protocol asks of
    /// clients (a socket that already followed the conversation may get again what it had):
    /// a seq already seen (acked or received) is dropped and `false` returned.
    pub fn received_dedup(&mut self, seq: u64) -> bool {
        if self.seen(seq) {
            return false;
        }
        self.received(seq);
        true
    }

    /// The highest seq seen.
    pub fn top(&self) -> u64 {
        self.acks.len().max(self.receipts.len()).saturating_sub(1) as u64
    }

    /// Whether every seq `1..=top` has been seen.
    pub fn complete_to(&self, top: u64) -> bool {
        (1..=top).all(|s| self.seen(s))
    }

    /// Count lost (never seen), duplicated (acked twice, or received twice) and
    /// reordered seqs against `top`, the conversation's highest acked seq.
    pub fn check(&self, top: u64, checks: &mut Checks) {
        for seq in 1..=top {
            if !self.seen(seq) {
                checks.lost += 1;
            }
        }
        for n in self.acks.iter().chain(&self.receipts) {
            checks.duplicated += u64::from(n.saturating_sub(1));
        }
        checks.reordered += self.reordered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_ledger_is_clean_and_gaps_duplicates_and_reorders_count() {
        let mut l = Ledger::default();
        l.acked(1);
        l.received(2);
        l.acked(3);
        l.received(4);
        let mut c = Checks::default();
        l.check(4, &mut c);
        assert_eq!((c.lost, c.duplicated, c.reordered), (0, 0, 0));
        assert!(l.complete_to(4));
        assert_eq!(l.prefix(), 4);

        let mut bad = Ledger::default();
        bad.received(3);
        bad.received(2);
        bad.received(3);
        let mut c = Checks::default();
        bad.check(4, &mut c);
        // 1 and 4 lost, 3 twice, 2 after 3.
        assert_eq!((c.lost, c.duplicated, c.reordered), (2, 1, 1));
        assert!(!bad.complete_to(4));
        assert_eq!(bad.prefix(), 0);

        let mut r = Ledger::default();
        r.received(1);
        assert!(!r.received_dedup(1));
        assert!(r.received_dedup(2));
        let mut c = Checks::default();
        r.check(2, &mut c);
        assert_eq!((c.lost, c.duplicated, c.reordered), (0, 0, 0));
        assert_eq!(bad.top(), 3);
    }

    #[test]
    fn an_own_message_replayed_before_its_ack_is_not_a_duplicate_but_a_second_ack_is() {
        let mut l = Ledger::default();
        l.received(1);
        // The agent's reply, replayed by its resume before the ack arrives.
        assert!(l.received_dedup(2));
        l.acked(2);
        let mut c = Checks::default();
        l.check(2, &mut c);
        assert_eq!((c.lost, c.duplicated, c.reordered), (0, 0, 0));
        assert_eq!(l.prefix(), 2);

        l.acked(2);
        let mut c = Checks::default();
        l.check(2, &mut c);
        assert_eq!(c.duplicated, 1);

        let mut twice = Ledger::default();
        twice.received(1);
        twice.received(1);
        let mut c = Checks::default();
        twice.check(1, &mut c);
        assert_eq!(c.duplicated, 1);
    }
}
