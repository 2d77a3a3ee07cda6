//! The action-token stream: a wait-free single-producer single-consumer ring (`rtrb`) that
//! carries what a policy samples, token by token, from the model side to the motion decoder.
//! A chunk is framed by [`StreamEvent::ChunkStart`] and [`StreamEvent::ChunkEnd`]; in between
//! come discrete action tokens, or raw values for policies with continuous outputs.
//!
//! Neither side ever blocks: a full ring refuses the event and the sender counts it, an empty
//! ring returns `None`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::Nanos;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamEvent {
    /// A new chunk whose first action is for `start_time` (the policy steps that follow are
    /// one policy period apart). An unfinished chunk before it ends there.
    ChunkStart {
        chunk_id: u64,
        start_time: Nanos,
    },
    /// One action token (binning or FAST ids, as the decoder is configured).
    Token(u32),
    /// One action value, for policies that output numbers rather than tokens.
    Value(f32),
    ChunkEnd,
    /// The policy failed: stop the robot under control now rather than waiting for the
    /// schedule to run dry. The next whole, valid chunk resumes motion.
    Halt,
}

/// The model side.
pub struct ActionSender {
    producer: rtrb::Producer<StreamEvent>,
    refused: Arc<AtomicU64>,
}

/// The motion decoder's side.
pub struct ActionReceiver {
    consumer: rtrb::Consumer<StreamEvent>,
    refused: Arc<AtomicU64>,
}

/// The ring was full: the motion decoder is not draining it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the action stream is full; the event was dropped")]
pub struct StreamFull;

/// A stream holding up to `capacity` events in flight.
pub fn action_stream(capacity: usize) -> (ActionSender, ActionReceiver) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    let refused = Arc::new(AtomicU64::new(0));
    (
        ActionSender {
            producer,
            refused: refused.clone(),
        },
        ActionReceiver { consumer, refused },
    )
}

impl ActionSender {
    pub fn send(&mut self, event: StreamEvent) -> Result<(), StreamFull> {
        self.producer.push(event).map_err(|_| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            StreamFull
        })
    }

    pub fn begin_chunk(&mut self, chunk_id: u64, start_time: Nanos) -> Result<(), StreamFull> {
        self.send(StreamEvent::ChunkStart { chunk_id, start_time })
    }

    pub fn token(&mut self, token: u32) -> Result<(), StreamFull> {
        self.send(StreamEvent::Token(token))
    }

    pub fn value(&mut self, value: f32) -> Result<(), StreamFull> {
        self.send(StreamEvent::Value(value))
    }

    pub fn end_chunk(&mut self) -> Result<(), StreamFull> {
        self.send(StreamEvent::ChunkEnd)
    }

    pub fn halt(&mut self) -> Result<(), StreamFull> {
        self.send(StreamEvent::Halt)
    }

    /// Events refused because the ring was full, since the stream was made.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// False once the receiver is gone.
    pub fn is_connected(&self) -> bool {
        !self.producer.is_abandoned()
    }
}

impl ActionReceiver {
    /// The next event, if one is waiting. Wait-free; never allocates.
    pub fn pop(&mut self) -> Option<StreamEvent> {
        self.consumer.pop().ok()
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// True once the sender is gone and every event has been read.
    pub fn is_closed(&self) -> bool {
        self.consumer.is_abandoned() && self.consumer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_in_order_across_threads() {
        let (mut sender, mut receiver) = action_stream(16);
        let producer = std::thread::spawn(move || {
            for token in 0..10_000u32 {
                while sender.token(token).is_err() {
                    std::hint::spin_loop();
                }
            }
            sender.refused()
        });
        let mut next = 0;
        while next < 10_000 {
            if let Some(StreamEvent::Token(token)) = receiver.pop() {
                assert_eq!(token, next);
                next += 1;
            }
        }
        assert!(producer.join().unwrap() > 0 || receiver.refused() == 0);
        assert!(receiver.is_closed());
    }

    #[test]
    fn a_full_stream_refuses_and_counts() {
        let (mut sender, receiver) = action_stream(2);
        sender.token(1).unwrap();
        sender.token(2).unwrap();
        assert_eq!(sender.token(3), Err(StreamFull));
        assert_eq!(receiver.refused(), 1);
    }
}
