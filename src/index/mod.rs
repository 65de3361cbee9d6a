//! The only two indexes: labels and trace IDs. Both live in memory, are kept per
//! tenant and signal, and are rebuilt on start from chunk metadata and the WAL replay.
//! Text is never indexed: it is found by scanning.

pub mod labels;
pub mod traces;

pub use labels::LabelIndex;
pub use traces::TraceBlocks;
