//! The queues of a call: [`SmallQueue`], a FIFO that holds its first few items without
//! allocating (a unary call never allocates for its events and outputs), and
//! [`OutputQueue`], the outputs a call hands to its adapter, counting the body bytes in it so
//! adapters can apply back-pressure in wire bytes (after compression and framing).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// An output that may carry body bytes.
pub(crate) trait Output: Sized {
    /// The body bytes, if this output is a data chunk; the output itself otherwise.
    fn into_data(self) -> Result<Bytes, Self>;
    /// A data chunk.
    fn from_data(data: Bytes) -> Self;
}

impl Output for super::ServerOutput {
    fn into_data(self) -> Result<Bytes, Self> {
        match self {
            super::ServerOutput::Data(data) => Ok(data),
            other => Err(other),
        }
    }

    fn from_data(data: Bytes) -> Self {
        super::ServerOutput::Data(data)
    }
}

impl Output for super::ClientOutput {
    fn into_data(self) -> Result<Bytes, Self> {
        match self {
            super::ClientOutput::Data(data) => Ok(data),
            other => Err(other),
        }
    }

    fn from_data(data: Bytes) -> Self {
        super::ClientOutput::Data(data)
    }
}

/// Items a [`SmallQueue`] holds before it allocates.
const INLINE: usize = 4;

/// A FIFO whose first `N` items (default [`INLINE`]) live inline (a ring); more spill to a
/// `VecDeque`, in order: items are always taken from the ring first, and pushed to the spill
/// while it is not empty.
#[derive(Debug)]
pub(crate) struct SmallQueue<T, const N: usize = INLINE> {
    ring: [Option<T>; N],
    head: usize,
    len: usize,
    spill: VecDeque<T>,
}

impl<T, const N: usize> SmallQueue<T, N> {
    pub(crate) fn new() -> Self {
        SmallQueue {
            ring: [const { None }; N],
            head: 0,
            len: 0,
            spill: VecDeque::new(),
        }
    }

    pub(crate) fn push_back(&mut self, item: T) {
        if self.len < N && self.spill.is_empty() {
            self.ring[(self.head + self.len) % N] = Some(item);
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
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }

    pub(crate) fn front(&self) -> Option<&T> {
        if self.len == 0 {
            return self.spill.front();
        }
        self.ring[self.head].as_ref()
    }

    pub(crate) fn clear(&mut self) {
        while self.len > 0 {
            self.ring[self.head] = None;
            self.head = (self.head + 1) % N;
            self.len -= 1;
        }
        self.spill.clear();
    }
}

impl<T, const N: usize> Default for SmallQueue<T, N> {
    fn default() -> Self {
        SmallQueue::new()
    }
}

/// A message as an event queue holds it.
#[derive(Debug)]
pub(crate) enum QueuedMessage {
    /// Decompressed.
    Plain(Bytes),
    /// Still compressed (pass-through).
    Compressed(Bytes),
}

/// An event that may be a message.
pub(crate) trait Event: Sized {
    /// The message, if this event is one; the event itself otherwise.
    fn into_message(self) -> Result<QueuedMessage, Self>;
    /// A message event.
    fn from_message(message: QueuedMessage) -> Self;
}

/// One place in an [`EventQueue`]'s order.
#[derive(Debug)]
enum Slot {
    Message(QueuedMessage),
    /// The next of the queue's other events.
    Other,
}

/// A call's events in order, messages held compactly: a message takes a slot the size of its
/// payload handle, whatever the size of the call's other events (a client's headers and
/// trailer maps make its events three times larger), so the burst of messages one body chunk
/// carries (hundreds of small ones) fills a third of the memory.
#[derive(Debug)]
pub(crate) struct EventQueue<E, const OTHERS: usize> {
    order: SmallQueue<Slot>,
    others: SmallQueue<E, OTHERS>,
}

// `Box::default()` builds a queue in its allocation; `Box::new(new())` copies it there.
impl<E: Event, const OTHERS: usize> Default for EventQueue<E, OTHERS> {
    fn default() -> Self {
        EventQueue::new()
    }
}

impl<E: Event, const OTHERS: usize> EventQueue<E, OTHERS> {
    pub(crate) fn new() -> Self {
        EventQueue {
            order: SmallQueue::new(),
            others: SmallQueue::new(),
        }
    }

