//! The queues of a call: [`SmallQueue`], a FIFO that holds its first few items without
//! allocating (a unary call never allocates for its events and outputs), and
//! [`OutputQueue`], the outputs a call hands to its adapter, counting the body bytes in it so
//! adapters can apply back-pressure in wire bytes (after compression and framing).

use std::collections::VecDeque;

use bytes::Bytes;

/// An output that may carry body bytes.
pub(crate) trait Output {
    /// The body bytes this output carries, if it is a data chunk.
    fn data(&self) -> Option<&Bytes>;
}

impl Output for super::ServerOutput {
    fn data(&self) -> Option<&Bytes> {
        match self {
            super::ServerOutput::Data(data) => Some(data),
            _ => None,
        }
    }
}

impl Output for super::ClientOutput {
    fn data(&self) -> Option<&Bytes> {
        match self {
            super::ClientOutput::Data(data) => Some(data),
            _ => None,
        }
    }
}

/// Items a [`SmallQueue`] holds before it allocates.
const INLINE: usize = 4;

/// A FIFO whose first [`INLINE`] items live inline (a ring); more spill to a `VecDeque`, in
/// order: items are always taken from the ring first, and pushed to the spill while it is
/// not empty.
#[derive(Debug)]
pub(crate) struct SmallQueue<T> {
    ring: [Option<T>; INLINE],
    head: usize,
    len: usize,
    spill: VecDeque<T>,
}

impl<T> SmallQueue<T> {
    pub(crate) fn new() -> Self {
        SmallQueue {
            ring: [const { None }; INLINE],
            head: 0,
            len: 0,
            spill: VecDeque::new(),
        }
    }

    pub(crate) fn push_back(&mut self, item: T) {
        if self.len < INLINE && self.spill.is_empty() {
            self.ring[(self.head + self.len) % INLINE] = Some(item);
            self.len += 1;
        } else {
            self.spill.push_back(item);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return self.spill.pop_front();
        }
        let item = self.ring[self.head].take();
        self.head = (self.head + 1) % INLINE;
        self.len -= 1;
        item
    }

    pub(crate) fn clear(&mut self) {
        while self.len > 0 {
            self.ring[self.head] = None;
            self.head = (self.head + 1) % INLINE;
            self.len -= 1;
        }
        self.spill.clear();
    }

    /// Takes every item in order; items the iterator did not reach are dropped with it.
    pub(crate) fn drain(&mut self) -> Drain<'_, T> {
        Drain { queue: self }
    }
}

impl<T> Default for SmallQueue<T> {
    fn default() -> Self {
        SmallQueue::new()
    }
}

/// See [`SmallQueue::drain`].
pub(crate) struct Drain<'a, T> {
    queue: &'a mut SmallQueue<T>,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.pop_front()
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        self.queue.clear();
    }
}

/// A FIFO of outputs with a running count of the body bytes queued.
#[derive(Debug)]
pub(crate) struct OutputQueue<O> {
    items: SmallQueue<O>,
    data_bytes: usize,
}

impl<O: Output> OutputQueue<O> {
    pub(crate) fn new() -> Self {
        OutputQueue {
            items: SmallQueue::new(),
            data_bytes: 0,
        }
    }

    pub(crate) fn push(&mut self, output: O) {
        self.data_bytes += output.data().map_or(0, Bytes::len);
        self.items.push_back(output);
    }

    pub(crate) fn pop(&mut self) -> Option<O> {
        let output = self.items.pop_front()?;
        self.data_bytes -= output.data().map_or(0, Bytes::len);
        Some(output)
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.data_bytes = 0;
    }

    pub(crate) fn data_bytes(&self) -> usize {
        self.data_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::SmallQueue;

    #[test]
    fn small_queue_is_fifo_across_the_spill() {
        let mut q = SmallQueue::new();
        let mut expected = std::collections::VecDeque::new();
        let mut next = 0;
        // Interleave pushes and pops so the ring wraps and the spill fills and drains.
        for round in 0..50 {
            for _ in 0..(round % 7) {
                q.push_back(next);
                expected.push_back(next);
                next += 1;
            }
            for _ in 0..(round % 5) {
                assert_eq!(q.pop_front(), expected.pop_front());
            }
        }
        while let Some(item) = expected.pop_front() {
            assert_eq!(q.pop_front(), Some(item));
        }
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn drain_takes_in_order_and_drops_the_rest() {
        let mut q = SmallQueue::new();
        for i in 0..9 {
            q.push_back(i);
        }
        let taken: Vec<_> = q.drain().take(3).collect();
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(q.pop_front(), None);
        q.push_back(10);
        assert_eq!(q.pop_front(), Some(10));
    }
}
