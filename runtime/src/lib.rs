//! brainstem-runtime: the layer a robot stack embeds. Its folders are its rooms:
//!
//! - [`cerebellum`]: the real-time side, the action stream and the motion decoder with its
//!   safety envelope and watchdog;
//! - [`pipeline`]: the model side, the vision, brain (VLT, VLM) and cerebellum (VLA) stages,
//!   the observations they share and the wall-clock loops that run them;
//! - [`compute`]: partitions and placement, chip profiles, this host's measured roofline;
//! - [`simulate`]: the whole runtime on the virtual clock, and the chip-budget sweeps of
//!   `brainstem bench`;
//! - [`offline`]: recorded LeRobotDataset episodes and evaluation against them;
//! - [`embed`]: the embedding API ([`Runtime`]) and the C ABI.
//!
//! Shared by all of them: the configuration file ([`config`]), the robot description
//! ([`robot`]), injected time ([`clock`]), telemetry ([`telemetry`]), errors ([`error`]) and
//! the built-in demo ([`demo`]). `docs/ARCHITECTURE.md` walks a frame and an action through
//! these rooms.

pub mod cerebellum;
pub mod clock;
pub mod compute;
pub mod config;
pub mod demo;
pub mod embed;
pub mod error;
pub mod offline;
pub mod pipeline;
pub mod robot;
pub mod simulate;
pub mod telemetry;

pub use brainstem_models as models;
pub use brainstem_models::kernels;
pub use config::RuntimeConfig;
pub use embed::{Runtime, RuntimeOptions};
pub use error::{Result, RuntimeError};
pub use pipeline::observe::RuntimeEvent;
