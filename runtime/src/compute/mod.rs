//! Compute: the partitions that stand in for the robot's AI chips and the placement of the
//! model stages on them ([`partition`]), the chip profiles that turn a partition's op ledger
//! into roofline time, TOPS and energy ([`chip`]), and this machine's own measured roofline,
//! the `host` profile that the simulation is checked against ([`host`], with the rate one
//! core runs the runtime's host-side work at from [`host_code`] and the cost of an op beyond
//! its arithmetic from [`op_cost`]).

pub mod chip;
pub mod host;
pub mod host_code;
pub mod op_cost;
pub mod partition;
