//! Per-conversation seq checks for one participant. Everything a participant learns of a
//! conversation's seqs — the acks of its own messages and the `message` frames of
//! everyone else's — goes into its ledger; at the end each seq from 1 to the
//! conversation's highest must have been seen exactly once, and received messages must
//! have come in increasing seq order. The counts feed [`Checks`].

use crate::report::Checks;

/// One participant's view of one conversation.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Index = seq: how many times it was seen (acked or received).
    seen: Vec<u32>,
    /// The highest seq received as a message so far.
    last_received: u64,
    /// Messages received after a higher seq.
    reordered: u64,
    /// Every seq up to this one has been seen.
    prefix: u64,
}

impl Ledger {
    fn mark(&mut self, seq: u64) {
        let at = usize::try_from(seq).unwrap_or(usize::MAX);
        if at >= self.seen.len() {
            // A seq far out of range (a broken server) is clamped, not allocated.
            if at > 50_000_000 {
                return;
            }
            self.seen.resize(at + 1, 0);
        }
        if let Some(n) = self.seen.get_mut(at) {
            *n += 1;
        }
        while self
            .seen
            .get(self.prefix as usize + 1)
            .is_some_and(|n| *n > 0)
        {
            self.prefix += 1;
        }
    }

    /// Every seq from 1 to this one has been seen.
    pub fn prefix(&self) -> u64 {
        self.prefix
    }

    /// The ack of one of this participant's own messages.
    pub fn acked(&mut self, seq: u64) {
        self.mark(seq);
    }

    /// A `message` frame.
    pub fn received(&mut self, seq: u64) {
        if seq < self.last_received {
            self.reordered += 1;
        }
        self.last_received = self.last_received.max(seq);
        self.mark(seq);
    }

    /// A `message` frame after a `resume`, de-duplicated by seq as the protocol asks of
    /// clients (a socket that already followed the conversation may get again what it had):
    /// a seq already seen is dropped and `false` returned.
    pub fn received_dedup(&mut self, seq: u64) -> bool {
        if self.seen.get(seq as usize).is_some_and(|n| *n > 0) {
            return false;
        }
        self.received(seq);
        true
    }

    /// The highest seq seen.
    pub fn top(&self) -> u64 {
        self.seen.len().saturating_sub(1) as u64
    }

    /// Whether every seq `1..=top` has been seen.
    pub fn complete_to(&self, top: u64) -> bool {
        (1..=top).all(|s| self.seen.get(s as usize).copied().unwrap_or(0) > 0)
    }

    /// Count lost (never seen), duplicated and reordered seqs against `top`, the
    /// conversation's highest acked seq.
    pub fn check(&self, top: u64, checks: &mut Checks) {
        for seq in 1..=top {
            match self.seen.get(seq as usize).copied().unwrap_or(0) {
                0 => checks.lost += 1,
                1 => {}
                n => checks.duplicated += u64::from(n - 1),
            }
        }
        for n in self.seen.iter().skip(top as usize + 1) {
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
}
