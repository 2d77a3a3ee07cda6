//! The action-token stream: a wait-free single-producer single-consumer ring (`rtrb`) that
//! carries what a policy samples, token by token, from the model side to the motion decoder.
//! A chunk is framed by [`StreamEvent::ChunkStart`] and [`StreamEvent::ChunkEnd`]; in between
//! come discrete action tokens, or raw values for policies with continuous outputs.
//!
//! Neither side ever blocks: a full ring refuses the event and the sender counts it, an empty
//! ring returns `None`. A chunk that lost an event is lost whole: once one of its events is
//! refused, the sender sends none of the rest of its data (so what did arrive is an unshifted
//! prefix), and every chunk's start and end carry the sender's running count of refused
//! events, so the receiver can tell a whole chunk (the same count at both ends) from one that
//! lost something, even when the lost event was the end itself.

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
        /// Events the sender had refused before this one.
        refused: u64,
    },
    /// One action token (binning or FAST ids, as the decoder is configured).
    Token(u32),
    /// One action value, for policies that output numbers rather than tokens.
    Value(f32),
    /// The chunk is over; `refused` counts the events the sender had refused before this one:
    /// more than at the chunk's start means the chunk lost an event.
    ChunkEnd { refused: u64 },
    /// The policy failed: stop the robot under control now rather than waiting for the
    /// schedule to run dry. The next whole, valid chunk resumes motion.
    Halt,
}

/// The model side.
pub struct ActionSender {
    producer: rtrb::Producer<StreamEvent>,
    refused: Arc<AtomicU64>,
    /// The current chunk lost an event: the rest of its data is not sent.
    chunk_lost: bool,
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
            chunk_lost: false,
        },
        ActionReceiver { consumer, refused },
    )
}

impl ActionSender {
    fn send(&mut self, event: StreamEvent) -> Result<(), StreamFull> {
        self.producer.push(event).map_err(|_| self.count_refused())
    }

    fn count_refused(&mut self) -> StreamFull {
        self.refused.fetch_add(1, Ordering::Relaxed);
        StreamFull
    }

    /// One of the current chunk's data events: refused, with the rest of the chunk, once any
    /// of the chunk's events was.
    /// Passes on, as it is, an event read from another stream (a relay that retimes a
    /// stream). Its refused counts are the first stream's; a refusal here is counted here.
    pub fn relay(&mut self, event: StreamEvent) -> Result<(), StreamFull> {
        self.send(event)
    }

    fn send_data(&mut self, event: StreamEvent) -> Result<(), StreamFull> {
        if self.chunk_lost {
            return Err(self.count_refused());
        }
        let sent = self.send(event);
        self.chunk_lost = sent.is_err();
        sent
    }

    pub fn begin_chunk(&mut self, chunk_id: u64, start_time: Nanos) -> Result<(), StreamFull> {
        let refused = self.refused();
        let sent = self.send(StreamEvent::ChunkStart {
            chunk_id,
            start_time,
            refused,
        });
        self.chunk_lost = sent.is_err();
        sent
    }

    pub fn token(&mut self, token: u32) -> Result<(), StreamFull> {
        self.send_data(StreamEvent::Token(token))
    }

    pub fn value(&mut self, value: f32) -> Result<(), StreamFull> {
        self.send_data(StreamEvent::Value(value))
    }

    pub fn end_chunk(&mut self) -> Result<(), StreamFull> {
        let refused = self.refused();
        self.chunk_lost = false;
        self.send(StreamEvent::ChunkEnd { refused })
    }

    pub fn halt(&mut self) -> Result<(), StreamFull> {
        self.chunk_lost = false;
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
            for chunk_id in 0..10_000u64 {
                while sender.begin_chunk(chunk_id, 0).is_err() {
                    std::hint::spin_loop();
                }
            }
            sender.refused()
        });
        let mut next = 0;
        while next < 10_000 {
            if let Some(StreamEvent::ChunkStart { chunk_id, refused, .. }) = receiver.pop() {
                assert_eq!(chunk_id, next);
                assert!(refused <= receiver.refused());
                next += 1;
            }
        }
        assert_eq!(producer.join().unwrap(), receiver.refused());
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

    #[test]
    fn a_chunk_that_lost_an_event_sends_no_more_of_it() {
        let (mut sender, mut receiver) = action_stream(3);
        sender.begin_chunk(7, 0).unwrap();
        sender.token(1).unwrap();
        sender.token(2).unwrap();
        assert_eq!(sender.token(3), Err(StreamFull));
        assert_eq!(
            receiver.pop(),
            Some(StreamEvent::ChunkStart {
                chunk_id: 7,
                start_time: 0,
                refused: 0
            })
        );
        assert_eq!(
            sender.token(4),
            Err(StreamFull),
            "the chunk is lost though there is room"
        );
        sender.end_chunk().unwrap();
        assert_eq!(receiver.pop(), Some(StreamEvent::Token(1)));
        assert_eq!(receiver.pop(), Some(StreamEvent::Token(2)));
        assert_eq!(receiver.pop(), Some(StreamEvent::ChunkEnd { refused: 2 }));
        sender.begin_chunk(8, 0).unwrap();
        sender.token(5).unwrap();
        assert_eq!(
            receiver.pop(),
            Some(StreamEvent::ChunkStart {
                chunk_id: 8,
                start_time: 0,
                refused: 2
            })
        );
        assert_eq!(
            receiver.pop(),
            Some(StreamEvent::Token(5)),
            "the next chunk is sent whole"
        );
    }
}