    pub(crate) fn push_back(&mut self, event: E) {
        match event.into_message() {
            Ok(message) => self.push_message(message),
            Err(other) => {
                self.others.push_back(other);
                self.order.push_back(Slot::Other);
            }
        }
    }

    /// Queues a message event (as `push_back` would, without the event enum).
    pub(crate) fn push_message(&mut self, message: QueuedMessage) {
        self.order.push_back(Slot::Message(message));
    }

    pub(crate) fn pop_front(&mut self) -> Option<E> {
        match self.order.pop_front()? {
            Slot::Message(message) => Some(E::from_message(message)),
            Slot::Other => self.others.pop_front(),
        }
    }

    /// The front event if it is a decompressed message (anything else stays queued).
    pub(crate) fn pop_plain_message(&mut self) -> Option<Bytes> {
        if !matches!(
            self.order.front(),
            Some(Slot::Message(QueuedMessage::Plain(_)))
        ) {
            return None;
        }
        match self.order.pop_front() {
            Some(Slot::Message(QueuedMessage::Plain(message))) => Some(message),
            // The front was just checked: no other slot is taken here.
            _ => None,
        }
    }
}

/// Data chunks waiting in a row are joined up to this size (a whole HTTP/2 frame by default):
/// a stream of small messages then leaves as a few large body chunks, not one per message
/// (fewer frames, fewer wake-ups, and h2 peers budget small frames).
pub(crate) const JOIN_BYTES: usize = 16 * 1024;

/// The room a chunk written in place starts with (it grows as messages need).
const FIRST_CHUNK: usize = 1024;

/// The least room left over in a taken chunk that is kept for the next chunk written in place
/// (so messages written one at a time, each taken before the next, share one allocation).
const MIN_SPARE: usize = 128;

/// A FIFO of outputs with a running count of the body bytes queued. Data chunks pushed in a
/// row while nobody takes them are joined into one chunk of up to [`JOIN_BYTES`]; a lone chunk
/// is handed over as it is (no copy), as is any chunk of [`JOIN_BYTES`] or more.
#[derive(Debug)]
pub(crate) struct OutputQueue<O> {
    items: SmallQueue<O>,
    /// Data pushed after the last item, not an item yet (it may still grow).
    tail: Tail,
    /// Unused room of the last chunk written in place and taken: the next one starts in it.
    spare: BytesMut,
    data_bytes: usize,
}

#[derive(Debug)]
enum Tail {
    Empty,
    One(Bytes),
    Joined(BytesMut),
}

impl<O: Output> Default for OutputQueue<O> {
    fn default() -> Self {
        OutputQueue::new()
    }
}

impl<O: Output> OutputQueue<O> {
    pub(crate) fn new() -> Self {
        OutputQueue {
            items: SmallQueue::new(),
            tail: Tail::Empty,
            spare: BytesMut::new(),
            data_bytes: 0,
        }
    }

    pub(crate) fn push(&mut self, output: O) {
        match output.into_data() {
            Ok(data) => {
                self.data_bytes += data.len();
                self.push_data(data);
            }
            Err(other) => {
                self.flush_tail();
                self.items.push_back(other);
            }
        }
    }

    fn push_data(&mut self, data: Bytes) {
        let joined = match std::mem::replace(&mut self.tail, Tail::Empty) {
            Tail::Empty => None,
            Tail::One(first) if first.len() + data.len() <= JOIN_BYTES => {
                // More small chunks tend to follow the second one: room for a few more.
                let wanted = ((first.len() + data.len()) * 4).min(JOIN_BYTES);
                let mut buf = BytesMut::with_capacity(wanted);
                buf.extend_from_slice(&first);
                Some(buf)
            }
            Tail::Joined(buf) if buf.len() + data.len() <= JOIN_BYTES => Some(buf),
            full => {
                self.tail = full;
                self.flush_tail();
                None
            }
        };
        self.tail = match joined {
            Some(mut buf) => {
                buf.extend_from_slice(&data);
                Tail::Joined(buf)
            }
            None if data.len() >= JOIN_BYTES => {
                self.items.push_back(O::from_data(data));
                Tail::Empty
            }
            None => Tail::One(data),
        };
    }

