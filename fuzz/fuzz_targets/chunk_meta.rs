//! Chunk metadata (`{id}.meta`, read back from the object store when the store
//! opens): what decodes encodes to bytes that decode to the same metadata, and its
//! trace locator lists each trace's blocks in strictly increasing order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use threadline::storage::ChunkMeta;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = ChunkMeta::decode(data) else {
        return;
    };
    let bytes = meta.encode().expect("decoded metadata encodes");
    let again = ChunkMeta::decode(&bytes)
        .unwrap_or_else(|e| panic!("metadata encoded from a decoded one fails: {e}"));
    assert_eq!(meta, again);
    for fingerprint in [0, 1, u64::MAX, 0x9e37_79b9_7f4a_7c15] {
        let blocks = meta.traces.blocks(fingerprint);
        assert!(
            blocks.windows(2).all(|w| w[0] < w[1]),
            "blocks out of order: {blocks:?}"
        );
    }
});
