//! The send queue: records waiting to be produced, popped in send time order.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use super::SimRecord;

/// A record waiting in the send queue, ordered by (send time, sequence number).
pub(super) struct Pending {
    pub(super) send_ms: u64,
    pub(super) seq: u64,
    pub(super) record: SimRecord,
}

impl Pending {
    fn key(&self) -> (u64, u64) {
        (self.send_ms, self.seq)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest send time first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// Records waiting to be sent, popped in (send time, sequence number) order.
///
/// A binary heap alone costs a third of the generator's time, so records due within the next
/// `ring.len()` ms (all regular ones) go to a ring of per-millisecond FIFO buckets, O(1) each;
/// the rest (the few late ones) to a heap. Pushes come in sequence order and never before
/// `cursor`, the earliest send time still pending.
pub(super) struct SendQueue {
    ring: Vec<VecDeque<Pending>>,
    in_ring: usize,
    cursor: u64,
    heap: BinaryHeap<Pending>,
}

impl SendQueue {
    pub(super) fn new(out_of_order_ms: u64) -> Self {
        let slots = out_of_order_ms.min(1 << 16) as usize + 1;
        let ring = (0..slots).map(|_| VecDeque::new()).collect();
        Self {
            ring,
            in_ring: 0,
            cursor: 0,
            heap: BinaryHeap::new(),
        }
    }

    fn slot(&mut self, ms: u64) -> &mut VecDeque<Pending> {
        let slots = self.ring.len() as u64;
        &mut self.ring[(ms % slots) as usize]
    }

    pub(super) fn push(&mut self, pending: Pending) {
        debug_assert!(pending.send_ms >= self.cursor);
        if pending.send_ms < self.cursor + self.ring.len() as u64 {
            self.slot(pending.send_ms).push_back(pending);
            self.in_ring += 1;
        } else {
            self.heap.push(pending);
        }
    }

    /// Pops the earliest record sent at or before `horizon` (`None`: the earliest of all).
    /// Afterwards nothing pending is due before `cursor`, and `cursor` ≤ `horizon`.
    pub(super) fn pop(&mut self, horizon: Option<u64>) -> Option<SimRecord> {
        let limit = horizon.unwrap_or(u64::MAX);
        if self.in_ring == 0 {
            self.cursor = horizon.unwrap_or(self.cursor);
        }
        while self.in_ring > 0 && self.cursor < limit && self.slot(self.cursor).is_empty() {
            self.cursor += 1;
        }
        let cursor = self.cursor;
        let ring_key = self.slot(cursor).front().map(Pending::key);
        let heap_key = self.heap.peek().map(Pending::key).filter(|k| k.0 <= limit);
        let pending = match (ring_key, heap_key) {
            (Some(r), Some(h)) if h < r => self.heap.pop(),
            (Some(_), _) => {
                self.in_ring -= 1;
                self.slot(cursor).pop_front()
            }
            (None, Some(_)) => self.heap.pop(),
            (None, None) => None,
        };
        pending.map(|p| p.record)
    }
}
