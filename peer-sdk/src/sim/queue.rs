//! The simulator's event queue: events in order of time, and of scheduling among events due at
//! the same microsecond.
//!
//! The heap orders small entries (time, order, slot) and the events themselves wait in a slab:
//! a large swarm keeps hundreds of thousands of events pending, and sifting the events
//! themselves through the heap on every pop made the queue a tenth of the run time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A priority queue of `T` by time in microseconds, first scheduled first among equal times.
pub(super) struct EventQueue<T> {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    order: u64,
}

impl<T> EventQueue<T> {
    pub(super) fn new() -> EventQueue<T> {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            order: 0,
        }
    }

    /// Schedules `event` at `at` (microseconds), after every event already scheduled then.
    pub(super) fn push(&mut self, at: u64, event: T) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        self.order += 1;
        self.heap.push(Reverse((at, self.order, slot)));
    }

    /// The earliest event and its time.
    pub(super) fn pop(&mut self) -> Option<(u64, T)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        let event = self.slots[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        Some((at, event))
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;

    #[test]
    fn pops_by_time_then_by_scheduling_order() {
        let mut queue = EventQueue::new();
        for (at, name) in [(5, "a"), (1, "b"), (5, "c"), (3, "d"), (1, "e")] {
            queue.push(at, name);
        }
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(popped, [(1, "b"), (1, "e"), (3, "d"), (5, "a"), (5, "c")]);
    }
}
