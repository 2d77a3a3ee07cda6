//! The model side of the runtime: the stages ([`stages`]: the vision encoder, the brain's VLT
//! planner and VLM answerer, the cerebellum's action policy: a token VLA, a flow-matching
//! [`flow`] policy or lerobot's pi0-FAST [`fast`]) loaded onto their partitions;
//! the board of observations and intentions they read and the events they report
//! ([`observe`]); and the wall-clock loops that run them, one thread each ([`loops`]). The
//! simulation ([`crate::simulate`]) drives the same stages on the virtual clock.

pub mod fast;
pub mod flow;
pub mod loops;
pub mod observe;
pub mod stages;
