//! The trace-ID index: trace fingerprint → the chunks whose locator lists it. A lookup
//! needs no time range and costs one hash probe, however many chunks exist; the chunk
//! metadata then says when the trace happened in each. Fingerprints are 64 bits, so a
//! rare collision only means one extra chunk is read (the scan filters by full ID).

use std::collections::HashMap;
use std::sync::Arc;

use crate::storage::ChunkMeta;

#[derive(Debug, Default)]
pub struct TraceIndex {
    chunks: HashMap<u64, Vec<Arc<ChunkMeta>>>,
}

impl TraceIndex {
    pub fn insert(&mut self, chunk: &Arc<ChunkMeta>) {
        for trace in &chunk.traces {
            self.chunks
                .entry(trace.fingerprint)
                .or_default()
                .push(Arc::clone(chunk));
        }
    }

    pub fn lookup(&self, fingerprint: u64) -> &[Arc<ChunkMeta>] {
        self.chunks.get(&fingerprint).map_or(&[], |v| v.as_slice())
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}
