//! Chunks on object storage: their keys, their Parquet layout, their metadata, and the
//! object store they live in.

pub mod chunk;
pub mod keys;
pub mod meta;
pub mod store;

pub use chunk::{ChunkError, encode_chunk, sort_for_chunk};
pub use keys::{ChunkId, ChunkKey, PartitionKey};
pub use meta::{ChunkMeta, StreamStats, WalMark};
pub use store::{ChunkStore, StoreError};
