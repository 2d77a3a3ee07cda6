//! Compute: the partitions that stand in for the robot's AI chips and the placement of the
//! model stages on them ([`partition`]), the chip profiles that turn a partition's op ledger
//! into roofline time, TOPS and energy ([`chip`]), and this machine's own measured roofline,
//! the `host` profile that the simulation is checked against ([`host`]).

pub mod chip;
pub mod host;
pub mod partition;
