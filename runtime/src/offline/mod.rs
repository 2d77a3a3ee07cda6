//! Offline work on recorded robot episodes: reading LeRobotDataset folders (v3.0 and v2.1)
//! ([`dataset`]), and replaying their episodes through the runtime on the virtual clock to
//! compare the motion decoder's commands with the recorded actions ([`eval`]); and closed-loop
//! evaluation, the runtime driving a simulated robot ([`sim`]).

pub mod dataset;
pub mod eval;
pub mod sim;
