//! The simulator's event queue: events in order of time, and of scheduling among events due at
//! the same microsecond.
//!
//! A large swarm keeps hundreds of thousands of events pending, so the queue is built for
//! memory traffic: the heap orders small entries (time, order, slot) while the events wait in a
//! slab, and it is 4-ary (half the depth of a binary heap, the four children of a node side by
//! side), since each level of a deep heap is a cache miss.

/// Children per heap node.
const ARITY: usize = 4;

/// A priority queue of `T` by time in microseconds, first scheduled first among equal times.
pub(super) struct EventQueue<T> {
    /// (time, order, slot), each entry no later than its children.
    heap: Vec<(u64, u64, u32)>,
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    order: u64,
}

impl<T> EventQueue<T> {
    pub(super) fn new() -> EventQueue<T> {
        EventQueue {
            heap: Vec::new(),
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
        let entry = (at, self.order, slot);
        let mut at = self.heap.len();
        self.heap.push(entry);
        while at > 0 {
            let parent = (at - 1) / ARITY;
            if self.heap[parent] <= entry {
                break;
            }
            self.heap[at] = self.heap[parent];
            at = parent;
        }
        self.heap[at] = entry;
    }

    /// The earliest event and its time.
    pub(super) fn pop(&mut self) -> Option<(u64, T)> {
        let last = self.heap.pop()?;
        let (time, _, slot) = match self.heap.first().copied() {
            None => last,
            Some(first) => {
                self.sift_down_from_root(last);
                first
            }
        };
        self.free.push(slot);
        let event = self.slots[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        Some((time, event))
    }

    /// Puts `entry` in place of the root, moving earlier children up.
    fn sift_down_from_root(&mut self, entry: (u64, u64, u32)) {
        let len = self.heap.len();
        let mut at = 0;
        loop {
            let first_child = at * ARITY + 1;
            if first_child >= len {
                break;
            }
            let children = first_child..(first_child + ARITY).min(len);
            let earliest = children
                .min_by_key(|&child| self.heap[child])
                .expect("at least one child");
            if entry <= self.heap[earliest] {
                break;
            }
            self.heap[at] = self.heap[earliest];
            at = earliest;
        }
        self.heap[at] = entry;
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

    #[test]
    fn pops_in_order_when_pushes_and_pops_interleave() {
        let mut queue = EventQueue::new();
        let mut expected = Vec::new();
        let mut popped = Vec::new();
        // A deterministic jumble of times, with pops in between.
        for i in 0..2000u64 {
            let at = i * 7919 % 613;
            queue.push(at, i);
            expected.push((at, i));
            if i % 3 == 0 {
                popped.push(queue.pop().expect("not empty"));
            }
        }
        popped.extend(std::iter::from_fn(|| queue.pop()));
        // Every pop returned the earliest pending (time, push order) at that moment.
        let mut pending: Vec<(u64, u64)> = Vec::new();
        let mut pushes = expected.into_iter();
        let mut pops = popped.into_iter();
        for i in 0..2000u64 {
            pending.push(pushes.next().expect("2000 pushes"));
            if i % 3 == 0 {
                let earliest = *pending.iter().min().expect("not empty");
                pending.retain(|p| *p != earliest);
                assert_eq!(pops.next(), Some(earliest));
            }
        }
        pending.sort();
        assert_eq!(pops.collect::<Vec<_>>(), pending);
    }
}
