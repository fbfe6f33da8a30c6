//! The queue of outputs a call hands to its adapter, counting the body bytes in it so
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

/// A FIFO of outputs with a running count of the body bytes queued.
#[derive(Debug)]
pub(crate) struct OutputQueue<O> {
    items: VecDeque<O>,
    data_bytes: usize,
}

impl<O: Output> OutputQueue<O> {
    pub(crate) fn new() -> Self {
        OutputQueue {
            items: VecDeque::new(),
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
