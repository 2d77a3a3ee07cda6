//! The cerebellum's real-time side: the action stream that carries each token or value from
//! the policy the moment it is sampled ([`stream`]), and the motion decoder that turns it
//! into joint commands at the robot's control rate inside the safety envelope, with its
//! watchdog and its loop thread ([`motion`]), and the lock-free link that brings it the
//! robot's measured state, the cameras' capture times and the operator's pause and
//! emergency stop ([`feedback`]).
//!
//! Everything here that runs per control tick keeps the real-time contract: no allocation,
//! no lock the model side can hold, bounded work per tick. The model side only ever touches
//! the producer end of the stream.

pub mod feedback;
pub mod motion;
pub mod stream;