    /// Appends a data chunk written in place by `write` to the open (joined) chunk — a new
    /// one when there is none or it is full — so small chunks written in a row share one
    /// buffer without being copied into it. `write` only appends (or leaves the buffer as it
    /// found it); the bytes it adds count as queued data.
    pub(crate) fn write_data<R>(&mut self, write: impl FnOnce(&mut BytesMut) -> R) -> R {
        let mut buf = match std::mem::replace(&mut self.tail, Tail::Empty) {
            Tail::Joined(buf) if buf.len() < JOIN_BYTES => buf,
            other => self.open_chunk(other),
        };
        let before = buf.len();
        let result = write(&mut buf);
        let after = buf.len();
        self.data_bytes += after.saturating_sub(before);
        if after == 0 {
            // Nothing was written into a chunk opened for it: no empty chunk goes out (its
            // room is kept for the next one).
            self.keep_spare(buf);
        } else {
            self.tail = Tail::Joined(buf);
        }
        result
    }

    /// A chunk with room to write in, for a tail that has none: the tail's single chunk
    /// copied into a chunk with room, or a new one (a full tail queued first). A chunk opened
    /// after a full one is sized for a whole [`JOIN_BYTES`] (the stream is fast); a first one
    /// starts in the room left by the last chunk taken, or small.
    #[cold]
    fn open_chunk(&mut self, tail: Tail) -> BytesMut {
        match tail {
            Tail::Joined(buf) if buf.len() < JOIN_BYTES => buf,
            Tail::One(first) if first.len() < JOIN_BYTES => {
                let mut buf = BytesMut::with_capacity(JOIN_BYTES);
                buf.extend_from_slice(&first);
                buf
            }
            Tail::Empty if self.spare.capacity() >= MIN_SPARE => std::mem::take(&mut self.spare),
            Tail::Empty => BytesMut::with_capacity(FIRST_CHUNK),
            full => {
                self.tail = full;
                self.flush_tail();
                BytesMut::with_capacity(JOIN_BYTES + FIRST_CHUNK)
            }
        }
    }

    /// Keeps the unused room of a chunk written in place for the next one, when there is
    /// enough of it to matter.
    fn keep_spare(&mut self, room: BytesMut) {
        if room.capacity() >= MIN_SPARE && room.capacity() > self.spare.capacity() {
            self.spare = room;
        }
    }

