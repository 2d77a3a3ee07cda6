//! brainstem-runtime: the layer a robot stack embeds. So far: the cerebellum's side, which is
//! the action-token stream ([`stream`]), the motion decoder with its safety envelope and
//! watchdog ([`motion`]), the robot description ([`robot`]) and injected time ([`clock`]);
//! and the compute side's partitions and placement ([`partition`]) with the chip profiles
//! they stand for ([`chip`]), and telemetry ([`telemetry`]). The two loops and the embedding
//! API land here next.

pub mod chip;
pub mod clock;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod embed;
pub mod error;
pub mod eval;
pub mod ffi;
pub mod host;
pub mod loops;
pub mod motion;
pub mod observe;
pub mod partition;
pub mod robot;
pub mod simulate;
pub mod stages;
pub mod stream;
pub mod sweep;
pub mod telemetry;

pub use brainstem_models as models;
pub use brainstem_models::kernels;
pub use config::RuntimeConfig;
pub use embed::{Runtime, RuntimeOptions};
pub use error::{Result, RuntimeError};
pub use observe::RuntimeEvent;
