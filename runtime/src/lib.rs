//! brainstem-runtime: the layer a robot stack embeds. For now it re-exports the model layer;
//! partitions, placement, the two loops and the motion decoder land here next.

pub use brainstem_models as models;
pub use brainstem_models::kernels;