    /// Makes the tail an item.
    fn flush_tail(&mut self) {
        match std::mem::replace(&mut self.tail, Tail::Empty) {
            Tail::Empty => {}
            Tail::One(data) => self.items.push_back(O::from_data(data)),
            Tail::Joined(buf) => self.items.push_back(O::from_data(buf.freeze())),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<O> {
        let output = match self.items.pop_front() {
            Some(output) => output,
            None => match std::mem::replace(&mut self.tail, Tail::Empty) {
                // The chunk being written in place is taken: its unused room stays for the
                // next one (one allocation for messages that are taken one at a time).
                Tail::Joined(mut buf) if buf.capacity() - buf.len() >= MIN_SPARE => {
                    let written = buf.split();
                    self.keep_spare(buf);
                    O::from_data(written.freeze())
                }
                tail => {
                    self.tail = tail;
                    self.flush_tail();
                    self.items.pop_front()?
                }
            },
        };
        match output.into_data() {
            Ok(data) => {
                self.data_bytes -= data.len();
                Some(O::from_data(data))
            }
            Err(other) => Some(other),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.tail = Tail::Empty;
        self.spare = BytesMut::new();
        self.data_bytes = 0;
    }

    pub(crate) fn data_bytes(&self) -> usize {
        self.data_bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{JOIN_BYTES, OutputQueue, SmallQueue};
    use crate::call::ServerOutput;

    fn data(len: usize, byte: u8) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    /// Pops everything: each output as (is data, bytes or empty).
    fn drain(queue: &mut OutputQueue<ServerOutput>) -> Vec<Option<Bytes>> {
        std::iter::from_fn(|| queue.pop())
            .map(|output| match output {
                ServerOutput::Data(bytes) => Some(bytes),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lone_chunk_is_handed_over_without_a_copy() {
        let mut queue = OutputQueue::new();
        let chunk = data(10, 1);
        queue.push(ServerOutput::Data(chunk.clone()));
        assert_eq!(queue.data_bytes(), 10);
        match queue.pop() {
            Some(ServerOutput::Data(out)) => assert_eq!(out.as_ptr(), chunk.as_ptr()),
            other => panic!("{other:?}"),
        }
        assert_eq!(queue.data_bytes(), 0);
        assert!(queue.pop().is_none());
    }

    #[test]
    fn chunks_in_a_row_are_joined_in_order_up_to_the_limit() {
        let mut queue = OutputQueue::new();
        queue.push(ServerOutput::End);
        for byte in 1..=3 {
            queue.push(ServerOutput::Data(data(5, byte)));
        }
        queue.push(ServerOutput::End);
        queue.push(ServerOutput::Data(data(JOIN_BYTES - 10, 4)));
        queue.push(ServerOutput::Data(data(10, 5)));
        // Would cross the limit: starts the next chunk.
        queue.push(ServerOutput::Data(data(1, 6)));
        assert_eq!(queue.data_bytes(), 15 + JOIN_BYTES + 1);
        let out = drain(&mut queue);
        assert_eq!(out.len(), 5);
        assert_eq!(out[0], None);
        let mut first = vec![1u8; 5];
        first.extend([2; 5]);
        first.extend([3; 5]);
        assert_eq!(out[1].as_deref(), Some(&first[..]));
        assert_eq!(out[2], None);
        let second = out[3].as_ref().expect("data");
        assert_eq!(second.len(), JOIN_BYTES);
        assert_eq!(&second[JOIN_BYTES - 10..], &[5; 10]);
        assert_eq!(out[4].as_deref(), Some(&[6u8][..]));
        assert_eq!(queue.data_bytes(), 0);
    }

    #[test]
    fn a_big_chunk_is_never_copied_and_taking_stops_joining() {
        let mut queue = OutputQueue::new();
        let big = data(JOIN_BYTES, 9);
        queue.push(ServerOutput::Data(data(3, 1)));
        queue.push(ServerOutput::Data(big.clone()));
        let out = drain(&mut queue);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].as_ref().map(|b| b.as_ptr()), Some(big.as_ptr()));
        // A chunk taken is gone: the next one starts afresh.
        queue.push(ServerOutput::Data(data(2, 1)));
        assert_eq!(drain(&mut queue), [Some(data(2, 1))]);
        queue.push(ServerOutput::Data(data(2, 1)));
        queue.clear();
        assert_eq!(queue.data_bytes(), 0);
        assert!(queue.pop().is_none());
    }

    #[test]
    fn chunks_written_in_place_and_taken_one_at_a_time_share_one_buffer() {
        let mut queue: OutputQueue<ServerOutput> = OutputQueue::new();
        let mut taken = Vec::new();
        for byte in 1..=4u8 {
            queue.write_data(|buf| buf.extend_from_slice(&[byte; 10]));
            assert_eq!(queue.data_bytes(), 10);
            taken.extend(drain(&mut queue).into_iter().flatten());
            assert_eq!(queue.data_bytes(), 0);
        }
        assert_eq!(taken.len(), 4);
        for (i, chunk) in taken.iter().enumerate() {
            assert_eq!(&chunk[..], &[i as u8 + 1; 10]);
        }
        // Each chunk starts where the one before ended: the room left over was reused.
        for pair in taken.windows(2) {
            assert_eq!(pair[1].as_ptr(), pair[0].as_ptr().wrapping_add(10));
        }
        // A write that adds nothing sends nothing and keeps the room.
        queue.write_data(|_| ());
        assert!(queue.pop().is_none());
        queue.write_data(|buf| buf.extend_from_slice(b"next"));
        let next = drain(&mut queue);
        assert_eq!(next, [Some(Bytes::from_static(b"next"))]);
        assert_eq!(
            next[0].as_ref().map(|b| b.as_ptr()),
            Some(taken[3].as_ptr().wrapping_add(10))
        );
    }

    #[test]
    fn chunks_written_in_place_join_until_taken() {
        let mut queue: OutputQueue<ServerOutput> = OutputQueue::new();
        for byte in 1..=3u8 {
            queue.write_data(|buf| buf.extend_from_slice(&[byte; 4]));
        }
        queue.push(ServerOutput::End);
        queue.write_data(|buf| buf.extend_from_slice(&[9; 2]));
        assert_eq!(queue.data_bytes(), 14);
        let out = drain(&mut queue);
        let mut first = vec![1u8; 4];
        first.extend([2; 4]);
        first.extend([3; 4]);
        assert_eq!(out, [Some(Bytes::from(first)), None, Some(data(2, 9))]);
        assert_eq!(queue.data_bytes(), 0);
    }

    #[test]
    fn event_queues_keep_the_order_of_messages_and_other_events() {
        use super::EventQueue;
        use crate::call::ClientEvent;

        fn describe(event: &ClientEvent) -> String {
            match event {
                ClientEvent::Headers(_) => "headers".into(),
                ClientEvent::Message(bytes) => format!("m{}", bytes[0]),
                ClientEvent::CompressedMessage(bytes) => format!("c{}", bytes[0]),
                ClientEvent::Finished(Ok(_)) => "ok".into(),
                ClientEvent::Finished(Err(_)) => "err".into(),
            }
        }
        let mut queue: EventQueue<ClientEvent, 2> = EventQueue::new();
        let mut expected = Vec::new();
        let mut taken = Vec::new();
        let mut push = |queue: &mut EventQueue<ClientEvent, 2>, event: ClientEvent| {
            expected.push(describe(&event));
            queue.push_back(event);
        };
        push(&mut queue, ClientEvent::Headers(http::HeaderMap::new()));
        for i in 0..40u8 {
            let payload = Bytes::from(vec![i]);
            let event = if i % 3 == 0 {
                ClientEvent::CompressedMessage(payload)
            } else {
                ClientEvent::Message(payload)
            };
            push(&mut queue, event);
            if i % 7 == 0 {
                // Other events between messages (and past the inline room) keep their place.
                push(
                    &mut queue,
                    ClientEvent::Finished(Ok(http::HeaderMap::new())),
                );
            }
            if i % 5 == 0 {
                taken.extend(queue.pop_front().map(|e| describe(&e)));
            }
        }
        push(
            &mut queue,
            ClientEvent::Finished(Err(crate::Status::internal("x"))),
        );
        taken.extend(std::iter::from_fn(|| queue.pop_front()).map(|e| describe(&e)));
        assert_eq!(taken, expected);
        assert!(queue.pop_front().is_none());
    }

    #[test]
    fn small_queue_is_fifo_across_the_spill() {
        let mut q: SmallQueue<_> = SmallQueue::new();
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
    fn clear_drops_the_rest_after_some_were_taken() {
        let mut q: SmallQueue<_> = SmallQueue::new();
        for i in 0..9 {
            q.push_back(i);
        }
        let taken: Vec<_> = (0..3).filter_map(|_| q.pop_front()).collect();
        assert_eq!(taken, [0, 1, 2]);
        q.clear();
        assert_eq!(q.pop_front(), None);
        q.push_back(10);
        assert_eq!(q.pop_front(), Some(10));
    }
}
