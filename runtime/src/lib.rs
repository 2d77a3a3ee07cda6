//! brainstem-runtime: the layer a robot stack embeds. So far: the cerebellum's side, which is
//! the action-token stream ([`stream`]), the motion decoder with its safety envelope and
//! watchdog ([`motion`]), the robot description ([`robot`]) and injected time ([`clock`]).
//! Partitions, placement and the two loops land here next.

pub mod clock;
pub mod error;
pub mod motion;
pub mod robot;
pub mod stream;

pub use brainstem_models as models;
pub use brainstem_models::kernels;
pub use error::{Result, RuntimeError};
